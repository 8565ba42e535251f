"""Image preprocessing shared by the dataset reader and the Predictor, so both feed identical pixels."""

from __future__ import annotations

import cv2
import numpy as np


def stretch_to_input(image_bgr: np.ndarray, input_size: tuple[int, int]) -> np.ndarray:
    """The paper's preprocessing: resize (no letterbox) to (H, W) with bilinear interpolation; returns RGB."""
    height, width = input_size
    resized = cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_LINEAR)
    return cv2.cvtColor(resized, cv2.COLOR_BGR2RGB)
