"""RT-DETR detection decoder: encoder query selection, denoising queries and the deformable decoder."""

from __future__ import annotations

import torch
from torch import nn

from ppad_core.model.config import HeadConfig
from ppad_core.model.deformable import DeformableDecoder
from ppad_core.model.denoising import DenoisingGroup, build_denoising_group
from ppad_core.model.layers import MLP, prior_logit


def generate_anchors(
    shapes: list[tuple[int, int]], device: torch.device, dtype: torch.dtype, base_size: float = 0.05, eps: float = 1e-2
) -> tuple[torch.Tensor, torch.Tensor]:
    """Anchor logits [1, N, 4] per feature cell (size base_size * 2^level) and their validity mask [1, N, 1]."""
    anchors = []
    for level, (h, w) in enumerate(shapes):
        ys, xs = torch.meshgrid(
            torch.arange(h, device=device, dtype=dtype), torch.arange(w, device=device, dtype=dtype), indexing="ij"
        )
        centres = torch.stack([(xs + 0.5) / w, (ys + 0.5) / h], -1)  # no host tensor: CUDA graphs can capture it
        sizes = torch.full_like(centres, base_size * 2.0**level)
        anchors.append(torch.cat([centres, sizes], -1).view(1, h * w, 4))
    anchors = torch.cat(anchors, 1)
    valid = ((anchors > eps) & (anchors < 1 - eps)).all(-1, keepdim=True)
    logits = torch.log(anchors / (1 - anchors)).masked_fill(~valid, float("inf"))
    return logits, valid


class DetectionDecoder(nn.Module):
    def __init__(self, cfg: HeadConfig, num_classes: int, num_levels: int = 3) -> None:
        super().__init__()
        dim = cfg.hidden_dim
        self.cfg = cfg
        self.num_queries = cfg.num_queries
        self.enc_output = nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim))
        self.enc_score_head = nn.Linear(dim, num_classes)
        self.enc_bbox_head = MLP(dim, dim, 4, num_layers=3)
        self.denoising_class_embed = nn.Embedding(num_classes, dim)
        self.decoder = DeformableDecoder(
            dim, cfg.num_heads, cfg.ffn_dim, num_levels, cfg.num_points, cfg.decoder_layers, num_classes
        )
        self.reset_parameters(num_classes)

    def reset_parameters(self, num_classes: int) -> None:
        # Ultralytics' prior for 80 classes rescaled by nc: -log(99)/80*nc (-0.0574 for one class).
        class_bias = prior_logit(0.01) / 80 * num_classes
        for head in [self.enc_score_head, *self.decoder.score_heads]:
            nn.init.constant_(head.bias, class_bias)
        for mlp in [self.enc_bbox_head, *self.decoder.box_heads]:
            nn.init.zeros_(mlp.layers[-1].weight)
            nn.init.zeros_(mlp.layers[-1].bias)
        nn.init.xavier_uniform_(self.enc_output[0].weight)
        for layer in self.decoder.query_pos_head.layers:
            nn.init.xavier_uniform_(layer.weight)

    def select_queries(
        self, memory: torch.Tensor, shapes: list[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Top-k encoder tokens become the decoder's content queries and reference boxes."""
        batch = memory.shape[0]
        anchors, valid = generate_anchors(shapes, memory.device, memory.dtype)
        features = self.enc_output(valid * memory)
        scores = self.enc_score_head(features)
        top = torch.topk(scores.max(-1).values, self.num_queries, dim=1).indices  # [B, K]
        index = top.unsqueeze(-1)
        top_features = features.gather(1, index.expand(-1, -1, features.shape[-1]))
        top_anchors = anchors.expand(batch, -1, -1).gather(1, index.expand(-1, -1, 4))
        ref_logits = self.enc_bbox_head(top_features) + top_anchors
        top_scores = scores.gather(1, index.expand(-1, -1, scores.shape[-1]))
        return top_features, ref_logits, top_scores, ref_logits.sigmoid()

    def forward(
        self,
        memory: torch.Tensor,
        shapes: list[tuple[int, int]],
        targets: list[dict[str, torch.Tensor]] | None = None,
    ) -> dict[str, torch.Tensor | DenoisingGroup | None]:
        queries, ref_logits, enc_logits, enc_boxes = self.select_queries(memory, shapes)
        if not self.training:
            boxes, logits = self.decoder(queries, ref_logits, memory, shapes)
            return {"boxes": boxes[-1], "logits": logits[-1]}
        queries, ref_logits = queries.detach(), ref_logits.detach()
        dn = None
        if targets is not None:
            dn = build_denoising_group(
                targets,
                self.denoising_class_embed.weight,
                self.num_queries,
                self.cfg.num_denoising,
                self.cfg.label_noise_ratio,
                self.cfg.box_noise_scale,
            )
        attn_mask = None
        if dn is not None:
            queries = torch.cat([dn.embeddings, queries], 1)
            ref_logits = torch.cat([dn.ref_logits, ref_logits], 1)
            attn_mask = dn.attn_mask
        boxes, logits = self.decoder(queries, ref_logits, memory, shapes, attn_mask)
        num_dn = dn.num_dn if dn is not None else 0
        return {
            "boxes": boxes[:, :, num_dn:],
            "logits": logits[:, :, num_dn:],
            "enc_boxes": enc_boxes,
            "enc_logits": enc_logits,
            "dn_boxes": boxes[:, :, :num_dn] if dn is not None else None,
            "dn_logits": logits[:, :, :num_dn] if dn is not None else None,
            "dn_group": dn,
        }
