"""Metrics of the planner-ready road geometry: 3-D lanes, the drivable grid and obstacle ranges.

Three accumulators, each fed one frame at a time with `add` and read with `result()`, a flat dict of floats
(counts are floats too; NaN where a value is undefined):

- `LaneMetric`: the Gen-LaneNet / OpenLane 3-D lane metric as ../shared/design/road_geometry.md §4 describes it.
- `GridMetric`: IoU of the free cells of a predicted `DrivableGrid` against a ground-truth one, within range.
- `ObstacleMetric`: the range error of obstacle ground points, boxes matched by IoU.

Lane metric frame: lanes arrive in base_link (x forward, y left, z up, metres) and are scored in the metric's
ground frame of §4: metric x = -y_base (lateral, to the RIGHT), metric y = x_base (forward), metric z = z_base.
Choices where §4 leaves room (each is stated again where it is made):

- A sample counts exactly 1.5 m whenever the GT or the prediction is not visible there, both-invisible
  included (§4's "where either side is not visible", Gen-LaneNet's rule; OpenLane's evaluator is reported to
  score both-invisible samples 0 instead). The mean-distance gate is then equivalent to "the mean distance over
  the samples visible on both sides is < 1.5 m".
- "Within 1.5 m" is strict (< 1.5 m), so an invisible sample (exactly 1.5 m) never counts as close.
- A lane with no visible sample (fewer than two distinct forward positions, or wholly outside |x| <= 10 m or
  its own visibility flags) is dropped before counting: it is neither a GT lane nor a prediction.
- Precision and recall are 0, not NaN, when there are no predictions or no GT lanes; F is 0 when both are 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from ppad_core.geometry.road import FREE, LANE_LABELS, UNKNOWN, DrivableGrid, LaneLine, Obstacle

SAMPLE_Y_M = np.linspace(3.0, 103.0, 100, endpoint=False)  # 3, 4, ..., 102 m forward
MAX_LATERAL_M = 10.0  # a sample is visible only where |metric x| <= this
DIST_THRESHOLD_M = 1.5  # per-sample distance of an invisible sample; the closeness and mean-distance gates
NEAR_RANGE_M = (0.0, 40.0)  # forward ranges of the near and far x / z errors, [lo, hi)
FAR_RANGE_M = (40.0, 100.0)
RANGE_BINS_M = (("0_20", 0.0, 20.0), ("20_40", 20.0, 40.0), ("40_plus", 40.0, math.inf), ("within_40", 0.0, 40.0))
NAN = float("nan")
_ERROR_KEYS = ("x_error_near_m", "x_error_far_m", "z_error_near_m", "z_error_far_m")


@dataclass(frozen=True)
class LaneSample:
    """A ground-truth (or 3-D predicted) lane in base_link: `points` [n, 3] (x forward, y left, z up, metres),
    `visibility` [n] bool (None: every point visible) and an optional position label from LANE_LABELS."""

    points: np.ndarray
    visibility: np.ndarray | None = None
    label: str | None = None

    def __post_init__(self) -> None:
        points = np.asarray(self.points, np.float64)
        if points.ndim != 2 or points.shape[1] != 3:
            raise ValueError(f"LaneSample points must be [n, 3] (x, y, z), not {points.shape}")
        flags = np.ones(len(points), bool) if self.visibility is None else np.asarray(self.visibility, bool)
        if flags.shape != (len(points),):
            raise ValueError(f"LaneSample visibility must be [{len(points)}], not {flags.shape}")
        if self.label is not None and self.label not in LANE_LABELS:
            raise ValueError(f"LaneSample label {self.label!r} is not one of {LANE_LABELS}")
        object.__setattr__(self, "points", points)
        object.__setattr__(self, "visibility", flags)


@dataclass(frozen=True)
class ResampledLane:
    """A lane at the 100 metric samples SAMPLE_Y_M: lateral x (right) and z, and which samples are visible."""

    x: np.ndarray
    z: np.ndarray
    visible: np.ndarray
    label: str | None


def to_metric_frame(points: np.ndarray) -> np.ndarray:
    """base_link points [n, 2] (z = 0) or [n, 3] -> metric ground frame [n, 3]: (-y_base, x_base, z_base)."""
    points = np.asarray(points, np.float64)
    z = points[:, 2] if points.shape[1] > 2 else np.zeros(len(points))
    return np.stack([-points[:, 1], points[:, 0], z], 1)


def resample_lane(points_metric: np.ndarray, flags: np.ndarray, label: str | None = None) -> ResampledLane:
    """Linear interpolation along metric y at SAMPLE_Y_M (§4).

    A sample is visible when the lane's own forward range covers it, |x| <= 10 m and the lane's own flag there
    is set: the flags are interpolated linearly and thresholded at 0.5, i.e. the nearer point's flag, visible on
    an exact tie. Non-finite points are dropped; points are sorted forward and a repeated forward position keeps
    its first point. Fewer than two forward positions: no sample is visible."""
    finite = np.isfinite(points_metric).all(1)
    points, flags = points_metric[finite], np.asarray(flags, bool)[finite]
    order = np.argsort(points[:, 1], kind="stable")
    points, flags = points[order], flags[order]
    keep = np.concatenate([[True], np.diff(points[:, 1]) > 0]) if len(points) else np.zeros(0, bool)
    points, flags = points[keep], flags[keep]
    if len(points) < 2:
        zeros = np.zeros(len(SAMPLE_Y_M))
        return ResampledLane(zeros, zeros, np.zeros(len(SAMPLE_Y_M), bool), label)
    y = points[:, 1]
    x, z = np.interp(SAMPLE_Y_M, y, points[:, 0]), np.interp(SAMPLE_Y_M, y, points[:, 2])
    own = np.interp(SAMPLE_Y_M, y, flags.astype(np.float64)) >= 0.5
    visible = (SAMPLE_Y_M >= y[0]) & (SAMPLE_Y_M <= y[-1]) & own & (np.abs(x) <= MAX_LATERAL_M)
    return ResampledLane(x, z, visible, label)


def _resampled(lane: LaneSample | LaneLine) -> ResampledLane:
    """A GT `LaneSample` keeps its flags; a `LaneLine` (x, y, z = 0) is visible where it was observed (all of it
    without `observed`): a stretch its fit bridges is not a claim that the line was seen there."""
    if isinstance(lane, LaneSample):
        return resample_lane(to_metric_frame(lane.points), lane.visibility, lane.label)
    points = np.asarray(lane.points, np.float64).reshape(-1, 2)
    observed = np.ones(len(points), bool) if lane.observed is None else np.asarray(lane.observed, bool)
    return resample_lane(to_metric_frame(points), observed, lane.label)


def _visible_lanes(lanes: Sequence[LaneSample | LaneLine]) -> list[ResampledLane]:
    """The lanes of one frame that have at least one visible sample; the others are not counted (§4)."""
    return [r for r in map(_resampled, lanes) if r.visible.any()]


def _mean_in(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(np.mean(values[mask])) if mask.any() else None


class LaneMetric:
    """The 3-D lane metric of ../shared/design/road_geometry.md §4, accumulated over a set of frames.

    Per frame every GT/prediction pair gets a per-sample distance sqrt(dx^2 + dz^2), exactly 1.5 m where either
    side (or both) is not visible; cost = the sum over the 100 samples; one-to-one assignment minimising the
    total cost (Hungarian). An assigned pair counts only if its mean distance is < 1.5 m. In a counting pair the
    GT is recalled if at least 75 % of its visible samples are < 1.5 m from the prediction, and the prediction
    is precise by the same rule over its own visible samples.

    `result()` keys: f_score, precision (precise predictions / predictions), recall (recalled GT / GT lanes),
    x_error_near_m, x_error_far_m, z_error_near_m, z_error_far_m (per counting pair the mean |dx| or |dz| over
    samples visible on both sides with y in [0, 40) or [40, 100) m, averaged over the pairs that have such
    samples), label_accuracy (over counting pairs whose GT has a label: the fraction with the same predicted
    label), gt_lanes, pred_lanes, matched_gt, matched_pred, pairs (counting pairs), frames.
    """

    def __init__(self) -> None:
        self.frames = self.gt_lanes = self.pred_lanes = self.matched_gt = self.matched_pred = self.pairs = 0
        self.labelled_pairs = self.correct_labels = 0
        self.errors: dict[str, list[float]] = {key: [] for key in _ERROR_KEYS}

    def add(self, gt_lanes: Sequence[LaneSample], pred_lanes: Sequence[LaneLine | LaneSample]) -> None:
        """One frame: its GT lanes (base_link, with visibility and optional labels) and predicted lanes."""
        gt, pred = _visible_lanes(gt_lanes), _visible_lanes(pred_lanes)
        self.frames += 1
        self.gt_lanes += len(gt)
        self.pred_lanes += len(pred)
        if not gt or not pred:
            return
        dx = np.stack([[p.x - g.x for p in pred] for g in gt])  # [G, P, 100]
        dz = np.stack([[p.z - g.z for p in pred] for g in gt])
        both = np.stack([[p.visible & g.visible for p in pred] for g in gt])
        dist = np.where(both, np.hypot(dx, dz), DIST_THRESHOLD_M)
        for i, j in zip(*linear_sum_assignment(dist.sum(-1))):
            self._score_pair(gt[i], pred[j], dx[i, j], dz[i, j], both[i, j], dist[i, j])

    def _score_pair(
        self, gt: ResampledLane, pred: ResampledLane, dx: np.ndarray, dz: np.ndarray, both: np.ndarray, dist: np.ndarray
    ) -> None:
        if not dist.sum() < DIST_THRESHOLD_M * len(dist):  # mean distance < 1.5 m, without dividing
            return
        self.pairs += 1
        close = int(np.count_nonzero(dist < DIST_THRESHOLD_M))
        self.matched_gt += 4 * close >= 3 * int(np.count_nonzero(gt.visible))  # >= 75 %, in integers
        self.matched_pred += 4 * close >= 3 * int(np.count_nonzero(pred.visible))
        for name, (lo, hi) in (("near", NEAR_RANGE_M), ("far", FAR_RANGE_M)):
            in_range = both & (SAMPLE_Y_M >= lo) & (SAMPLE_Y_M < hi)
            for axis, delta in (("x", dx), ("z", dz)):
                error = _mean_in(np.abs(delta), in_range)
                if error is not None:
                    self.errors[f"{axis}_error_{name}_m"].append(error)
        if gt.label is not None:
            self.labelled_pairs += 1
            self.correct_labels += pred.label == gt.label

    def result(self) -> dict[str, float]:
        precision = self.matched_pred / self.pred_lanes if self.pred_lanes else 0.0
        recall = self.matched_gt / self.gt_lanes if self.gt_lanes else 0.0
        f_score = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
        out = {"lane_f_score": f_score, "lane_precision": precision, "lane_recall": recall}
        out |= {key: float(np.mean(values)) if values else NAN for key, values in self.errors.items()}
        out["label_accuracy"] = self.correct_labels / self.labelled_pairs if self.labelled_pairs else NAN
        counts = ("gt_lanes", "pred_lanes", "matched_gt", "matched_pred", "pairs", "frames")
        return out | {key: float(getattr(self, key)) for key in counts}


def _check_same_layout(pred: DrivableGrid, gt: DrivableGrid) -> None:
    """Refuse grids whose cells are not the same cells."""
    same = pred.data.shape == gt.data.shape and all(
        math.isclose(getattr(pred, name), getattr(gt, name), rel_tol=0.0, abs_tol=1e-9)
        for name in ("resolution_m", "origin_x_m", "origin_y_m")
    )
    if not same:
        raise ValueError(
            "predicted and ground-truth DrivableGrid differ in layout: "
            f"shape {pred.data.shape} vs {gt.data.shape}, resolution {pred.resolution_m} vs {gt.resolution_m} m, "
            f"origin ({pred.origin_x_m}, {pred.origin_y_m}) vs ({gt.origin_x_m}, {gt.origin_y_m}) m"
        )


class GridMetric:
    """IoU of the free cells, predicted vs ground-truth `DrivableGrid`, within range, over a set of frames.

    Scored cells: the GT knows them (not -1) and their centre has x <= `max_x_m` (base_link, forward). Free means
    exactly 0 (FREE); a cell the prediction leaves unknown is not free. Intersection and union are summed over
    the set (not a mean of per-frame IoUs). Design: ../shared/design/road_geometry.md §2 (grid layout), §4.

    `result()` keys: free_iou (|P∩G| / |P∪G|, NaN when the union is empty), pred_unknown_fraction (scored cells
    the prediction leaves unknown / scored cells, NaN without scored cells), intersection, union, scored_cells,
    frames.
    """

    def __init__(self, max_x_m: float = 40.0) -> None:
        self.max_x_m = max_x_m
        self.intersection = self.union = self.scored_cells = self.pred_unknown = self.frames = 0

    def add(self, pred: DrivableGrid, gt: DrivableGrid) -> None:
        """One frame's grids, same shape, resolution and origin (ValueError otherwise)."""
        _check_same_layout(pred, gt)
        x, _ = gt.cell_centres()
        scored = (gt.data != UNKNOWN) & (x <= self.max_x_m)[None, :]
        p, g = (pred.data == FREE) & scored, (gt.data == FREE) & scored
        self.intersection += int(np.count_nonzero(p & g))
        self.union += int(np.count_nonzero(p | g))
        self.scored_cells += int(np.count_nonzero(scored))
        self.pred_unknown += int(np.count_nonzero((pred.data == UNKNOWN) & scored))
        self.frames += 1

    def result(self) -> dict[str, float]:
        return {
            "free_iou": self.intersection / self.union if self.union else NAN,
            "pred_unknown_fraction": self.pred_unknown / self.scored_cells if self.scored_cells else NAN,
            "intersection": float(self.intersection),
            "union": float(self.union),
            "scored_cells": float(self.scored_cells),
            "frames": float(self.frames),
        }


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU [M, N] of boxes a [M, 4] and b [N, 4], xyxy, float64; 0 where the union is empty."""
    a, b = a[:, None, :], b[None, :, :]
    wh = (np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2])).clip(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = np.prod(a[..., 2:] - a[..., :2], -1) + np.prod(b[..., 2:] - b[..., :2], -1) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def match_boxes(iou: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """One-to-one (GT row, prediction column) pairs with IoU >= threshold, maximising the total IoU of such
    pairs (Hungarian on -IoU with the pairs below the threshold given cost 0)."""
    rows, cols = linear_sum_assignment(np.where(iou >= threshold, -iou, 0.0))
    keep = iou[rows, cols] >= threshold
    return rows[keep], cols[keep]


def _boxes(boxes: np.ndarray, what: str) -> np.ndarray:
    boxes = np.asarray(boxes, np.float64)
    if boxes.size == 0:
        return np.zeros((0, 4))
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{what} must be [N, 4] xyxy, not {boxes.shape}")
    return boxes


def _predicted_positions(obstacles: Sequence[Obstacle], count: int) -> np.ndarray:
    """[count, 2] (x, y) of each predicted box from its Obstacle (by detection_index); NaN where it has none."""
    xy = np.full((count, 2), np.nan)
    seen: set[int] = set()
    for obstacle in obstacles:
        index = obstacle.detection_index
        if not 0 <= index < count or index in seen:
            raise ValueError(f"obstacle detection_index {index} is out of range or repeated ({count} boxes)")
        seen.add(index)
        xy[index] = obstacle.x_m, obstacle.y_m
    return xy


class ObstacleMetric:
    """Range error of obstacle ground points, over a set of frames (../shared/design/road_geometry.md §1, §5).

    Per frame predictions are matched to GT boxes one-to-one with IoU >= `iou_threshold` (`match_boxes`). Range
    = hypot(x, y) in base_link, the GT's from its ground position and the prediction's from its Obstacle; the
    bins go by GT range, [lo, hi). A matched prediction whose position is NaN (at or above the horizon, or a box
    without an Obstacle) is missing: it counts in `*_missing`, not in the errors.

    `result()` keys: gt_obstacles, pred_boxes, matched, missing_position, frames, and for each bin
    B in 0_20, 20_40, 40_plus, within_40 (0-40): range_B_count (matched with a position), range_B_missing,
    range_B_abs_error_m (median |predicted range - GT range|), range_B_rel_error (median of that / GT range);
    medians are NaN for an empty bin.
    """

    def __init__(self, iou_threshold: float = 0.5) -> None:
        self.iou_threshold = iou_threshold
        self.gt_obstacles = self.pred_boxes = self.frames = 0
        self.gt_range: list[np.ndarray] = []
        self.pred_range: list[np.ndarray] = []

    def add(
        self, pred_boxes: np.ndarray, pred_obstacles: Sequence[Obstacle], gt_boxes: np.ndarray, gt_positions: np.ndarray
    ) -> None:
        """One frame: predicted boxes [N, 4] xyxy and their Obstacles; GT boxes [M, 4] in the same pixels and GT
        ground positions [M, 2] (x, y base_link, metres, finite)."""
        pred_boxes, gt_boxes = _boxes(pred_boxes, "predicted boxes"), _boxes(gt_boxes, "GT boxes")
        gt_xy = np.asarray(gt_positions, np.float64).reshape(-1, 2)
        if len(gt_xy) != len(gt_boxes) or not np.isfinite(gt_xy).all():
            raise ValueError(f"GT positions must be [{len(gt_boxes)}, 2] and finite, not {gt_xy.shape}")
        pred_xy = _predicted_positions(pred_obstacles, len(pred_boxes))
        rows, cols = match_boxes(box_iou(gt_boxes, pred_boxes), self.iou_threshold)
        self.gt_range.append(np.hypot(*gt_xy[rows].T))
        self.pred_range.append(np.hypot(*pred_xy[cols].T))
        self.gt_obstacles += len(gt_boxes)
        self.pred_boxes += len(pred_boxes)
        self.frames += 1

    def result(self) -> dict[str, float]:
        gt = np.concatenate(self.gt_range) if self.gt_range else np.zeros(0)
        pred = np.concatenate(self.pred_range) if self.pred_range else np.zeros(0)
        missing = ~np.isfinite(pred)
        abs_error = np.abs(pred - gt)
        out = {
            "gt_obstacles": float(self.gt_obstacles),
            "pred_boxes": float(self.pred_boxes),
            "matched": float(len(gt)),
            "missing_position": float(np.count_nonzero(missing)),
            "frames": float(self.frames),
        }
        for name, lo, hi in RANGE_BINS_M:
            in_bin = (gt >= lo) & (gt < hi)
            scored = in_bin & ~missing
            out[f"range_{name}_count"] = float(np.count_nonzero(scored))
            out[f"range_{name}_missing"] = float(np.count_nonzero(in_bin & missing))
            out[f"range_{name}_abs_error_m"] = float(np.median(abs_error[scored])) if scored.any() else NAN
            out[f"range_{name}_rel_error"] = float(np.median(abs_error[scored] / gt[scored])) if scored.any() else NAN
        return out
