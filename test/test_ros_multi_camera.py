"""One perception node serving several cameras with one batched model, with real rclpy on loopback: each camera's
outputs at its own resolution and header, boxes equal to `ppad predict`, no camera starved by a flooding one, and a
bad frame counted for its own camera only."""

from __future__ import annotations

import json
import time
from pathlib import Path

import cv2
import numpy as np
from ros_helpers import REPO, NodeProcess, Probe, flood_rate_hz, profile_flags, stamp_of, wait_for  # noqa: I001  (imports rclpy or skips)
from sensor_msgs.msg import CompressedImage, Image

from ppad_core.data.synth import render_scene
from ppad_ros.image_conversion import fill_image

from conftest import run_ppad

STUDENT_PARAMS = REPO / "config" / "student.yaml"
STUDENT = REPO / "models" / "rmt_ppad_s_demo_student"
CAMERAS = ("front", "left", "right")
SIZES = {"front": (1280, 720), "left": (640, 360), "right": (1920, 1080)}


def _start(ns: str, log, **overrides) -> tuple[NodeProcess, dict[str, Probe]]:
    """The node under `ns` serving CAMERAS (reliable camera subscriptions), and one ready probe per camera."""
    reliable = {f"qos_overrides.{ns}/{camera}/image.subscription.reliability": "reliable" for camera in CAMERAS}
    parameters = {"cameras": f"[{','.join(CAMERAS)}]", "diagnostics_period_s": 0.2, "publish_overlay": False}
    node = NodeProcess(ns, STUDENT_PARAMS, {**parameters, **reliable, **overrides}, log)
    probes = {camera: Probe(f"{ns}/{camera}", status=f"{ns}/perception/{camera}") for camera in CAMERAS}
    for probe in probes.values():
        probe.wait_ready(node)
    return node, probes


def _stop(node: NodeProcess, probes: dict[str, Probe]) -> None:
    for probe in probes.values():
        probe.close()
    assert node.stop() == 0, node.output()


def _output(probe: Probe, stamp: int, topic: str, timeout: float = 30):
    wait_for(lambda: any(stamp_of(m) == stamp for m in probe.messages(topic)), timeout, f"no {topic} for {stamp}")
    return next(m for m in probe.messages(topic) if stamp_of(m) == stamp)


def _boxes(detections) -> np.ndarray:
    rows = []
    for d in detections.detections:
        x, y, w, h = d.bbox.center.position.x, d.bbox.center.position.y, d.bbox.size_x, d.bbox.size_y
        rows.append([x - w / 2, y - h / 2, x + w / 2, y + h / 2, d.results[0].hypothesis.score])
    return np.array(sorted(rows))


def test_three_cameras_at_three_resolutions_match_ppad_predict(tmp_path):
    ns = "/ppad_test/multi"
    node, probes = _start(ns, tmp_path / "node.log", batch_window_ms=1000.0)
    try:
        frames = {
            camera: cv2.resize(render_scene(seed=26, split="val", index=i).image, SIZES[camera])
            for i, camera in enumerate(CAMERAS)
        }
        time.sleep(1.5)  # priming frames still on their way are processed before these
        for attempt in range(3):  # a reliable writer repairs a lost fragment at its next heartbeat (about 3 s)
            outputs = _three_frames_out(probes, frames, 1_700_000_000_000_000_000 + attempt * 1_000_000)
            # one forward pass for the three: their results carry that pass's stage times
            if len({outputs[camera]["perception"].inference_ms for camera in CAMERAS}) == 1:
                break
        else:
            raise AssertionError(f"the three frames never shared a batch: {_batch_sizes(probes['front'], ns)}")
        # the diagnostics count a batch once all its outputs are out: wait for the next status
        wait_for(lambda: "3" in _batch_sizes(probes["front"], ns), 10, f"{_batch_sizes(probes['front'], ns)}")

        for camera in CAMERAS:
            cv2.imwrite(str(tmp_path / f"{camera}.png"), frames[camera])
        images = [str(tmp_path / f"{camera}.png") for camera in CAMERAS]
        run_ppad("predict", str(STUDENT), *images, "--out", str(tmp_path / "out"), *profile_flags(STUDENT_PARAMS))
        lines = (tmp_path / "out" / "predictions.jsonl").read_text().splitlines()
        reference = {Path(record["name"]).stem: record for record in map(json.loads, lines)}
        for camera in CAMERAS:
            expected = np.array(sorted(d["box_xyxy"] + [d["score"]] for d in reference[camera]["detections"]))
            published = _boxes(outputs[camera]["detections"])
            assert len(published) == len(expected) > 0, camera
            np.testing.assert_allclose(published, expected, atol=0.02)
    finally:
        _stop(node, probes)


def test_each_camera_its_own_input_transport(tmp_path):
    """front and right set `<camera>.input_transport: compressed`; left keeps the node-wide raw input."""
    ns = "/ppad_test/multi_compressed"
    own = {"front.input_transport": "compressed", "right.input_transport": "compressed"}
    node, probes = _start(ns, tmp_path / "node.log", **own)
    try:
        for i, camera in enumerate(CAMERAS):
            width, height = SIZES[camera]
            image = cv2.resize(render_scene(seed=28, split="val", index=i).image, SIZES[camera])
            if camera == "left":
                msg = fill_image(Image(), image, "bgr8")
            else:
                msg = CompressedImage(format="jpeg", data=cv2.imencode(".jpg", image)[1].tobytes())
            msg.header.stamp.sec, msg.header.frame_id = 50 + i, f"{camera}_camera"
            probes[camera].publish_message(msg)
            mask = _output(probes[camera], (50 + i) * 1_000_000_000, "lane_lines/mask")
            assert (mask.header.frame_id, mask.height, mask.width) == (f"{camera}_camera", height, width)
        assert f"on {ns}/front/image/compressed, {ns}/left/image, {ns}/right/image/compressed" in node.output()
    finally:
        _stop(node, probes)


def _three_frames_out(probes: dict[str, Probe], frames: dict[str, np.ndarray], base: int) -> dict[str, dict]:
    """Each camera's frame published (the largest first: it takes longest to arrive) and its outputs, checked for
    that camera's stamp, frame_id and size."""
    stamps = {camera: base + i * 1_000 + 7 for i, camera in enumerate(CAMERAS)}
    for camera in sorted(CAMERAS, key=lambda c: -SIZES[c][0]):
        probes[camera].publish(frames[camera], stamps[camera], frame_id=f"{camera}_camera")
    outputs = {}
    for camera in CAMERAS:
        width, height = SIZES[camera]
        topics = ("detections", "drivable_area/mask", "lane_lines/mask", "perception")
        outputs[camera] = {topic: _output(probes[camera], stamps[camera], topic) for topic in topics}
        for message in outputs[camera].values():
            assert message.header.frame_id == f"{camera}_camera" and stamp_of(message) == stamps[camera]
        for topic in ("drivable_area/mask", "lane_lines/mask"):
            mask = outputs[camera][topic]
            assert (mask.encoding, mask.height, mask.width, mask.step) == ("mono8", height, width, width)
    for camera, probe in probes.items():  # nothing crossed over to another camera's topics
        assert set(stamps.values()) & {stamp_of(m) for m in probe.messages("detections")} == {stamps[camera]}
    return outputs


def _batch_sizes(probe: Probe, ns: str) -> dict[str, str]:
    """The node's latest batch-size histogram, size -> count."""
    for message in reversed(probe.messages("diagnostics")):
        for status in message.status:
            if status.name == f"ppad: {ns}/perception":
                histogram = next(kv.value for kv in status.values if kv.key == "batch_size_histogram")
                return dict(item.split(": ") for item in histogram.split(", ") if item)
    return {}


def test_a_flooding_camera_does_not_starve_a_slow_one_and_a_bad_frame_counts_for_its_camera(tmp_path):
    ns = "/ppad_test/multi_flood"
    node, probes = _start(ns, tmp_path / "node.log", max_batch=1, batch_window_ms=0.0)
    try:
        before = {camera: probe.settled_diagnostics() for camera, probe in probes.items()}
        small = fill_image(Image(), cv2.resize(render_scene(seed=27, split="val", index=0).image, (320, 180)), "bgr8")
        slow_stamps = _flood(probes["front"], probes["left"], small, flood_rate_hz(before["front"]))
        for stamp in slow_stamps:  # every 2 Hz frame got through, none was replaced by the next
            _output(probes["left"], stamp, "detections")
        time.sleep(1.0)
        after = {camera: probe.diagnostics() for camera, probe in probes.items()}
        delta = {
            camera: {key: int(after[camera][key]) - int(before[camera][key]) for key in COUNTS} for camera in CAMERAS
        }
        assert delta["left"]["frames_received"] == len(slow_stamps) == delta["left"]["frames_processed"]
        assert delta["left"]["frames_dropped"] == 0
        assert delta["front"]["frames_dropped"] > 0 and delta["front"]["frames_processed"] > len(slow_stamps)
        assert delta["right"]["frames_received"] == 0

        bad = Image(encoding="32FC1", height=48, width=64, step=256, data=bytes(256 * 48))
        probes["left"].publish_message(bad)
        good = 1_960_000_000_000_000_000
        probes["front"].publish(np.zeros((48, 64, 3), np.uint8), good)
        wait_for(lambda: int(probes["left"].diagnostics()["frames_rejected"]) == 1, 20, f"{after['left']}")
        assert "encoding '32FC1' is not supported" in probes["left"].diagnostics()["last_rejection"]
        _output(probes["front"], good, "detections")
        assert [probes[camera].diagnostics()["frames_rejected"] for camera in ("front", "right")] == ["0", "0"]
        assert f"dropped a frame on {ns}/left/image: encoding '32FC1'" in node.output()
    finally:
        _stop(node, probes)


COUNTS = ("frames_received", "frames_processed", "frames_dropped")


def _flood(fast: Probe, slow: Probe, msg: Image, fast_hz: float, seconds: float = 3.0) -> list[int]:
    """`fast` at `fast_hz` and `slow` at 2 Hz for `seconds`; the stamps `slow` sent."""
    slow_stamps, base, start = [], 1_950_000_000_000_000_000, time.monotonic()
    slow_every = round(fast_hz / 2)
    for i in range(int(seconds * fast_hz)):
        stamp = base + i * 33_333_333
        msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp, 1_000_000_000)
        fast.publish_message(msg)
        if i % slow_every == 0:
            slow.publish_message(msg)
            slow_stamps.append(stamp)
        time.sleep(max(0.0, start + (i + 1) / fast_hz - time.monotonic()))
    return slow_stamps
