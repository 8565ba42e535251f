"""Overlay rendering of a Prediction: drivable area tint, lane lines, boxes with scores."""

from __future__ import annotations

import cv2
import numpy as np

from ppad_core.runtime.predictor import Prediction

DRIVABLE_BGR = np.array([80, 200, 60], np.float32)
LANE_BGR = np.array([40, 40, 255], np.float32)
BOX_BGR = (255, 200, 0)


def draw_overlay(
    image_bgr: np.ndarray, prediction: Prediction, class_names: list[str], alpha: float = 0.45
) -> np.ndarray:
    out = image_bgr.astype(np.float32)
    for mask, colour in ((prediction.drivable_mask, DRIVABLE_BGR), (prediction.lane_mask, LANE_BGR)):
        region = mask.astype(bool)
        out[region] = out[region] * (1 - alpha) + colour * alpha
    out = out.astype(np.uint8)
    thickness = max(1, round(image_bgr.shape[1] / 640))
    for box, score, cls in zip(prediction.boxes, prediction.scores, prediction.class_ids):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(out, (x1, y1), (x2, y2), BOX_BGR, thickness)
        label = f"{class_names[int(cls)] if int(cls) < len(class_names) else int(cls)} {score:.2f}"
        cv2.putText(out, label, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4 * thickness, BOX_BGR, thickness)
    return out
