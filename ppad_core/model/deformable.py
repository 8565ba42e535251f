"""Multi-scale deformable attention and the RT-DETR deformable transformer decoder."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ppad_core.model.layers import MLP, inverse_sigmoid


def multi_scale_deformable_attention(
    value: torch.Tensor,
    shapes: list[tuple[int, int]],
    locations: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Bilinear sampling of each level at the given locations, weighted and summed.

    value [B, N, heads, d], locations [B, Q, heads, levels, points, 2] in [0, 1],
    weights [B, Q, heads, levels, points] -> [B, Q, heads * d].
    """
    batch, _, heads, head_dim = value.shape
    _, queries, _, levels, points, _ = locations.shape
    per_level = value.split([h * w for h, w in shapes], dim=1)
    grids = 2 * locations - 1
    sampled = []
    for level, (h, w) in enumerate(shapes):
        level_value = per_level[level].flatten(2).transpose(1, 2).reshape(batch * heads, head_dim, h, w)
        level_grid = grids[:, :, :, level].transpose(1, 2).flatten(0, 1)
        sampled.append(
            F.grid_sample(level_value, level_grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        )
    weights = weights.transpose(1, 2).reshape(batch * heads, 1, queries, levels * points)
    out = (torch.stack(sampled, dim=-2).flatten(-2) * weights).sum(-1)
    return out.view(batch, heads * head_dim, queries).transpose(1, 2)


class MSDeformAttn(nn.Module):
    def __init__(self, dim: int, num_levels: int, num_heads: int, num_points: int) -> None:
        super().__init__()
        self.num_levels, self.num_heads, self.num_points = num_levels, num_heads, num_points
        self.sampling_offsets = nn.Linear(dim, num_heads * num_levels * num_points * 2)
        self.attention_weights = nn.Linear(dim, num_heads * num_levels * num_points)
        self.value_proj = nn.Linear(dim, dim)
        self.output_proj = nn.Linear(dim, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.constant_(self.sampling_offsets.weight, 0.0)
        thetas = torch.arange(self.num_heads, dtype=torch.float32) * (2.0 * math.pi / self.num_heads)
        grid = torch.stack([thetas.cos(), thetas.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]
        grid = grid.view(self.num_heads, 1, 1, 2).repeat(1, self.num_levels, self.num_points, 1)
        grid = grid * torch.arange(1, self.num_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(grid.flatten())
        for layer in (self.attention_weights,):
            nn.init.constant_(layer.weight, 0.0)
            nn.init.constant_(layer.bias, 0.0)
        for layer in (self.value_proj, self.output_proj):
            nn.init.xavier_uniform_(layer.weight)
            nn.init.constant_(layer.bias, 0.0)

    def forward(
        self, query: torch.Tensor, ref_boxes: torch.Tensor, value: torch.Tensor, shapes: list[tuple[int, int]]
    ) -> torch.Tensor:
        """query [B,Q,d]; ref_boxes [B,Q,4] normalised cxcywh; value [B,N,d] (all levels flattened)."""
        batch, queries, dim = query.shape
        value = self.value_proj(value).view(batch, value.shape[1], self.num_heads, dim // self.num_heads)
        offsets = self.sampling_offsets(query).view(batch, queries, self.num_heads, self.num_levels, self.num_points, 2)
        weights = self.attention_weights(query).view(batch, queries, self.num_heads, self.num_levels * self.num_points)
        weights = weights.softmax(-1).view(batch, queries, self.num_heads, self.num_levels, self.num_points)
        ref = ref_boxes[:, :, None, None, None, :]
        locations = ref[..., :2] + offsets / self.num_points * ref[..., 2:] * 0.5
        return self.output_proj(multi_scale_deformable_attention(value, shapes, locations, weights))


class DeformableDecoderLayer(nn.Module):
    """Post-norm: self-attention, deformable cross-attention to the image features, FFN."""

    def __init__(self, dim: int, num_heads: int, ffn_dim: int, num_levels: int, num_points: int) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.self_attn_norm = nn.LayerNorm(dim)
        self.cross_attn = MSDeformAttn(dim, num_levels, num_heads, num_points)
        self.cross_attn_norm = nn.LayerNorm(dim)
        self.ffn_in = nn.Linear(dim, ffn_dim)
        self.ffn_out = nn.Linear(ffn_dim, dim)
        self.ffn_norm = nn.LayerNorm(dim)

    def forward(
        self,
        queries: torch.Tensor,
        ref_boxes: torch.Tensor,
        memory: torch.Tensor,
        shapes: list[tuple[int, int]],
        query_pos: torch.Tensor,
        attn_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        q = queries + query_pos
        attended = self.self_attn(q, q, queries, attn_mask=attn_mask, need_weights=False)[0]
        queries = self.self_attn_norm(queries + attended)
        attended = self.cross_attn(queries + query_pos, ref_boxes, memory, shapes)
        queries = self.cross_attn_norm(queries + attended)
        return self.ffn_norm(queries + self.ffn_out(F.relu(self.ffn_in(queries))))


class DeformableDecoder(nn.Module):
    """Stack of decoder layers with per-layer box refinement and score heads."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        ffn_dim: int,
        num_levels: int,
        num_points: int,
        num_layers: int,
        num_classes: int,
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            DeformableDecoderLayer(dim, num_heads, ffn_dim, num_levels, num_points) for _ in range(num_layers)
        )
        self.query_pos_head = MLP(4, 2 * dim, dim, num_layers=2)
        self.score_heads = nn.ModuleList(nn.Linear(dim, num_classes) for _ in range(num_layers))
        self.box_heads = nn.ModuleList(MLP(dim, dim, 4, num_layers=3) for _ in range(num_layers))

    def forward(
        self,
        queries: torch.Tensor,
        ref_logits: torch.Tensor,
        memory: torch.Tensor,
        shapes: list[tuple[int, int]],
        attn_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns boxes [L,B,Q,4] (sigmoid cxcywh) and logits [L,B,Q,C]; L = 1 in eval (last layer only)."""
        ref_boxes = ref_logits.sigmoid()
        boxes, logits = [], []
        previous_refined = None
        for i, layer in enumerate(self.layers):
            queries = layer(queries, ref_boxes, memory, shapes, self.query_pos_head(ref_boxes), attn_mask)
            delta = self.box_heads[i](queries)
            refined = torch.sigmoid(delta + inverse_sigmoid(ref_boxes))
            if self.training:
                logits.append(self.score_heads[i](queries))
                # "Look forward twice": layer i's box is supervised through layer i-1's undetached box.
                boxes.append(
                    refined if previous_refined is None else torch.sigmoid(delta + inverse_sigmoid(previous_refined))
                )
                previous_refined = refined
                ref_boxes = refined.detach()
            elif i == len(self.layers) - 1:
                logits.append(self.score_heads[i](queries))
                boxes.append(refined)
            else:
                ref_boxes = refined
        return torch.stack(boxes), torch.stack(logits)
