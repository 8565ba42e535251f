"""Convolutional and transformer building blocks of the RMT-PPAD backbone and hybrid encoder."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

BN_EPS = 1e-3
BN_MOMENTUM = 0.03


def batch_norm(channels: int) -> nn.BatchNorm2d:
    """BatchNorm with the eps/momentum RMT-PPAD trains with."""
    return nn.BatchNorm2d(channels, eps=BN_EPS, momentum=BN_MOMENTUM)


class PointwiseConv2d(nn.Conv2d):
    """1x1 convolution computed as one matrix multiply on NCHW inputs.

    oneDNN's direct kernel is about 100x slower for a few output channels at full resolution
    (8 -> 1 channels at 2x256x448: 12 ms against 0.1 ms on a 2-core CPU). Same parameters and
    state-dict keys as nn.Conv2d, so checkpoints, fusion and pruning treat it as one.
    """

    def __init__(self, in_channels: int, out_channels: int, bias: bool = True) -> None:
        super().__init__(in_channels, out_channels, 1, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_contiguous():  # channels-last inputs are already fast through the convolution
            return super().forward(x)
        batch, channels, height, width = x.shape
        weight = self.weight.view(1, self.out_channels, channels).expand(batch, -1, -1)
        pixels = x.view(batch, channels, height * width)
        if self.bias is None:
            out = torch.bmm(weight, pixels)
        else:
            out = torch.baddbmm(self.bias.view(1, -1, 1).expand(batch, -1, 1), weight, pixels)
        return out.view(batch, self.out_channels, height, width)


class ConvBNAct(nn.Module):
    """Conv2d (no bias) + BatchNorm + activation; fusable into a single biased Conv2d."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 1,
        stride: int = 1,
        padding: int | None = None,
        groups: int = 1,
        act: nn.Module | None = None,
    ) -> None:
        super().__init__()
        padding = kernel_size // 2 if padding is None else padding
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False)
        self.bn = batch_norm(out_channels)
        self.act = act if act is not None else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(self.conv(x)))


def conv_silu(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1) -> ConvBNAct:
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, act=nn.SiLU())


def conv_relu(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, padding=None) -> ConvBNAct:
    return ConvBNAct(in_channels, out_channels, kernel_size, stride, padding, act=nn.ReLU())


def depthwise_conv(channels: int, kernel_size: int, stride: int = 1, act: nn.Module | None = None) -> ConvBNAct:
    return ConvBNAct(channels, channels, kernel_size, stride, groups=channels, act=act)


class LightConv(nn.Module):
    """Pointwise conv (BN, no activation) followed by a depthwise kxk conv (BN + ReLU)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        self.pointwise = ConvBNAct(in_channels, out_channels, 1)
        self.depthwise = depthwise_conv(out_channels, kernel_size, act=nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.depthwise(self.pointwise(x))


class HGStem(nn.Module):
    """PP-HGNetV2 stem (stride 4): conv, then a conv branch and a max-pool branch concatenated."""

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int) -> None:
        super().__init__()
        self.stem1 = conv_relu(in_channels, mid_channels, 3, 2)
        self.stem2a = conv_relu(mid_channels, mid_channels // 2, 2, 1, padding=0)
        self.stem2b = conv_relu(mid_channels // 2, mid_channels, 2, 1, padding=0)
        self.stem3 = conv_relu(mid_channels * 2, mid_channels, 3, 2)
        self.stem4 = conv_relu(mid_channels, out_channels, 1)
        self.pool = nn.MaxPool2d(kernel_size=2, stride=1, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.pad(self.stem1(x), [0, 1, 0, 1])
        branch = self.stem2b(F.pad(self.stem2a(x), [0, 1, 0, 1]))
        x = torch.cat([self.pool(x), branch], dim=1)
        return self.stem4(self.stem3(x))


class HGBlock(nn.Module):
    """Chain of `units` convs whose outputs are all concatenated, then squeezed and excited."""

    def __init__(
        self,
        in_channels: int,
        mid_channels: int,
        out_channels: int,
        kernel_size: int,
        units: int,
        light: bool,
        shortcut: bool,
    ) -> None:
        super().__init__()
        self.units = nn.ModuleList(
            LightConv(c, mid_channels, kernel_size) if light else conv_relu(c, mid_channels, kernel_size)
            for c in [in_channels] + [mid_channels] * (units - 1)
        )
        self.squeeze = conv_relu(in_channels + units * mid_channels, out_channels // 2)
        self.excite = conv_relu(out_channels // 2, out_channels)
        self.residual = shortcut and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for unit in self.units:
            features.append(unit(features[-1]))
        y = self.excite(self.squeeze(torch.cat(features, dim=1)))
        return y + x if self.residual else y


class RepConv(nn.Module):
    """3x3 conv-BN plus 1x1 conv-BN, summed then SiLU; re-parameterised into one 3x3 conv by fusion."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv3x3 = ConvBNAct(channels, channels, 3)
        self.conv1x1 = ConvBNAct(channels, channels, 1)
        self.act = nn.SiLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv3x3(x) + self.conv1x1(x))


class RepC3(nn.Module):
    """CSP block of the cross-scale fusion: RepConv stack on one 1x1 branch plus a 1x1 skip branch."""

    def __init__(self, in_channels: int, out_channels: int, depth: int) -> None:
        super().__init__()
        self.main = conv_silu(in_channels, out_channels)
        self.skip = conv_silu(in_channels, out_channels)
        self.rep_convs = nn.Sequential(*(RepConv(out_channels) for _ in range(depth)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rep_convs(self.main(x)) + self.skip(x)


def sincos_position_embedding(
    height: int, width: int, dim: int, temperature: float = 1e4, device: torch.device | None = None
) -> torch.Tensor:
    """Fixed 2-D sin-cos embedding [H*W, dim]: [sin(r w), cos(r w), sin(c w), cos(c w)] for row r, column c.

    On square maps this is exactly the official layout; on non-square maps it keeps the row/column meaning.
    Computed on `device` (no host-to-device copy inside the forward, which a CUDA graph could not capture).
    """
    quarter = dim // 4
    omega = 1.0 / temperature ** (torch.arange(quarter, dtype=torch.float32, device=device) / quarter)
    rows = torch.arange(height, dtype=torch.float32, device=device).repeat_interleave(width)
    cols = torch.arange(width, dtype=torch.float32, device=device).repeat(height)
    out_r = rows[:, None] * omega[None]
    out_c = cols[:, None] * omega[None]
    return torch.cat([out_r.sin(), out_r.cos(), out_c.sin(), out_c.cos()], dim=1)


class AIFI(nn.Module):
    """Attention-based intra-scale feature interaction: one post-norm transformer encoder layer."""

    def __init__(self, dim: int, ffn_dim: int, num_heads: int) -> None:
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, batch_first=True)
        self.ffn_in = nn.Linear(dim, ffn_dim)
        self.ffn_out = nn.Linear(ffn_dim, dim)
        self.attn_norm = nn.LayerNorm(dim)
        self.ffn_norm = nn.LayerNorm(dim)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        pos = sincos_position_embedding(height, width, channels, device=x.device).to(x.dtype)
        query = tokens + pos
        tokens = self.attn_norm(tokens + self.attn(query, query, tokens, need_weights=False)[0])
        tokens = self.ffn_norm(tokens + self.ffn_out(self.act(self.ffn_in(tokens))))
        return tokens.transpose(1, 2).reshape(batch, channels, height, width)


class MLP(nn.Module):
    """Linear layers with ReLU between them (none after the last)."""

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, num_layers: int) -> None:
        super().__init__()
        dims = [in_dim] + [hidden_dim] * (num_layers - 1) + [out_dim]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


def inverse_sigmoid(x: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    x = x.clamp(0, 1)
    return torch.log(x.clamp(min=eps) / (1 - x).clamp(min=eps))


def prior_logit(prob: float) -> float:
    return -math.log((1 - prob) / prob)
