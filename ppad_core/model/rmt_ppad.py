"""RMT-PPAD assembly: backbone -> hybrid encoder -> multi-task head, built from a ModelConfig (docs/model.md)."""

from __future__ import annotations

import torch
from torch import nn

from ppad_core.model.backbone import HGNetV2
from ppad_core.model.config import HeadConfig, ModelConfig
from ppad_core.model.detection_head import DetectionDecoder
from ppad_core.model.encoder import HybridEncoder
from ppad_core.model.gca import GCA
from ppad_core.model.layers import batch_norm
from ppad_core.model.pruned_layout import apply_pruned_layout
from ppad_core.model.seg_decoder import AdaptiveSegDecoder


class MultiTaskHead(nn.Module):
    """Shared input projection, per-task GCA per level, then the detection and segmentation decoders."""

    def __init__(self, in_channels: list[int], cfg: HeadConfig, num_classes: int) -> None:
        super().__init__()
        dim = cfg.hidden_dim
        self.input_proj = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, dim, 1, bias=False), batch_norm(dim)) for c in in_channels
        )
        for proj in self.input_proj:
            nn.init.xavier_uniform_(proj[0].weight)
        self.det_gca = nn.ModuleList(GCA(dim, cfg.gate_reduction) for _ in in_channels)
        self.seg_gca = nn.ModuleList(GCA(dim, cfg.gate_reduction) for _ in in_channels)
        self.detector = DetectionDecoder(cfg, num_classes, num_levels=len(in_channels))
        self.segmenter = AdaptiveSegDecoder(dim, cfg.seg_channels)

    def forward(self, features: list[torch.Tensor], targets=None) -> dict:
        shared = [proj(f) for proj, f in zip(self.input_proj, features)]
        det = [gca(s) for gca, s in zip(self.det_gca, shared)]
        seg = [gca(s) for gca, s in zip(self.seg_gca, shared)]
        shapes = [(f.shape[2], f.shape[3]) for f in det]
        memory = torch.cat([f.flatten(2).transpose(1, 2) for f in det], dim=1)
        outputs = self.detector(memory, shapes, targets)
        outputs["seg_logits"] = self.segmenter(seg)
        return outputs


class RMTPPAD(nn.Module):
    """Multi-task panoptic driving perception network.

    Input: float [B, 3, H, W] RGB in [0, 1] (H, W multiples of 32). Eval mode returns
    `boxes` [B, Q, 4] normalised cxcywh, `scores` [B, Q, C] probabilities and `seg_logits`
    [B, 2, H, W] (channel 0 drivable area, 1 lane line). Training mode, given targets, returns the
    per-layer predictions the set loss needs (see DetectionDecoder.forward).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.backbone = HGNetV2(config.backbone)
        self.encoder = HybridEncoder(self.backbone.out_channels, config.encoder)
        self.head = MultiTaskHead([config.encoder.hidden_dim] * 3, config.head, config.num_classes)

    def forward(self, images: torch.Tensor, targets: list[dict[str, torch.Tensor]] | None = None) -> dict:
        outputs = self.head(self.encoder(self.backbone(images)), targets)
        if not self.training:
            return {
                "boxes": outputs["boxes"],
                "scores": outputs["logits"].sigmoid(),
                "seg_logits": outputs["seg_logits"],
            }
        return outputs


def build_model(config: ModelConfig) -> RMTPPAD:
    """The architecture of `config`, with a pruned student's recorded channel widths applied."""
    model = RMTPPAD(config)
    return apply_pruned_layout(model, config.pruned) if config.pruned else model
