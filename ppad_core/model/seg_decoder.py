"""Adaptive segmentation decoder: learned per-task scale weighting, shared upsampling and refinement."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ppad_core.model.layers import PointwiseConv2d, batch_norm


class AdaptiveSegDecoder(nn.Module):
    """Maps gated seg features at strides (8, 16, 32) to [B, num_tasks, H, W] logits.

    Each task mixes the three projected scales with its own softmax weights; one transposed conv,
    applied log2(stride) times with shared weights, brings stride 8 to full resolution. The number of
    applications follows from the strides, so any input divisible by 32 (square or not) works.
    """

    def __init__(self, in_channels: int, channels: int, num_tasks: int = 2, base_stride: int = 8) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.proj = nn.ModuleList(nn.Conv2d(in_channels, channels, 1) for _ in range(3))
        self.scale_logits = nn.Parameter(torch.ones(num_tasks, 3))
        self.upsample = nn.ConvTranspose2d(channels, channels, 4, stride=2, padding=1)
        self.upsample_steps = int(math.log2(base_stride))
        self.refine = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1),
            batch_norm(channels),
            nn.ReLU(inplace=True),
            PointwiseConv2d(channels, 1),
        )
        for conv in self.proj:
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(conv.bias)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        size = features[0].shape[-2:]
        scales = [self.proj[0](features[0])] + [
            F.interpolate(proj(f), size=size, mode="bilinear", align_corners=False)
            for proj, f in zip(self.proj[1:], features[1:])
        ]
        weights = self.scale_logits.softmax(dim=1)  # [T, 3]
        # Weighted sums stacked task-major along the batch axis: plain element-wise ops and a batch-axis
        # concat, which the pruning dependency graph follows (an einsum over stacked scales it cannot).
        # Channels-last from here: oneDNN's full-resolution kernels for so few channels run about 2x faster.
        per_task = [sum(weights[t, s] * scale for s, scale in enumerate(scales)) for t in range(self.num_tasks)]
        x = torch.cat(per_task, dim=0).contiguous(memory_format=torch.channels_last)
        for _ in range(self.upsample_steps):
            x = self.upsample(x)
        logits = self.refine(x)  # [T*B, 1, H, W]
        return logits.reshape(self.num_tasks, -1, *logits.shape[-2:]).transpose(0, 1)
