"""Bag tools: bag_from_images -> bag_eval offline equals `ppad eval`; independent MCAP reading; bad bags;
teacher-vs-student agreement; live replay against the real node."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from ppad_core.data.scene_geometry import read_ground_truth
from ppad_core.data.synth import generate_dataset

from conftest import REPO, run_ppad

DEMO = REPO / "models" / "rmt_ppad_s_demo"
METRICS = ("recall", "map50", "map50_95", "drivable_miou", "lane_iou", "lane_acc")


def run_tool(tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", f"ppad_ros.{tool}", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=check,
        timeout=600,
    )


@pytest.fixture(scope="module")
def val_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("bagdata") / "synthetic"
    generate_dataset(root, {"train": 0, "val": 10}, seed=13, width=640, height=360, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def compressed_bag(val_folder):
    bag = val_folder.parent / "drive_mcap"
    run_tool("bag_from_images", str(val_folder), "--out", str(bag), "--compressed", "--rate", "20")
    return bag


@pytest.fixture(scope="module")
def eval_reference(val_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("eval") / "eval.json"
    run_ppad("eval", str(DEMO), "--data", str(val_folder), "--batch", "1", "--json", str(out))
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def geometry_reference(val_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("geometry") / "geometry.json"
    run_ppad("eval", str(DEMO), "--data", str(val_folder), "--geometry", "--json-out", str(out))
    return json.loads(out.read_text())


@pytest.mark.parametrize("storage, compressed", [("mcap", True), ("sqlite3", False)])
def test_offline_bag_eval_gives_exactly_the_metrics_of_ppad_eval(
    val_folder, eval_reference, geometry_reference, tmp_path, storage, compressed
):
    bag = tmp_path / "bag"
    run_tool(
        "bag_from_images",
        str(val_folder),
        "--out",
        str(bag),
        "--storage",
        storage,
        *(["--compressed"] if compressed else []),
    )
    result = run_tool("bag_eval", str(bag), "--checkpoint", str(DEMO), "--out", str(tmp_path / "out"), "--json")
    summary = json.loads(result.stdout)
    assert summary["frames"] == 10 and summary["ground_truth"].endswith("synthetic")
    for key in METRICS:
        assert summary["metrics"][key] == eval_reference[key], key  # same pixels, same protocol: identical
    for terrain, scores in summary["geometry"].items():  # and the road geometry of `ppad eval --geometry`
        assert scores == pytest.approx({k: geometry_reference[terrain][k] for k in scores}, nan_ok=True), terrain
    lines = (tmp_path / "out" / "frames.jsonl").read_text().splitlines()
    assert len(lines) == 10 and {"drivable_iou", "lane_iou", "inference_ms"} <= set(json.loads(lines[0]))
    assert (tmp_path / "out" / "frames.png").is_file() and (tmp_path / "out" / "overlay_00.jpg").is_file()


def test_written_bag_reads_back_identically_with_the_independent_mcap_reader(val_folder, compressed_bag, tmp_path):
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    files = sorted((val_folder / "images" / "val2017").glob("*.jpg"))
    with open(next(compressed_bag.glob("*.mcap")), "rb") as handle:
        decoded = [
            (channel.topic, message.log_time, ros)
            for _, channel, message, ros in make_reader(
                handle, decoder_factories=[DecoderFactory()]
            ).iter_decoded_messages()
        ]
    infos = [entry for entry in decoded if entry[0] == "/camera/camera_info"]
    decoded = [entry for entry in decoded if entry[0] != "/camera/camera_info"]
    assert len(decoded) == len(files) == len(infos) == 10
    for (_, info_time, info), (_, log_time, _), path in zip(infos, decoded, files):
        truth = read_ground_truth(val_folder, "val", path.stem)  # the scene's own camera, written by ppad synth
        assert info_time == log_time and info.header.frame_id == "camera" and info.distortion_model == "plumb_bob"
        assert np.allclose(np.reshape(info.k, (3, 3)), truth.intrinsic) and (info.width, info.height) == (640, 360)
        assert np.allclose(np.reshape(info.p, (3, 4))[:, :3], truth.intrinsic) and not any(info.d)
    for i, ((topic, log_time, msg), path) in enumerate(zip(decoded, files)):
        stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        assert topic == "/camera/image_raw" and msg.format == "jpeg" and msg.header.frame_id == "camera"
        assert stamp == log_time == 1_700_000_000_000_000_000 + i * 50_000_000  # 20 Hz
        assert bytes(msg.data) == path.read_bytes()
    # raw frames: the decoded pixels, row by row
    raw_bag = tmp_path / "raw"
    run_tool(
        "bag_from_images",
        str(val_folder),
        "--out",
        str(raw_bag),
        "--limit",
        "2",
        "--frame-id",
        "front",
        "--no-camera-info",
    )
    with open(next(raw_bag.glob("*.mcap")), "rb") as handle:
        messages = [
            ros for *_, ros in make_reader(handle, decoder_factories=[DecoderFactory()]).iter_decoded_messages()
        ]
    assert len(messages) == 2  # images only
    image = cv2.imread(str(files[1]))
    assert (messages[1].encoding, messages[1].height, messages[1].width, messages[1].step) == ("bgr8", 360, 640, 1920)
    assert bytes(messages[1].data) == image.tobytes() and messages[1].header.frame_id == "front"


def test_truncated_corrupt_and_wrong_topic_bags_give_clear_errors(compressed_bag, tmp_path):
    import shutil

    truncated = tmp_path / "truncated"
    shutil.copytree(compressed_bag, truncated)
    data = next(truncated.glob("*.mcap"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    result = run_tool("bag_eval", str(truncated), "--checkpoint", str(DEMO), "--out", str(tmp_path / "o"), check=False)
    assert result.returncode == 2 and ("truncated or corrupt" in result.stderr or "not a readable" in result.stderr)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(compressed_bag, corrupt)
    (corrupt / "metadata.yaml").write_text("rosbag2_bagfile_information: [not, a, mapping")
    result = run_tool("bag_eval", str(corrupt), "--checkpoint", str(DEMO), check=False)
    assert result.returncode == 2 and "not a readable rosbag2" in result.stderr
    result = run_tool(
        "bag_eval", str(compressed_bag), "--topic", "/front/image", "--checkpoint", str(DEMO), check=False
    )
    assert result.returncode == 2 and "no topic '/front/image'" in result.stderr
    assert "/camera/image_raw (sensor_msgs/msg/CompressedImage)" in result.stderr
    result = run_tool("bag_eval", str(tmp_path / "nothing"), "--checkpoint", str(DEMO), check=False)
    assert result.returncode == 2 and "no such bag" in result.stderr


def test_a_model_agrees_perfectly_with_itself_as_reference(compressed_bag, tmp_path):
    result = run_tool(
        "bag_eval",
        str(compressed_bag),
        "--checkpoint",
        str(DEMO),
        "--reference",
        str(DEMO),
        "--out",
        str(tmp_path / "out"),
        "--json",
    )
    metrics = json.loads(result.stdout)["metrics"]
    # 0.995 is the protocol's ceiling: its 101-point trapezoid integration of a perfect PR curve
    assert metrics["recall"] == pytest.approx(1.0) and metrics["map50"] == pytest.approx(0.995, abs=1e-6)
    assert metrics["drivable_miou"] == pytest.approx(1.0) and metrics["lane_iou"] == pytest.approx(1.0)


def test_live_replay_against_the_node_matches_its_diagnostics(compressed_bag, tmp_path):
    from ros_helpers import NodeProcess, ros_environment

    student = REPO / "models" / "rmt_ppad_s_demo_student"
    node = NodeProcess(
        "/bag_test",
        REPO / "config" / "student.yaml",
        {"input_transport": "compressed", "diagnostics_period_s": 0.2},
        tmp_path / "node.log",
    )
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "ppad_ros.bag_eval",
                str(compressed_bag),
                "--mode",
                "live",
                "--namespace",
                "/bag_test",
                "--checkpoint",
                str(student),
                "--rate",
                "0.5",
                "--out",
                str(tmp_path / "live"),
                "--json",
            ],
            capture_output=True,
            text=True,
            cwd=REPO,
            env=ros_environment(),
            timeout=300,
            check=False,
        )
    finally:
        assert node.stop() == 0, node.output()
    assert result.returncode == 0, result.stderr + node.output()
    summary = json.loads(result.stdout)
    node_counts = summary["node_diagnostics"]
    assert summary["frames"] == 10 and summary["outputs"] + summary["dropped"] == 10
    assert summary["outputs"] == node_counts["frames_processed"]  # what the node processed, we received
    assert summary["dropped"] == node_counts["frames_dropped"] + (10 - node_counts["frames_received"])
    assert node_counts["frames_received"] + node_counts["frames_lost_transport"] == 10  # every frame accounted for
    assert summary["outputs"] >= 5 and summary["end_to_end_ms"]["p50"] > 0
    assert 0.5 < summary["metrics"]["drivable_miou"] <= 1.0
    records = [json.loads(line) for line in (tmp_path / "live" / "frames.jsonl").read_text().splitlines()]
    assert sum(r["output"] for r in records) == summary["outputs"]
    assert np.all([r["end_to_end_ms"] > r["inference_ms"] for r in records if r["output"]])
