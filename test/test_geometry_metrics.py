"""Geometry metrics (ppad_core/evaluate/geometry_metrics.py) on hand-built cases whose numbers are computed by hand
from ../shared/design/road_geometry.md §4: samples at y = 3, 4, ..., 102 m; 1.5 m where a side is not visible."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ppad_core.evaluate.geometry_metrics import GridMetric, LaneMetric, LaneSample, ObstacleMetric
from ppad_core.geometry.road import DrivableGrid, LaneLine, Obstacle


def gt_lane(
    base_y: float, x_to: float = 110.0, z: float = 0.0, label: str | None = None, visible_to: float = math.inf
) -> LaneSample:
    """A straight GT lane at base_link y = `base_y` (metric x = -base_y), points every metre from x = 0."""
    x = np.arange(0.0, x_to + 0.5)
    return LaneSample(np.stack([x, np.full_like(x, base_y), np.full_like(x, z)], 1), x <= visible_to, label)


def pred_line(base_y: float | np.ndarray, x_to: float = 110.0, label: str = "other") -> LaneLine:
    """A predicted line, points every metre from x = 0; `base_y` a constant or one value per point."""
    x = np.arange(0.0, x_to + 0.5)
    y = np.broadcast_to(np.asarray(base_y, np.float64), x.shape)
    return LaneLine(np.stack([x, y], 1), (float(y[0]), 0.0, 0.0, 0.0), (0.0, x_to), 1.0, label)


def lane_result(*frames: tuple[list, list]) -> dict[str, float]:
    metric = LaneMetric()
    for gt, pred in frames:
        metric.add(gt, pred)
    return metric.result()


# --- lanes -------------------------------------------------------------------------------------------------


def test_perfect_prediction() -> None:
    r = lane_result(([gt_lane(1.75)], [pred_line(1.75)]))
    assert (r["lane_f_score"], r["lane_precision"], r["lane_recall"]) == (1.0, 1.0, 1.0)
    for key in ("x_error_near_m", "x_error_far_m", "z_error_near_m", "z_error_far_m"):
        assert r[key] == pytest.approx(0.0, abs=1e-12)
    assert (r["gt_lanes"], r["pred_lanes"], r["pairs"], r["frames"]) == (1.0, 1.0, 1.0, 1.0)


def test_lateral_offset_0p3_is_matched_with_0p3_error() -> None:
    r = lane_result(([gt_lane(1.75)], [pred_line(1.45)]))
    assert r["lane_f_score"] == 1.0
    assert r["x_error_near_m"] == pytest.approx(0.3)
    assert r["x_error_far_m"] == pytest.approx(0.3)
    assert r["z_error_near_m"] == pytest.approx(0.0, abs=1e-12)


def test_lateral_offset_2m_is_not_matched() -> None:
    r = lane_result(([gt_lane(1.75)], [pred_line(-0.25)]))  # 2 m everywhere: mean 2 >= 1.5
    assert (r["lane_f_score"], r["lane_precision"], r["lane_recall"], r["pairs"]) == (0.0, 0.0, 0.0, 0.0)
    assert math.isnan(r["x_error_near_m"]) and math.isnan(r["label_accuracy"])


def test_height_error_and_euclidean_distance() -> None:
    r = lane_result(([gt_lane(0.0, z=0.2)], [pred_line(0.0)]))  # flat prediction, GT 0.2 m up
    assert r["lane_f_score"] == 1.0
    assert r["z_error_near_m"] == pytest.approx(0.2) and r["z_error_far_m"] == pytest.approx(0.2)
    assert r["x_error_near_m"] == pytest.approx(0.0, abs=1e-12)
    # 1.2 m across and 1.2 m up: each under 1.5 m, together sqrt(2) * 1.2 = 1.70 m -> not a pair
    assert lane_result(([gt_lane(0.0, z=1.2)], [pred_line(-1.2)]))["pairs"] == 0.0


def test_near_far_split_at_40m_and_far_ends_at_100m() -> None:
    x = np.arange(0.0, 110.5)
    offset = np.where(x < 40, 0.3, np.where(x < 100, 0.6, 1.0))  # samples 100-102 are in neither range
    r = lane_result(([gt_lane(0.0)], [pred_line(-offset)]))
    assert r["x_error_near_m"] == pytest.approx(0.3)
    assert r["x_error_far_m"] == pytest.approx(0.6)


def test_prediction_covering_only_the_first_30m() -> None:
    # samples 3..30 (28) covered at 0.5 m, 72 count 1.5 m: cost 14 + 108 = 122, mean 1.22 < 1.5 -> a pair.
    # GT: 28 of its 100 visible samples close (28 % < 75 %) -> not recalled; prediction: 28 of 28 -> precise.
    r = lane_result(([gt_lane(0.0)], [pred_line(-0.5, x_to=30.0)]))
    assert (r["pairs"], r["matched_gt"], r["matched_pred"]) == (1.0, 0.0, 1.0)
    assert (r["lane_precision"], r["lane_recall"], r["lane_f_score"]) == (1.0, 0.0, 0.0)
    assert r["x_error_near_m"] == pytest.approx(0.5)
    assert math.isnan(r["x_error_far_m"])  # no sample beyond 40 m visible on both sides


def test_mean_distance_gate_by_hand() -> None:
    # 0.5 m up to x = 30 (28 samples), 2 m from x = 31 (72 samples): cost 14 + 144 = 158, mean 1.58 -> no pair
    x = np.arange(0.0, 110.5)
    r = lane_result(([gt_lane(0.0)], [pred_line(np.where(x <= 30, -0.5, -2.0))]))
    assert (r["pairs"], r["lane_f_score"]) == (0.0, 0.0)
    # both-invisible samples count 1.5 m too: GT and prediction over 3..30 only, 1.6 m apart:
    # 28 * 1.6 + 72 * 1.5 = 152.8 -> no pair (scoring both-invisible samples 0 would give 44.8, a pair)
    assert lane_result(([gt_lane(0.0, x_to=30.0)], [pred_line(-1.6, x_to=30.0)]))["pairs"] == 0.0
    assert lane_result(([gt_lane(0.0, x_to=30.0)], [pred_line(-1.4, x_to=30.0)]))["pairs"] == 1.0  # 147.2


def test_recall_needs_75_percent_of_visible_gt_samples() -> None:
    # exact prediction up to x = 77: samples 3..77 = 75 of 100 -> recalled; up to 76: 74 -> not
    assert lane_result(([gt_lane(0.0)], [pred_line(0.0, x_to=77.0)]))["lane_recall"] == 1.0
    assert lane_result(([gt_lane(0.0)], [pred_line(0.0, x_to=76.0)]))["lane_recall"] == 0.0


def test_gt_visibility_flags_limit_the_gt_samples() -> None:
    # GT visible up to x = 50: samples 3..50 (48) visible, all close -> recalled; the prediction's 100 visible
    # samples have 48 close (48 % < 75 %) -> not precise; cost 52 * 1.5 = 78, mean 0.78 -> a pair
    r = lane_result(([gt_lane(0.0, visible_to=50.0)], [pred_line(0.0)]))
    assert (r["pairs"], r["lane_recall"], r["lane_precision"]) == (1.0, 1.0, 0.0)


def test_optimal_assignment_beats_greedy() -> None:
    # metric x (= -base y): GT A 0, GT B 1.0; predictions P 0.1, Q -1.0. Costs A-P 10, A-Q 100, B-P 90, B-Q 200.
    # Greedy takes A-P then B-Q (2.0 m, no pair): F 0.5. Optimal A-Q + B-P = 190: both pairs (1.0 m, 0.9 m), F 1.
    r = lane_result(([gt_lane(0.0), gt_lane(-1.0)], [pred_line(-0.1), pred_line(1.0)]))
    assert (r["pairs"], r["lane_f_score"]) == (2.0, 1.0)
    assert r["x_error_near_m"] == pytest.approx(0.95) and r["x_error_far_m"] == pytest.approx(0.95)


def test_lanes_beyond_10m_laterally_are_not_counted() -> None:
    r = lane_result(([gt_lane(-10.0), gt_lane(-10.5)], [pred_line(-10.0), pred_line(-10.5)]))
    assert (r["gt_lanes"], r["pred_lanes"], r["lane_f_score"]) == (1.0, 1.0, 1.0)  # |x| = 10 counts, 10.5 does not
    alone = lane_result(([gt_lane(12.0)], []))
    assert (alone["gt_lanes"], alone["lane_recall"]) == (0.0, 0.0)


def test_label_accuracy_over_counted_pairs_with_a_gt_label() -> None:
    gt = [gt_lane(1.75, label="ego_left"), gt_lane(-1.75, label="ego_right"), gt_lane(5.25)]
    gt.append(gt_lane(-5.25, label="right_2"))
    pred = [pred_line(1.75, label="ego_left"), pred_line(-1.75, label="other"), pred_line(5.25, label="left_2")]
    r = lane_result((gt, pred))  # right_2 has no partner; the unlabelled GT does not count: 1 of 2
    assert r["pairs"] == 3.0 and r["label_accuracy"] == 0.5


def test_counts_accumulate_over_frames() -> None:
    # frame 1: 2 GT, 1 prediction (0.1 m off); frame 2: 1 GT, 2 predictions (0.3 m off, one 6.75 m away)
    # counts: 2 of 3 predictions, 2 of 3 GT -> P = R = F = 2/3 (per-frame means would give 0.75)
    r = lane_result(
        ([gt_lane(1.75), gt_lane(-1.75)], [pred_line(1.65)]),
        ([gt_lane(1.75)], [pred_line(1.45), pred_line(-5.0)]),
    )
    assert r["lane_precision"] == pytest.approx(2 / 3) and r["lane_recall"] == pytest.approx(2 / 3)
    assert r["lane_f_score"] == pytest.approx(2 / 3)
    assert r["x_error_near_m"] == pytest.approx(0.2)  # mean over the two pairs
    assert (r["gt_lanes"], r["pred_lanes"], r["frames"]) == (3.0, 3.0, 2.0)


def test_empty_set_and_three_d_predictions() -> None:
    r = LaneMetric().result()
    assert (r["lane_f_score"], r["lane_precision"], r["lane_recall"]) == (0.0, 0.0, 0.0)
    assert math.isnan(r["x_error_far_m"]) and math.isnan(r["label_accuracy"])
    r3 = lane_result(([gt_lane(0.0)], [gt_lane(0.0, z=0.4)]))  # a LaneSample as a 3-D prediction
    assert r3["z_error_far_m"] == pytest.approx(0.4)


def test_lane_sample_validation() -> None:
    with pytest.raises(ValueError, match="label"):
        LaneSample(np.zeros((3, 3)), label="middle")
    with pytest.raises(ValueError, match=r"\[n, 3\]"):
        LaneSample(np.zeros((3, 2)))


# --- drivable grid -----------------------------------------------------------------------------------------

# 4 rows (y) x 5 columns (x), 10 m cells from (0, -20): column centres x = 5, 15, 25, 35, 45 m
GT_CELLS = [[0, 0, 100, -1, 0], [0, 0, 0, 0, 0], [-1, 100, 0, 0, 0], [0, 0, 0, -1, 0]]
PRED_CELLS = [[0, 100, 100, 0, 0], [0, 0, -1, 0, 0], [0, 0, 0, -1, 0], [100, 0, 0, 0, 0]]


def grid(cells: list[list[int]], resolution: float = 10.0) -> DrivableGrid:
    return DrivableGrid(np.array(cells, np.int8), resolution, 0.0, -20.0)


def test_grid_iou_by_hand() -> None:
    # x <= 40: columns 0-3; GT known: 16 - 3 = 13 cells. Both free 7, GT-only 4 (two of them predicted unknown),
    # prediction-only 1 -> IoU 7 / 12; unknown 2 / 13
    metric = GridMetric()
    metric.add(grid(PRED_CELLS), grid(GT_CELLS))
    r = metric.result()
    assert r["free_iou"] == pytest.approx(7 / 12)
    assert r["pred_unknown_fraction"] == pytest.approx(2 / 13)
    assert (r["intersection"], r["union"], r["scored_cells"]) == (7.0, 12.0, 13.0)
    wide = GridMetric(max_x_m=50.0)  # column 4, free in both, joins: 11 / 16, unknown 2 / 17
    wide.add(grid(PRED_CELLS), grid(GT_CELLS))
    assert wide.result()["free_iou"] == pytest.approx(11 / 16)
    assert wide.result()["pred_unknown_fraction"] == pytest.approx(2 / 17)


def test_grid_iou_accumulates_counts() -> None:
    metric = GridMetric()
    metric.add(grid(PRED_CELLS), grid(GT_CELLS))
    metric.add(grid([[0] * 5] * 4), grid([[0] * 5] * 4))  # 16 of 16 in range
    r = metric.result()
    assert r["free_iou"] == pytest.approx(23 / 28)  # not (7/12 + 1) / 2
    assert r["pred_unknown_fraction"] == pytest.approx(2 / 29)
    assert r["frames"] == 2.0


def test_grid_layout_mismatch_is_refused() -> None:
    metric = GridMetric()
    with pytest.raises(ValueError, match="layout"):
        metric.add(grid([row[:4] for row in PRED_CELLS]), grid(GT_CELLS))
    with pytest.raises(ValueError, match="resolution"):
        metric.add(grid(PRED_CELLS, resolution=5.0), grid(GT_CELLS))
    assert math.isnan(GridMetric().result()["free_iou"])


# --- obstacles ---------------------------------------------------------------------------------------------


def box(k: int, height: float = 10.0) -> list[float]:
    """A 10 x `height` px box in slot k (slots 100 px apart, never overlapping); IoU with box(k) = height / 10."""
    return [100.0 * k, 0.0, 100.0 * k + 10.0, height]


def test_obstacle_iou_threshold() -> None:
    metric = ObstacleMetric()
    for height in (5.1, 5.0, 4.9):  # IoU 0.51, 0.50 (>= 0.5: matched), 0.49
        metric.add(np.array([box(0, height)]), [Obstacle(0, 10.0, 0.0, 10.0)], np.array([box(0)]), [[10.0, 0.0]])
    r = metric.result()
    assert (r["matched"], r["gt_obstacles"], r["pred_boxes"], r["frames"]) == (2.0, 3.0, 3.0, 3.0)


def test_obstacle_range_bins_by_hand() -> None:
    gt_xy = [(8, 6), (15, 0), (0, 18), (12, 16), (24, 18), (60, 0), (50, 0), (45, 0), (30, 0)]
    # ranges 10, 15, 18 | 20, 30 | 60, 50, 45 | 30 (no matching box)
    pred_xy = [(8.8, 6.6), (12, 0), (0, 18.9), (15, 20), (20, 15), (50, 0), (math.nan, math.nan)]
    # |error|: 1, 3, 0.9 | 5, 5 | 10 ; relative: 0.1, 0.2, 0.05 | 0.25, 1/6 | 1/6 ; slot 6 NaN, slot 7 no Obstacle
    pred_boxes = [box(k) for k in range(8)] + [box(0, 8.0), box(8, 4.9)]  # a duplicate on slot 0 (IoU 0.8), a miss
    obstacles = [Obstacle(k, x, y, math.hypot(x, y)) for k, (x, y) in enumerate(pred_xy)]
    obstacles += [Obstacle(8, 100.0, 0.0, 100.0), Obstacle(9, 30.0, 0.0, 30.0)]
    metric = ObstacleMetric()
    metric.add(np.array(pred_boxes), obstacles[::-1], np.array([box(k) for k in range(9)]), np.array(gt_xy, float))
    r = metric.result()
    assert (r["gt_obstacles"], r["pred_boxes"], r["matched"], r["missing_position"]) == (9.0, 10.0, 8.0, 2.0)
    expected = {
        "0_20": (3, 0, 1.0, 0.1),
        "20_40": (2, 0, 5.0, (0.25 + 1 / 6) / 2),
        "40_plus": (1, 2, 10.0, 1 / 6),
        "within_40": (5, 0, 3.0, 1 / 6),
    }
    for name, (count, missing, abs_error, rel_error) in expected.items():
        assert (r[f"range_{name}_count"], r[f"range_{name}_missing"]) == (count, missing), name
        assert r[f"range_{name}_abs_error_m"] == pytest.approx(abs_error), name
        assert r[f"range_{name}_rel_error"] == pytest.approx(rel_error), name


def test_obstacle_empty_and_validation() -> None:
    r = ObstacleMetric().result()
    assert r["matched"] == 0.0 and math.isnan(r["range_within_40_abs_error_m"])
    metric = ObstacleMetric()
    with pytest.raises(ValueError, match="detection_index"):
        metric.add(np.array([box(0)]), [Obstacle(1, 1.0, 0.0, 1.0)], np.array([box(0)]), [[1.0, 0.0]])
    with pytest.raises(ValueError, match="finite"):
        metric.add(np.array([box(0)]), [], np.array([box(0)]), [[math.nan, 0.0]])
