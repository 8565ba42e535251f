"""ROS-free parts of ppad_ros: image conversion for every camera encoding, encoded-image headers, text from
the wire, the frame hand-over and transport-loss counting, the parameter table and the launch file's
profile -> parameters logic."""

from __future__ import annotations

import sys
import threading
import time
import types
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from ppad_core.runtime.options import RuntimeOptions
from ppad_ros import image_conversion
from ppad_ros.frame_flow import (
    BatchStatistics,
    FrameStatistics,
    LatestFramePerCamera,
    TransportLosses,
    camera_topic,
)
from ppad_ros.image_conversion import ImageError, compressed_to_bgr, image_to_bgr
from ppad_ros.image_header import HeaderError, encoded_size
from ppad_ros.launch_support import (
    allocator_environment,
    camera_names,
    camera_remappings,
    camera_settings,
    config_dir,
    fastdds_environment,
    node_parameters,
    profile_params_file,
    remappings,
)
from ppad_ros.parameters import PARAMETERS, CameraSettings, NodeParameters, markdown_table
from ppad_ros.wire_text import printable

from conftest import REPO
from hostile_images import encode, exif_rotated_jpeg, with_jpeg_size

rng = np.random.default_rng(0)
BGR = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def _msg(pixels: np.ndarray, encoding: str, pad: int = 0) -> SimpleNamespace:
    """An Image-like message; `pad` extra bytes per row exercise `step`."""
    rows = pixels.reshape(pixels.shape[0], -1)
    padded = np.concatenate([rows, np.full((rows.shape[0], pad), 7, np.uint8)], axis=1)
    return SimpleNamespace(
        encoding=encoding, height=pixels.shape[0], width=pixels.shape[1], step=padded.shape[1], data=padded.tobytes()
    )


@pytest.mark.parametrize("pad", [0, 5])
def test_packed_colour_encodings_decode_to_the_same_bgr(pad):
    sources = {
        "bgr8": BGR,
        "rgb8": BGR[..., ::-1],
        "bgra8": np.dstack([BGR, np.full(BGR.shape[:2], 255, np.uint8)]),
        "rgba8": np.dstack([BGR[..., ::-1], np.zeros(BGR.shape[:2], np.uint8)]),
    }
    for encoding, pixels in sources.items():
        assert np.array_equal(image_to_bgr(_msg(np.ascontiguousarray(pixels), encoding, pad)), BGR), encoding


def test_bgr8_is_a_zero_copy_view_of_the_message_buffer():
    msg = _msg(BGR, "bgr8", pad=4)
    msg.data = bytearray(msg.data)
    view = image_to_bgr(msg)
    assert np.shares_memory(view, np.frombuffer(msg.data, np.uint8)) and not view.flags.writeable


def test_mono8_replicates_the_grey_level():
    grey = BGR[..., 0].copy()
    decoded = image_to_bgr(_msg(grey[..., None], "mono8", pad=3))
    assert np.array_equal(decoded, np.repeat(grey[..., None], 3, axis=2))


def test_yuv422_layouts_match_opencv_reference():
    yuv = rng.integers(16, 240, (6, 8, 2), dtype=np.uint8)
    for encoding, code in (("yuv422", cv2.COLOR_YUV2BGR_UYVY), ("yuyv", cv2.COLOR_YUV2BGR_YUY2)):
        assert np.array_equal(image_to_bgr(_msg(yuv, encoding)), cv2.cvtColor(yuv, code))
    with pytest.raises(ImageError, match="even width"):
        image_to_bgr(_msg(yuv[:, :7], "yuv422"))


@pytest.mark.parametrize(
    "encoding, pattern",
    [("bayer_rggb8", "RGGB"), ("bayer_bggr8", "BGGR"), ("bayer_gbrg8", "GBRG"), ("bayer_grbg8", "GRBG")],
)
def test_bayer_patterns_recover_a_flat_colour(encoding, pattern):
    colour = {"B": 40, "G": 120, "R": 200}
    mosaic = np.zeros((8, 8), np.uint8)
    for dy in range(2):
        for dx in range(2):
            mosaic[dy::2, dx::2] = colour[pattern[2 * dy + dx]]
    decoded = image_to_bgr(_msg(mosaic[..., None], encoding))
    assert np.abs(decoded[2:-2, 2:-2].astype(int) - [40, 120, 200]).max() <= 1


@pytest.mark.parametrize(
    "change, message",
    [
        ({"encoding": "16UC1"}, "encoding '16UC1' is not supported"),
        ({"height": 0}, "zero-size image"),
        ({"step": 10}, "step 10 is smaller than width\\*bytes_per_pixel = 24"),
        ({"data": bytes(50)}, "data holds 50 bytes, 144 needed"),
        ({"height": 5000, "width": 5000}, "exceeds max_image_pixels=1000"),
    ],
)
def test_bad_images_raise_errors_naming_the_problem(change, message):
    msg = _msg(BGR, "bgr8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(ImageError, match=message):
        image_to_bgr(msg, max_pixels=1000)


def test_compressed_images_decode_and_corrupt_or_huge_ones_are_refused():
    ok, png = cv2.imencode(".png", BGR)
    assert np.array_equal(compressed_to_bgr(SimpleNamespace(format="png", data=png.tobytes())), BGR)
    with pytest.raises(ImageError, match=r"compressed image \('jpeg', 9 bytes\) refused: JPEG marker expected"):
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=b"\xff\xd8garbage"))
    with pytest.raises(ImageError, match=r"compressed image \('png', 40 bytes\) could not be decoded"):
        compressed_to_bgr(SimpleNamespace(format="png", data=png.tobytes()[:40]))  # header intact, pixels cut
    with pytest.raises(ImageError, match="empty data"):
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=b""))
    with pytest.raises(ImageError, match="exceeds max_image_pixels=10"):
        compressed_to_bgr(SimpleNamespace(format="png", data=png.tobytes()), max_pixels=10)


ODD = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)  # odd sides: width and height cannot be confused


@pytest.mark.parametrize(
    "suffix, params, kind",
    [
        (".jpg", (), "jpeg"),
        (".jpg", (cv2.IMWRITE_JPEG_PROGRESSIVE, 1), "jpeg"),
        (".png", (), "png"),
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 101), "webp"),  # lossless: VP8L
        (".webp", (cv2.IMWRITE_WEBP_QUALITY, 80), "webp"),  # lossy: VP8
        (".bmp", (), "bmp"),
        (".tiff", (), "tiff"),
    ],
)
def test_encoded_size_reads_each_format_header_as_opencv_decodes_it(suffix, params, kind):
    data = encode(ODD, suffix, *params)
    assert encoded_size(data) == (kind, 53, 37)
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (37, 53, 3)
    with pytest.raises(HeaderError):  # a header cut short is refused, never guessed
        encoded_size(data[:10])


@pytest.mark.parametrize("suffix", [".jp2", ".ppm", ".hdr", ".gif"])
def test_formats_without_a_header_reader_are_refused(suffix):
    with pytest.raises(HeaderError, match="not a jpeg, png, webp, bmp, tiff image"):
        encoded_size(encode(ODD, suffix))


def test_a_header_over_the_pixel_limit_is_refused_before_decoding(monkeypatch):
    claims_huge = with_jpeg_size(encode(ODD, ".jpg"), 10000, 10000)  # OpenCV would decode this to 300 MB
    monkeypatch.setattr(image_conversion.cv2, "imdecode", lambda *a: pytest.fail("decoded a refused frame"))
    with pytest.raises(ImageError, match="jpeg image of 10000x10000 exceeds max_image_pixels=33177600"):
        compressed_to_bgr(SimpleNamespace(format="jpeg", data=claims_huge))


def test_exif_orientation_is_ignored_and_the_stored_size_kept():
    rotated = exif_rotated_jpeg(ODD)
    assert cv2.imdecode(np.frombuffer(rotated, np.uint8), cv2.IMREAD_COLOR).shape == (53, 37, 3)  # OpenCV rotates
    assert compressed_to_bgr(SimpleNamespace(format="jpeg", data=rotated)).shape == (37, 53, 3)


def test_wire_text_is_escaped_and_bounded_with_its_length_stated():
    forged = "jpeg\n[FATAL] [perception]: hacked\x1b[31m\u202e" + "A" * 1_000_000
    shown = printable(forged, 64)
    assert shown.isprintable() and "\n" not in shown.replace("\\n", "")
    assert shown.startswith("jpeg\\n[FATAL] [perception]: hacked\\x1b[31m\\u202e")
    suffix = f"... ({len(forged)} characters)"
    assert shown.endswith(suffix) and len(shown) <= 64 + len(suffix)
    assert printable(shown, 200) == shown  # already safe: nothing escaped twice
    assert printable("bgr8") == "bgr8"
    with pytest.raises(ImageError) as error:
        compressed_to_bgr(SimpleNamespace(format=forged, data=b"GIF89a" + bytes(30)))
    assert str(error.value).isprintable() and len(str(error.value)) < 300


def test_transport_losses_come_from_gaps_in_each_publishers_sequence():
    losses = TransportLosses()
    for sequence in (5, 6, 9, 10):  # counting starts at the first sample seen: 7 and 8 never arrived
        losses.observe(b"camera-a", sequence)
    for sequence in (1, 4):
        losses.observe(b"camera-b", sequence)
    assert losses.lost == 2 + 2
    assert losses.observe(b"camera-b", 3) == -1 and losses.lost == 3  # late, not lost after all
    assert losses.observe(b"camera-c", None) == 0 and losses.unnumbered == 1
    assert losses.by_publisher().count(": ") == 2
    assert ": 2/6" in losses.by_publisher() and ": 1/4" in losses.by_publisher()
    stats = FrameStatistics()
    stats.on_received(False, b"camera-a", 1)
    stats.on_received(False, b"camera-a", 4)
    assert stats.summary()["frames_lost_transport"] == 2 and stats.summary()["frames_received"] == 2


def test_latest_frame_per_camera_keeps_only_the_newest_and_counts_replacements():
    frames, stats = LatestFramePerCamera([""]), FrameStatistics()
    for i in range(5):
        stats.on_received(frames.put("", i))
    assert frames.take_batch(0.01) == [("", 4)] and frames.take_batch(0.01) == []
    summary = stats.summary()
    assert summary["frames_received"] == 5 and summary["frames_dropped"] == 4
    taken = []
    consumer = threading.Thread(target=lambda: taken.append(frames.take_batch(5.0)))
    consumer.start()
    frames.put("", "wake")
    consumer.join(2)
    assert taken == [[("", "wake")]]
    with pytest.raises(KeyError, match="unknown camera 'rear'"):
        frames.put("rear", 0)
    frames.close()
    assert frames.take_batch(5.0) == [] and frames.closed


def test_late_cameras_join_a_batch_within_the_window_only():
    frames = LatestFramePerCamera(["front", "left", "right"])
    frames.put("front", "f")
    threading.Timer(0.05, frames.put, ("left", "l")).start()
    start = time.monotonic()
    assert frames.take_batch(1.0, window_s=0.3, max_batch=2) == [("front", "f"), ("left", "l")]
    assert time.monotonic() - start < 0.25  # max_batch cameras arrived: no need to wait out the window
    frames.put("front", "f2")
    threading.Timer(0.2, frames.put, ("left", "l2")).start()
    start = time.monotonic()
    assert frames.take_batch(1.0, window_s=0.05, max_batch=8) == [("front", "f2")]  # left came too late
    assert 0.04 < time.monotonic() - start < 0.15
    time.sleep(0.25)
    assert frames.take_batch(1.0, window_s=0.0, max_batch=8) == [("left", "l2")]


def test_a_capped_batch_takes_the_cameras_waiting_longest_so_none_starves():
    frames = LatestFramePerCamera(["front", "left", "right"])
    for camera in ("right", "front", "left"):
        frames.put(camera, f"{camera}1")
        time.sleep(0.002)
    assert frames.take_batch(1.0, max_batch=2) == [("right", "right1"), ("front", "front1")]
    for i in range(2, 20):  # front floods: its replaced frames keep the place of the first one not taken
        frames.put("front", f"front{i}")
    frames.put("right", "right2")
    assert frames.take_batch(1.0, max_batch=2) == [("left", "left1"), ("front", "front19")]
    assert frames.take_batch(1.0, max_batch=2) == [("right", "right2")]


def test_batch_statistics_report_the_size_histogram_and_latency():
    stats = BatchStatistics()
    for size in (1, 3, 3, 2):
        stats.on_batch(size, {"total": 10.0 * size, "inference": 5.0 * size})
    summary = stats.summary()
    assert summary["batches"] == 4 and summary["batch_size_histogram"] == "1: 1, 2: 1, 3: 2"
    assert summary["batch_total_ms_mean"] == 22.5 and summary["batch_inference_ms_p95"] == 15.0
    assert camera_topic("front", "drivable_area/mask") == "front/drivable_area/mask"
    assert camera_topic("", "drivable_area/mask") == "drivable_area/mask"


def test_stage_statistics_report_mean_and_p95():
    stats = FrameStatistics()
    for value in range(1, 101):
        stats.on_processed({"inference": float(value)})
    summary = stats.summary()
    assert summary["inference_ms_mean"] == 50.5 and summary["inference_ms_p95"] == pytest.approx(95.05)


def test_parameters_are_validated_with_the_allowed_values():
    values = {spec.name: spec.default for spec in PARAMETERS} | {"checkpoint": "models/x"}
    params = NodeParameters.from_values(values)
    assert params.runtime == RuntimeOptions() and params.class_id_mode == "index"
    with pytest.raises(ValueError, match="backend='tensorrt' is not one of torch, onnxruntime"):
        NodeParameters.from_values(values | {"backend": "tensorrt"})
    with pytest.raises(ValueError, match="score_threshold=2.0 is above its maximum 1.0"):
        NodeParameters.from_values(values | {"score_threshold": 2.0})
    with pytest.raises(ValueError, match=r"parameter input_height/input_width: input_size=\(0, 100\) must be"):
        NodeParameters.from_values(values | {"input_width": 100})
    with pytest.raises(ValueError, match="parameter precision: precision='int8' is not available with the torch"):
        NodeParameters.from_values(values | {"precision": "int8"})
    resized = NodeParameters.from_values(values | {"input_height": 320, "score_threshold": 0.5}).runtime
    assert resized.input_size == (320, 0) and resized.conf_threshold_override == 0.5
    with pytest.raises(ValueError, match="checkpoint is empty"):
        NodeParameters.from_values(values | {"checkpoint": ""})
    assert params.cameras == () and params.max_batch == 8
    assert NodeParameters.from_values(values | {"cameras": ["front", "left_2"]}).cameras == ("front", "left_2")
    assert NodeParameters.from_values(values | {"cameras": None}).cameras == ()  # `-p cameras:=[]`
    with pytest.raises(ValueError, match="parameter cameras: 'front/left' is not a camera name"):
        NodeParameters.from_values(values | {"cameras": ["front/left"]})
    with pytest.raises(ValueError, match="parameter cameras names front more than once"):
        NodeParameters.from_values(values | {"cameras": ["front", "left", "front"]})
    with pytest.raises(ValueError, match=r"parameter cameras=\['front', 1\] is not a list of strings"):
        NodeParameters.from_values(values | {"cameras": ["front", 1]})
    with pytest.raises(ValueError, match="max_batch=0 is below its minimum 1"):
        NodeParameters.from_values(values | {"max_batch": 0})


def test_parameter_types_accept_an_integer_for_a_float_and_nothing_else():
    values = {spec.name: spec.default for spec in PARAMETERS} | {"checkpoint": "models/x"}
    params = NodeParameters.from_values(values | {"score_threshold": 1, "max_input_age_ms": 50})
    assert params.runtime.score_threshold == 1.0 and isinstance(params.max_input_age_ms, float)
    with pytest.raises(ValueError, match=r"parameter score_threshold='high' is not a number \(>= -1, <= 1\)"):
        NodeParameters.from_values(values | {"score_threshold": "high"})
    with pytest.raises(ValueError, match="parameter max_image_pixels=1.5 is not an integer"):
        NodeParameters.from_values(values | {"max_image_pixels": 1.5})
    with pytest.raises(ValueError, match="parameter publish_overlay=1 is not a boolean"):
        NodeParameters.from_values(values | {"publish_overlay": 1})
    with pytest.raises(ValueError, match="parameter backend='foo' is not one of torch, onnxruntime"):
        NodeParameters.from_values(values | {"backend": "foo"})


def test_readme_documents_every_parameter_from_the_one_table():
    assert markdown_table() in (REPO / "README.md").read_text()


def test_profiles_map_to_their_parameter_files_with_overrides_last(tmp_path):
    teacher = profile_params_file("teacher")
    # the installed share folder when the package is built, else this checkout's config/
    assert teacher == config_dir() / "teacher.yaml"
    assert teacher.read_text() == (REPO / "config" / "teacher.yaml").read_text()
    assert "checkpoint: models/rmt_ppad_s_demo\n" in teacher.read_text()
    assert "rmt_ppad_s_demo_student" in profile_params_file("student").read_text()
    extra = tmp_path / "extra.yaml"
    extra.write_text("/**:\n  ros__parameters:\n    score_threshold: 0.5\n")
    params = node_parameters("student", str(extra), device="cuda", use_sim_time=True)
    assert params == [str(config_dir() / "student.yaml"), str(extra), {"use_sim_time": True, "device": "cuda"}]
    assert node_parameters("teacher")[-1] == {"use_sim_time": False}
    with pytest.raises(ValueError, match="model:='huge' is not one of teacher, student"):
        node_parameters("huge")
    with pytest.raises(FileNotFoundError, match="params_file"):
        node_parameters("student", str(tmp_path / "missing.yaml"))
    assert remappings("/cam/image_raw") == [
        ("image", "/cam/image_raw"),
        ("image/compressed", "/cam/image_raw/compressed"),
    ]


def test_launch_file_builds_one_node_from_the_profile(monkeypatch):
    """launch/launch_ros are not installable here: run the launch file against recording stand-ins."""
    created = {}

    class Recorder:
        def __init__(self, *args, **kwargs):
            self.args, self.kwargs = args, kwargs

    class Configuration:
        values = {
            "model": "teacher",
            "params_file": "",
            "image_topic": "/front/image_raw",
            "cameras": "",
            "camera_topic": "/{camera}/image_raw",
            "namespace": "front",
            "device": "",
            "backend": "onnxruntime",
            "use_sim_time": "true",
            "fastdds_profile": "",
            "camera_params": "",
            "allocator": "",
        }

        def __init__(self, name):
            self.name = name

        def perform(self, context):
            return self.values[self.name]

    def node(**kwargs):
        created.update(kwargs)
        return Recorder(**kwargs)

    modules = {
        "launch": types.SimpleNamespace(LaunchDescription=lambda items: items),
        "launch.actions": types.SimpleNamespace(DeclareLaunchArgument=Recorder, OpaqueFunction=Recorder),
        "launch.substitutions": types.SimpleNamespace(LaunchConfiguration=Configuration),
        "launch_ros.actions": types.SimpleNamespace(Node=node),
    }
    for name, module in modules.items():
        monkeypatch.setitem(sys.modules, name, module)
    namespace: dict = {}
    exec(compile((REPO / "launch" / "perception.launch.py").read_text(), "perception.launch.py", "exec"), namespace)
    items = namespace["generate_launch_description"]()
    declared = {item.args[0]: item.kwargs for item in items[:-1]}
    assert declared["model"]["choices"] == ["teacher", "student"] and declared["model"]["default_value"] == "student"
    assert set(declared) == {
        *("model", "params_file", "image_topic", "cameras", "camera_topic", "namespace", "device", "backend"),
        *("use_sim_time", "fastdds_profile", "camera_params", "allocator"),
    }
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE", raising=False)
    monkeypatch.delenv("PPAD_ALLOCATOR", raising=False)
    items[-1].kwargs["function"](None)
    assert created["executable"] == "perception_node" and created["namespace"] == "front"
    assert created["parameters"] == [
        str(config_dir() / "teacher.yaml"),
        {"use_sim_time": True, "backend": "onnxruntime"},
    ]
    assert ("image", "/front/image_raw") in created["remappings"]
    assert created["additional_env"] == fastdds_environment("", environ={}) | allocator_environment("", environ={})
    Configuration.values |= {"cameras": "front,left", "camera_topic": "/car/{camera}/image_raw", "namespace": ""}
    items[-1].kwargs["function"](None)
    assert created["parameters"][-1] == {"use_sim_time": True, "backend": "onnxruntime", "cameras": ["front", "left"]}
    assert created["remappings"] == camera_remappings(("front", "left"), "/car/{camera}/image_raw")


def test_launch_cameras_argument_names_the_cameras_and_their_topics():
    assert camera_names("front, left,right,") == ("front", "left", "right")
    assert camera_names("") == ()
    with pytest.raises(ValueError, match="parameter cameras names left more than once"):
        camera_names("left,left")
    with pytest.raises(ValueError, match="'front left' is not a camera name"):
        camera_names("front left")
    assert camera_remappings(("front", "rear"), "/{camera}/image_raw") == [
        ("front/image", "/front/image_raw"),
        ("front/image/compressed", "/front/image_raw/compressed"),
        ("rear/image", "/rear/image_raw"),
        ("rear/image/compressed", "/rear/image_raw/compressed"),
    ]
    with pytest.raises(ValueError, match="camera_topic:='/camera/image_raw' must hold {camera}"):
        camera_remappings(("front",), "/camera/image_raw")
    params = node_parameters("student", cameras=("front", "rear"))
    assert params[-1] == {"use_sim_time": False, "cameras": ["front", "rear"]}


def test_each_camera_sets_its_own_input_settings_or_keeps_the_node_wide_ones(tmp_path):
    values = {spec.name: spec.default for spec in PARAMETERS} | {"checkpoint": "models/x", "cameras": ["front", "rear"]}
    own = {"front.input_transport": "compressed", "rear.max_input_age_ms": 50, "front.max_input_age_ms": None}
    params = NodeParameters.from_values(values | {"max_image_pixels": 1000} | own)
    assert params.camera("front") == CameraSettings("compressed", 0.0, 1000)
    assert params.camera("rear") == CameraSettings("raw", 50.0, 1000)
    with pytest.raises(ValueError, match="parameter front.input_transport='h264' is not one of raw, compressed"):
        NodeParameters.from_values(values | {"front.input_transport": "h264"})
    with pytest.raises(ValueError, match=r"parameter rear.max_image_pixels=0 is below its minimum 1"):
        NodeParameters.from_values(values | {"rear.max_image_pixels": 0})
    single = NodeParameters.from_values(values | {"cameras": []})
    assert single.camera("") == CameraSettings("raw", 0.0, values["max_image_pixels"])

    (tmp_path / "front.yaml").write_text("input_transport: compressed\nmax_input_age_ms: 80.0\n")
    (tmp_path / "rear.yaml").write_text("")
    pattern = str(tmp_path / "{camera}.yaml")
    expected = {"front.input_transport": "compressed", "front.max_input_age_ms": 80.0}
    assert camera_settings(("front", "rear"), pattern) == expected
    assert node_parameters("student", cameras=("front", "rear"), camera_params=pattern)[1] == expected
    (tmp_path / "rear.yaml").write_text("score_threshold: 0.5\n")
    with pytest.raises(ValueError, match="rear.yaml: score_threshold not a camera setting"):
        camera_settings(("front", "rear"), pattern)
    with pytest.raises(FileNotFoundError, match="camera_params file of side"):
        camera_settings(("side",), pattern)
    with pytest.raises(ValueError, match="must hold {camera}"):
        camera_settings(("front",), str(tmp_path / "front.yaml"))


def test_fastdds_profile_kept_from_the_environment_given_or_turned_off(tmp_path):
    packaged = fastdds_environment("", environ={})["FASTDDS_DEFAULT_PROFILES_FILE"]
    assert packaged.endswith("config/fastdds_localhost.xml") and "<segment_size>33554432<" in open(packaged).read()
    assert fastdds_environment("", environ={"FASTDDS_DEFAULT_PROFILES_FILE": "/site/dds.xml"}) == {}
    assert fastdds_environment("none", environ={}) == {}
    own = tmp_path / "own.xml"
    own.write_text("<dds/>")
    assert fastdds_environment(str(own), environ={}) == {"FASTDDS_DEFAULT_PROFILES_FILE": str(own)}
    with pytest.raises(FileNotFoundError, match="fastdds_profile '/missing.xml' does not exist"):
        fastdds_environment("/missing.xml", environ={})
