"""Planner-ready road geometry from one frame's masks and boxes: lane lines, the ego path, a drivable grid and its
boundaries, and obstacle ground points, all in base_link metres (types here; lanes.py, grid.py and extract.py
compute them).

Conventions (../shared/design/road_geometry.md §1-2): base_link x forward, y left, z = 0 on the ground; lane
lines as cubic y(x) fits over their observed range (Apollo's LaneMarker); the grid in nav_msgs/OccupancyGrid
layout (row-major from `origin`, rows along y, columns along x; 0 free, 100 occupied, -1 unknown).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

LANE_LABELS = ("ego_left", "ego_right", "left_2", "right_2", "other")
FREE, OCCUPIED, UNKNOWN = 0, 100, -1


@dataclass(frozen=True)
class GeometrySettings:
    """Every tunable of the geometry step; the node exposes them as `geometry.*` parameters."""

    max_range_m: float = 100.0  # pixels farther than this on the ground are dropped
    # lane probability that makes a lane pixel, applied to the lane logits when the frame has them: the
    # checkpoint's mask threshold (0.90 for RMT-PPAD's lane IoU) keeps only the cores of far dashes
    lane_threshold: float = 0.5
    grid_resolution_m: float = 0.2
    grid_x_min_m: float = 0.0
    grid_x_max_m: float = 60.0
    grid_y_half_width_m: float = 20.0
    row_spacing_m: float = 0.5  # image rows scanned for lane points at least this far apart on the ground
    max_marking_width_m: float = 0.6  # wider lane-mask runs are blobs, not paint
    merge_width_m: float = 0.5  # runs closer than this in one row are one line (double yellow)
    min_line_points: int = 6
    min_line_length_m: float = 4.0
    min_confidence: float = 0.3
    max_gap_m: float = 20.0  # a line bridges dashes and occlusions up to this far
    lane_width_m: float = 3.5  # assumed when only one side of the ego lane is seen
    max_ego_offset_m: float = 3.4  # the nearest line on a side is ego_left/right only within this offset
    path_step_m: float = 1.0  # spacing of sampled lane, path and boundary points

    def validate(self) -> GeometrySettings:
        positive = ("max_range_m", "grid_resolution_m", "row_spacing_m", "max_marking_width_m", "lane_width_m")
        for name in positive + ("path_step_m", "max_gap_m", "grid_y_half_width_m"):
            if not getattr(self, name) > 0:
                raise ValueError(f"geometry setting {name} must be > 0, not {getattr(self, name)}")
        if not 0 < self.lane_threshold < 1:
            raise ValueError(f"geometry setting lane_threshold must be in (0, 1), not {self.lane_threshold}")
        if not self.grid_x_max_m > self.grid_x_min_m:
            raise ValueError("geometry setting grid_x_max_m must exceed grid_x_min_m")
        return self


def polynomial(coefficients, x: np.ndarray | float) -> np.ndarray:
    """c0 + c1 x + c2 x^2 + ... at x (Horner)."""
    x = np.asarray(x, np.float64)
    *rest, last = coefficients
    y = np.full_like(x, last)
    for c in reversed(rest):
        y = y * x + c
    return y


@dataclass(frozen=True)
class LaneLine:
    """One painted line: `points` [n, 2] (x, y) sampled on the fit over its observed x range."""

    points: np.ndarray
    coefficients: tuple[float, float, float, float]  # y = c0 + c1 x + c2 x^2 + c3 x^3
    x_range: tuple[float, float]
    confidence: float  # mean lane probability at the line's observed points, in [0, 1]
    label: str  # one of LANE_LABELS
    # per point: a lane point was seen within OBSERVED_REACH_M (lanes.py); False across a stretch the fit
    # bridges (a vehicle hiding the line); None: every point
    observed: np.ndarray | None = None

    def y_at(self, x: np.ndarray | float) -> np.ndarray:
        return polynomial(self.coefficients, x)


@dataclass(frozen=True)
class DrivableGrid:
    """Occupancy of the ground in base_link: `data` [rows (y), columns (x)] int8, cell (0, 0) at the origin."""

    data: np.ndarray
    resolution_m: float
    origin_x_m: float
    origin_y_m: float

    def cell_centres(self) -> tuple[np.ndarray, np.ndarray]:
        """x of every column and y of every row, metres."""
        rows, columns = self.data.shape
        return (
            self.origin_x_m + (np.arange(columns) + 0.5) * self.resolution_m,
            self.origin_y_m + (np.arange(rows) + 0.5) * self.resolution_m,
        )


@dataclass(frozen=True)
class Obstacle:
    """A detection's ground contact (bottom centre of its box): NaN x, y and range at or above the horizon or
    beyond max_range_m."""

    detection_index: int
    x_m: float
    y_m: float
    range_m: float


@dataclass
class RoadGeometry:
    lanes: list[LaneLine] = field(default_factory=list)
    ego_path: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # [n, 2] ego-lane centre, x ascending
    grid: DrivableGrid | None = None
    left_boundary: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # drivable region's edges
    right_boundary: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # along the ego lane
    obstacles: list[Obstacle] = field(default_factory=list)

    def lane(self, label: str) -> LaneLine | None:
        return next((line for line in self.lanes if line.label == label), None)
