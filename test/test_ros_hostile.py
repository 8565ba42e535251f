"""The perception node against hostile input, with real rclpy on loopback: oversized and forged compressed
frames, EXIF orientation, parameters that are wrong at start-up or at runtime, and frames lost before the
node (sequence-number gaps)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticStatus
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState
from rcl_interfaces.srv import SetParameters
from rclpy.parameter import Parameter
from ros_helpers import REPO, NodeProcess, Probe, stamp_of, wait_for  # noqa: I001  (imports rclpy or skips)
from sensor_msgs.msg import CompressedImage, Image

from ppad_core.data.synth import render_scene
from ppad_ros.image_conversion import fill_image

from hostile_images import exif_rotated_jpeg, huge_jpeg, huge_webp

STUDENT_PARAMS = REPO / "config" / "student.yaml"
QUIET = {"diagnostics_period_s": 0.2, "publish_overlay": False}


def _compressed(data: bytes, fmt: str = "jpeg", stamp_ns: int = 0) -> CompressedImage:
    msg = CompressedImage(format=fmt)
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
    msg.data = data
    return msg


def _counter(probe: Probe, key: str) -> int:
    return int(probe.diagnostics().get(key, -1))


def test_oversized_forged_and_rotated_compressed_frames(tmp_path):
    ns = "/ppad_test/hostile"
    reliable = {f"qos_overrides.{ns}/image/compressed.subscription.reliability": "reliable"}
    node = NodeProcess(ns, STUDENT_PARAMS, {**QUIET, **reliable, "input_transport": "compressed"}, tmp_path / "n.log")
    probe = Probe(ns)
    try:
        probe.wait_ready(node)
        bombs = [_compressed(huge_jpeg()), _compressed(huge_webp(), "webp")]
        rejected, resident = _counter(probe, "frames_rejected"), node.resident_mb()
        for i in range(10):
            probe.publish_message(bombs[i % 2])
            time.sleep(0.1)
        wait_for(lambda: _counter(probe, "frames_rejected") == rejected + 10, 30, f"{probe.diagnostics()}")
        assert node.resident_mb() - resident < 50  # 10 x 300 MB if any had been decoded
        assert "webp image of 10000x10000 exceeds max_image_pixels=33177600" in probe.diagnostics()["last_rejection"]

        time.sleep(2.2)  # past the 2 s log throttle, so the forged frame's line is written
        forged = "jpeg\n[FATAL] [perception]: forged line" + "A" * 1_000_000
        probe.publish_message(_compressed(b"GIF89a" + bytes(64), forged))
        wait_for(lambda: _counter(probe, "frames_rejected") == rejected + 11, 30)
        log_lines = [line for line in node.output().splitlines() if "forged line" in line]
        assert len(log_lines) == 1 and "jpeg\\n[FATAL] [perception]: forged line" in log_lines[0]
        assert len(log_lines[0]) < 400 and f"({len(forged)} characters)" in log_lines[0]
        diagnostics = probe.messages("diagnostics")[-1]
        assert max(len(kv.value) for status in diagnostics.status for kv in status.values) < 300

        frame = render_scene(seed=25, split="val", index=0).image  # 1280x720, tagged "rotate 90 degrees"
        rotated = _compressed(exif_rotated_jpeg(frame), stamp_ns=77_000_000_000)
        probe.publish_message(rotated)
        wait_for(lambda: any(stamp_of(m) == 77_000_000_000 for m in probe.messages("lane_lines/mask")), 30)
        mask = next(m for m in probe.messages("lane_lines/mask") if stamp_of(m) == 77_000_000_000)
        assert (mask.height, mask.width) == (720, 1280)
    finally:
        probe.close()
        assert node.stop() == 0


def _set_parameter(probe: Probe, ns: str, name: str, value) -> tuple[bool, str]:
    client = probe.node.create_client(SetParameters, f"{ns}/perception/set_parameters")
    try:
        assert client.wait_for_service(timeout_sec=10)
        request = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
        future = client.call_async(request)
        wait_for(future.done, 10, f"set_parameters {name} unanswered")
        (result,) = future.result().results
        return result.successful, result.reason
    finally:
        probe.node.destroy_client(client)


RUNTIME_REFUSALS = [
    ("input_height", 100, "parameter input_height/input_width: input_size=(100, 0) must be (height, width), multiples"),
    ("backend", "foo", "parameter backend='foo' is not one of torch, onnxruntime"),
    ("precision", "int4", "parameter precision='int4' is not one of fp32, bf16, fp16, int8"),
    ("checkpoint", "/nonexistent/model", "parameter checkpoint '/nonexistent/model' not found"),
    ("score_threshold", "high", "parameter score_threshold='high' is not a number (>= -1, <= 1)"),
    # the profile's openvino backend runs on the CPU only, whether or not this machine has CUDA
    ("device", "cuda", "parameter device: device='cuda' is not available with the openvino backend (cpu only)"),
]


def test_integer_float_runtime_refusals_and_transport_losses(tmp_path):
    ns = "/ppad_test/params"
    node = NodeProcess(ns, STUDENT_PARAMS, {**QUIET, "score_threshold": 1}, tmp_path / "n.log")  # -p ...:=1
    probe = Probe(ns)
    try:
        probe.wait_ready(node)  # an integer literal for a float parameter starts the node
        for name, value, reason in RUNTIME_REFUSALS:
            successful, answer = _set_parameter(probe, ns, name, value)
            assert not successful and reason in answer, (name, answer)
        assert _set_parameter(probe, ns, "score_threshold", 0.3) == (True, "")
        _assert_transport_losses_are_counted(probe)
    finally:
        probe.close()
        assert node.stop() == 0


def _assert_transport_losses_are_counted(probe: Probe) -> None:
    """A burst far faster than the node's executor takes samples overflows its depth-5 best-effort queue: every
    frame sent is then either received or counted lost in transport, exactly."""
    frame = fill_image(Image(), np.zeros((24, 32, 3), np.uint8), "bgr8")
    before = probe.settled_diagnostics()
    sent = 2000
    for _ in range(sent):
        probe.image_pub.publish(frame)

    def accounted() -> bool:
        after = probe.diagnostics()
        received = int(after["frames_received"]) - int(before["frames_received"])
        lost = int(after["frames_lost_transport"]) - int(before["frames_lost_transport"])
        return received + lost == sent

    time.sleep(1.0)
    last = 1_950_000_000_000_000_000  # the burst's last sample may itself be lost: end on one that is not
    probe.publish(np.zeros((24, 32, 3), np.uint8), last)
    wait_for(lambda: any(stamp_of(m) == last for m in probe.messages("detections")), 20)
    sent += 1
    wait_for(accounted, 10, f"received + lost != sent: {before} -> {probe.diagnostics()}")
    assert int(probe.diagnostics()["frames_lost_transport"]) > int(before["frames_lost_transport"])
    assert ": " in probe.diagnostics()["transport_losses_by_publisher"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"input_height": 100}, "parameter input_height/input_width: input_size=(100, 0) must be"),
        ({"backend": "foo"}, "parameter backend='foo' is not one of torch, onnxruntime"),
        ({"score_threshold": 2}, "parameter score_threshold=2.0 is above its maximum 1.0"),
        pytest.param(
            {"backend": "torch", "device": "cuda"},
            "parameter device='cuda': torch finds no CUDA device",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA"),
        ),
    ],
)
def test_invalid_start_up_parameters_exit_1_with_one_line_naming_them(tmp_path, overrides, message):
    node = NodeProcess("/ppad_test/invalid", STUDENT_PARAMS, overrides, tmp_path / "n.log")
    node.process.wait(timeout=60)
    assert node.process.returncode == 1
    lines = [line for line in node.output().splitlines() if message in line]
    assert len(lines) == 1 and "configure failed" in lines[0], node.output()
    assert "Traceback" not in node.output()


def test_unconfigured_and_failed_nodes_report_why_on_diagnostics(tmp_path):
    ns = "/ppad_test/unconfigured"
    node = NodeProcess(ns, STUDENT_PARAMS, {**QUIET, "autostart": False, "input_width": 100}, tmp_path / "n.log")
    probe = Probe(ns)
    try:
        wait_for(lambda: probe.diagnostics(), 60, f"no diagnostics from an unconfigured node:\n{node.output()}")
        status = probe.diagnostics()
        assert status["_level"] == DiagnosticStatus.ERROR[0] and status["_message"].startswith("unconfigured")
        client = probe.node.create_client(ChangeState, f"{ns}/perception/change_state")
        assert client.wait_for_service(timeout_sec=10)
        future = client.call_async(ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
        wait_for(future.done, 30)
        assert not future.result().success

        def failed() -> bool:
            return probe.diagnostics()["_message"].startswith("configure failed: parameter input_height/input_width")

        wait_for(failed, 10, f"{probe.diagnostics()}")
        assert probe.diagnostics()["_level"] == DiagnosticStatus.ERROR[0] and node.process.poll() is None
    finally:
        probe.close()
        assert node.stop() == 0
