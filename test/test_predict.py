"""The Predictor and `ppad predict`: original-pixel boxes, full-resolution masks, overlays and JSON."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch

from ppad_core.boxes import cxcywh_to_xyxy
from ppad_core.data.synth import render_scene
from ppad_core.model.checkpoint import save_checkpoint
from ppad_core.runtime.options import RuntimeOptions
from ppad_core.runtime.predictor import Predictor

from conftest import run_ppad


@pytest.fixture(scope="module")
def checkpoint(small_model, tmp_path_factory):
    return save_checkpoint(small_model, tmp_path_factory.mktemp("ckpt") / "small")


def test_predictor_maps_boxes_to_original_pixels_and_masks_to_full_resolution(small_model):
    frame = render_scene(0, "val", 1).image  # 1280x720
    predictor = Predictor.from_model(small_model, RuntimeOptions(score_threshold=0.0))
    (prediction,) = predictor([frame])
    assert prediction.drivable_mask.shape == (720, 1280) and prediction.lane_mask.shape == (720, 1280)
    assert set(np.unique(prediction.drivable_mask)) <= {0, 1}
    batch, _ = predictor.preprocess([frame])
    with torch.inference_mode():
        raw = small_model(torch.from_numpy(batch).float() / 255)
    expected = (cxcywh_to_xyxy(raw["boxes"][0]) * torch.tensor([1280, 720, 1280, 720])).clamp(min=0)
    expected = torch.minimum(expected, torch.tensor([1280, 720, 1280, 720]))
    assert len(prediction.boxes) == small_model.config.head.num_queries
    assert np.allclose(prediction.boxes, expected.numpy(), atol=0.05)
    assert np.allclose(prediction.scores, raw["scores"][0].max(-1).values.numpy(), atol=1e-4)
    probs = raw["seg_logits"][0].sigmoid().numpy()
    small = (probs[1] > small_model.config.seg_thresholds[1]).astype(np.uint8)
    assert np.array_equal(prediction.lane_mask, cv2.resize(small, (1280, 720), interpolation=cv2.INTER_NEAREST))
    confident = Predictor.from_model(small_model, RuntimeOptions(score_threshold=0.6))([frame])[0]
    assert (confident.scores > 0.6).all() and len(confident.scores) == int((prediction.scores > 0.6).sum())


def test_cli_predict_writes_overlays_and_json_for_images_and_video(checkpoint, tmp_path):
    images = tmp_path / "in"
    images.mkdir()
    for i in range(2):
        cv2.imwrite(str(images / f"frame{i}.jpg"), render_scene(1, "val", i).image)
    (images / "broken.jpg").write_bytes(b"nope")
    video = tmp_path / "drive.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (640, 360))
    for i in range(3):
        writer.write(cv2.resize(render_scene(2, "val", i).image, (640, 360)))
    writer.release()
    out = tmp_path / "out"
    result = run_ppad(
        "predict",
        str(checkpoint),
        str(images),
        str(video),
        "--out",
        str(out),
        "--conf",
        "0.3",
        "--save-masks",
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["images"] == 2 and summary["video_frames"] == 3 and summary["unreadable"] == 1
    overlay = cv2.imread(str(out / "frame0.jpg"))
    assert overlay.shape == (720, 1280, 3)
    assert cv2.imread(str(out / "frame0_lane.png"), cv2.IMREAD_GRAYSCALE).shape == (720, 1280)
    overlay_video = cv2.VideoCapture(str(out / "drive.mp4"))
    assert overlay_video.get(cv2.CAP_PROP_FRAME_COUNT) == 3
    assert overlay_video.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)  # the source's rate, not a fixed 10
    records = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(records) == 5 and records[2]["name"] == "drive.mp4#0"
    for record in records:
        for det in record["detections"]:
            assert det["score"] > 0.3 and det["class_name"] == "vehicle"
            x1, y1, x2, y2 = det["box_xyxy"]
            assert x1 <= x2 and y1 <= y2
    missing = run_ppad("predict", str(checkpoint), str(tmp_path / "nothing.jpg"), "--out", str(out), check=False)
    assert missing.returncode == 2 and "nothing.jpg" in missing.stderr
