"""`ppad predict`: run a checkpoint on images, folders or videos; write overlays and JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

from ppad_core.image import IMAGE_SUFFIXES
from ppad_core.runtime.predictor import Prediction, Predictor
from ppad_core.runtime.visualize import draw_overlay

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv")
FALLBACK_FPS = 10.0  # overlay videos are written at the source's frame rate; this when the file does not say


def prediction_record(name: str, prediction: Prediction, class_names: list[str]) -> dict:
    """JSON-ready summary: boxes in original pixels and mask coverage."""
    return {
        "name": name,
        "detections": [
            {
                "box_xyxy": [round(float(v), 2) for v in box],
                "score": round(float(score), 4),
                "class_id": int(cls),
                "class_name": class_names[int(cls)],
            }
            for box, score, cls in zip(prediction.boxes, prediction.scores, prediction.class_ids)
        ],
        "drivable_area_fraction": round(float(prediction.drivable_mask.mean()), 5),
        "lane_line_pixels": int(prediction.lane_mask.sum()),
    }


def expand_inputs(inputs: list[str]) -> list[Path]:
    paths: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            paths += sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES)
        elif path.is_file():
            paths.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such image, video or folder")
    return paths


def video_fps(capture: cv2.VideoCapture) -> float:
    """The source's frame rate, or FALLBACK_FPS when its container reports none (0, NaN or absurd)."""
    fps = capture.get(cv2.CAP_PROP_FPS)
    return fps if 0 < fps < 1000 else FALLBACK_FPS


def _video_frames(path: Path) -> Iterator[tuple[np.ndarray, float]]:
    """Each frame of a video with the video's frame rate."""
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise ValueError(f"{path}: cannot open video")
    fps = video_fps(capture)
    try:
        while True:
            ok, frame = capture.read()
            if not ok:
                return
            yield frame, fps
    finally:
        capture.release()


def run_predict(predictor: Predictor, inputs: list[str], out_dir: str | Path, save_masks: bool = False) -> dict:
    """Overlays (JPEG per image, MP4 per video), masks on request, predictions.jsonl; returns counts."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = predictor.config.class_names
    counts = {"images": 0, "video_frames": 0, "unreadable": 0, "detections": 0}
    with open(out_dir / "predictions.jsonl", "w") as log:
        for path in expand_inputs(inputs):
            if path.suffix.lower() in VIDEO_SUFFIXES:
                writer = None
                for index, (frame, fps) in enumerate(_video_frames(path)):
                    prediction = predictor([frame])[0]
                    if writer is None:
                        fourcc = cv2.VideoWriter_fourcc(*"mp4v")
                        writer = cv2.VideoWriter(
                            str(out_dir / f"{path.stem}.mp4"), fourcc, fps, (frame.shape[1], frame.shape[0])
                        )
                    writer.write(draw_overlay(frame, prediction, names))
                    log.write(json.dumps(prediction_record(f"{path.name}#{index}", prediction, names)) + "\n")
                    counts["video_frames"] += 1
                    counts["detections"] += len(prediction.boxes)
                if writer is not None:
                    writer.release()
                continue
            image = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if image is None:
                counts["unreadable"] += 1
                continue
            prediction = predictor([image])[0]
            cv2.imwrite(str(out_dir / f"{path.stem}.jpg"), draw_overlay(image, prediction, names))
            if save_masks:
                cv2.imwrite(str(out_dir / f"{path.stem}_drivable.png"), prediction.drivable_mask * 255)
                cv2.imwrite(str(out_dir / f"{path.stem}_lane.png"), prediction.lane_mask * 255)
            log.write(json.dumps(prediction_record(path.name, prediction, names)) + "\n")
            counts["images"] += 1
            counts["detections"] += len(prediction.boxes)
    return counts
