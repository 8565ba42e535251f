"""Image pre-processing shared by the dataset reader and the Predictor, so both feed identical pixels.

It sits below both `data/` and `runtime/`: neither imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")  # files the dataset reader, predict and calibration read
RESIZE_MODES = ("stretch", "letterbox")
LETTERBOX_FILL = 114  # grey, the value YOLO/RT-DETR pipelines pad with


@dataclass(frozen=True)
class InputTransform:
    """How one original image maps onto the network input: input = original * scale + pad."""

    original_size: tuple[int, int]  # (height, width)
    scale_x: float
    scale_y: float
    pad_x: int = 0
    pad_y: int = 0

    @property
    def content_box(self) -> tuple[int, int, int, int]:
        """(x0, y0, x1, y1) of the image content inside the network input."""
        height, width = self.original_size
        return (
            self.pad_x,
            self.pad_y,
            self.pad_x + round(width * self.scale_x),
            self.pad_y + round(height * self.scale_y),
        )


def stretch_to_input(image_bgr: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """The paper's preprocessing: resize (no letterbox) to (H, W) with bilinear interpolation; returns RGB."""
    height, width = input_size
    resized = cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)


def letterbox_to_input(image_bgr: np.ndarray, input_size: tuple[int, int]) -> tuple[np.ndarray, InputTransform]:
    """Aspect-preserving resize, centred on a grey canvas of (H, W); returns RGB and the mapping."""
    height, width = input_size
    original_h, original_w = image_bgr.shape[:2]
    scale = min(height / original_h, width / original_w)
    new_w, new_h = max(1, round(original_w * scale)), max(1, round(original_h * scale))
    pad_x, pad_y = (width - new_w) // 2, (height - new_h) // 2
    canvas = np.full((height, width, 3), LETTERBOX_FILL, np.uint8)
    resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    canvas[pad_y : pad_y + new_h, pad_x : pad_x + new_w] = cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
    transform = InputTransform((original_h, original_w), new_w / original_w, new_h / original_h, pad_x, pad_y)
    return canvas, transform


def resize_to_input(
    image_bgr: np.ndarray, input_size: tuple[int, int], mode: str = "stretch"
) -> tuple[np.ndarray, InputTransform]:
    """RGB network input at (H, W) and the transform that maps it back to the original pixels."""
    if mode == "letterbox":
        return letterbox_to_input(image_bgr, input_size)
    if mode != "stretch":
        raise ValueError(f"resize mode {mode!r} is not one of {RESIZE_MODES}")
    original_h, original_w = image_bgr.shape[:2]
    transform = InputTransform((original_h, original_w), input_size[1] / original_w, input_size[0] / original_h)
    return stretch_to_input(image_bgr, input_size), transform
