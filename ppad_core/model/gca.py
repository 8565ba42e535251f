"""Gated cross-task adaptation (GCA): a light task adapter and a gate mixing shared and task features."""

from __future__ import annotations

import torch
from torch import nn

from ppad_core.model.layers import batch_norm


class TaskAdapter(nn.Module):
    """T = SiLU(BN(PW(DW3x3(SiLU(BN(Conv1x1(S))))))); no residual."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.reduce = nn.Sequential(nn.Conv2d(channels, channels, 1, bias=False), batch_norm(channels), nn.SiLU())
        self.mix = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            nn.Conv2d(channels, channels, 1, bias=False),
            batch_norm(channels),
            nn.SiLU(),
        )
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, shared: torch.Tensor) -> torch.Tensor:
        return self.mix(self.reduce(shared))


class TaskGate(nn.Module):
    """F = S + g * (T - S) with g = clamp(a * g_channel + (1 - a) * g_spatial, 0.05, 0.95).

    All three branches read X = concat[S, T]. The mixing branch's grouped 3x3 conv (groups = C) pairs
    input channels 2c and 2c+1 of X, as in the official model.
    """

    def __init__(self, channels: int, reduction: int, clamp: tuple[float, float] = (0.05, 0.95)) -> None:
        super().__init__()
        both = 2 * channels
        squeezed = channels // reduction
        self.channel_gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(both, squeezed, 1),
            batch_norm(squeezed),
            nn.ReLU(),
            nn.Conv2d(squeezed, channels, 1),
            nn.Sigmoid(),
        )
        self.spatial_gate = nn.Sequential(
            nn.Conv2d(both, both, 3, padding=1, groups=both),
            batch_norm(both),
            nn.ReLU(),
            nn.Conv2d(both, channels, 1),
            nn.Sigmoid(),
        )
        self.mixing = nn.Sequential(
            nn.Conv2d(both, channels, 3, padding=1, groups=channels),
            batch_norm(channels),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, channels, 1),
            batch_norm(channels),
            nn.Sigmoid(),
        )
        self.clamp = clamp
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
                nn.init.normal_(m.bias, std=0.01)

    def forward(self, shared: torch.Tensor, task: torch.Tensor) -> torch.Tensor:
        x = torch.cat([shared, task], dim=1)
        alpha = self.mixing(x)
        gate = alpha * self.channel_gate(x) + (1 - alpha) * self.spatial_gate(x)
        gate = gate.clamp(*self.clamp)
        return shared + gate * (task - shared)


class GCA(nn.Module):
    """Per-task adapter + gate for one feature level."""

    def __init__(self, channels: int, reduction: int) -> None:
        super().__init__()
        self.adapter = TaskAdapter(channels)
        self.gate = TaskGate(channels, reduction)

    def forward(self, shared: torch.Tensor) -> torch.Tensor:
        return self.gate(shared, self.adapter(shared))
