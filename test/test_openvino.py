"""The openvino backend: outputs equal to fp32 PyTorch at batch 1 and 3, the same predictions through the Predictor,
the compiled-model cache keyed by ONNX digest / OpenVINO version / precision, and the refused combinations; INT8 (the
QDQ file ppad's ONNX Runtime quantisation writes) run in int8, close to fp32, in its own cache folder."""

from __future__ import annotations

import argparse
import dataclasses
import shutil

import numpy as np
import openvino
import pytest
import torch

from ppad_core.data.synth import render_scene
from ppad_core.model.checkpoint import load_checkpoint
from ppad_core.runtime import backends
from ppad_core.runtime.backends import (
    FLOAT32_MODULE,
    OpenVinoBackend,
    TorchBackend,
    cpu_supports_bf16,
    file_digest,
    resolve_precision,
)
from ppad_core.runtime.export import (
    ONNX_FILES,
    REDUCE_RANGE_METADATA_KEY,
    needs_reduce_range,
    onnx_parity,
    quantize_int8,
)
from ppad_core.runtime.openvino_split import onnx_scope, split_float32_head
from ppad_core.runtime.options import OptionError, RuntimeOptions, add_runtime_arguments
from ppad_core.runtime.predictor import Predictor
from ppad_ros.parameters import PARAMETERS, runtime_options

from conftest import REPO

DEMO = REPO / "models" / "rmt_ppad_s_demo"


@pytest.fixture(scope="module")
def cache_root(tmp_path_factory):
    return tmp_path_factory.mktemp("ppad-cache")


@pytest.fixture(scope="module")
def first_use(cache_root) -> Predictor:
    """The demo teacher through openvino with an empty cache: exported to ONNX, then compiled."""
    return Predictor.from_checkpoint(DEMO, RuntimeOptions(backend="openvino", onnx_cache=str(cache_root)))


@pytest.fixture(scope="module")
def demo_model():
    return load_checkpoint(DEMO)[0]


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    return [render_scene(21, "val", index).image for index in range(3)]


def test_outputs_equal_fp32_pytorch_at_batch_1_and_3(first_use, demo_model, frames):
    images = first_use.preprocess(frames)[0]
    for batch in (images[:1], images):
        diffs = onnx_parity(demo_model, first_use.backend.onnx_path, batch, first_use.options)
        assert diffs["boxes"] < 1e-3 and diffs["scores"] < 1e-3, diffs
        assert diffs["seg_logits"] < 1e-2, diffs  # the tolerance of the ONNX Runtime export check


def test_predictions_equal_the_torch_predictor_for_one_and_several_images(first_use, demo_model, frames):
    reference = Predictor.from_model(demo_model)
    for batch in (frames[:1], frames):
        ours, theirs = first_use(batch), reference(batch)
        for mine, torch_one in zip(ours, theirs):
            assert len(mine.boxes) == len(torch_one.boxes) > 0
            np.testing.assert_allclose(mine.boxes, torch_one.boxes, atol=1e-2)
            np.testing.assert_allclose(mine.scores, torch_one.scores, atol=1e-3)
            assert (mine.class_ids == torch_one.class_ids).all()
            for name in ("drivable_mask", "lane_mask"):  # only pixels whose logit sits at the threshold may flip
                assert (getattr(mine, name) != getattr(torch_one, name)).mean() < 1e-4
    assert set(first_use.backend.stages) == {1, 3}  # one static-shape compile per batch size


def test_compiled_models_are_cached_by_onnx_digest_version_and_precision(first_use, cache_root, caplog):
    backend = first_use.backend
    onnx_path = backend.onnx_path
    assert onnx_path.is_relative_to(cache_root)  # the checkpoint was exported into the ONNX cache
    version = backend.cache_dir.parent.name
    assert backend.cache_dir == cache_root / "openvino" / file_digest(onnx_path) / version / "fp32"
    assert version.startswith(openvino.get_version().split("-")[0])
    assert backend.loaded_from_cache[1] is False and list(backend.cache_dir.glob("*.blob"))
    blobs = sorted(backend.cache_dir.glob("*.blob"))
    options = first_use.options
    again = Predictor.from_checkpoint(DEMO, options)  # a second start-up: the checkpoint directory again ...
    from_file = Predictor.from_checkpoint(onnx_path, options)  # ... and the exported file itself
    for predictor in (again, from_file):
        assert predictor.backend.cache_dir == backend.cache_dir and predictor.backend.loaded_from_cache == {1: True}
    assert sorted(backend.cache_dir.glob("*.blob")) == blobs  # read back, nothing recompiled
    image = first_use.preprocess([render_scene(22, "val", 0).image])[0]
    expected = backend(image)
    for name, value in again.backend(image).items():
        np.testing.assert_array_equal(value, expected[name])


def test_refused_combinations_name_their_option(tmp_path, monkeypatch):
    cases = [
        ({"precision": "fp16"}, "precision", "precision='fp16' is not available with the openvino backend"),
        ({"device": "cuda"}, "device", "device='cuda' is not available with the openvino backend \\(cpu only\\)"),
        ({"device": "cuda:1"}, "device", "device='cuda:1' is not available with the openvino backend"),
        ({"cuda_graph": True}, "cuda_graph", "cuda_graph is an option of the torch backend"),
    ]
    for change, option, message in cases:
        options = RuntimeOptions(backend="openvino", onnx_cache=str(tmp_path), **change)
        with pytest.raises(OptionError, match=message) as raised:
            Predictor.from_checkpoint(DEMO, options)
        assert raised.value.option == option
        with pytest.raises(OptionError, match=message):
            OpenVinoBackend(tmp_path / "never-read.onnx", options)
    assert not any(tmp_path.iterdir())  # refused before anything was exported or compiled
    with pytest.raises(ValueError, match="parameter device: device='cuda' is not available with the openvino"):
        runtime_options({spec.name: spec.default for spec in PARAMETERS} | {"backend": "openvino", "device": "cuda"})
    parser = argparse.ArgumentParser()
    add_runtime_arguments(parser)
    assert RuntimeOptions.from_args(parser.parse_args(["--backend", "openvino"])).backend == "openvino"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the documented default location
    assert RuntimeOptions().openvino_cache_dir() == tmp_path / "xdg" / "ppad" / "onnx" / "openvino"


def test_the_split_at_the_detection_decoder_computes_the_unsplit_model(first_use, demo_model, frames):
    """The bf16 path's two models, both compiled at f32 here: the trunk hands the detection decoder its one input,
    the three levels' features flattened into one sequence, and computes the segmentation logits itself; trunk
    then head give the unsplit model's outputs."""
    backend = first_use.backend
    images = first_use.preprocess(frames[:1])[0].astype(np.float32) / 255
    model = backend.model.clone()
    model.reshape({backend.input_name: list(images.shape)})
    split = split_float32_head(model, onnx_scope(FLOAT32_MODULE))
    assert split.handoff == len(split.head.get_parameters()) == 1
    height, width = images.shape[2:]
    tokens = sum((height // stride) * (width // stride) for stride in (8, 16, 32))
    shapes = [tuple(parameter.get_partial_shape().to_shape()) for parameter in split.head.get_parameters()]
    assert shapes == [(1, tokens, demo_model.config.head.hidden_dim)]
    assert [p.get_friendly_name() for p in split.trunk.get_parameters()] == [backend.input_name]
    assert {name for r in split.head.get_results() for name in r.output(0).get_names()} >= {"boxes", "scores"}
    assert "seg_logits" in {name for r in split.trunk.get_results() for name in r.output(0).get_names()}
    core = openvino.Core()
    trunk, head = (
        core.compile_model(part, "CPU", {"INFERENCE_PRECISION_HINT": "f32"}) for part in (split.trunk, split.head)
    )
    features = trunk.create_infer_request().infer([images])
    outputs = head.create_infer_request().infer([features[port] for port in trunk.outputs[: split.handoff]])
    computed = {name: outputs[head.output(name)] for name in ("boxes", "scores")}
    computed["seg_logits"] = features[trunk.output("seg_logits")]
    expected = backend(first_use.preprocess(frames[:1])[0])
    for name, values in computed.items():
        # the same arithmetic up to the order of float additions (seg logits reach 10: 1e-5 relative)
        np.testing.assert_allclose(values, expected[name], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="no operation of this model is named inside /model/nowhere/"):
        split_float32_head(backend.model.clone(), "/model/nowhere/")


def test_bf16_is_refused_where_the_cpu_would_emulate_it(tmp_path, monkeypatch):
    monkeypatch.setattr(backends, "cpu_supports_bf16", lambda: False)
    options = RuntimeOptions(backend="openvino", precision="bf16", onnx_cache=str(tmp_path))
    for start in (
        lambda: Predictor.from_checkpoint(DEMO, options),
        lambda: OpenVinoBackend(tmp_path / "x.onnx", options),
    ):
        with pytest.raises(OptionError, match="precision='bf16' needs a CPU with AVX512-BF16 or AMX"):
            start()
    assert not any(tmp_path.iterdir())


def test_auto_precision_is_bf16_where_the_cpu_runs_it_natively_and_fp32_elsewhere(first_use, demo_model, monkeypatch):
    auto = dataclasses.replace(first_use.options, precision="auto")
    native = "bf16" if cpu_supports_bf16() else "fp32"
    predictor = Predictor.from_checkpoint(DEMO, auto)
    assert predictor.options.precision == predictor.backend.precision == native
    assert TorchBackend(demo_model, RuntimeOptions(precision="auto")).autocast_dtype == (
        torch.bfloat16 if native == "bf16" else None
    )
    for supported, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(backends, "cpu_supports_bf16", lambda supported=supported: supported)
        assert resolve_precision(auto).precision == expected
        assert resolve_precision(dataclasses.replace(auto, backend="torch", device="cuda")).precision == "fp16"
        assert resolve_precision(dataclasses.replace(auto, backend="onnxruntime", device="cuda")).precision == "fp32"
        assert resolve_precision(dataclasses.replace(auto, backend="torch")).precision == expected
    assert Predictor.from_checkpoint(DEMO, auto).backend.precision == "fp32"  # (no native bf16 now)
    assert resolve_precision(first_use.options) is first_use.options
    assert resolve_precision(dataclasses.replace(auto, backend="onnxruntime")).precision == "fp32"


@pytest.mark.skipif(not cpu_supports_bf16(), reason="needs a CPU with AVX512-BF16 or AMX")
def test_bf16_runs_all_but_the_detection_decoder_in_bf16_close_to_fp32(first_use, frames):
    """Measured on AMX and on AVX512-BF16: every confident fp32 detection found again at IoU > 0.9 with scores
    within 0.02, and masks agreeing on more than 99.8 % of pixels; bf16 everywhere moved scores by 0.1 and seg
    logits by 0.2."""
    bf16 = Predictor.from_checkpoint(DEMO, dataclasses.replace(first_use.options, precision="bf16"))
    assert bf16.backend.description.endswith("CPU bf16") and bf16.backend.cache_dir.name == "bf16"
    trunk, head = (stage.request.get_compiled_model().get_runtime_model() for stage in bf16.backend.stages[1])
    assert "bf16" in _runtime_precisions(trunk, "Convolution")
    assert _runtime_precisions(head, "Convolution") | _runtime_precisions(head, "FullyConnected") == {"f32"}
    for frame in frames:
        (outputs, (mine,)), (reference, (fp32,)) = bf16.run([frame])[:2], first_use.run([frame])[:2]
        keep = fp32.scores >= 0.5
        assert keep.any()
        overlap = _iou(fp32.boxes[keep], mine.boxes)
        assert (overlap.max(1) > 0.9).all(), overlap.max(1)
        np.testing.assert_allclose(mine.scores[overlap.argmax(1)], fp32.scores[keep], atol=0.02)
        agreement = (bf16.network_masks(outputs) == first_use.network_masks(reference)).mean((0, 2, 3))
        assert (agreement > 0.998).all(), agreement
    again = Predictor.from_checkpoint(DEMO, bf16.options)
    assert again.backend.loaded_from_cache == {1: True}


def _runtime_precisions(runtime_model, layer_type: str) -> set[str]:
    """The precisions the CPU plugin runs its `layer_type` layers in."""
    infos = [op.get_rt_info() for op in runtime_model.get_ordered_ops()]
    return {info["runtimePrecision"].astype(str) for info in infos if info["layerType"].astype(str) == layer_type}


CALIBRATION_IMAGES = 4  # quantisation costs about 14 s plus 0.6 s per calibration image here


@pytest.fixture(scope="module")
def int8_checkpoint(first_use, tmp_path_factory):
    """A copy of the demo checkpoint with the model.int8.onnx `ppad export --int8` writes, calibrated on rendered
    training scenes (other scenes than the ones compared)."""
    checkpoint = tmp_path_factory.mktemp("int8") / "demo"
    shutil.copytree(DEMO, checkpoint)
    calibration = first_use.preprocess([render_scene(5, "train", i).image for i in range(CALIBRATION_IMAGES)])[0]
    quantize_int8(first_use.backend.onnx_path, checkpoint / ONNX_FILES["int8"], calibration)
    return checkpoint


@pytest.fixture(scope="module")
def int8(int8_checkpoint, first_use) -> Predictor:
    return Predictor.from_checkpoint(int8_checkpoint, dataclasses.replace(first_use.options, precision="int8"))


def _iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box of `a` [N, 4] with every box of `b` [M, 4] (x1, y1, x2, y2)."""
    low, high = np.maximum(a[:, None, :2], b[None, :, :2]), np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(high - low, 0, None), axis=-1)
    area = lambda boxes: np.prod(boxes[:, 2:] - boxes[:, :2], axis=-1)  # noqa: E731
    return inter / (area(a)[:, None] + area(b)[None, :] - inter)


def test_int8_runs_in_int8_close_to_fp32(int8, first_use, frames):
    """Measured here (4 calibration scenes, reduce_range on, 3 other scenes): every confident fp32 detection found
    at IoU >= 0.87 (9 of 10 above 0.9), scores within 0.02, masks agreeing on 99.9 % of pixels. The same graph
    calibrated on black images (a broken calibration) matched none of them at IoU 0.9, 88 % of drivable pixels."""
    assert int8.backend.description.endswith("CPU int8")
    runtime = int8.backend.stages[1][0].request.get_compiled_model().get_runtime_model()
    kinds = [
        (op.get_rt_info()["layerType"].astype(str), op.get_rt_info()["runtimePrecision"].astype(str))
        for op in runtime.get_ordered_ops()
    ]
    convolutions = [precision for kind, precision in kinds if kind == "Convolution"]
    assert convolutions.count("u8") >= 0.9 * len(convolutions) > 0  # executed in int8, not dequantised to fp32
    ours = [int8.run([frame])[:2] for frame in frames]  # batch 1: the size compiled at start-up
    reference = [first_use.run([frame])[:2] for frame in frames]
    confident, matched = 0, 0
    for (_, (mine,)), (_, (fp32,)) in zip(ours, reference):
        keep = fp32.scores >= 0.5
        assert len(mine.boxes) > 0 and keep.any()
        overlap = _iou(fp32.boxes[keep], mine.boxes)
        best = overlap.argmax(1)
        assert (overlap.max(1) > 0.75).all(), overlap.max(1)
        np.testing.assert_allclose(mine.scores[best], fp32.scores[keep], atol=0.05)
        assert (mine.class_ids[best] == fp32.class_ids[keep]).all()
        confident, matched = confident + keep.sum(), matched + (overlap.max(1) > 0.9).sum()
    assert matched >= 0.75 * confident, (matched, confident)
    masks = [int8.network_masks(outputs) for outputs, _ in ours]
    agreement = np.mean(
        [mask == first_use.network_masks(outputs) for mask, (outputs, _) in zip(masks, reference)], (0, 1, 3, 4)
    )
    assert agreement[0] > 0.99 and agreement[1] > 0.995, agreement  # drivable area, lane lines


def test_int8_compiles_into_its_own_cache_folder(int8, first_use, cache_root):
    backend = int8.backend
    assert backend.onnx_path.name == ONNX_FILES["int8"]
    version = first_use.backend.cache_dir.parent.name
    assert backend.cache_dir == cache_root / "openvino" / file_digest(backend.onnx_path) / version / "int8"
    assert backend.cache_dir != first_use.backend.cache_dir and list(backend.cache_dir.glob("*.blob"))
    again = Predictor.from_checkpoint(backend.onnx_path, int8.options)
    assert again.backend.cache_dir == backend.cache_dir and again.backend.loaded_from_cache == {1: True}


def test_int8_options_and_files_that_disagree_are_refused(int8_checkpoint, first_use, tmp_path):
    options = RuntimeOptions(backend="openvino", precision="int8", onnx_cache=str(tmp_path))
    assert options.validate() is options
    with pytest.raises(FileNotFoundError, match="ppad export .* --int8"):  # the demo has no model.int8.onnx
        Predictor.from_checkpoint(DEMO, options)
    with pytest.raises(OptionError, match="precision='int8': .* holds no QuantizeLinear") as raised:
        OpenVinoBackend(first_use.backend.onnx_path, options)  # an fp32 file would run, and cache, as fp32
    assert raised.value.option == "precision"
    int8_file = int8_checkpoint / ONNX_FILES["int8"]
    with pytest.raises(OptionError, match="is INT8-quantised; run it with precision='int8'"):
        OpenVinoBackend(int8_file, dataclasses.replace(options, precision="fp32"))
    assert not (tmp_path / "openvino").exists()  # refused before any cache folder was made


def test_reduce_range_follows_vnni_and_is_recorded(int8_checkpoint, tmp_path):
    import onnx

    flags = "flags\t\t: fpu sse avx2 {}\n"
    for extra, x86_expected in (("", True), ("avx512_vnni", False), ("avx_vnni", False)):
        cpuinfo = tmp_path / f"cpuinfo{extra}"
        cpuinfo.write_text("processor\t: 0\n" + flags.format(extra) + "processor\t: 1\n" + flags.format(extra))
        assert needs_reduce_range("x86_64", cpuinfo) is x86_expected
        assert needs_reduce_range("aarch64", cpuinfo) is False  # the u8 x s8 int16 saturation is x86's
    assert needs_reduce_range("x86_64", tmp_path / "missing") is True  # unknown x86 CPU: the safe 7-bit weights
    metadata = {e.key: e.value for e in onnx.load(str(int8_checkpoint / ONNX_FILES["int8"])).metadata_props}
    assert metadata[REDUCE_RANGE_METADATA_KEY] == str(needs_reduce_range()).lower()
