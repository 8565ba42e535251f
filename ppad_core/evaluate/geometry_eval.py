"""`ppad eval --geometry`: road geometry (ppad_core/geometry) scored against a dataset's geometry ground truth
(ppad_core/data/scene_geometry.py) with the metrics of geometry_metrics.py, flat and hilly scenes apart.

The source of masks and boxes is a Predictor, or the ground-truth masks and boxes themselves
(`predictor=None`): that run measures the geometry alone, so the difference between the two is what the
network's masks cost.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from rich.progress import Progress

from ppad_core.data.dataset import read_image, read_mask
from ppad_core.data.layout import DatasetLayout, SamplePaths
from ppad_core.data.scene_geometry import SceneGroundTruth, read_ground_truth
from ppad_core.evaluate.geometry_metrics import GridMetric, LaneMetric, LaneSample, ObstacleMetric
from ppad_core.geometry.camera import CameraModel
from ppad_core.geometry.extract import RoadGeometryExtractor
from ppad_core.geometry.road import GeometrySettings, RoadGeometry
from ppad_core.runtime.predictor import Predictor

TERRAINS = ("flat", "hills")


@dataclass
class TerrainScores:
    lanes: LaneMetric = field(default_factory=LaneMetric)
    grid: GridMetric = field(default_factory=GridMetric)
    obstacles: ObstacleMetric = field(default_factory=ObstacleMetric)
    frames: int = 0

    def add(self, truth: SceneGroundTruth, geometry: RoadGeometry, boxes: np.ndarray) -> None:
        self.frames += 1
        samples = [LaneSample(lane.points, lane.visibility, lane.label) for lane in truth.lanes]
        self.lanes.add(samples, geometry.lanes)
        self.grid.add(geometry.grid, truth.grid)
        self.obstacles.add(boxes, geometry.obstacles, truth.boxes, truth.vehicle_ground[:, :2])

    def result(self) -> dict:
        return {"frames": self.frames, **self.lanes.result(), **self.grid.result(), **self.obstacles.result()}


@dataclass
class FrameGeometry:
    """One scored frame, kept for plots."""

    name: str
    truth: SceneGroundTruth
    geometry: RoadGeometry


def camera_of(truth: SceneGroundTruth) -> CameraModel:
    """The ground truth's camera (the synthetic scenes are undistorted pinholes)."""
    return CameraModel.from_calibration(
        truth.intrinsic, np.zeros(5), "plumb_bob", truth.width, truth.height, truth.pose
    )


def _frame_source(
    sample: SamplePaths, truth: SceneGroundTruth, predictor: Predictor | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """Lane mask, drivable mask, boxes and lane logits of one frame, from the network or the labels."""
    if predictor is None:
        drivable, lane = (read_mask(path) for path in sample.masks)
        return lane, drivable, truth.boxes, None
    prediction = predictor([read_image(sample.image)])[0]
    return prediction.lane_mask, prediction.drivable_mask, prediction.boxes, prediction.lane_logits


class GeometryScores:
    """Scores per terrain ("flat", "hills", "all") of frames with geometry ground truth; `add` returns the frame's
    geometry. The extractor is built per frame: each synthetic scene has its own camera."""

    def __init__(self, settings: GeometrySettings | None = None) -> None:
        self.settings = settings
        self.terrains = {terrain: TerrainScores() for terrain in (*TERRAINS, "all")}

    def add(
        self,
        truth: SceneGroundTruth,
        lane: np.ndarray,
        drivable: np.ndarray,
        boxes: np.ndarray,
        lane_logits: np.ndarray | None = None,
    ) -> RoadGeometry:
        geometry = RoadGeometryExtractor(camera_of(truth), self.settings).extract(lane, drivable, boxes, lane_logits)
        for terrain in ("hills" if truth.hilly else "flat", "all"):
            self.terrains[terrain].add(truth, geometry, boxes)
        return geometry

    def result(self) -> dict:
        return {terrain: score.result() for terrain, score in self.terrains.items()}


def evaluate_geometry(
    root: str | Path,
    split: str,
    predictor: Predictor | None,
    settings: GeometrySettings | None = None,
    keep_frames: Iterable[int] = (),
    progress: bool = True,
) -> tuple[dict, list[FrameGeometry]]:
    """Scores per terrain ("flat", "hills", "all") and the frames at the indices `keep_frames` (for plots)."""
    samples = DatasetLayout(root, split).samples()
    keep = set(keep_frames)
    scores = GeometryScores(settings)
    kept, missing = [], 0
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("scoring road geometry", total=len(samples))
        for index, sample in enumerate(samples):
            bar.advance(task)
            truth = read_ground_truth(root, split, sample.name)
            if truth is None:
                missing += 1
                continue
            geometry = scores.add(truth, *_frame_source(sample, truth, predictor))
            if index in keep:
                kept.append(FrameGeometry(sample.name, truth, geometry))
    results = scores.result()
    results["missing_ground_truth"] = missing
    return results, kept
