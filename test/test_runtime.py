"""Runtime: resize transforms, vectorised postprocess, backends, ONNX export/parity, INT8 and `ppad bench`."""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
import math

import cv2
import numpy as np
import openvino
import pytest
import torch
import yaml

from ppad_core.data.synth import render_scene
from ppad_core.image import letterbox_to_input
from ppad_core.model.checkpoint import load_checkpoint
from ppad_core.model.config import ModelConfig
from ppad_core.runtime import benchmark
from ppad_core.runtime.backends import TorchBackend, cpu_supports_bf16
from ppad_core.runtime.benchmark import bench_calibration, build_predictor, default_variants, load_for_bench
from ppad_core.runtime.export import (
    calibration_dir,
    export_onnx,
    onnx_model_config,
    onnx_parity,
    resolve_onnx,
    sample_inputs,
)
from ppad_core.runtime.options import RuntimeOptions
from ppad_core.runtime.predictor import Predictor

from conftest import REPO, run_ppad

DEMO = REPO / "models" / "rmt_ppad_s_demo"


@pytest.fixture(scope="module")
def scene_folder(tmp_path_factory):
    """A folder of street-scene PNGs (lossless: the pixels the renderer drew): calibration and parity images."""
    folder = tmp_path_factory.mktemp("scenes")
    for index in range(4):
        cv2.imwrite(str(folder / f"scene_{index}.png"), render_scene(1234, "calib", index).image)
    return folder


class FixedOutputs:
    """A backend that returns prepared outputs, so pre/postprocess can be checked by hand."""

    description = "fixed"

    def __init__(self, boxes, scores, seg_logits) -> None:
        self.outputs = {"boxes": boxes, "scores": scores, "seg_logits": seg_logits}
        self.seen = None

    def __call__(self, images):
        self.seen = images
        return self.outputs


def _fixed_predictor(resize: str) -> tuple[Predictor, FixedOutputs]:
    config = ModelConfig(input_size=(640, 640))
    boxes = np.array([[[0.5, 0.5, 0.25, 0.25], [0.1, 0.1, 0.1, 0.1]]], np.float32)
    scores = np.array([[[0.9], [0.1]]], np.float32)
    logits = np.full((1, 2, 640, 640), -5.0, np.float32)
    logits[0, 0, 320:, :] = 5.0  # drivable: the lower half of the network input
    logits[0, 1, :, 100:110] = 2.0  # sigmoid 0.88 < the lane threshold 0.90: no lane pixel
    backend = FixedOutputs(boxes, scores, logits)
    return Predictor(backend, config, RuntimeOptions(resize=resize)), backend


def test_letterbox_postprocess_maps_boxes_and_masks_back_to_original_pixels():
    predictor, backend = _fixed_predictor("letterbox")
    frame = np.zeros((720, 1280, 3), np.uint8)
    (prediction,) = predictor([frame])
    assert backend.seen.shape == (1, 3, 640, 640) and backend.seen.dtype == np.uint8
    # 1280x720 -> scale 0.5 -> 640x360 content, 140 px grey bars above and below
    assert (backend.seen[0, :, :140] == 114).all() and (backend.seen[0, :, 500:] == 114).all()
    # box (0.5, 0.5, 0.25, 0.25) = input px (240, 240, 400, 400) -> minus pad (0, 140) -> / 0.5
    np.testing.assert_allclose(prediction.boxes, [[480, 200, 800, 520]], atol=1e-3)
    assert prediction.scores.tolist() == pytest.approx([0.9]) and prediction.class_ids.tolist() == [0]
    # drivable from input row 320 = content row 180 = original row 360; the content spans rows 140..500
    assert prediction.drivable_mask.shape == (720, 1280)
    assert prediction.drivable_mask[:360].sum() == 0 and prediction.drivable_mask[360:].all()
    assert prediction.lane_mask.sum() == 0


def test_stretch_postprocess_scales_each_axis():
    predictor, _ = _fixed_predictor("stretch")
    (prediction,) = predictor([np.zeros((720, 1280, 3), np.uint8)])
    np.testing.assert_allclose(prediction.boxes, [[480, 270, 800, 450]], atol=1e-3)
    assert prediction.drivable_mask[:360].sum() == 0 and prediction.drivable_mask[360:].all()


def test_letterbox_transform_of_a_portrait_image():
    pixels, transform = letterbox_to_input(np.full((400, 200, 3), 255, np.uint8), (256, 448))
    assert transform.scale_x == pytest.approx(128 / 200) and transform.pad_x == (448 - 128) // 2
    assert transform.content_box == (160, 0, 288, 256)
    assert (pixels[:, :160] == 114).all() and (pixels[:, 160:288] == 255).all()


def test_batched_prediction_equals_one_by_one_for_mixed_sizes():
    model = load_checkpoint(DEMO)[0]
    predictor = Predictor.from_model(model)
    frames = [render_scene(5, "val", 0).image, render_scene(5, "val", 1, width=640, height=480).image]
    together = predictor(frames)
    for frame, batched in zip(frames, together):
        (alone,) = predictor([frame])
        np.testing.assert_allclose(batched.boxes, alone.boxes, atol=1e-3)
        assert batched.drivable_mask.shape == frame.shape[:2]
        assert (batched.drivable_mask != alone.drivable_mask).mean() < 1e-3


def test_fp16_on_cpu_is_refused_with_the_alternative():
    with pytest.raises(ValueError, match="fp16' needs a CUDA device; on CPU use bf16"):
        TorchBackend(load_checkpoint(DEMO)[0], RuntimeOptions(precision="fp16"))


def test_cuda_graph_on_cpu_or_onnxruntime_is_refused():
    with pytest.raises(ValueError, match="cuda_graph needs a CUDA device"):
        TorchBackend(load_checkpoint(DEMO)[0], RuntimeOptions(cuda_graph=True))
    with pytest.raises(ValueError, match="cuda_graph is an option of the torch backend"):
        Predictor.from_checkpoint(DEMO, RuntimeOptions(backend="onnxruntime", cuda_graph=True))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_cuda_graph_replay_matches_the_eager_forward_for_each_new_input(precision):
    model = load_checkpoint(DEMO)[0]
    eager_options = RuntimeOptions(device="cuda", precision=precision, channels_last=True)
    eager = TorchBackend(model, eager_options)
    graphed = TorchBackend(model, dataclasses.replace(eager_options, cuda_graph=True))
    frames = [render_scene(5, "val", i).image for i in range(3)]
    batches = [Predictor(eager, model.config).preprocess([frame])[0] for frame in frames]
    batches.append(np.concatenate(batches[:2]))  # a second input shape: a second capture
    tolerance = 1e-4 if precision == "fp32" else 2e-2
    for batch in batches:  # a replay that read a stale input would repeat the first frame's outputs
        expected, replayed = eager(batch), graphed(batch)
        for name in expected:
            np.testing.assert_allclose(replayed[name], expected[name], atol=tolerance, rtol=tolerance)
    assert not np.allclose(eager(batches[1])["boxes"], eager(batches[0])["boxes"], atol=1e-3)
    assert len(graphed.run_network.graphs) == 2


@pytest.fixture(scope="module")
def demo_onnx(tmp_path_factory):
    model = load_checkpoint(DEMO)[0]
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "model.onnx")


def test_onnx_export_matches_pytorch_and_carries_the_config(demo_onnx, scene_folder):
    model, path = demo_onnx
    diffs = onnx_parity(model, path, sample_inputs(model.config, scene_folder, count=4))
    assert diffs["boxes"] < 1e-3 and diffs["scores"] < 1e-3 and diffs["seg_logits"] < 1e-2
    config = onnx_model_config(path)
    assert config == model.config
    # dynamic batch: three images in one call
    predictor = Predictor.from_checkpoint(path, RuntimeOptions(backend="onnxruntime"))
    frames = [render_scene(8, "val", i).image for i in range(3)]
    reference = Predictor.from_model(model)(frames)
    for ours, theirs in zip(predictor(frames), reference):
        assert len(ours.boxes) == len(theirs.boxes)
        np.testing.assert_allclose(ours.boxes, theirs.boxes, atol=0.05)
        assert (ours.lane_mask != theirs.lane_mask).mean() < 1e-3


def test_onnx_is_exported_to_the_explicit_cache_on_first_use_and_logged(tmp_path, monkeypatch, caplog):
    home_cache = tmp_path / "xdg"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home_cache))
    options = RuntimeOptions(backend="onnxruntime", onnx_cache=str(tmp_path / "explicit"))
    with caplog.at_level(logging.INFO, logger="ppad_core.runtime.export"):
        path, config = resolve_onnx(DEMO, options)
        assert resolve_onnx(DEMO, options)[0] == path  # cached by weights digest
    assert path.is_file() and path.is_relative_to(tmp_path / "explicit") and config.name == "rmt_ppad_s"
    assert not home_cache.exists()  # nothing written into the default location
    assert [str(path) in message for message in caplog.messages] == [True, True]  # exported, then reused
    assert "first use" in caplog.messages[0] and "ONNX cache" in caplog.messages[1]
    assert RuntimeOptions().onnx_cache_dir() == home_cache / "ppad" / "onnx"  # the documented default
    with pytest.raises(FileNotFoundError, match="ppad export .* --int8"):
        resolve_onnx(DEMO, dataclasses.replace(options, precision="int8"))


def test_cli_export_with_int8_reports_parity(tmp_path, scene_folder):
    checkpoint = tmp_path / "ckpt"
    checkpoint.mkdir()
    for name in ("model.safetensors", "model.yaml"):
        (checkpoint / name).write_bytes((DEMO / name).read_bytes())
    result = run_ppad(
        "export",
        str(checkpoint),
        "--format",
        "onnx",
        "--int8",
        "--calib",
        str(scene_folder),
        "--calib-count",
        "4",
        "--json",
    )
    summary = json.loads(result.stdout)
    assert summary["max_abs_diff_boxes"] < 1e-3 and summary["max_abs_diff_scores"] < 1e-3
    assert (checkpoint / "model.onnx").is_file() and (checkpoint / "model.int8.onnx").is_file()
    # INT8 is an approximation: close on average, not equal. The worst query can move a lot where the CPU
    # lacks VNNI (AVX2's u8s8 kernels saturate: 0.8 on this VM, under 0.5 on AVX-512 ones), so the bound
    # is on the mean over every query and class.
    assert summary["int8_max_abs_diff_scores"] > 0
    int8 = Predictor.from_checkpoint(checkpoint, RuntimeOptions(backend="onnxruntime", precision="int8"))
    assert int8.config.class_names == ["vehicle"]
    images = sample_inputs(int8.config, scene_folder, count=4)
    fp32_scores = TorchBackend(load_checkpoint(checkpoint)[0], RuntimeOptions())(images)["scores"]
    assert 0 < np.abs(int8.backend(images)["scores"] - fp32_scores).mean() < 0.05
    (prediction,) = int8([render_scene(0, "val", 0).image])
    assert prediction.lane_mask.shape == (720, 1280)


def test_cli_bench_reports_every_variant_with_ratios_and_floor(tmp_path):
    out = tmp_path / "bench.json"
    markdown = tmp_path / "RESULTS.md"
    tiny = str(REPO / "test" / "data" / "rmt_ppad_tiny.yaml")
    run_ppad(
        "bench",
        tiny,
        str(DEMO),
        "--labels",
        "tiny",
        "demo",
        "--runs",
        "2",
        "--warmup",
        "1",
        "--batch-sizes",
        "1",
        "2",
        "--variants",
        "eager",
        "fused fp32",
        "onnxruntime",
        "openvino fp32",
        "--floor-seconds",
        "0.1",
        "--json",
        str(out),
        "--markdown",
        str(markdown),
    )
    result = json.loads(out.read_text())
    rows = result["rows"]
    assert [r["variant"] for r in rows[:5]] == [
        "torch eager fp32",  # the official-implementation-style baseline stays first
        "torch fused fp32",
        "torch fused fp32 channels-last",
        "onnxruntime fp32",
        "openvino fp32",
    ]
    assert len(rows) == 10 and {r["model"] for r in rows} == {"tiny", "demo"}
    assert rows[0]["speedup_vs_baseline"] == 1.0
    fp32 = result["floor_rates"]["fp32"]
    kernels = fp32["kernels"]  # every fp32 engine that has a row here was measured; the floor takes the best
    assert {name.split()[0] for name in kernels} == {"torch", "onnxruntime", "openvino"}
    assert any(n.startswith("torch") and "matmul" in n for n in kernels)
    assert any(n.startswith("torch") and "conv1x1" in n for n in kernels)
    assert fp32["gflops"] == max(kernels.values()) > 0 and kernels[fp32["kernel"]] == fp32["gflops"]
    for row in rows:
        assert row["floor_rate_gflops"] == fp32["gflops"] and row["floor_kernel"] == fp32["kernel"]
        assert row["floor_ms"] == pytest.approx(2 * row["macs"] / (row["floor_rate_gflops"] * 1e9) * 1e3, rel=1e-6)
        assert row["over_floor"] == pytest.approx(row["inference_ms"]["median"] / row["floor_ms"])
        assert math.isfinite(row["inference_ms"]["median"]) and row["inference_ms"]["median"] > 0
        assert row["throughput_b2_fps"] > 0
        assert row["speedup_vs_baseline"] == pytest.approx(rows[0]["total_ms"]["median"] / row["total_ms"]["median"])
        for key in ("minor_faults_per_call", "major_faults_per_call", "user_ms_per_call", "sys_ms_per_call"):
            assert isinstance(row[key], float) and row[key] >= 0, (key, row[key])
    demo = next(r for r in rows if r["model"] == "demo")
    assert demo["input_size"] == [256, 448] and demo["parameters"] == 1_927_379
    assert result["machine"]["openvino"] == openvino.get_version().split("-")[0]
    table = markdown.read_text()
    assert "| demo | torch eager fp32 | 256x448 |" in table and "| demo | openvino fp32 | 256x448 |" in table
    assert f"fp32 {fp32['gflops']:.0f} GFLOP/s ({fp32['kernel']}" in table
    assert "faults/call minor/major | user/sys ms/call | floor ms | x floor |" in table
    if not cpu_supports_bf16():
        assert result["floor_rates"]["bf16"]["gflops"] is None and "bf16: no floor (this CPU has no" in table


class _FakeRates:
    """Stands in for the timed kernels: a fixed rate per kernel and type, so no test depends on this machine."""

    torch_rates = {torch.float32: (200e9, 480e9), torch.bfloat16: (700e9, 890e9)}  # (matmul, conv)

    def __init__(self, monkeypatch, bf16: bool) -> None:
        self.calls: list[str] = []
        monkeypatch.setattr(benchmark, "cpu_supports_bf16", lambda: bf16)
        monkeypatch.setattr(benchmark, "matmul_rate", lambda device, dtype, **_: self._call("mm", dtype, 0))
        monkeypatch.setattr(benchmark, "conv_rate", lambda device, dtype, **_: self._call("conv", dtype, 1))
        monkeypatch.setattr(
            benchmark, "onnxruntime_conv_rate", lambda precision, **_: self._call(f"ort-{precision}", None, 0)
        )
        monkeypatch.setattr(
            benchmark, "openvino_conv_rate", lambda precision, **_: self._call(f"ov-{precision}", None, 0)
        )

    def _call(self, name: str, dtype, index: int) -> float:
        self.calls.append(name)
        if dtype is not None:
            return self.torch_rates[dtype][index]
        return {"ort-fp32": 300e9, "ort-int8": 1900e9, "ov-fp32": 500e9, "ov-bf16": 1500e9}[name]


def test_floor_rates_take_each_precisions_best_engine_and_skip_bf16_without_native_support(monkeypatch):
    base = RuntimeOptions()
    variants = default_variants(base, int8=True)
    bf16 = benchmark.Variant("torch fused bf16", dataclasses.replace(base, precision="bf16").validate())

    fake = _FakeRates(monkeypatch, bf16=False)
    rates = benchmark.floor_rates("cpu", variants)
    assert rates["fp32"]["gflops"] == 500 and rates["fp32"]["kernel"].startswith("openvino conv1x1")
    assert sorted(rates["fp32"]["kernels"].values()) == [200, 300, 480, 500]
    assert rates["int8"]["gflops"] == 1900 and rates["int8"]["kernel"].startswith("onnxruntime QLinearConv u8s8")
    assert rates["bf16"]["gflops"] is None and "AVX512-BF16/AMX" in rates["bf16"]["note"]
    assert "bf16: no floor (this CPU has no AVX512-BF16/AMX" in benchmark.floor_summary(rates)
    assert fake.calls.count("mm") == 1  # bf16 never measured where it would be emulated

    _FakeRates(monkeypatch, bf16=True)
    rates = benchmark.floor_rates("cpu", [variants[0], bf16])  # no onnxruntime/openvino row: torch kernels only
    assert rates["bf16"]["gflops"] == 890 and "conv1x1" in rates["bf16"]["kernel"] and "note" not in rates["bf16"]
    assert rates["fp32"]["gflops"] == 480 and set(rates) == {"fp32", "bf16"}
    assert not any(name.startswith(("onnxruntime", "openvino")) for name in rates["fp32"]["kernels"])

    openvino_bf16 = dataclasses.replace(base, backend="openvino", precision="bf16").validate()
    rates = benchmark.floor_rates("cpu", [variants[0], bf16, benchmark.Variant("openvino bf16", openvino_bf16)])
    assert rates["bf16"]["gflops"] == 1500 and rates["bf16"]["kernel"].startswith("openvino conv1x1")
    assert sorted(rates["bf16"]["kernels"].values()) == [700, 890, 1500]


def test_the_openvino_bf16_row_exists_only_where_the_cpu_has_native_bf16(monkeypatch):
    for native in (False, True):
        monkeypatch.setattr(benchmark, "cpu_supports_bf16", lambda native=native: native)
        rows = {v.label: v.options for v in default_variants(RuntimeOptions())}
        assert ("openvino bf16" in rows) is native and ("torch fused bf16 channels-last" in rows) is native
    assert (rows["openvino bf16"].backend, rows["openvino bf16"].precision) == ("openvino", "bf16")


def _copy_checkpoint(target, provenance_data):
    target.mkdir()
    (target / "model.safetensors").write_bytes((DEMO / "model.safetensors").read_bytes())
    meta = yaml.safe_load((DEMO / "model.yaml").read_text())
    if provenance_data is None:
        meta["provenance"].pop("data")
    else:
        meta["provenance"]["data"] = str(provenance_data)
    (target / "model.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    return target


def test_int8_calibration_takes_the_given_or_recorded_data_and_never_defaults(tmp_path, scene_folder):
    recorded = _copy_checkpoint(tmp_path / "recorded", scene_folder)
    assert calibration_dir(recorded) == scene_folder  # the checkpoint's own training data
    assert calibration_dir(recorded, tmp_path) == tmp_path  # what it is told wins
    with pytest.raises(FileNotFoundError, match="was trained on .*missing, which is not here; give --calib"):
        calibration_dir(_copy_checkpoint(tmp_path / "moved", tmp_path / "missing"))
    unrecorded = _copy_checkpoint(tmp_path / "unrecorded", None)
    with pytest.raises(ValueError, match="records no training data .* give a folder of images with --calib"):
        calibration_dir(unrecorded)
    with pytest.raises(ValueError, match="records no training data"):
        calibration_dir("rmt_ppad_s")  # an architecture config: no data at all
    result = run_ppad("export", str(unrecorded), "--int8", "--out", str(tmp_path / "x.onnx"), check=False)
    assert result.returncode == 2 and "INT8 calibration needs images" in result.stderr
    assert not (tmp_path / "x.onnx").exists()  # refused before anything is written


def test_bench_variants_are_runtime_options_and_share_one_input_size_override(tmp_path):
    base = RuntimeOptions(input_size=(128, 160))
    variants = default_variants(base, int8=True)
    assert variants[0].label == "torch eager fp32" and not variants[0].options.fuse
    assert all(v.options.input_size == (128, 160) and v.options == v.options.validate() for v in variants)
    assert [v.options.precision for v in variants if v.options.backend == "onnxruntime"] == ["fp32", "int8"]
    openvino_rows = ["openvino fp32"] + (["openvino bf16"] if cpu_supports_bf16() else []) + ["openvino int8"]
    assert [v.label for v in variants if v.options.backend == "openvino"] == openvino_rows
    assert not any(v.options.backend == "openvino" for v in default_variants(RuntimeOptions(device="cuda")))
    model = load_for_bench(str(REPO / "test" / "data" / "rmt_ppad_tiny.yaml"))
    frame = render_scene(3, "bench", 0, width=320, height=180).image
    for variant in (variants[1], variants[-2], variants[-1]):  # torch fused fp32, onnxruntime and openvino int8
        calibrate = functools.partial(bench_calibration, "rmt_ppad_tiny", base.model_config(model.config), None, frame)
        predictor = build_predictor(model, variant.options, tmp_path, calibrate)
        assert predictor.config.input_size == (128, 160) and model.config.input_size != (128, 160)
        assert predictor.predict([frame])[0][0].drivable_mask.shape == (180, 320)
