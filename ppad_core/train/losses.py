"""RMT-PPAD losses (docs/model.md, "Losses"): RT-DETR set loss plus focal/BCE and focal/Tversky segmentation.

L = L_det + L_drivable + L_lane, a plain sum. L_det sums, over the main (last decoder layer), auxiliary
(earlier layers), encoder top-k and denoising prediction sets: varifocal classification against the
IoU of the matched box, L1 and GIoU box terms, each normalised by the number of matched pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

from ppad_core.boxes import cxcywh_to_xyxy, elementwise_iou, pairwise_iou
from ppad_core.model.denoising import DenoisingGroup


@dataclass
class LossConfig:
    cost_class: float = 2.0
    cost_bbox: float = 5.0
    cost_giou: float = 2.0
    gain_class: float = 1.0
    gain_bbox: float = 5.0
    gain_giou: float = 2.0
    focal_gain: float = 24.0  # "sfl"
    second_gain: float = 8.0  # "tl": BCE for drivable area, Tversky for lane lines
    vfl_alpha: float = 0.75
    vfl_gamma: float = 2.0
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    tversky_alpha: float = 0.7  # weight of false negatives


Match = tuple[torch.Tensor, torch.Tensor]  # (query indices, ground-truth indices) of one image


@torch.no_grad()
def hungarian_match(logits: torch.Tensor, boxes: torch.Tensor, targets: list[dict], cfg: LossConfig) -> list[Match]:
    """Per image, the assignment minimising 2*focal class cost + 5*L1 + 2*(1 - GIoU) (scipy, on the CPU)."""
    matches = []
    for b, target in enumerate(targets):
        n = len(target["labels"])
        if n == 0:
            empty = torch.zeros(0, dtype=torch.long)
            matches.append((empty, empty))
            continue
        prob = logits[b].float().sigmoid()[:, target["labels"]]  # [Q, n]
        alpha, gamma = 0.25, 2.0
        pos = alpha * (1 - prob) ** gamma * -(prob + 1e-8).log()
        neg = (1 - alpha) * prob**gamma * -(1 - prob + 1e-8).log()
        cost_class = pos - neg
        cost_bbox = torch.cdist(boxes[b].float(), target["boxes"].float(), p=1)
        cost_giou = 1 - pairwise_iou(cxcywh_to_xyxy(boxes[b].float()), cxcywh_to_xyxy(target["boxes"].float()), True)
        cost = cfg.cost_class * cost_class + cfg.cost_bbox * cost_bbox + cfg.cost_giou * cost_giou
        cost = torch.nan_to_num(cost, nan=0.0, posinf=0.0, neginf=0.0).cpu().numpy()
        rows, cols = linear_sum_assignment(cost)
        matches.append((torch.as_tensor(rows, dtype=torch.long), torch.as_tensor(cols, dtype=torch.long)))
    return matches


def varifocal_loss(
    logits: torch.Tensor, target_score: torch.Tensor, positive: torch.Tensor, alpha: float, gamma: float
) -> torch.Tensor:
    """Sum of BCE against the soft target, weighted alpha * p^gamma on negatives and target on positives."""
    weight = alpha * logits.sigmoid().pow(gamma) * (1 - positive) + target_score * positive
    return (F.binary_cross_entropy_with_logits(logits, target_score, reduction="none") * weight).sum()


def set_loss(
    logits: torch.Tensor, boxes: torch.Tensor, targets: list[dict], matches: list[Match], cfg: LossConfig
) -> dict[str, torch.Tensor]:
    """Class, L1 and GIoU terms of one prediction set (logits [B,Q,C], boxes [B,Q,4] cxcywh)."""
    batch_idx = torch.cat([torch.full_like(q, b) for b, (q, _) in enumerate(matches)])
    query_idx = torch.cat([q for q, _ in matches])
    gt_boxes = torch.cat([t["boxes"][g] for t, (_, g) in zip(targets, matches)]).to(boxes)
    gt_labels = torch.cat([t["labels"][g] for t, (_, g) in zip(targets, matches)]).to(logits.device)
    count = max(len(query_idx), 1)
    logits = logits.float()
    matched = boxes[batch_idx, query_idx].float()
    giou = elementwise_iou(cxcywh_to_xyxy(matched), cxcywh_to_xyxy(gt_boxes.float()), generalized=True)
    iou = elementwise_iou(cxcywh_to_xyxy(matched), cxcywh_to_xyxy(gt_boxes.float())).detach().clamp(min=0)
    positive = torch.zeros_like(logits)
    positive[batch_idx, query_idx, gt_labels] = 1.0
    target_score = torch.zeros_like(logits)
    target_score[batch_idx, query_idx, gt_labels] = iou
    return {
        "class": cfg.gain_class * varifocal_loss(logits, target_score, positive, cfg.vfl_alpha, cfg.vfl_gamma) / count,
        "bbox": cfg.gain_bbox * F.l1_loss(matched, gt_boxes.float(), reduction="sum") / count,
        "giou": cfg.gain_giou * (1 - giou).sum() / count,
    }


def denoising_matches(dn: DenoisingGroup, targets: list[dict]) -> list[Match]:
    """Fixed matching of the denoising set: positive copy (group g, box j) <-> ground truth j."""
    matches = []
    for target in targets:
        n = len(target["labels"])
        slots = dn.positive_slots(n).flatten()
        matches.append((slots, torch.arange(n).repeat(dn.num_groups)))
    return matches


def detection_loss(outputs: dict, targets: list[dict], cfg: LossConfig) -> dict[str, torch.Tensor]:
    """RT-DETR set loss over main, auxiliary, encoder and denoising sets."""
    totals: dict[str, torch.Tensor] = {}

    def add(prefix: str, terms: dict[str, torch.Tensor]) -> None:
        for name, value in terms.items():
            key = f"{prefix}_{name}"
            totals[key] = totals.get(key, 0) + value

    layers = outputs["boxes"].shape[0]
    for layer in range(layers):
        logits, boxes = outputs["logits"][layer], outputs["boxes"][layer]
        prefix = "main" if layer == layers - 1 else "aux"
        add(prefix, set_loss(logits, boxes, targets, hungarian_match(logits, boxes, targets, cfg), cfg))
    enc_matches = hungarian_match(outputs["enc_logits"], outputs["enc_boxes"], targets, cfg)
    add("aux", set_loss(outputs["enc_logits"], outputs["enc_boxes"], targets, enc_matches, cfg))
    if outputs.get("dn_group") is not None:
        matches = denoising_matches(outputs["dn_group"], targets)
        for layer in range(layers):
            add("dn", set_loss(outputs["dn_logits"][layer], outputs["dn_boxes"][layer], targets, matches, cfg))
    return totals


def focal_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """Mean over pixels of -(alpha y log p + (1 - alpha)(1 - y) log(1 - p)) |y - p|^gamma."""
    prob = logits.sigmoid()
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)
    ce = -(alpha * target * log_p + (1 - alpha) * (1 - target) * log_not_p)
    return (ce * (target - prob).abs().pow(gamma)).mean()


def tversky_loss(logits: torch.Tensor, target: torch.Tensor, alpha: float, smooth: float = 1.0) -> torch.Tensor:
    """1 - (TP + s) / (TP + alpha FN + (1 - alpha) FP + s), soft and summed over the whole batch."""
    prob = logits.sigmoid()
    tp = (prob * target).sum()
    fn = ((1 - prob) * target).sum()
    fp = (prob * (1 - target)).sum()
    return 1 - (tp + smooth) / (tp + alpha * fn + (1 - alpha) * fp + smooth)


def segmentation_loss(seg_logits: torch.Tensor, masks: torch.Tensor, cfg: LossConfig) -> dict[str, torch.Tensor]:
    """seg_logits [B,2,H,W]; masks [B,2,H,W] 0/1 (channel 0 drivable area, 1 lane line)."""
    logits, target = seg_logits.float(), masks.float()
    drivable, lane = (logits[:, 0], target[:, 0]), (logits[:, 1], target[:, 1])
    return {
        "drivable_focal": cfg.focal_gain * focal_loss(*drivable, cfg.focal_alpha, cfg.focal_gamma),
        "drivable_bce": cfg.second_gain * F.binary_cross_entropy_with_logits(*drivable),
        "lane_focal": cfg.focal_gain * focal_loss(*lane, cfg.focal_alpha, cfg.focal_gamma),
        "lane_tversky": cfg.second_gain * tversky_loss(*lane, cfg.tversky_alpha),
    }


def total_loss(outputs: dict, targets: list[dict], masks: torch.Tensor, cfg: LossConfig):
    """(sum of every term, dict of the terms) for one training batch."""
    terms = {**detection_loss(outputs, targets, cfg), **segmentation_loss(outputs["seg_logits"], masks, cfg)}
    return sum(terms.values()), terms


def task_losses(terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Group the terms per task (detection, drivable area, lane lines), e.g. for per-task gradients."""
    groups = {"detection": [], "drivable": [], "lane": []}
    for name, value in terms.items():
        task = "drivable" if name.startswith("drivable") else "lane" if name.startswith("lane") else "detection"
        groups[task].append(value)
    return {task: sum(values) for task, values in groups.items()}
