"""Hybrid encoder: AIFI on the stride-32 map, then top-down (FPN) and bottom-up (PAN) fusion with RepC3."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ppad_core.model.config import EncoderConfig
from ppad_core.model.layers import AIFI, ConvBNAct, RepC3, conv_silu


class HybridEncoder(nn.Module):
    def __init__(self, in_channels: list[int], cfg: EncoderConfig) -> None:
        super().__init__()
        c3, c4, c5 = in_channels
        dim = cfg.hidden_dim
        self.proj_s5 = ConvBNAct(c5, dim)
        self.aifi = AIFI(dim, cfg.ffn_dim, cfg.num_heads)
        self.lateral_s5 = conv_silu(dim, dim)
        self.proj_s4 = ConvBNAct(c4, dim)
        self.fpn_s4 = RepC3(2 * dim, dim, cfg.repc3_depth)
        self.lateral_s4 = conv_silu(dim, dim)
        self.proj_s3 = ConvBNAct(c3, dim)
        self.fpn_s3 = RepC3(2 * dim, dim, cfg.repc3_depth)
        self.down_s3 = conv_silu(dim, dim, 3, 2)
        self.pan_s4 = RepC3(2 * dim, dim, cfg.repc3_depth)
        self.down_s4 = conv_silu(dim, dim, 3, 2)
        self.pan_s5 = RepC3(2 * dim, dim, cfg.repc3_depth)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        s3, s4, s5 = features
        y5 = self.lateral_s5(self.aifi(self.proj_s5(s5)))
        up5 = F.interpolate(y5, scale_factor=2.0, mode="nearest")
        y4 = self.lateral_s4(self.fpn_s4(torch.cat([up5, self.proj_s4(s4)], dim=1)))
        up4 = F.interpolate(y4, scale_factor=2.0, mode="nearest")
        p3 = self.fpn_s3(torch.cat([up4, self.proj_s3(s3)], dim=1))
        p4 = self.pan_s4(torch.cat([self.down_s3(p3), y4], dim=1))
        p5 = self.pan_s5(torch.cat([self.down_s4(p4), y5], dim=1))
        return [p3, p4, p5]
