"""`ppad convert-bdd100k`: official BDD100K downloads -> the RMT-PPAD layout.

Inputs per split (train, val), as the BDD100K site ships them:

* images: `images/100k/<split>/<name>.jpg`
* detection labels: a JSON list of frames `{name, labels: [{category, box2d: {x1, y1, x2, y2}}]}`, which covers
  both the 2020 `det_20/det_<split>.json` and the 2018 `bdd100k_labels_images_<split>.json` (whose area and
  lane entries carry `poly2d` instead of `box2d` and are ignored here)
* drivable area: 2020 masks `labels/drivable/masks/<split>/<name>.png` (0 direct, 1 alternative, 2 background)
  or the 2018 maps `drivable_maps/labels/<split>/<name>_drivable_id.png` (0 background, 1 direct, 2 alternative);
  direct and alternative are merged, as YOLOP and RMT-PPAD do
* lane marking: `labels/lane/masks/<split>/<name>.png`, 255 = background, any other value = a lane pixel

Detection categories map to class ids through `class_map` (default: car, bus, truck, train -> 0 "vehicle",
everything else dropped). Optionally the val lane masks are dilated to the training line width
(`dilate_val_lanes` = kernel size in pixels; RMT-PPAD widened the ~2 px val lines to ~8 px, i.e. a 7 px kernel).
"""

from __future__ import annotations

import json
import os
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from rich.progress import track

from ppad_core.data.layout import DatasetLayout
from ppad_core.data.writer import write_sample

DEFAULT_CLASS_MAP = {"car": 0, "bus": 0, "truck": 0, "train": 0}
SPLITS = ("train", "val")


@dataclass
class ConvertReport:
    images: Counter = field(default_factory=Counter)
    boxes: Counter = field(default_factory=Counter)  # per class id
    dropped_categories: Counter = field(default_factory=Counter)
    skipped: list[str] = field(default_factory=list)


def parse_class_map(text: str) -> dict[str, int]:
    """'car=0,bus=0,person=1' -> {'car': 0, 'bus': 0, 'person': 1}."""
    mapping = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if not value.strip().isdigit():
            raise ValueError(f"class map entry {item!r} must look like category=class_id")
        mapping[name.strip()] = int(value)
    return mapping


def load_frames(path: Path) -> dict[str, list[dict]]:
    """Frame name -> its labels, from either BDD100K detection JSON format."""
    try:
        frames = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: unreadable detection JSON: {exc}") from exc
    if isinstance(frames, dict) and "frames" in frames:  # a Scalabel dataset wrapper
        frames = frames["frames"]
    if not isinstance(frames, list):
        raise ValueError(f"{path}: expected a list of frames")
    return {Path(f["name"]).stem: f.get("labels") or [] for f in frames}


def drivable_binary(path: Path) -> np.ndarray:
    ids = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if ids is None:
        raise ValueError(f"{path}: unreadable drivable-area mask")
    if path.name.endswith("_drivable_id.png"):  # 2018: 0 background, 1 direct, 2 alternative
        return (ids == 1) | (ids == 2)
    return (ids == 0) | (ids == 1)  # 2020: 0 direct, 1 alternative, 2 background


def lane_binary(path: Path) -> np.ndarray:
    values = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if values is None:
        raise ValueError(f"{path}: unreadable lane mask")
    return values != 255


def _find_drivable(root: Path, split: str, name: str) -> Path | None:
    for candidate in (root / split / f"{name}.png", root / split / f"{name}_drivable_id.png"):
        if candidate.is_file():
            return candidate
    return None


def _place_image(source: Path, target: Path, copy: bool) -> None:
    if target.exists() or target.is_symlink():
        target.unlink()
    if copy:
        shutil.copy2(source, target)
    else:
        os.symlink(source.resolve(), target)


def convert(
    images: Path,
    det_json: dict[str, Path],
    drivable: Path,
    lane: Path,
    out: Path,
    class_map: dict[str, int] | None = None,
    dilate_val_lanes: int = 0,
    copy_images: bool = False,
    splits: tuple[str, ...] = SPLITS,
    progress: bool = True,
) -> ConvertReport:
    class_map = class_map or DEFAULT_CLASS_MAP
    report = ConvertReport()
    for split in splits:
        frames = load_frames(det_json[split]) if split in det_json else {}
        layout = DatasetLayout(out, split)
        layout.make_dirs()
        sources = sorted((images / split).glob("*.jpg"))
        if not sources:
            raise FileNotFoundError(f"{images / split}: no .jpg images")
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (dilate_val_lanes,) * 2) if dilate_val_lanes else None
        for source in track(sources, description=f"converting {split}", disable=not progress, transient=True):
            name = source.stem
            drivable_path, lane_path = _find_drivable(drivable, split, name), lane / split / f"{name}.png"
            if drivable_path is None or not lane_path.is_file():
                missing = "drivable-area mask" if drivable_path is None else f"lane mask {lane_path}"
                report.skipped.append(f"{source}: no {missing}")
                continue
            boxes, labels = [], []
            for label in frames.get(name, []):
                box = label.get("box2d")
                if box is None:
                    continue
                category = label.get("category", "")
                if category not in class_map:
                    report.dropped_categories[category] += 1
                    continue
                boxes.append([box["x1"], box["y1"], box["x2"] + 1, box["y2"] + 1])  # BDD: inclusive pixel corners
                labels.append(class_map[category])
            drivable_mask = drivable_binary(drivable_path)
            lane_mask = lane_binary(lane_path).astype(np.uint8)
            if kernel is not None and split == "val":
                lane_mask = cv2.dilate(lane_mask, kernel)
            paths = layout.sample(name)
            _place_image(source, paths.image, copy_images)
            height, width = drivable_mask.shape
            clipped = np.clip(np.array(boxes, np.float32).reshape(-1, 4), 0, [width, height, width, height])
            write_sample(paths, None, clipped, np.array(labels, np.int64), drivable_mask, lane_mask)
            report.images[split] += 1
            report.boxes.update(labels)
    return report
