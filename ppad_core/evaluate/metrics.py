"""Metrics of the RMT-PPAD protocol (rmt_ppad_model.md §6).

Detection: all queries, no NMS; per IoU threshold, greedy matching by descending IoU (each prediction and
ground truth used once); AP from the precision envelope with 101-point trapezoid integration; Recall =
matched ground truths at IoU 0.5 over all ground truths, with every prediction (lowest confidence).
Segmentation: per image and task a 2x2 confusion matrix; IoU_c = (TP_c + 1e-9) / (TP_c + FP_c + FN_c + 1e-9);
drivable mIoU = mean(IoU_bg, IoU_fg); lane IoU = IoU_fg; lane accuracy = balanced accuracy
(TP/(TP+FN) + TN/(TN+FP)) / 2 with 1e-12 in the denominators; averaged over images.
"""

from __future__ import annotations

import numpy as np
import torch

from ppad_core.boxes import pairwise_iou

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
SWEEP_THRESHOLDS = np.round(np.arange(0.40, 0.951, 0.05), 2)


def match_predictions(
    pred_boxes: torch.Tensor,
    pred_classes: torch.Tensor,
    gt_boxes: torch.Tensor,
    gt_classes: torch.Tensor,
    thresholds: np.ndarray = IOU_THRESHOLDS,
) -> np.ndarray:
    """True-positive flags [N_pred, T]: per threshold, same-class pairs with IoU >= t are taken greedily by
    descending IoU, each prediction and each ground truth at most once."""
    tp = np.zeros((len(pred_boxes), len(thresholds)), bool)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return tp
    iou = pairwise_iou(gt_boxes.double(), pred_boxes.double()).numpy()  # [M, N]
    iou = iou * (gt_classes[:, None] == pred_classes[None, :]).numpy()
    gt_idx, pred_idx = np.nonzero(iou >= thresholds[0])
    order = np.argsort(-iou[gt_idx, pred_idx], kind="stable")
    pairs = list(zip(gt_idx[order], pred_idx[order], iou[gt_idx, pred_idx][order]))
    for t, threshold in enumerate(thresholds):
        used_gt, used_pred = set(), set()
        for g, p, value in pairs:
            if value < threshold:
                break
            if g not in used_gt and p not in used_pred:
                used_gt.add(g)
                used_pred.add(p)
                tp[p, t] = True
    return tp


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope, 101 recall points, trapezoid rule."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    return float(np.trapezoid(np.interp(x, mrec, mpre), x))


def detection_metrics(tp: np.ndarray, scores: np.ndarray, num_gt: int) -> dict[str, float | np.ndarray]:
    """AP per IoU threshold, the PR curve at IoU 0.5, and Recall at the lowest confidence."""
    if num_gt == 0 or len(tp) == 0:
        return {"ap": np.zeros(tp.shape[1]), "recall": 0.0, "pr_curve": (np.zeros(0), np.zeros(0))}
    order = np.argsort(-scores, kind="stable")
    tp = tp[order]
    tpc = tp.cumsum(0)
    fpc = (1 - tp).cumsum(0)
    recall = tpc / num_gt
    precision = tpc / np.maximum(tpc + fpc, 1e-16)
    ap = np.array([average_precision(recall[:, t], precision[:, t]) for t in range(tp.shape[1])])
    return {"ap": ap, "recall": float(recall[-1, 0]), "pr_curve": (recall[:, 0], precision[:, 0])}


def segmentation_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Per-image scores of one binary task from boolean prediction and ground truth arrays."""
    tp = float(np.count_nonzero(pred & gt))
    fp = float(np.count_nonzero(pred & ~gt))
    fn = float(np.count_nonzero(~pred & gt))
    tn = float(pred.size) - tp - fp - fn
    iou_fg = (tp + 1e-9) / (tp + fp + fn + 1e-9)
    iou_bg = (tn + 1e-9) / (tn + fn + fp + 1e-9)
    return {
        "iou": iou_fg,
        "miou": (iou_fg + iou_bg) / 2,
        "balanced_acc": (tp / (tp + fn + 1e-12) + tn / (tn + fp + 1e-12)) / 2,
        "pixel_acc": (tp + tn) / pred.size,
        "recall_acc": tp / (tp + fn + 1e-12),
    }


class MetricAccumulator:
    """Collects per-image detection matches and per-image segmentation scores at every sweep threshold."""

    def __init__(self, seg_thresholds: tuple[float, float] = (0.45, 0.90)) -> None:
        self.seg_thresholds = seg_thresholds
        self._all_thresholds = sorted(set(SWEEP_THRESHOLDS.tolist()) | set(seg_thresholds))
        self.tp: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.num_gt = 0
        self.seg: dict[str, list[dict]] = {"drivable": [], "lane": []}  # per image: threshold -> scores
        self.images = 0

    def add_detections(
        self,
        pred_xyxy: torch.Tensor,
        scores: torch.Tensor,
        classes: torch.Tensor,
        gt_xyxy: torch.Tensor,
        gt_classes: torch.Tensor,
    ) -> None:
        self.tp.append(match_predictions(pred_xyxy, classes, gt_xyxy, gt_classes))
        self.scores.append(scores.numpy())
        self.num_gt += len(gt_xyxy)

    def add_segmentation(self, probs: np.ndarray, gt: np.ndarray) -> None:
        """probs [2, H, W] (drivable, lane) and 0/1 ground truth of the same size."""
        for channel, task in enumerate(("drivable", "lane")):
            truth = gt[channel] > 0
            self.seg[task].append({t: segmentation_scores(probs[channel] > t, truth) for t in self._all_thresholds})
        self.images += 1

    def seg_mean(self, task: str, threshold: float, key: str) -> float:
        return float(np.mean([image[threshold][key] for image in self.seg[task]])) if self.seg[task] else 0.0

    def compute(self) -> dict:
        tp = np.concatenate(self.tp) if self.tp else np.zeros((0, len(IOU_THRESHOLDS)), bool)
        scores = np.concatenate(self.scores) if self.scores else np.zeros(0)
        det = detection_metrics(tp, scores, self.num_gt)
        drivable_t, lane_t = self.seg_thresholds
        results = {
            "images": self.images,
            "ground_truth_boxes": self.num_gt,
            "recall": det["recall"],
            "map50": float(det["ap"][0]),
            "map50_95": float(det["ap"].mean()),
            "drivable_miou": self.seg_mean("drivable", drivable_t, "miou"),
            "drivable_iou": self.seg_mean("drivable", drivable_t, "iou"),
            "lane_iou": self.seg_mean("lane", lane_t, "iou"),
            "lane_miou": self.seg_mean("lane", lane_t, "miou"),
            "lane_acc": self.seg_mean("lane", lane_t, "balanced_acc"),
            "lane_recall_acc": self.seg_mean("lane", lane_t, "recall_acc"),
        }
        results["fitness"] = fitness(results)
        results["sweep"] = [
            {
                "threshold": float(t),
                "drivable_miou": self.seg_mean("drivable", float(t), "miou"),
                "lane_iou": self.seg_mean("lane", float(t), "iou"),
                "lane_acc": self.seg_mean("lane", float(t), "balanced_acc"),
            }
            for t in SWEEP_THRESHOLDS
        ]
        results["pr_curve"] = {
            "recall": det["pr_curve"][0][::10].tolist(),
            "precision": det["pr_curve"][1][::10].tolist(),
        }
        return results


def fitness(m: dict) -> float:
    """Model selection score of the official trainer: 0.1 R + 0.9 mAP50 + sum over seg tasks of (IoU + mIoU)/2."""
    return (
        0.1 * m["recall"]
        + 0.9 * m["map50"]
        + (m["drivable_iou"] + m["drivable_miou"]) / 2
        + (m["lane_iou"] + m["lane_miou"]) / 2
    )
