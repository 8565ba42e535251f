"""Road geometry in the perception node with real rclpy on loopback: camera_info in, the five `road/*` topics out in
base_link with the image's stamp, lanes equal to ppad_core.geometry on the same frame; no camera_info or a bad one
turns geometry off (one warning, or a message naming the field) while the image outputs keep flowing."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import yaml
from ros_helpers import LATCHED, REPO, NodeProcess, Probe, profile_values, stamp_of, wait_for  # noqa: I001  (imports rclpy or skips)
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray
from visualization_msgs.msg import Marker, MarkerArray

from ppad_core.data.synth import SceneRenderer, render_scene, scene_seed
from ppad_core.geometry.camera import CameraModelError, CameraPose
from ppad_core.geometry.extract import RoadGeometryExtractor
from ppad_core.geometry.road import DrivableGrid, GeometrySettings, LaneLine, Obstacle, RoadGeometry
from ppad_core.runtime.predictor import Prediction, Predictor
from ppad_ros.camera_info import CameraGeometry, camera_model
from ppad_ros.launch_support import camera_settings
from ppad_ros.messages import detections_message, result_prediction
from ppad_ros.msg import LaneLine as LaneLineMessage
from ppad_ros.msg import LaneLineArray
from ppad_ros.parameters import PARAMETERS, NodeParameters
from ppad_ros.road_messages import ROAD_TOPICS, road_header, road_messages

STUDENT_PARAMS = REPO / "config" / "student.yaml"
STUDENT = REPO / "models" / "rmt_ppad_s_demo_student"
NS = "/ppad_test/road"
SCENE = (21, "val", 3)  # a 1280x720 synthetic scene with three lane lines and a vehicle
IMAGE_TOPICS = ("detections", "drivable_area/mask", "lane_lines/mask", "perception")


def _scene_camera_info(
    seed: int, split: str, index: int, width: int = 1280, height: int = 720
) -> tuple[CameraInfo, float]:
    """The synthetic renderer's camera (pinhole looking horizontally, principal point (w/2, horizon)) as
    CameraInfo, and its height above the road."""
    camera = SceneRenderer(np.random.default_rng(scene_seed(seed, split, index)), width, height).camera
    info = CameraInfo(width=camera.width, height=camera.height, distortion_model="plumb_bob")
    info.header.frame_id = "front_camera_optical"
    info.k = [camera.focal, 0.0, camera.width / 2, 0.0, camera.focal, camera.horizon, 0.0, 0.0, 1.0]
    info.d = [0.0] * 5
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [camera.focal, 0.0, camera.width / 2, 0.0, 0.0, camera.focal, camera.horizon, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info, camera.height_m


def _wire(message, message_type):
    """`message` through the bytes on the wire."""
    from rclpy.serialization import deserialize_message, serialize_message

    return deserialize_message(serialize_message(message), message_type)


def _with(info: CameraInfo, **fields) -> CameraInfo:
    copy = _wire(info, CameraInfo)
    for name, value in fields.items():
        setattr(copy, name, value)
    return copy


@pytest.fixture(scope="module")
def road_node(tmp_path_factory):
    """One node with road geometry on, before any camera_info (the tests below run in order on it)."""
    info, height_m = _scene_camera_info(*SCENE)
    reliable = {f"qos_overrides.{NS}/{t}.subscription.reliability": "reliable" for t in ("image", "camera_info")}
    overrides = {"road_geometry": True, "camera_z": height_m, "diagnostics_period_s": 0.2, "publish_overlay": False}
    node = NodeProcess(NS, STUDENT_PARAMS, {**overrides, **reliable}, tmp_path_factory.mktemp("road") / "node.log")
    probe = Probe(NS)
    probe.record(ROAD_TOPICS)
    camera_info = probe.node.create_publisher(CameraInfo, f"{NS}/camera_info", 10)
    probe.wait_ready(node)
    yield node, probe, camera_info, info, height_m
    probe.close()
    assert node.stop() == 0, node.output()


def _send_camera_info(probe: Probe, publisher, info: CameraInfo) -> None:
    """Publish `info` until the node's diagnostics count one more camera_info."""
    before = int(probe.diagnostics()["camera_info_received"])
    for _ in range(20):
        publisher.publish(info)
        try:
            wait_for(lambda: int(probe.diagnostics()["camera_info_received"]) > before, 1.0)
            return
        except AssertionError:
            continue
    raise AssertionError(f"camera_info never reached the node: {probe.diagnostics()}")


def _header(message) -> Header:
    """A message's header; a MarkerArray's is its first marker's (the DELETEALL)."""
    return message.markers[0].header if isinstance(message, MarkerArray) else message.header


def _stamp(message) -> int:
    stamp = _header(message).stamp
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def _outputs(probe: Probe, stamp: int, topics, resend, timeout: float = 30) -> dict:
    def arrived() -> bool:
        return all(any(_stamp(m) == stamp for m in probe.messages(t)) for t in topics)

    deadline = time.monotonic() + timeout
    while not arrived():
        if time.monotonic() > deadline:
            missing = [t for t in topics if not any(_stamp(m) == stamp for m in probe.messages(t))]
            raise AssertionError(f"no {missing} for stamp {stamp}")
        try:
            wait_for(arrived, 3)
        except AssertionError:
            resend()  # best effort into the probe's reliable writer may still lose a 2.7 MB frame on a busy machine
    return {t: next(m for m in probe.messages(t) if _stamp(m) == stamp) for t in topics}


def _frame_out(probe: Probe, image: np.ndarray, stamp: int, topics=IMAGE_TOPICS) -> dict:
    message = probe.publish(image, stamp, frame_id="front_camera_optical")
    return _outputs(probe, stamp, topics, lambda: probe.publish_message(message))


def _road_topics_of(probe: Probe, stamp: int) -> list[str]:
    return [t for t in ROAD_TOPICS if any(_stamp(m) == stamp for m in probe.messages(t))]


def test_without_camera_info_road_geometry_warns_once_and_the_image_outputs_flow(road_node):
    node, probe, *_ = road_node
    image = render_scene(*SCENE).image
    for i in range(2):
        _frame_out(probe, image, 1_600_000_000_000_000_000 + i)
    time.sleep(0.5)
    assert all(not probe.messages(topic) for topic in ROAD_TOPICS)
    warning = f"road_geometry is on but no camera_info has arrived on {NS}/camera_info"
    assert node.output().count(warning) == 1, node.output()
    diagnostics = probe.diagnostics()
    assert diagnostics["road_geometry"] == "waiting for camera_info"
    assert diagnostics["camera_info_topic"] == f"{NS}/camera_info"
    assert diagnostics["_message"] == "ready; no road geometry: waiting for camera_info"


def _reference_predictor() -> Predictor:
    """The Predictor the node builds from config/student.yaml (same runtime options)."""
    values = {spec.name: spec.default for spec in PARAMETERS} | profile_values(STUDENT_PARAMS)
    return Predictor.from_checkpoint(STUDENT, NodeParameters.from_values(values).runtime)


def test_every_road_topic_for_a_frame_in_base_link_with_the_image_stamp_and_the_core_geometry(road_node):
    node, probe, camera_info, info, height_m = road_node
    _send_camera_info(probe, camera_info, info)
    wait_for(lambda: probe.diagnostics().get("road_geometry") == "on", 10, f"{probe.diagnostics()}")
    image = render_scene(*SCENE).image
    stamp = 1_700_000_000_123_456_789
    out = _frame_out(probe, image, stamp, IMAGE_TOPICS + tuple(ROAD_TOPICS))
    for topic in IMAGE_TOPICS:
        assert out[topic].header.frame_id == "front_camera_optical"
    for topic in ROAD_TOPICS:
        assert _header(out[topic]).frame_id == "base_link" and _stamp(out[topic]) == stamp, topic
    assert "road geometry on for /ppad_test/road/camera_info: 1280x720 plumb_bob in base_link" in node.output()

    # the same frame through ppad_core.geometry: the published masks and boxes (the node's Prediction), the lane
    # logits of the same checkpoint with the same options, the camera of the camera_info at the configured pose
    published = result_prediction(out["perception"], ["vehicle"])
    reference = _reference_predictor().predict([image])[0][0]
    assert (published.lane_mask != reference.lane_mask).mean() < 1e-4
    model = camera_model(info, CameraPose(z=height_m))
    expected = RoadGeometryExtractor(model, GeometrySettings()).extract(
        published.lane_mask, published.drivable_mask, published.boxes, getattr(reference, "lane_logits", None)
    )
    lanes = out["road/lanes"].lines
    assert [line.label_name for line in lanes] == [line.label for line in expected.lanes]
    assert {"ego_left", "ego_right"} <= {line.label_name for line in lanes}  # the geometry means something
    for line, want in zip(lanes, expected.lanes):
        assert line.label == getattr(LaneLineMessage, want.label.upper())
        np.testing.assert_allclose(
            [[p.x, p.y, p.z] for p in line.points], np.c_[want.points, np.zeros(len(want.points))]
        )
        np.testing.assert_allclose(line.coefficients, want.coefficients, rtol=1e-9, atol=1e-12)
        assert (line.x_min, line.x_max) == pytest.approx(want.x_range)
        assert line.confidence == pytest.approx(want.confidence, abs=1e-3)
        assert list(line.observed) == want.observed.tolist()
    poses = out["road/ego_path"].poses
    np.testing.assert_allclose([[p.pose.position.x, p.pose.position.y] for p in poses], expected.ego_path)
    assert all(p.header.frame_id == "base_link" and stamp_of(p) == stamp for p in poses)
    yaws = [2 * math.atan2(p.pose.orientation.z, p.pose.orientation.w) for p in poses]
    assert max(abs(y) for y in yaws) < 0.3  # the ego lane runs ahead

    grid = out["road/drivable_grid"]
    assert (grid.info.width, grid.info.height, grid.info.resolution) == (300, 200, pytest.approx(0.2))
    assert (grid.info.origin.position.x, grid.info.origin.position.y) == (0.0, -20.0)
    np.testing.assert_array_equal(np.array(grid.data, np.int8).reshape(200, 300), expected.grid.data)

    obstacles = out["road/obstacles"].obstacles
    assert len(obstacles) == len(out["detections"].detections) == len(expected.obstacles) > 0
    for obstacle, want in zip(obstacles, expected.obstacles):
        assert obstacle.detection_index == want.detection_index and obstacle.class_id == "0"
        np.testing.assert_allclose([obstacle.position.x, obstacle.position.y], [want.x_m, want.y_m], atol=1e-4)

    markers = out["road/markers"].markers
    assert markers[0].action == Marker.DELETEALL
    assert [m.ns for m in markers[1:]].count("lanes") == len(lanes)
    assert {"ego_path", "drivable_boundaries", "obstacles"} <= {m.ns for m in markers}
    assert all(m.header.frame_id == "base_link" and stamp_of(m) == stamp for m in markers)
    wait_for(lambda: "geometry_ms_mean" in probe.diagnostics(), 10, f"{probe.diagnostics()}")


def _k(info: CameraInfo, index: int, value: float) -> list[float]:
    k = list(info.k)
    k[index] = value
    return k


BAD_CAMERA_INFO = [  # what to change in a good camera_info, and the reason the node must log
    (lambda info: {"k": [0.0] * 9}, "K is all zero"),
    (lambda info: {"d": [0.0] * 4}, "D holds 4 values; plumb_bob needs 5"),
    (lambda info: {"distortion_model": "fisheye"}, "distortion_model 'fisheye' is not one of plumb_bob, rational"),
    (lambda info: {"k": _k(info, 4, math.nan)}, "K holds NaN"),
]


def test_a_bad_camera_info_is_refused_naming_the_field_while_the_image_outputs_flow(road_node):
    node, probe, camera_info, info, _ = road_node
    image = render_scene(*SCENE).image
    for i, (change, reason) in enumerate(BAD_CAMERA_INFO):
        refused = int(probe.diagnostics()["camera_info_refused"])
        _send_camera_info(probe, camera_info, _with(info, **change(info)))
        wait_for(lambda refused=refused: int(probe.diagnostics()["camera_info_refused"]) > refused, 10)
        diagnostics = probe.diagnostics()
        assert diagnostics["road_geometry"].startswith(f"camera_info refused: {reason.split(' ')[0]}"), diagnostics
        stamp = 1_800_000_000_000_000_000 + i
        _frame_out(probe, image, stamp)  # detections, masks and the combined result keep coming
        time.sleep(0.3)
        assert _road_topics_of(probe, stamp) == []
        wait_for(lambda reason=reason: f"refused camera_info on {NS}/camera_info: {reason}" in node.output(), 5)
    # a usable camera_info again: geometry resumes (the extractor for this calibration is reused)
    _send_camera_info(probe, camera_info, info)
    stamp = 1_800_000_000_000_000_100
    _frame_out(probe, image, stamp, IMAGE_TOPICS + tuple(ROAD_TOPICS))
    assert node.output().count("road geometry tables for") == 1
    assert node.process.poll() is None


def test_an_image_whose_size_differs_from_camera_info_gets_no_geometry(road_node):
    node, probe, camera_info, info, _ = road_node
    small = render_scene(*SCENE, width=640, height=360).image
    stamp = 1_850_000_000_000_000_000
    _frame_out(probe, small, stamp)
    time.sleep(0.3)
    assert _road_topics_of(probe, stamp) == []
    assert "the image is 640x360 but camera_info on /ppad_test/road/camera_info has width x height 1280x720" in (
        node.output()
    )


def test_each_camera_its_own_geometry_and_camera_info_beside_its_remapped_image(tmp_path):
    """front: on, its image remapped (camera_info beside it, published once, latched); rear: on, camera_info
    remapped, none sent; side: off, so no camera_info subscription, no road/* publishers, no geometry diagnostics."""
    ns, size = "/ppad_test/road_cams", (640, 360)
    info, height_m = _scene_camera_info(*SCENE, *size)
    cameras = ("front", "rear", "side")
    reliable = {f"qos_overrides.{ns}/{camera}/image.subscription.reliability": "reliable" for camera in cameras}
    reliable[f"qos_overrides.{ns}/car/front/image_raw.subscription.reliability"] = "reliable"
    latched = f"qos_overrides.{ns}/car/front/camera_info.subscription"
    reliable |= {f"{latched}.reliability": "reliable", f"{latched}.durability": "transient_local"}
    overrides = {
        "cameras": f"[{','.join(cameras)}]",
        "front.road_geometry": True,
        "rear.road_geometry": True,
        "front.camera_z": height_m,
        "base_frame": "vehicle",
        "diagnostics_period_s": 0.2,
        "publish_overlay": False,
        "batch_window_ms": 0.0,
    }
    remaps = {"front/image": f"{ns}/car/front/image_raw", "rear/camera_info": f"{ns}/rear_calibration"}
    node = NodeProcess(ns, STUDENT_PARAMS, {**overrides, **reliable}, tmp_path / "node.log", remaps=remaps)
    probes = {camera: Probe(f"{ns}/{camera}", status=f"{ns}/perception/{camera}") for camera in cameras}
    front = probes["front"]
    front.image_pub = front.node.create_publisher(Image, remaps["front/image"], 10)  # the camera's own topic
    front.record(ROAD_TOPICS)
    probes["rear"].record(ROAD_TOPICS)
    camera_info = front.node.create_publisher(CameraInfo, f"{ns}/car/front/camera_info", LATCHED)
    camera_info.publish(info)  # once, before the node subscribes: a late subscriber gets it with transient_local
    try:
        for probe in probes.values():
            probe.wait_ready(node)
        graph = front.node
        assert graph.count_subscribers(f"{ns}/car/front/camera_info") == 1
        assert graph.count_subscribers(f"{ns}/rear_calibration") == 1
        assert graph.count_subscribers(f"{ns}/side/camera_info") == graph.count_subscribers(f"{ns}/camera_info") == 0
        assert graph.count_publishers(f"{ns}/front/road/lanes") == graph.count_publishers(f"{ns}/rear/road/lanes") == 1
        assert all(graph.count_publishers(f"{ns}/side/{topic}") == 0 for topic in ROAD_TOPICS)
        assert f"road geometry in vehicle from {ns}/car/front/camera_info, {ns}/rear_calibration" in node.output()

        wait_for(lambda: front.diagnostics().get("road_geometry") == "on", 10, f"{front.diagnostics()}")
        assert front.diagnostics()["camera_info_received"] == "1"
        image = render_scene(*SCENE, *size).image
        out = _frame_out(front, image, 1_900_000_000_000_000_001, ("detections", *ROAD_TOPICS))
        assert all(_header(out[topic]).frame_id == "vehicle" for topic in ROAD_TOPICS)
        assert {"ego_left", "ego_right"} <= {line.label_name for line in out["road/lanes"].lines}
        _frame_out(probes["rear"], image, 1_900_000_000_000_000_002, ("detections",))
        _frame_out(probes["side"], image, 1_900_000_000_000_000_003, ("detections",))
        time.sleep(0.3)
        assert all(not probes["rear"].messages(topic) for topic in ROAD_TOPICS)
        assert f"no camera_info has arrived on {ns}/rear_calibration" in node.output()
        wait_for(lambda: "frames_processed" in probes["side"].diagnostics(), 5)
        assert "road_geometry" not in probes["side"].diagnostics()
        assert probes["rear"].diagnostics()["road_geometry"] == "waiting for camera_info"
    finally:
        for probe in probes.values():
            probe.close()
        assert node.stop() == 0, node.output()


# ----- without a node: the conversions, the calibration cache, the parameters ---------------------------------------


def _geometry() -> RoadGeometry:
    lane = LaneLine(np.array([[5.0, 1.7], [6.0, 1.75], [7.0, 1.8]]), (1.5, 0.05, 0.0, 0.0), (5.0, 7.0), 0.8, "ego_left")
    data = np.full((3, 4), -1, np.int8)
    data[1, 2], data[2, 3] = 0, 100
    return RoadGeometry(
        lanes=[lane, LaneLine(lane.points[:1], (0.0,) * 4, (5.0, 5.0), 0.5, "other")],
        ego_path=np.array([[5.0, 0.0], [6.0, 1.0], [7.0, 2.0]]),
        grid=DrivableGrid(data, 0.5, 2.0, -1.0),
        left_boundary=np.array([[5.0, 2.0], [6.0, 2.0]]),
        right_boundary=np.zeros((0, 2)),
        obstacles=[Obstacle(0, 12.0, -1.0, math.hypot(12, 1)), Obstacle(1, math.nan, math.nan, math.nan)],
    )


def test_road_messages_carry_lanes_path_grid_obstacles_and_markers_in_the_base_frame():
    image_header = Header(frame_id="camera")
    image_header.stamp.sec, image_header.stamp.nanosec = 12, 34
    header = road_header(image_header, "base_link")
    prediction = Prediction(
        np.array([[0, 0, 4, 4], [1, 1, 2, 2]], np.float32),
        np.array([0.9, 0.4], np.float32),
        np.array([0, 0]),
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4), np.uint8),
    )
    detections = detections_message(prediction, image_header, ["vehicle"], "name")
    messages = road_messages(_geometry(), header, detections)
    assert set(messages) == set(ROAD_TOPICS)
    for topic, message in messages.items():
        assert isinstance(message, ROAD_TOPICS[topic])
        received = _wire(message, ROAD_TOPICS[topic])  # the bytes on the wire
        assert _header(received).frame_id == "base_link" and _stamp(received) == 12_000_000_034
    lanes = messages["road/lanes"]
    assert stamp_of(lanes) == 12_000_000_034 and [line.label for line in lanes.lines] == [0, 4]
    assert lanes.lines[0].label_name == "ego_left" and lanes.lines[0].x_max == 7.0
    assert list(lanes.lines[0].coefficients) == [1.5, 0.05, 0.0, 0.0]

    path = messages["road/ego_path"]
    yaws = [2 * math.atan2(p.pose.orientation.z, p.pose.orientation.w) for p in path.poses]
    assert yaws == pytest.approx([math.pi / 4] * 3)

    grid = messages["road/drivable_grid"]
    assert (grid.info.width, grid.info.height, grid.info.resolution) == (4, 3, 0.5)
    assert (grid.info.origin.position.x, grid.info.origin.position.y, grid.info.origin.orientation.w) == (2, -1, 1)
    assert grid.data[1 * 4 + 2] == 0 and grid.data[2 * 4 + 3] == 100 and list(grid.data).count(-1) == 10

    obstacles = messages["road/obstacles"].obstacles
    assert [(o.detection_index, o.class_id, round(o.score, 2)) for o in obstacles] == [
        (0, "vehicle", 0.9),
        (1, "vehicle", 0.4),
    ]
    assert (obstacles[0].position.x, obstacles[0].range) == (12.0, pytest.approx(math.hypot(12, 1)))
    assert math.isnan(obstacles[1].position.x) and math.isnan(obstacles[1].range)

    markers = messages["road/markers"].markers
    assert markers[0].action == Marker.DELETEALL
    kinds = [(m.ns, m.id, m.type) for m in markers[1:]]
    # the one-point lane, the one-point right boundary and the unknown obstacle have no marker
    assert kinds == [
        ("lanes", 0, Marker.LINE_STRIP),
        ("ego_path", 0, Marker.LINE_STRIP),
        ("drivable_boundaries", 0, Marker.LINE_STRIP),
        ("obstacles", 0, Marker.SPHERE),
    ]
    assert markers[1].color.a == 1.0 and markers[1].scale.x > 0 and markers[4].pose.position.x == 12.0
    empty = road_messages(RoadGeometry(), header, Detection2DArray())
    assert empty["road/drivable_grid"].info.width == 0 and empty["road/lanes"].lines == []
    assert len(empty["road/markers"].markers) == 1
    assert isinstance(empty["road/lanes"], LaneLineArray)


def test_camera_info_is_refused_naming_the_field_and_the_extractor_rebuilt_only_on_a_new_calibration():
    info, height_m = _scene_camera_info(*SCENE)
    for fields, reason in [
        ({"binning_x": 2}, "binning_x=2"),
        ({"width": 0}, "width and height must be positive"),
        ({"d": [0.0] * 8, "distortion_model": "rational_polynomial"}, ""),
        ({"d": [0.1] * 4, "distortion_model": "equidistant"}, ""),
    ]:
        if reason:
            with pytest.raises(CameraModelError, match=reason):
                camera_model(_with(info, **fields), CameraPose())
        else:
            camera_model(_with(info, **fields), CameraPose())
    info.roi.width, info.roi.height, info.roi.x_offset = 640, 720, 10
    with pytest.raises(CameraModelError, match="roi 640x720\\+10\\+0"):
        camera_model(info, CameraPose())
    info.roi.width = info.roi.height = info.roi.x_offset = 0

    geometry = CameraGeometry(CameraPose(z=height_m), GeometrySettings(grid_x_max_m=30.0))
    assert geometry.extractor() == (None, None) and geometry.status().state == "waiting for camera_info"
    assert geometry.on_camera_info(info) == ""
    first, built_ms = geometry.extractor()
    assert built_ms > 0 and geometry.extractor() == (first, None)
    assert geometry.on_camera_info(_with(info, header=Header(frame_id="other"))) == ""  # same calibration
    assert geometry.extractor() == (first, None)
    assert geometry.on_camera_info(_with(info, k=[0.0] * 9)) == "K is all zero: the camera is not calibrated"
    assert geometry.extractor() == (None, None) and geometry.status().camera_info_refused == 1
    geometry.on_camera_info(info)
    assert geometry.extractor() == (first, None)  # back to the calibration it was built for
    geometry.on_camera_info(_with(info, k=_k(info, 0, info.k[0] * 1.1)))
    second, built_ms = geometry.extractor()
    assert second is not first and built_ms > 0
    assert geometry.status().camera_info_received == 5


def test_geometry_parameters_per_camera_pose_and_their_checks(tmp_path):
    values = {spec.name: spec.default for spec in PARAMETERS} | {"checkpoint": "models/x", "cameras": ["front", "rear"]}
    own = {"front.road_geometry": True, "front.camera_z": 1.2, "front.camera_pitch": 0.05, "rear.camera_x": -1}
    params = NodeParameters.from_values(values | own | {"camera_x": 1.5, "geometry.grid_resolution_m": 0.1})
    assert params.camera("front").road_geometry and not params.camera("rear").road_geometry
    assert params.camera("front").pose == CameraPose(x=1.5, z=1.2, pitch=0.05)
    assert params.camera("rear").pose == CameraPose(x=-1.0)
    assert params.geometry.grid_resolution_m == 0.1 and params.base_frame == "base_link"
    assert params.any_road_geometry and not NodeParameters.from_values(values).any_road_geometry
    with pytest.raises(ValueError, match="parameter geometry.grid_x_max_m must exceed grid_x_min_m"):
        NodeParameters.from_values(values | {"geometry.grid_x_min_m": 80.0})
    with pytest.raises(ValueError, match="parameter front.camera_pitch=2.0 is above its maximum"):
        NodeParameters.from_values(values | {"front.camera_pitch": 2.0})
    with pytest.raises(ValueError, match="parameter camera_z=nan is not a finite number"):
        NodeParameters.from_values(values | {"camera_z": math.nan})
    with pytest.raises(ValueError, match="parameter base_frame is empty"):
        NodeParameters.from_values(values | {"base_frame": ""})
    (tmp_path / "front.yaml").write_text("road_geometry: true\ncamera_z: 1.4\n")
    (tmp_path / "rear.yaml").write_text("")
    assert camera_settings(("front", "rear"), str(tmp_path / "{camera}.yaml")) == {
        "front.road_geometry": True,
        "front.camera_z": 1.4,
    }
    example = _flatten(yaml.safe_load((REPO / "config" / "road_geometry.yaml").read_text())["/**"]["ros__parameters"])
    assert set(example) <= {spec.name for spec in PARAMETERS}
    example_params = NodeParameters.from_values(values | {"cameras": []} | example)
    assert example_params.camera("").road_geometry and example_params.camera("").pose == CameraPose(x=1.5, z=1.5)
    assert example_params.geometry == GeometrySettings()


def _flatten(tree: dict, prefix: str = "") -> dict:
    """A params file's nested mapping as ROS parameter names (`geometry: {max_range_m: ..}` -> geometry.max_range_m)."""
    flat = {}
    for key, value in tree.items():
        flat |= _flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}
    return flat
