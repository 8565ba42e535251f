"""PP-HGNetV2 backbone: stem + four stages, returning the stride-8/16/32 stage outputs."""

from __future__ import annotations

import torch
from torch import nn

from ppad_core.model.config import BackboneConfig, StageConfig
from ppad_core.model.layers import HGBlock, HGStem, depthwise_conv


class HGStage(nn.Module):
    def __init__(self, in_channels: int, cfg: StageConfig) -> None:
        super().__init__()
        self.downsample = depthwise_conv(in_channels, 3, 2) if cfg.downsample else nn.Identity()
        self.blocks = nn.Sequential(
            *(
                HGBlock(
                    in_channels if i == 0 else cfg.out_channels,
                    cfg.mid_channels,
                    cfg.out_channels,
                    cfg.kernel_size,
                    cfg.units,
                    light=cfg.light,
                    shortcut=i > 0,
                )
                for i in range(cfg.blocks)
            )
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.blocks(self.downsample(x))


class HGNetV2(nn.Module):
    def __init__(self, cfg: BackboneConfig, in_channels: int = 3) -> None:
        super().__init__()
        self.stem = HGStem(in_channels, cfg.stem_mid, cfg.stem_out)
        channels = [cfg.stem_out] + [s.out_channels for s in cfg.stages]
        self.stages = nn.ModuleList(HGStage(c, s) for c, s in zip(channels[:-1], cfg.stages))
        self.out_channels = channels[2:]

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        outputs = []
        for stage in self.stages:
            x = stage(x)
            outputs.append(x)
        return outputs[1:]
