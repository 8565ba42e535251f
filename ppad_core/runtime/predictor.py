"""The one inference path: preprocess -> backend -> postprocess, used by the CLI, evaluator, node and bag tool."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ppad_core.boxes import cxcywh_to_xyxy
from ppad_core.model.checkpoint import load_checkpoint
from ppad_core.model.fusion import fuse_model
from ppad_core.model.rmt_ppad import RMTPPAD
from ppad_core.runtime.preprocess import stretch_to_input


@dataclass
class Prediction:
    """One image's result in its original pixels."""

    boxes: np.ndarray  # [N, 4] x1, y1, x2, y2 in original-image pixels
    scores: np.ndarray  # [N]
    class_ids: np.ndarray  # [N]
    drivable_mask: np.ndarray  # uint8 0/1 at the original resolution
    lane_mask: np.ndarray


class Predictor:
    def __init__(self, model: RMTPPAD, device: str = "cpu", conf_threshold: float = 0.25, fuse: bool = True) -> None:
        self.config = model.config
        self.device = torch.device(device)
        model = fuse_model(model) if fuse else model.eval()
        self.model = model.to(self.device)
        self.conf_threshold = conf_threshold
        self.seg_thresholds = torch.tensor(self.config.seg_thresholds).view(1, 2, 1, 1)

    @classmethod
    def from_checkpoint(cls, path: str | Path, **kwargs) -> Predictor:
        return cls(load_checkpoint(path)[0], **kwargs)

    def preprocess(self, images_bgr: list[np.ndarray]) -> torch.Tensor:
        """uint8 RGB batch [B, 3, H, W] at the model's input size."""
        batch = np.stack([stretch_to_input(image, self.config.input_size) for image in images_bgr])
        return torch.from_numpy(batch).permute(0, 3, 1, 2)

    @torch.inference_mode()
    def forward(self, images_uint8: torch.Tensor) -> dict[str, torch.Tensor]:
        """Raw network outputs on the CPU: normalised cxcywh boxes, class scores, segmentation probabilities."""
        outputs = self.model(images_uint8.to(self.device).float() / 255.0)
        return {
            "boxes": outputs["boxes"].float().cpu(),
            "scores": outputs["scores"].float().cpu(),
            "seg_probs": outputs["seg_logits"].float().sigmoid().cpu(),
        }

    def postprocess(self, outputs: dict[str, torch.Tensor], original_sizes: list[tuple[int, int]]) -> list[Prediction]:
        """Confident boxes in original pixels (no NMS: queries are one-to-one) and thresholded masks."""
        scores, class_ids = outputs["scores"].max(-1)
        masks = (outputs["seg_probs"] > self.seg_thresholds).to(torch.uint8).numpy()
        results = []
        for i, (height, width) in enumerate(original_sizes):
            keep = scores[i] > self.conf_threshold
            boxes = cxcywh_to_xyxy(outputs["boxes"][i][keep]) * torch.tensor([width, height, width, height])
            drivable, lane = (cv2.resize(m, (width, height), interpolation=cv2.INTER_NEAREST) for m in masks[i])
            results.append(
                Prediction(boxes.numpy(), scores[i][keep].numpy(), class_ids[i][keep].numpy(), drivable, lane)
            )
        return results

    def __call__(self, images_bgr: list[np.ndarray]) -> list[Prediction]:
        outputs = self.forward(self.preprocess(images_bgr))
        return self.postprocess(outputs, [image.shape[:2] for image in images_bgr])
