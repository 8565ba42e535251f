"""BDD100K conversion on a miniature download tree in both label generations."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from ppad_core.data.bdd100k import convert, parse_class_map
from ppad_core.data.dataset import read_labels
from ppad_core.data.layout import DatasetLayout

from conftest import run_ppad

W, H = 160, 90


def _download_tree(root, legacy: bool):
    """images/100k, detection JSON, drivable masks (2020 or 2018 encoding) and lane masks for 2 splits."""
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "drivable" / split).mkdir(parents=True)
        (root / "lane" / split).mkdir(parents=True)
        frames = []
        for i in range(2):
            name = f"{split}{i:04d}"
            cv2.imwrite(str(root / "images" / split / f"{name}.jpg"), np.full((H, W, 3), 100, np.uint8))
            ids = np.full((H, W), 0 if legacy else 2, np.uint8)  # background
            ids[60:, :80] = 1 if legacy else 0  # direct
            ids[60:, 80:] = 2 if legacy else 1  # alternative
            suffix = "_drivable_id" if legacy else ""
            cv2.imwrite(str(root / "drivable" / split / f"{name}{suffix}.png"), ids)
            lane = np.full((H, W), 255, np.uint8)
            lane[:, 40] = 6  # a 1-px single white line
            cv2.imwrite(str(root / "lane" / split / f"{name}.png"), lane)
            frames.append(
                {
                    "name": f"{name}.jpg",
                    "labels": [
                        {"category": "car", "box2d": {"x1": 10.0, "y1": 20.0, "x2": 49.0, "y2": 39.0}},
                        {"category": "bus", "box2d": {"x1": 100.0, "y1": 10.0, "x2": 139.0, "y2": 69.0}},
                        {"category": "pedestrian", "box2d": {"x1": 0.0, "y1": 0.0, "x2": 5.0, "y2": 5.0}},
                        {"category": "drivable area", "poly2d": [{"vertices": [[0, 0], [1, 1]]}]},
                    ],
                }
            )
        (root / f"det_{split}.json").write_text(json.dumps(frames))
    return root


@pytest.mark.parametrize("legacy", [False, True])
def test_conversion_merges_vehicles_and_both_drivable_encodings(tmp_path, legacy):
    src = _download_tree(tmp_path / "bdd", legacy)
    out = tmp_path / "out"
    report = convert(
        src / "images",
        {s: src / f"det_{s}.json" for s in ("train", "val")},
        src / "drivable",
        src / "lane",
        out,
        dilate_val_lanes=7,
        progress=False,
    )
    assert report.images == {"train": 2, "val": 2}
    assert report.boxes == {0: 8} and report.dropped_categories == {"pedestrian": 4}
    paths = DatasetLayout(out, "train").sample("train0000")
    assert paths.image.is_symlink() and paths.image.resolve() == (src / "images/train/train0000.jpg").resolve()
    labels, boxes = read_labels(paths.label, 1)
    assert labels.tolist() == [0, 0]
    assert np.allclose(boxes[0], [30 / W, 30 / H, 40 / W, 20 / H], atol=1e-5)  # inclusive corners: 40x20 px
    drivable = cv2.imread(str(paths.masks[0]), cv2.IMREAD_GRAYSCALE)
    assert set(np.unique(drivable)) == {0, 255}
    assert (drivable[60:] == 255).all() and (drivable[:60] == 0).all()  # direct + alternative, not background
    train_lane = cv2.imread(str(paths.masks[1]), cv2.IMREAD_GRAYSCALE) > 0
    val_lane = cv2.imread(str(DatasetLayout(out, "val").sample("val0000").masks[1]), cv2.IMREAD_GRAYSCALE) > 0
    assert train_lane.sum(1).max() == 1  # training labels untouched
    assert val_lane[45].sum() == 7  # val labels dilated by the 7 px kernel


def test_missing_masks_are_reported_and_class_map_is_configurable(tmp_path):
    src = _download_tree(tmp_path / "bdd", legacy=False)
    (src / "lane" / "val" / "val0001.png").unlink()
    report = convert(
        src / "images",
        {"val": src / "det_val.json"},
        src / "drivable",
        src / "lane",
        tmp_path / "out",
        class_map=parse_class_map("car=0,pedestrian=1"),
        splits=("val",),
        progress=False,
    )
    assert report.images == {"val": 1} and "val0001" in report.skipped[0]
    assert report.boxes == {0: 1, 1: 1} and report.dropped_categories == {"bus": 1}
    with pytest.raises(ValueError, match="category=class_id"):
        parse_class_map("car:0")


def test_cli_convert_bdd100k(tmp_path):
    src = _download_tree(tmp_path / "bdd", legacy=True)
    result = run_ppad(
        "convert-bdd100k",
        str(tmp_path / "out"),
        "--images",
        str(src / "images"),
        "--det-train",
        str(src / "det_train.json"),
        "--det-val",
        str(src / "det_val.json"),
        "--drivable",
        str(src / "drivable"),
        "--lane",
        str(src / "lane"),
        "--copy-images",
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["images_train"] == 2 and summary["boxes_class_0"] == 8 and summary["skipped"] == 0
    assert not DatasetLayout(tmp_path / "out", "val").sample("val0000").image.is_symlink()
