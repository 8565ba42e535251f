"""The openvino backend: outputs equal to fp32 PyTorch at batch 1 and 3, the same predictions through the Predictor,
the compiled-model cache keyed by ONNX digest / OpenVINO version / precision, and the refused combinations."""

from __future__ import annotations

import argparse

import numpy as np
import openvino
import pytest

from ppad_core.data.synth import render_scene
from ppad_core.model.checkpoint import load_checkpoint
from ppad_core.runtime.backends import OpenVinoBackend, file_digest
from ppad_core.runtime.export import onnx_parity
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
    assert set(first_use.backend.requests) == {1, 3}  # one static-shape compile per batch size


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
        ({"precision": "int8"}, "precision", "precision='int8' is not available with the openvino backend \\(fp32\\)"),
        ({"precision": "bf16"}, "precision", "precision='bf16' is not available with the openvino backend"),
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
