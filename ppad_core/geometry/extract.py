"""One frame's masks and boxes -> RoadGeometry (road.py), with everything that depends only on the camera
(scan rows, the grid lookup) computed once per calibration."""

from __future__ import annotations

import math

import numpy as np

from ppad_core.geometry.camera import CameraModel
from ppad_core.geometry.grid import GridLookup, drivable_boundaries
from ppad_core.geometry.lanes import ScanRows, ego_path, extract_lanes
from ppad_core.geometry.road import GeometrySettings, Obstacle, RoadGeometry


class RoadGeometryExtractor:
    """Lanes (lanes.py), the drivable grid and its edges (grid.py) and obstacle ground points for one camera."""

    def __init__(self, camera: CameraModel, settings: GeometrySettings | None = None) -> None:
        self.camera = camera
        self.settings = (settings or GeometrySettings()).validate()
        self._scans: dict[int, ScanRows] = {}  # by lane-mask height
        self.lookup = GridLookup.for_camera(camera, self.settings)
        # sigmoid(x) > t  <=>  x > logit(t), as the Predictor thresholds its masks: no sigmoid per pixel
        self.lane_logit_threshold = math.log(self.settings.lane_threshold / (1 - self.settings.lane_threshold))

    def extract(
        self,
        lane_mask: np.ndarray,
        drivable_mask: np.ndarray,
        boxes: np.ndarray,
        lane_logits: np.ndarray | None = None,
    ) -> RoadGeometry:
        """Masks are uint8 of the whole image at any resolution (nonzero: lane paint, drivable); boxes [N, 4]
        x1, y1, x2, y2 in the calibrated image's pixels, in the camera model's convention (OpenCV's: pixel centres
        at integers), as the synthetic scenes' labels are. `lane_logits` (optional, the whole image at any
        resolution) replace the lane mask by `settings.lane_threshold` and give each line's confidence."""
        if lane_logits is not None:
            lane_mask = (lane_logits > self.lane_logit_threshold).view(np.uint8)
        lanes = extract_lanes(lane_mask, self.camera, self.scan_rows(lane_mask.shape[0]), self.settings, lane_logits)
        path = ego_path(lanes, self.settings)
        grid = self.lookup.grid(drivable_mask, (self.camera.width, self.camera.height))
        left, right = drivable_boundaries(grid, path, self.settings.path_step_m)
        return RoadGeometry(lanes, path, grid, left, right, self.obstacles(boxes))

    def scan_rows(self, mask_height: int) -> ScanRows:
        """The scan rows of lane masks `mask_height` rows high, tabled on first use."""
        if mask_height not in self._scans:
            self._scans[mask_height] = ScanRows.for_camera(self.camera, self.settings, mask_height)
        return self._scans[mask_height]

    def obstacles(self, boxes: np.ndarray) -> list[Obstacle]:
        """Ground contact of each box: its bottom centre on flat ground (NaN at or above the horizon or beyond
        max_range_m)."""
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        contact = np.stack([(boxes[:, 0] + boxes[:, 2]) / 2, boxes[:, 3]], 1)
        ground = self.camera.pixel_to_ground(contact, self.settings.max_range_m) if len(boxes) else np.zeros((0, 2))
        return [Obstacle(i, float(x), float(y), float(np.hypot(x, y))) for i, (x, y) in enumerate(ground)]
