"""Training augmentation of docs/model.md, "Training recipe", keeping boxes and both masks consistent.

Mosaic-4 on a 2H x 2W canvas, then a random affine (scale, translation) back to H x W, HSV jitter and a
horizontal flip. Boxes are normalised cxcywh on input and output; the geometry runs in pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ppad_core.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh

FILL = 114


@dataclass
class AugmentConfig:
    mosaic: float = 1.0  # probability of a 4-image mosaic
    translate: float = 0.1  # fraction of the output size
    scale: float = 0.5  # zoom factor drawn from [1 - scale, 1 + scale]
    hsv_h: float = 0.015
    hsv_s: float = 0.7
    hsv_v: float = 0.4
    flip: float = 0.5  # horizontal flip probability


@dataclass
class Sample:
    image: np.ndarray  # RGB uint8 [H, W, 3]
    labels: np.ndarray  # [N] int64
    boxes: np.ndarray  # [N, 4] normalised cxcywh (relative to this image)
    masks: np.ndarray  # [2, H, W] uint8 0/1


def _to_pixels(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    return cxcywh_to_xyxy(boxes * np.array([width, height, width, height], np.float32))


def mosaic(samples: list[Sample], rng: np.random.Generator) -> Sample:
    """Four samples of equal size around a random centre of a 2H x 2W canvas (boxes normalised to it)."""
    height, width = samples[0].image.shape[:2]
    canvas = np.full((2 * height, 2 * width, 3), FILL, np.uint8)
    masks = np.zeros((2, 2 * height, 2 * width), np.uint8)
    xc, yc = int(rng.uniform(width / 2, 1.5 * width)), int(rng.uniform(height / 2, 1.5 * height))
    labels, boxes = [], []
    for i, s in enumerate(samples):
        # (x1a, y1a, x2a, y2a) on the canvas, (x1b, y1b, ...) in the tile; the tile touches the centre
        if i == 0:
            a = (max(xc - width, 0), max(yc - height, 0), xc, yc)
            b = (width - (a[2] - a[0]), height - (a[3] - a[1]), width, height)
        elif i == 1:
            a = (xc, max(yc - height, 0), min(xc + width, 2 * width), yc)
            b = (0, height - (a[3] - a[1]), a[2] - a[0], height)
        elif i == 2:
            a = (max(xc - width, 0), yc, xc, min(2 * height, yc + height))
            b = (width - (a[2] - a[0]), 0, width, a[3] - a[1])
        else:
            a = (xc, yc, min(xc + width, 2 * width), min(2 * height, yc + height))
            b = (0, 0, a[2] - a[0], a[3] - a[1])
        canvas[a[1] : a[3], a[0] : a[2]] = s.image[b[1] : b[3], b[0] : b[2]]
        masks[:, a[1] : a[3], a[0] : a[2]] = s.masks[:, b[1] : b[3], b[0] : b[2]]
        pixels = _to_pixels(s.boxes, width, height) + np.array([a[0] - b[0], a[1] - b[1]] * 2, np.float32)
        pixels = np.clip(pixels, [a[0], a[1], a[0], a[1]], [a[2], a[3], a[2], a[3]])
        keep = (pixels[:, 2] - pixels[:, 0] > 1) & (pixels[:, 3] - pixels[:, 1] > 1)
        labels.append(s.labels[keep])
        boxes.append(pixels[keep])
    pixels = np.concatenate(boxes).reshape(-1, 4)
    normalised = xyxy_to_cxcywh(pixels) / np.array([2 * width, 2 * height] * 2, np.float32)
    return Sample(canvas, np.concatenate(labels), normalised.astype(np.float32), masks)


def random_affine(
    sample: Sample, out_size: tuple[int, int], rng: np.random.Generator, scale: float, translate: float
) -> Sample:
    """Scale about the source centre, translate, and crop the centred out_size (H, W) window.

    Masks use nearest-neighbour sampling so they stay binary.
    """
    out_h, out_w = out_size
    src_h, src_w = sample.image.shape[:2]
    zoom = rng.uniform(1 - scale, 1 + scale)  # a mosaic canvas keeps its pixel scale: the output is its centre
    centre = np.array([[1, 0, -src_w / 2], [0, 1, -src_h / 2], [0, 0, 1]])
    scaling = np.diag([zoom, zoom, 1.0])
    shift = np.array(
        [
            [1, 0, out_w / 2 + rng.uniform(-translate, translate) * out_w],
            [0, 1, out_h / 2 + rng.uniform(-translate, translate) * out_h],
            [0, 0, 1],
        ]
    )
    matrix = (shift @ scaling @ centre)[:2]
    image = cv2.warpAffine(sample.image, matrix, (out_w, out_h), flags=cv2.INTER_LINEAR, borderValue=(FILL,) * 3)
    masks = np.stack(
        [cv2.warpAffine(m, matrix, (out_w, out_h), flags=cv2.INTER_NEAREST, borderValue=0) for m in sample.masks]
    )
    pixels = _to_pixels(sample.boxes, src_w, src_h)
    corners = np.stack([pixels[:, [0, 1]], pixels[:, [2, 1]], pixels[:, [0, 3]], pixels[:, [2, 3]]], 1)
    moved = corners @ matrix[:, :2].T + matrix[:, 2]
    new = np.concatenate([moved.min(1), moved.max(1)], 1)
    clipped = np.clip(new, 0, [out_w, out_h, out_w, out_h])
    keep = _box_candidates(pixels * zoom, clipped)
    boxes = xyxy_to_cxcywh(clipped[keep]) / np.array([out_w, out_h, out_w, out_h], np.float32)
    return Sample(image, sample.labels[keep], boxes.astype(np.float32).reshape(-1, 4), masks)


def _box_candidates(before: np.ndarray, after: np.ndarray, min_size=2.0, max_aspect=100.0, min_area=0.1) -> np.ndarray:
    w0, h0 = before[:, 2] - before[:, 0], before[:, 3] - before[:, 1]
    w1, h1 = after[:, 2] - after[:, 0], after[:, 3] - after[:, 1]
    aspect = np.maximum(w1 / (h1 + 1e-16), h1 / (w1 + 1e-16))
    return (w1 > min_size) & (h1 > min_size) & (w1 * h1 / (w0 * h0 + 1e-16) > min_area) & (aspect < max_aspect)


def hsv_jitter(image: np.ndarray, rng: np.random.Generator, hgain: float, sgain: float, vgain: float) -> np.ndarray:
    gains = rng.uniform(-1, 1, 3) * [hgain, sgain, vgain] + 1
    hue, sat, val = cv2.split(cv2.cvtColor(image, cv2.COLOR_RGB2HSV))
    x = np.arange(256, dtype=np.float32)
    lut_h = ((x * gains[0]) % 180).astype(np.uint8)
    lut_s = np.clip(x * gains[1], 0, 255).astype(np.uint8)
    lut_v = np.clip(x * gains[2], 0, 255).astype(np.uint8)
    merged = cv2.merge((cv2.LUT(hue, lut_h), cv2.LUT(sat, lut_s), cv2.LUT(val, lut_v)))
    return cv2.cvtColor(merged, cv2.COLOR_HSV2RGB)


def horizontal_flip(sample: Sample) -> Sample:
    boxes = sample.boxes.copy()
    boxes[:, 0] = 1.0 - boxes[:, 0]
    return Sample(sample.image[:, ::-1].copy(), sample.labels, boxes, sample.masks[:, :, ::-1].copy())


def augment_sample(sample: Sample, rng: np.random.Generator, cfg: AugmentConfig, from_mosaic: bool) -> Sample:
    """Affine (to the output size: half the mosaic canvas, else the sample's own), HSV, flip."""
    height, width = sample.image.shape[:2]
    out_size = (height // 2, width // 2) if from_mosaic else (height, width)
    sample = random_affine(sample, out_size, rng, cfg.scale, cfg.translate)
    sample.image = hsv_jitter(sample.image, rng, cfg.hsv_h, cfg.hsv_s, cfg.hsv_v)
    if rng.random() < cfg.flip:
        sample = horizontal_flip(sample)
    return sample
