"""Road geometry from masks (ppad_core/geometry/lanes.py, grid.py, extract.py) and the synthetic scenes' geometry
ground truth (ppad_core/data/scene_geometry.py), on hand-drawn masks with known ground truth."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from ppad_core.data.scene_geometry import read_ground_truth, scene_ground_truth, write_ground_truth
from ppad_core.data.synth import render_scene
from ppad_core.evaluate.geometry_eval import camera_of
from ppad_core.evaluate.geometry_metrics import LaneMetric, LaneSample
from ppad_core.geometry.camera import CameraModel, CameraPose
from ppad_core.geometry.extract import RoadGeometryExtractor
from ppad_core.geometry.lanes import fit_line, lane_points
from ppad_core.geometry.road import FREE, OCCUPIED, UNKNOWN, GeometrySettings

WIDTH, HEIGHT, FOCAL = 1280, 720, 1000.0
CAMERA = CameraModel.from_calibration(
    [FOCAL, 0, 640, 0, FOCAL, 300, 0, 0, 1], np.zeros(5), "plumb_bob", WIDTH, HEIGHT, CameraPose(z=1.5)
)
LINES = (5.25, 1.75, -1.75, -5.25)  # y at x = 0 of four lane lines, 3.5 m lanes, the car centred in one


def paint_line(mask: np.ndarray, y_of_x, x0: float = 3.0, x1: float = 100.0, dash: tuple | None = None) -> None:
    """Rasterise a 0.15 m wide ground line y(x) (optionally dashed: on, period metres) into `mask`."""
    xs = np.arange(x0, x1, 0.25)
    for a, b in zip(xs[:-1], xs[1:]):
        if dash and ((a - x0) % dash[1]) >= dash[0]:
            continue
        quad = np.array(
            [[a, y_of_x(a) + 0.075], [b, y_of_x(b) + 0.075], [b, y_of_x(b) - 0.075], [a, y_of_x(a) - 0.075]]
        )
        pixels = CAMERA.ground_to_pixel(quad)
        cv2.fillPoly(mask, [np.round(pixels).astype(np.int32)], 1)


def road_masks(curvature: float = 0.0, dashed: bool = True) -> tuple[np.ndarray, np.ndarray, list]:
    lane = np.zeros((HEIGHT, WIDTH), np.uint8)
    truth = []
    for offset in LINES:

        def y_of_x(x, c=offset):
            return c + curvature * x * x

        interior = abs(offset) < 4
        paint_line(lane, y_of_x, dash=(3.0, 9.0) if dashed and interior else None)
        truth.append(y_of_x)
    drivable = np.zeros_like(lane)
    xs = np.arange(3.0, 100.0, 0.5)
    edge = np.concatenate(
        [np.stack([xs, LINES[0] + curvature * xs**2], 1), np.stack([xs, LINES[-1] + curvature * xs**2], 1)[::-1]]
    )
    cv2.fillPoly(drivable, [np.round(CAMERA.ground_to_pixel(edge)).astype(np.int32)], 1)
    return lane, drivable, truth


@pytest.mark.parametrize("curvature", [0.0, 0.0012, -0.0012])
def test_every_line_is_found_labelled_and_within_the_errors_on_straight_and_curved_roads(curvature):
    lane, drivable, truth = road_masks(curvature)
    geometry = RoadGeometryExtractor(CAMERA).extract(lane, drivable, np.zeros((0, 4)))
    assert [line.label for line in geometry.lanes] == ["left_2", "ego_left", "ego_right", "right_2"]
    for line, y_of_x in zip(geometry.lanes, truth):
        first_seen = max(3.6, FOCAL * abs(y_of_x(0.0)) / 640)  # below the image, or beside it
        assert line.x_range[0] < first_seen + 2 and line.x_range[1] > 60  # dashes joined into one line
        assert abs(line.y_at(20.0) - y_of_x(20.0)) < 0.10
        assert abs(line.y_at(50.0) - y_of_x(50.0)) < 0.50
        assert np.allclose(line.points[:, 1], line.y_at(line.points[:, 0]))
    centre = geometry.ego_path
    assert np.abs(centre[:, 1] - curvature * centre[:, 0] ** 2).max() < 0.15


def test_a_blob_and_a_short_scratch_are_not_lane_lines():
    lane, drivable, _ = road_masks()
    cv2.circle(lane, (900, 600), 40, 1, -1)  # a wide blob: runs wider than a marking
    cv2.line(lane, (300, 700), (310, 690), 1, 2)  # a scratch a few rows long
    geometry = RoadGeometryExtractor(CAMERA).extract(lane, drivable, np.zeros((0, 4)))
    assert len(geometry.lanes) == 4


def test_a_double_line_is_one_line_at_its_centre():
    lane = np.zeros((HEIGHT, WIDTH), np.uint8)
    for side in (-0.12, 0.12):
        paint_line(lane, lambda x, s=side: 1.75 + s)
    (line,) = RoadGeometryExtractor(CAMERA).extract(lane, np.zeros_like(lane), np.zeros((0, 4))).lanes
    assert abs(line.y_at(20.0) - 1.75) < 0.05
    assert line.label == "ego_left"


def test_the_grid_is_free_on_the_road_occupied_beside_it_and_unknown_outside_the_view():
    lane, drivable, _ = road_masks()
    geometry = RoadGeometryExtractor(CAMERA).extract(lane, drivable, np.zeros((0, 4)))
    grid = geometry.grid
    x, y = grid.cell_centres()
    assert grid.data.shape == (200, 300) and grid.resolution_m == 0.2

    def cell(at_x, at_y):
        return grid.data[np.argmin(np.abs(y - at_y)), np.argmin(np.abs(x - at_x))]

    assert cell(20, 0) == FREE and cell(20, 4.9) == FREE and cell(20, -4.9) == FREE
    assert cell(20, 6.0) == OCCUPIED and cell(40, -8.0) == OCCUPIED
    assert cell(1.0, 0) == UNKNOWN  # below the image: the camera sees the ground from 3.6 m on
    assert cell(10, 18) == UNKNOWN  # outside the horizontal field of view (32.6 degrees each side)
    left, right = geometry.left_boundary, geometry.right_boundary
    assert len(left) > 40 and left[0, 0] < 5  # from where the road is first seen
    road_in_view = left[:, 0] > 9  # nearer, the view's edge bounds what is seen of the road
    assert np.abs(left[road_in_view, 1] - LINES[0]).max() <= 0.4
    assert np.abs(right[road_in_view, 1] - LINES[-1]).max() <= 0.4


def test_obstacles_stand_where_their_box_bottom_meets_the_ground_and_above_the_horizon_is_nan():
    u, v = CAMERA.ground_to_pixel(np.array([[25.0, -2.0]]))[0]
    boxes = np.array([[u - 40, v - 60, u + 40, v], [600, 100, 680, 250]])  # the second ends above the horizon
    first, second = RoadGeometryExtractor(CAMERA).obstacles(boxes)
    assert (first.x_m, first.y_m) == pytest.approx((25.0, -2.0), abs=1e-6)
    assert first.range_m == pytest.approx(math.hypot(25.0, 2.0), abs=1e-6)
    assert math.isnan(second.x_m) and math.isnan(second.range_m) and second.detection_index == 1


def test_line_confidence_is_the_mean_probability_at_its_points():
    lane, drivable, _ = road_masks(dashed=False)
    half = cv2.resize(lane, (640, 360), interpolation=cv2.INTER_NEAREST)
    logits = np.where(half > 0, math.log(0.8 / 0.2), -6.0).astype(np.float32)  # p = 0.8 on paint, half resolution
    geometry = RoadGeometryExtractor(CAMERA).extract(np.zeros_like(lane), drivable, np.zeros((0, 4)), logits)
    assert [round(line.confidence, 6) for line in geometry.lanes] == [0.8] * 4  # the logits, not the empty mask
    faint = RoadGeometryExtractor(CAMERA, GeometrySettings(lane_threshold=0.85)).extract(lane, drivable, [], logits)
    assert faint.lanes == []  # below geometry.lane_threshold nothing is lane paint


def test_a_half_resolution_mask_gives_the_same_lines():
    lane, drivable, _ = road_masks()
    extractor = RoadGeometryExtractor(CAMERA)
    full = extractor.extract(lane, drivable, np.zeros((0, 4))).lanes
    half_mask = cv2.resize(lane, (640, 360), interpolation=cv2.INTER_AREA)
    half = extractor.extract((half_mask > 0).astype(np.uint8), drivable, np.zeros((0, 4))).lanes
    assert len(half) == len(full)
    for a, b in zip(full, half):
        assert abs(a.y_at(20.0) - b.y_at(20.0)) < 0.1


def flat_scenes(count: int) -> list:
    scenes, index = [], 0
    while len(scenes) < count:
        scene = render_scene(3, "val", index)
        index += 1
        if scene.road.hill_amplitude == 0:
            scenes.append(scene)
    return scenes


def test_on_rendered_flat_scenes_ground_truth_masks_give_lanes_within_the_errors():
    metric = LaneMetric()
    for scene in flat_scenes(8):
        truth = scene_ground_truth(scene)
        lane, drivable = (scene.lane > 0).astype(np.uint8), (scene.drivable > 0).astype(np.uint8)
        geometry = RoadGeometryExtractor(camera_of(truth)).extract(lane, drivable, truth.boxes)
        metric.add([LaneSample(t.points, t.visibility, t.label) for t in truth.lanes], geometry.lanes)
        ranges = [o.range_m for o in geometry.obstacles]
        assert ranges == pytest.approx(np.hypot(*truth.vehicle_ground[:, :2].T).tolist(), rel=0.01)
    result = metric.result()
    assert result["x_error_near_m"] < 0.10 and result["x_error_far_m"] < 0.5
    assert result["label_accuracy"] > 0.9 and result["lane_recall"] > 0.8


def test_ground_truth_round_trips_through_the_openlane_files(tmp_path):
    scene = render_scene(0, "val", 1)
    truth = scene_ground_truth(scene)
    write_ground_truth(tmp_path, "val", "s", truth)
    back = read_ground_truth(tmp_path, "val", "s")
    pose = [(p.x, p.y, p.z, p.roll, p.pitch, p.yaw) for p in (back.pose, truth.pose)]
    assert np.allclose(*pose, atol=1e-9)
    assert len(back.lanes) == len(truth.lanes) == len(scene.road.markings) - (1 if scene.road.oncoming_lanes else 0)
    for a, b in zip(back.lanes, truth.lanes):
        assert np.abs(a.points - b.points).max() < 1e-3 and (a.visibility == b.visibility).all()
        assert (a.attribute, a.category) == (b.attribute, b.category)
    assert (back.grid.data == truth.grid.data).all() and back.hilly == truth.hilly
    assert np.abs(back.vehicle_ground - truth.vehicle_ground).max() < 1e-3
    assert read_ground_truth(tmp_path, "val", "absent") is None


def test_ground_truth_lanes_project_onto_their_paint():
    scene = flat_scenes(1)[0]
    truth = scene_ground_truth(scene)
    camera = camera_of(truth)
    for lane in truth.lanes:
        seen = lane.points[lane.visibility & (lane.points[:, 0] < 40)]
        pixels = np.round(camera.ground_to_pixel(seen[:, :2])).astype(int)
        painted = cv2.dilate(scene.lane, np.ones((5, 5), np.uint8))[pixels[:, 1], pixels[:, 0]] > 0
        assert painted.mean() > 0.3  # dashes: a third of a dashed line is paint
    labels = [lane.label for lane in truth.lanes]
    assert labels.count("ego_left") == 1 and labels.count("ego_right") == 1


def test_a_line_hidden_for_twenty_metres_is_one_line_bridged_but_not_observed_there():
    lane = np.zeros((HEIGHT, WIDTH), np.uint8)
    paint_line(lane, lambda x: -1.75, 3.0, 15.0)
    paint_line(lane, lambda x: -1.75, 35.0, 80.0)  # a vehicle ahead hides 15-35 m
    (line,) = RoadGeometryExtractor(CAMERA).extract(lane, np.zeros_like(lane), np.zeros((0, 4))).lanes
    assert line.x_range[0] < 5 and line.x_range[1] > 70 and line.label == "ego_right"
    x = line.points[:, 0]
    assert line.observed[(x < 14) | (x > 36)].all() and not line.observed[(x > 22) & (x < 28)].any()
    metric = LaneMetric()
    truth = np.stack([np.arange(3.0, 80.0), np.full(77, -1.75), np.zeros(77)], 1)
    metric.add([LaneSample(truth, (truth[:, 0] < 15) | (truth[:, 0] > 35), "ego_right")], [line])
    assert metric.result()["lane_precision"] == 1.0  # the bridged stretch is not claimed as seen


def test_a_camera_that_sees_no_ground_gives_empty_geometry_and_a_0_255_mask_counts_as_drivable():
    sky = CameraModel.from_calibration(
        [FOCAL, 0, 640, 0, FOCAL, 300, 0, 0, 1], np.zeros(5), "plumb_bob", WIDTH, HEIGHT, CameraPose(z=1.5, pitch=-0.6)
    )
    mask = np.ones((HEIGHT, WIDTH), np.uint8)
    geometry = RoadGeometryExtractor(sky).extract(mask, mask, np.array([[600, 300, 700, 400]]))
    assert geometry.lanes == [] and (geometry.grid.data == UNKNOWN).all() and math.isnan(geometry.obstacles[0].x_m)
    lane, drivable, _ = road_masks()
    extractor = RoadGeometryExtractor(CAMERA)
    ones, scaled = (extractor.extract(lane, mask, np.zeros((0, 4))).grid.data for mask in (drivable, drivable * 255))
    assert (ones == scaled).all() and (ones == FREE).sum() > 1000


def test_a_line_fitted_through_few_distinct_distances_does_not_fail():
    xy = np.array([[10.0, 1.0]] * 3 + [[40.0, 1.2]] * 3)  # six points on two scan rows, 30 m apart
    line = fit_line(xy, np.ones(6), GeometrySettings())
    assert line is not None and line.y_at(np.array([10.0, 40.0])) == pytest.approx([1.0, 1.2], abs=1e-6)


def test_a_low_resolution_mask_row_is_scanned_once_at_its_centre_and_rows_keep_their_spacing():
    settings = GeometrySettings()
    scan = RoadGeometryExtractor(CAMERA, settings).scan_rows(CAMERA.height // 4)
    assert len(np.unique(scan.mask_rows)) == len(scan.mask_rows) > 10
    assert np.allclose(scan.v, (scan.mask_rows + 0.5) * 4 - 0.5)  # mask-row centres in image pixels
    centre_x = scan.ground[:, CAMERA.width // 2, 0]  # ground x under the centre column, far to near
    assert np.all(-np.diff(centre_x) >= settings.row_spacing_m - 1e-9)
    full = RoadGeometryExtractor(CAMERA, settings).scan_rows(CAMERA.height)
    assert np.array_equal(full.v, full.mask_rows)  # at the image's own resolution: image rows
    with pytest.raises(ValueError, match="scan rows for 180"):  # a mask of another height than its scan rows
        lane_points(np.zeros((100, 200), np.uint8), CAMERA, scan, settings)
