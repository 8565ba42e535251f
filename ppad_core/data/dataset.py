"""Reader of the RMT-PPAD layout: stretched images, normalised boxes and binary masks at the model size."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from ppad_core.data.augment import AugmentConfig, Sample, augment_sample, mosaic
from ppad_core.data.layout import DatasetLayout, SamplePaths
from ppad_core.image import stretch_to_input

log = logging.getLogger(__name__)


class DatasetError(RuntimeError):
    """A dataset file is missing, unreadable or malformed; the message names it."""


def read_image(path: Path) -> np.ndarray:
    """BGR uint8 image, or DatasetError naming the file."""
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DatasetError(f"{path}: unreadable image")
    return image


def read_mask(path: Path) -> np.ndarray:
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DatasetError(f"{path}: unreadable mask")
    return (mask > 0).astype(np.uint8)  # 0/255 and 0/1 encodings both work


def read_labels(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """YOLO lines `cls cx cy w h` -> (labels [N], boxes [N, 4] normalised cxcywh). No file = background."""
    if not path.is_file():
        return np.zeros(0, np.int64), np.zeros((0, 4), np.float32)
    labels, boxes = [], []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) > 6:  # polygon annotations of other tasks share the format; not boxes
            continue
        try:
            cls, values = int(float(fields[0])), [float(v) for v in fields[1:5]]
        except ValueError as exc:
            raise DatasetError(f"{path}:{number}: not a 'cls cx cy w h' line: {line!r}") from exc
        if len(values) != 4 or not 0 <= cls < num_classes:
            raise DatasetError(f"{path}:{number}: expected class in [0, {num_classes}) and 4 coordinates: {line!r}")
        labels.append(cls)
        boxes.append(values)
    boxes_array = np.clip(np.array(boxes, np.float32).reshape(-1, 4), 0.0, 1.0)
    keep = (boxes_array[:, 2] > 0) & (boxes_array[:, 3] > 0)
    return np.array(labels, np.int64)[keep], boxes_array[keep]


@dataclass
class LoadedSample:
    sample: Sample
    name: str
    original_size: tuple[int, int]  # (height, width)


def load_targets(
    paths: SamplePaths, input_size: tuple[int, int], num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class ids, normalised cxcywh boxes and both masks resized to the network input (H, W)."""
    height, width = input_size
    masks = np.stack([cv2.resize(read_mask(p), (width, height), interpolation=cv2.INTER_LINEAR) for p in paths.masks])
    labels, boxes = read_labels(paths.label, num_classes)
    return labels, boxes, masks


class DrivingDataset(torch.utils.data.Dataset):
    """Samples of one split, stretched to `input_size` (H, W) like the paper; optional training augmentation.

    Images whose masks are missing are left out at construction (listed in `skipped`); an image or mask
    that cannot be decoded at load time yields an empty sample flagged `corrupt`, which `collate`
    drops and counts, so one bad file never stops a run.
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        input_size: tuple[int, int],
        num_classes: int = 1,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        cache: bool = False,
    ) -> None:
        self.layout = DatasetLayout(root, split)
        self.input_size = tuple(input_size)
        self.num_classes = num_classes
        self.augment = augment
        self.seed = seed
        self.epoch = 0
        self.mosaic_enabled = augment is not None and augment.mosaic > 0
        self.samples: list[SamplePaths] = []
        self.skipped: list[str] = []
        for paths in self.layout.samples():
            missing = [str(p) for p in paths.masks if not p.is_file()]
            if missing:
                self.skipped.append(f"{paths.image}: missing {', '.join(missing)}")
            else:
                self.samples.append(paths)
        if self.skipped:
            log.warning(
                "%s: skipped %d samples with missing masks, e.g. %s",
                self.layout.image_dir,
                len(self.skipped),
                self.skipped[0],
            )
        if not self.samples:
            raise DatasetError(f"{self.layout.image_dir}: no usable samples ({len(self.skipped)} skipped)")
        self._cache: dict[int, LoadedSample] | None = {} if cache else None

    def __len__(self) -> int:
        return len(self.samples)

    def preload(self, progress: bool = True) -> None:
        """Fill the in-memory cache now (in the parent process, so DataLoader workers share it)."""
        if self._cache is None:
            return
        from rich.progress import track

        for index in track(range(len(self)), description="caching samples", disable=not progress, transient=True):
            try:
                self.load(index)
            except DatasetError as exc:
                log.warning("%s", exc)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def load(self, index: int) -> LoadedSample:
        """The stretched sample without augmentation."""
        if self._cache is not None and index in self._cache:
            return self._cache[index]
        paths = self.samples[index]
        image = read_image(paths.image)
        original = image.shape[:2]
        labels, boxes, masks = load_targets(paths, self.input_size, self.num_classes)
        loaded = LoadedSample(
            Sample(stretch_to_input(image, self.input_size), labels, boxes, masks), paths.name, original
        )
        if self._cache is not None:
            self._cache[index] = loaded
        return loaded

    def __getitem__(self, index: int) -> dict:
        try:
            loaded = self.load(index)
            sample = loaded.sample
            if self.augment is not None:
                rng = np.random.default_rng([self.seed, self.epoch, index])
                if self.mosaic_enabled and rng.random() < self.augment.mosaic:
                    others = rng.integers(0, len(self), 3)
                    sample = mosaic([sample] + [self.load(int(i)).sample for i in others], rng)
                    sample = augment_sample(sample, rng, self.augment, from_mosaic=True)
                else:
                    sample = augment_sample(sample, rng, self.augment, from_mosaic=False)
        except DatasetError as exc:
            return {"corrupt": str(exc)}
        return {
            "image": torch.from_numpy(np.ascontiguousarray(sample.image)).permute(2, 0, 1),
            "labels": torch.from_numpy(sample.labels),
            "boxes": torch.from_numpy(sample.boxes),
            "masks": torch.from_numpy(np.ascontiguousarray(sample.masks)),
            "name": loaded.name,
            "original_size": loaded.original_size,
        }


def collate(items: list[dict]) -> dict:
    """Batch of uint8 images [B,3,H,W], masks [B,2,H,W], per-image targets; corrupt samples are dropped."""
    good = [item for item in items if "corrupt" not in item]
    return {
        "images": torch.stack([item["image"] for item in good]) if good else None,
        "masks": torch.stack([item["masks"] for item in good]) if good else None,
        "targets": [{"labels": item["labels"], "boxes": item["boxes"]} for item in good],
        "names": [item["name"] for item in good],
        "original_sizes": [item["original_size"] for item in good],
        "corrupt": [item["corrupt"] for item in items if "corrupt" in item],
    }
