"""Synthetic scenes, the RMT-PPAD layout reader and augmentation geometry."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from ppad_core.data.augment import AugmentConfig, Sample, augment_sample, horizontal_flip, mosaic, random_affine
from ppad_core.data.dataset import DatasetError, DrivingDataset, collate, read_labels
from ppad_core.data.layout import DatasetLayout
from ppad_core.data.synth import generate_dataset, render_scene


def test_scenes_are_deterministic_per_seed_and_consistent():
    a, b = render_scene(3, "train", 5), render_scene(3, "train", 5)
    assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.image, render_scene(4, "train", 5).image)
    assert not np.array_equal(a.image, render_scene(3, "val", 5).image)
    for index in range(6):
        scene = render_scene(0, "train", index)
        assert scene.image.shape == (720, 1280, 3)
        assert set(np.unique(scene.drivable)) <= {0, 255} and set(np.unique(scene.lane)) <= {0, 255}
        assert scene.drivable.mean() > 10  # a road is visible
        assert (scene.lane > 0).any()
        for x1, y1, x2, y2 in scene.boxes:
            assert 0 <= x1 < x2 <= 1280 and 0 <= y1 < y2 <= 720
            # vehicles occlude the road: the drivable mask is empty at the centre of a body
            cy, cx = int((y1 + y2) / 2), int((x1 + x2) / 2)
            assert scene.drivable[cy, cx] == 0 and scene.lane[cy, cx] == 0


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    generate_dataset(root, {"train": 6, "val": 3}, seed=11, width=640, height=360, workers=1, progress=False)
    return root


def test_generated_layout_reads_back(synthetic_root):
    layout = DatasetLayout(synthetic_root, "train")
    samples = layout.samples()
    assert len(samples) == 6
    for paths in samples:
        assert paths.image.is_file() and all(m.is_file() for m in paths.masks)
    dataset = DrivingDataset(synthetic_root, "train", (128, 224))
    item = dataset[0]
    assert item["image"].shape == (3, 128, 224) and item["masks"].shape == (2, 128, 224)
    assert set(item["masks"].unique().tolist()) <= {0, 1}
    assert item["original_size"] == (360, 640)


def test_label_errors_name_file_and_line(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text("0 0.5 0.5 0.1 0.1\n0 0.1 0.1 0.2 0.2 0.3 0.3 0.4 0.4\n")  # a box and a polygon
    labels, boxes = read_labels(path, 1)
    assert labels.tolist() == [0] and boxes.shape == (1, 4)
    assert read_labels(tmp_path / "missing.txt", 1)[1].shape == (0, 4)  # no label file: background image
    path.write_text("0 0.5 0.5 0.1 0.1\ncar 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match=r"a\.txt:2: not a 'cls cx cy w h' line"):
        read_labels(path, 1)
    path.write_text("3 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DatasetError, match=r"a\.txt:1: expected class in \[0, 1\)"):
        read_labels(path, 1)


def test_missing_masks_are_skipped_and_corrupt_images_counted(synthetic_root, tmp_path):
    import shutil

    root = tmp_path / "copy"
    shutil.copytree(synthetic_root, root)
    layout = DatasetLayout(root, "train")
    samples = layout.samples()
    samples[0].masks[1].unlink()
    samples[1].image.write_bytes(b"not a jpeg")
    dataset = DrivingDataset(root, "train", (128, 224))
    assert len(dataset) == 5 and len(dataset.skipped) == 1
    assert str(samples[0].masks[1]) in dataset.skipped[0]
    batch = collate([dataset[i] for i in range(len(dataset))])
    assert len(batch["names"]) == 4 and len(batch["corrupt"]) == 1
    assert str(samples[1].image) in batch["corrupt"][0] and "unreadable image" in batch["corrupt"][0]
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        DrivingDataset(tmp_path / "nothing", "train", (128, 224))


def _box_sample(height=120, width=200, box=(50, 30, 110, 70)):
    """A sample whose drivable mask is exactly its one box, so geometry can be checked on the mask."""
    image = np.full((height, width, 3), 90, np.uint8)
    masks = np.zeros((2, height, width), np.uint8)
    x1, y1, x2, y2 = box
    masks[:, y1:y2, x1:x2] = 1
    cxcywh = np.array(
        [[(x1 + x2) / 2 / width, (y1 + y2) / 2 / height, (x2 - x1) / width, (y2 - y1) / height]], np.float32
    )
    return Sample(image, np.zeros(1, np.int64), cxcywh, masks)


def _mask_box(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float32)


def _label_box(sample: Sample) -> np.ndarray:
    h, w = sample.masks.shape[1:]
    cx, cy, bw, bh = sample.boxes[0] * [w, h, w, h]
    return np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])


@pytest.mark.parametrize("seed", range(6))
def test_affine_and_flip_keep_boxes_on_their_masks(seed):
    rng = np.random.default_rng(seed)
    out = random_affine(_box_sample(), (120, 200), rng, scale=0.4, translate=0.1)
    if rng.random() < 0.5:
        out = horizontal_flip(out)
    assert len(out.boxes) == 1
    assert np.allclose(_mask_box(out.masks[0]), _label_box(out), atol=1.5)


@pytest.mark.parametrize("seed", range(4))
def test_mosaic_then_affine_keeps_boxes_on_their_masks(seed):
    rng = np.random.default_rng(seed)
    tiles = [_box_sample(box=(80, 40, 130, 90)) for _ in range(4)]
    combined = mosaic(tiles, rng)
    assert combined.image.shape == (240, 400, 3)
    cfg = AugmentConfig(scale=0.0, translate=0.0, flip=0.0)
    out = augment_sample(combined, rng, cfg, from_mosaic=True)
    assert out.image.shape == (120, 200, 3)
    # With no zoom/shift the output is the canvas centre: every surviving label sits on its mask blob.
    labels = [
        _label_box(Sample(out.image, out.labels[i : i + 1], out.boxes[i : i + 1], out.masks))
        for i in range(len(out.boxes))
    ]
    count, components = cv2.connectedComponents(out.masks[0])
    blobs = [_mask_box(components == k) for k in range(1, count)]
    assert len(labels) >= 1
    for label in labels:
        assert min(np.abs(label - blob).max() for blob in blobs) <= 1.5
    # A blob keeps its label unless the crop left a sliver of under 10% of the box (the official filter).
    for blob in blobs:
        area = (blob[2] - blob[0]) * (blob[3] - blob[1])
        if area > 0.1 * 50 * 50:
            assert min(np.abs(label - blob).max() for label in labels) <= 1.5
