"""The one inference path: preprocess -> backend -> postprocess, used by the CLI, evaluator, node and bag tool."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ppad_core.boxes import cxcywh_to_xyxy
from ppad_core.image import InputTransform, resize_to_input
from ppad_core.model.checkpoint import load_checkpoint
from ppad_core.model.config import ModelConfig
from ppad_core.model.rmt_ppad import RMTPPAD
from ppad_core.runtime.backends import Backend, TorchBackend, check_hardware, onnx_backend, resolve_precision
from ppad_core.runtime.export import onnx_model_config, resolve_onnx
from ppad_core.runtime.options import DEFAULT_OPTIONS, RuntimeOptions


@dataclass
class Prediction:
    """One image's result in its original pixels."""

    boxes: np.ndarray  # [N, 4] x1, y1, x2, y2 in original-image pixels
    scores: np.ndarray  # [N]
    class_ids: np.ndarray  # [N]
    drivable_mask: np.ndarray  # uint8 0/1 at the original resolution
    lane_mask: np.ndarray
    # lane logits at network resolution over the image's content (a view of the outputs: no copy); line confidences
    lane_logits: np.ndarray | None = None


@dataclass
class StageTimes:
    """Wall time of one batch through each stage, in milliseconds."""

    preprocess_ms: float
    inference_ms: float
    postprocess_ms: float

    @property
    def total_ms(self) -> float:
        return self.preprocess_ms + self.inference_ms + self.postprocess_ms


class Predictor:
    """BGR images of any size in; boxes, scores, class ids and masks in their original pixels out."""

    def __init__(self, backend: Backend, config: ModelConfig, options: RuntimeOptions = DEFAULT_OPTIONS) -> None:
        """`config` is the one the backend runs (the factories apply `options.model_config`); the options give the
        score threshold and the resize mode."""
        options.validate()
        self.backend = backend
        self.config = config
        self.options = options
        override = options.conf_threshold_override
        self.conf_threshold = config.conf_threshold if override is None else override
        self.resize = options.resize
        # sigmoid(x) > t  <=>  x > logit(t): thresholding logits skips a sigmoid over every pixel.
        self.seg_logit_thresholds = np.array([math.log(t / (1 - t)) for t in config.seg_thresholds], np.float32)

    @classmethod
    def from_model(cls, model: RMTPPAD, options: RuntimeOptions = DEFAULT_OPTIONS) -> Predictor:
        """A PyTorch model in this process (the torch backend whatever `options.backend` says)."""
        options = resolve_precision(options.validate())
        return cls(TorchBackend(model, options), options.model_config(model.config), options)

    @classmethod
    def from_onnx(cls, onnx_path: str | Path, options: RuntimeOptions = DEFAULT_OPTIONS) -> Predictor:
        """An exported graph through OpenVINO when `options.backend` says so, else ONNX Runtime; its input size is
        fixed (see RuntimeOptions.model_config)."""
        options = resolve_precision(options.validate())
        config = options.model_config(onnx_model_config(onnx_path), fixed_size=True)
        return cls(onnx_backend(onnx_path, options), config, options)

    @classmethod
    def from_checkpoint(cls, path: str | Path, options: RuntimeOptions = DEFAULT_OPTIONS) -> Predictor:
        """A checkpoint directory (or, with onnxruntime or openvino, an .onnx file) run as `options` say (precision
        `auto` resolved: `resolve_precision`, and kept so in `options`); with
        onnxruntime or openvino a checkpoint's fp32 graph is exported into `options.onnx_cache_dir()` on first use."""
        options = resolve_precision(options.validate())
        check_hardware(options)
        if options.backend == "torch":
            return cls.from_model(load_checkpoint(path)[0], options)
        return cls.from_onnx(resolve_onnx(path, options)[0], options)

    def preprocess(self, images_bgr: list[np.ndarray]) -> tuple[np.ndarray, list[InputTransform]]:
        """uint8 RGB batch [B, 3, H, W] at the model's input size, and each image's transform."""
        resized = [resize_to_input(image, self.config.input_size, self.resize) for image in images_bgr]
        batch = np.stack([pixels for pixels, _ in resized]).transpose(0, 3, 1, 2)
        return np.ascontiguousarray(batch), [transform for _, transform in resized]

    def forward(self, images_uint8: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """Raw network outputs: normalised cxcywh boxes, class scores, segmentation logits (float32 numpy)."""
        if isinstance(images_uint8, torch.Tensor):
            images_uint8 = images_uint8.numpy()
        return self.backend(images_uint8)

    def network_masks(self, outputs: dict[str, np.ndarray]) -> np.ndarray:
        """uint8 0/1 masks [B, 2, H, W] at the network input size, at the checkpoint's thresholds."""
        return (outputs["seg_logits"] > self.seg_logit_thresholds[None, :, None, None]).view(np.uint8)

    def postprocess(self, outputs: dict[str, np.ndarray], transforms: list[InputTransform]) -> list[Prediction]:
        """Confident boxes in original pixels (no NMS: queries are one-to-one) and thresholded masks."""
        best_scores = outputs["scores"].max(-1)
        class_ids = outputs["scores"].argmax(-1)
        masks = self.network_masks(outputs)
        input_h, input_w = self.config.input_size
        input_scale = np.array([input_w, input_h, input_w, input_h], np.float32)
        results = []
        for i, transform in enumerate(transforms):
            keep = best_scores[i] > self.conf_threshold
            boxes = cxcywh_to_xyxy(outputs["boxes"][i][keep]) * input_scale
            height, width = transform.original_size
            offset = np.array([transform.pad_x, transform.pad_y] * 2, np.float32)
            scale = np.array([transform.scale_x, transform.scale_y] * 2, np.float32)
            boxes = np.clip((boxes - offset) / scale, 0, [width, height, width, height])
            x0, y0, x1, y1 = transform.content_box
            drivable, lane = (
                cv2.resize(mask[y0:y1, x0:x1], (width, height), interpolation=cv2.INTER_NEAREST) for mask in masks[i]
            )
            lane_logits = outputs["seg_logits"][i, 1, y0:y1, x0:x1]
            results.append(Prediction(boxes, best_scores[i][keep], class_ids[i][keep], drivable, lane, lane_logits))
        return results

    def run(self, images_bgr: list[np.ndarray]) -> tuple[dict[str, np.ndarray], list[Prediction], StageTimes]:
        """The raw outputs (as `forward` returns them), the predictions and the stage times of one batch."""
        start = time.perf_counter()
        batch, transforms = self.preprocess(images_bgr)
        preprocessed = time.perf_counter()
        outputs = self.forward(batch)
        inferred = time.perf_counter()
        predictions = self.postprocess(outputs, transforms)
        done = time.perf_counter()
        times = StageTimes((preprocessed - start) * 1e3, (inferred - preprocessed) * 1e3, (done - inferred) * 1e3)
        return outputs, predictions, times

    def predict(self, images_bgr: list[np.ndarray]) -> tuple[list[Prediction], StageTimes]:
        _, predictions, times = self.run(images_bgr)
        return predictions, times

    def __call__(self, images_bgr: list[np.ndarray]) -> list[Prediction]:
        return self.predict(images_bgr)[0]
