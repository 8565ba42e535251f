"""Contrastive denoising (CDN) queries for RT-DETR training."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ppad_core.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh


@dataclass
class DenoisingGroup:
    """Denoising queries prepended to the matching queries, and how to read their predictions back.

    Group g occupies slots [2*g*max_gts, 2*(g+1)*max_gts): first the positive copies of every image's
    ground truth (padded to max_gts), then the negative copies.
    """

    embeddings: torch.Tensor  # [B, num_dn, d]
    ref_logits: torch.Tensor  # [B, num_dn, 4]
    attn_mask: torch.Tensor  # [num_dn + num_queries, num_dn + num_queries], True = blocked
    num_groups: int
    max_gts: int

    @property
    def num_dn(self) -> int:
        return self.embeddings.shape[1]

    def positive_slots(self, num_gts: int) -> torch.Tensor:
        """Slot index of the positive query for (group g, ground truth j), shape [num_groups, num_gts]."""
        groups = torch.arange(self.num_groups)[:, None] * 2 * self.max_gts
        return groups + torch.arange(num_gts)[None, :]


def build_denoising_group(
    targets: list[dict[str, torch.Tensor]],
    class_embed: torch.Tensor,
    num_queries: int,
    num_denoising: int,
    label_noise_ratio: float,
    box_noise_scale: float,
) -> DenoisingGroup | None:
    """targets[i] holds `labels` [n_i] and `boxes` [n_i, 4] (normalised cxcywh) for image i."""
    counts = [len(t["labels"]) for t in targets]
    max_gts = max(counts, default=0)
    if num_denoising <= 0 or max_gts == 0:
        return None
    num_groups = max(1, num_denoising // max_gts)
    batch, device = len(targets), class_embed.device
    num_classes, dim = class_embed.shape
    slots_per_group = 2 * max_gts
    num_dn = num_groups * slots_per_group

    embeddings = torch.zeros(batch, num_dn, dim, device=device, dtype=class_embed.dtype)
    ref_logits = torch.zeros(batch, num_dn, 4, device=device)
    for i, target in enumerate(targets):
        n = counts[i]
        if n == 0:
            continue
        labels = target["labels"].to(device).repeat(2 * num_groups)
        boxes = target["boxes"].to(device).repeat(2 * num_groups, 1)
        negative = torch.arange(2 * num_groups, device=device).repeat_interleave(n) % 2 == 1
        if label_noise_ratio > 0:
            flip = torch.rand(labels.shape, device=device) < label_noise_ratio * 0.5
            labels = torch.where(flip, torch.randint_like(labels, 0, num_classes), labels)
        if box_noise_scale > 0:
            corners = cxcywh_to_xyxy(boxes)
            half_size = (boxes[:, 2:] * 0.5).repeat(1, 2) * box_noise_scale
            magnitude = torch.rand_like(boxes) + negative[:, None].float()
            sign = torch.randint_like(boxes, 0, 2) * 2.0 - 1.0
            corners = (corners + sign * magnitude * half_size).clamp(0.0, 1.0)
            boxes = xyxy_to_cxcywh(corners)
        slot = (torch.arange(2 * num_groups, device=device) * max_gts).repeat_interleave(n)
        slot = slot + torch.arange(n, device=device).repeat(2 * num_groups)
        embeddings[i, slot] = class_embed[labels]
        ref_logits[i, slot] = torch.logit(boxes, eps=1e-6)

    size = num_dn + num_queries
    attn_mask = torch.zeros(size, size, dtype=torch.bool, device=device)
    attn_mask[num_dn:, :num_dn] = True  # matching queries never see the answers
    for g in range(num_groups):
        start, end = g * slots_per_group, (g + 1) * slots_per_group
        attn_mask[start:end, :start] = True
        attn_mask[start:end, end:num_dn] = True
    return DenoisingGroup(embeddings, ref_logits, attn_mask, num_groups, max_gts)
