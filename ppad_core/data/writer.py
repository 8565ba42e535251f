"""Writing samples in the RMT-PPAD layout (used by the scene generator and the BDD100K converter)."""

from __future__ import annotations

import cv2
import numpy as np

from ppad_core.boxes import xyxy_to_cxcywh
from ppad_core.data.layout import SamplePaths, format_yolo_line


def write_sample(
    paths: SamplePaths,
    image_bgr: np.ndarray | None,
    boxes_xyxy: np.ndarray,
    labels: np.ndarray,
    drivable: np.ndarray,
    lane: np.ndarray,
    jpeg_quality: int = 92,
) -> None:
    """Image (unless None: already in place), YOLO label file, and 0/255 mask PNGs."""
    if image_bgr is not None:
        cv2.imwrite(str(paths.image), image_bgr, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    height, width = drivable.shape[:2]
    scale = np.array([width, height, width, height], np.float32)
    lines = [format_yolo_line(int(c), xyxy_to_cxcywh(b / scale)) for c, b in zip(labels, boxes_xyxy)]
    paths.label.write_text("".join(line + "\n" for line in lines))
    cv2.imwrite(str(paths.masks[0]), (drivable > 0).astype(np.uint8) * 255)
    cv2.imwrite(str(paths.masks[1]), (lane > 0).astype(np.uint8) * 255)
