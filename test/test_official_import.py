"""Import of official RMT-PPAD checkpoints: exact outputs, strict key mapping, refusal of malicious pickles."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import subprocess
import sys
import zipfile

import pytest
import torch

import ppad_core
import ppad_core.model.rmt_ppad
from ppad_core.model.official import (
    OfficialCheckpointError,
    UnsafePickleError,
    collect_state,
    import_official,
    official_key_map,
    read_official_checkpoint,
)

from conftest import REPO, conditioned_model, run_ppad
from official_fixture import random_official_state, read_key_list, write_official_checkpoint
from official_reference import reference_forward


def _official_state(model):
    state = model.state_dict()
    return {official: state[ours] for official, ours in official_key_map(model).items()}


@pytest.fixture(scope="module")
def square_small(small_config):
    config = dataclasses.replace(small_config, input_size=(256, 256))  # the official decoder is square-only
    return config, conditioned_model(config, seed=3)


def _as_fp16_fp32(state):
    return {k: (v.half().float() if v.is_floating_point() else v) for k, v in state.items()}


def test_imported_small_model_reproduces_official_outputs(square_small, tmp_path):
    config, model = square_small
    official = _official_state(model)
    path = write_official_checkpoint(official, tmp_path / "best.pt")
    assert "ultralytics" not in sys.modules
    imported, provenance = import_official(path, config)
    assert "ultralytics" not in sys.modules  # the fork's classes were never imported
    assert provenance["kind"] == "imported" and provenance["official_version"] == "8.2.99"
    images = torch.rand(2, 3, 256, 256)
    with torch.inference_mode():
        expected = reference_forward(_as_fp16_fp32(official), config, images)
        got = imported(images)
    assert (got["boxes"] - expected["boxes"]).abs().max() < 1e-3
    assert (got["scores"] - expected["scores"]).abs().max() < 1e-3
    seg_range = expected["seg_logits"].max() - expected["seg_logits"].min()
    assert (got["seg_logits"] - expected["seg_logits"]).abs().max() / seg_range < 1e-2
    assert (got["seg_logits"] - expected["seg_logits"]).abs().max() < 1e-4  # in fact within fp32 rounding


def test_the_key_map_of_the_paper_model_is_the_official_key_list(large_config):
    # Every one of the 1229 official keys, with its shape and dtype, and nothing else.
    rows = read_key_list()
    assert len(rows) == 1229
    model = ppad_core.model.rmt_ppad.build_model(large_config)
    mapping, ours = official_key_map(model), model.state_dict()
    assert set(mapping) == {key for key, _, _ in rows}
    for key, shape, dtype in rows:
        assert tuple(ours[mapping[key]].shape) == shape and ours[mapping[key]].dtype == dtype, key


def test_a_checkpoint_with_the_official_key_list_imports_and_reproduces_the_official_forward(large_config, tmp_path):
    # The fixture comes from the official key list (every key, shape and dtype; fp16 like the release; the
    # official class paths), not from names ppad chose; the reference forward reads those official names.
    config = dataclasses.replace(large_config, input_size=(256, 256))
    official = random_official_state(read_key_list(), seed=1)
    path = write_official_checkpoint(official, tmp_path / "best.pt")
    assert 69e6 < path.stat().st_size < 73e6  # ~35.2 M fp16 parameters, like the release
    record = read_official_checkpoint(path)["model"]
    state = collect_state(record)
    assert list(state) == list(official) and all(state[k].dtype == torch.float16 for k in _floating(official))
    imported, _ = import_official(path, config)
    assert len(imported.state_dict()) == 1229
    # float64: the paper model's top-300 selection is too sensitive for an fp32 comparison of boxes
    weights = {k: (v.double() if v.is_floating_point() else v) for k, v in _as_fp16_fp32(official).items()}
    images = torch.rand(1, 3, 256, 256, dtype=torch.float64)
    with torch.inference_mode():
        expected = reference_forward(weights, config, images)
        got = imported.double()(images)
    assert expected["scores"].std() > 1e-3  # a forward that discriminates queries, not a degenerate one
    for key in expected:
        assert (got[key] - expected[key]).abs().max() < 1e-9, key


def test_the_fixture_pickles_the_official_class_paths(tmp_path):
    path = write_official_checkpoint(random_official_state(read_key_list()), tmp_path / "best.pt")
    record = read_official_checkpoint(path)["model"]
    layers = record.__dict__["_modules"]["model"].__dict__["_modules"]
    head = layers["28"].__dict__["_modules"]

    def qualname(node) -> str:
        return type(node).qualname

    assert qualname(record) == "ultralytics.nn.tasks.MTDETRModel"
    assert qualname(layers["0"]) == "ultralytics.nn.modules.block.HGStem"
    assert qualname(layers["2"]) == "ultralytics.nn.modules.conv.DWConv"
    assert qualname(layers["11"]) == "ultralytics.nn.modules.transformer.AIFI"
    assert qualname(layers["16"]) == "ultralytics.nn.modules.block.RepC3"
    assert qualname(layers["28"]) == "ultralytics.nn.modules.head.MTDETRDecoder"
    assert qualname(head["task_adapter_det"].__dict__["_modules"]["0"]) == "ultralytics.nn.modules.head.TaskAdapterLite"
    assert qualname(head["gate_seg"].__dict__["_modules"]["2"]) == "ultralytics.nn.modules.head.LiteDynamicGate"
    assert qualname(head["seg_head"]) == "ultralytics.nn.modules.transformer.TransformerSegmentationDecoder"
    deconv = head["seg_head"].__dict__["_modules"]["deconv_upsample"]
    assert qualname(deconv) == "torch.nn.modules.conv.ConvTranspose2d"


def _floating(state):
    return [k for k, v in state.items() if v.is_floating_point()]


def test_missing_and_unexpected_keys_fail_loudly(square_small, tmp_path):
    config, model = square_small
    official = _official_state(model)
    head = next(k for k in official if k.endswith(".seg_head.task_weights")).rsplit(".seg_head", 1)[0]
    assert head == "model.26"  # the small config's stage 3 has one block, so the head index moves
    missing = {k: v for k, v in official.items() if k != f"{head}.seg_head.task_weights"}
    path = write_official_checkpoint(missing, tmp_path / "missing.pt")
    with pytest.raises(OfficialCheckpointError, match=rf"missing \(1\): {head}\.seg_head\.task_weights"):
        import_official(path, config)
    extra = {**official, f"{head}.seg_head.extra.weight": torch.zeros(3)}
    path = write_official_checkpoint(extra, tmp_path / "extra.pt")
    with pytest.raises(OfficialCheckpointError, match=rf"unexpected \(1\): {head}\.seg_head\.extra\.weight"):
        import_official(path, config)
    wrong = {**official, f"{head}.seg_head.task_weights": torch.zeros(3, 3)}
    path = write_official_checkpoint(wrong, tmp_path / "wrong.pt")
    with pytest.raises(OfficialCheckpointError, match=r"shape of .*task_weights: file \(3, 3\) vs model \(2, 3\)"):
        import_official(path, config)


class _Exploit:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("func", [os.system, eval, subprocess.call])
def test_malicious_pickles_are_refused_and_never_executed(func, tmp_path):
    marker = tmp_path / "pwned"
    payload = f"touch {marker}" if func is not eval else f"open({str(marker)!r}, 'w')"
    arg = payload.split() if func is subprocess.call else payload
    path = tmp_path / "evil.pt"
    torch.save({"model": _Exploit(func, arg), "epoch": -1}, path)
    with pytest.raises(UnsafePickleError, match="refusing pickled global"):
        read_official_checkpoint(path)
    assert not marker.exists()


def test_payload_hidden_inside_the_module_tree_is_refused(square_small, tmp_path):
    config, model = square_small
    marker = tmp_path / "pwned"
    path = write_official_checkpoint(
        _official_state(model),
        tmp_path / "best.pt",
        extra={"train_args": {"hook": _Exploit(os.system, f"touch {marker}")}},
    )
    with pytest.raises(UnsafePickleError, match="posix.system|os.system"):
        import_official(path, config)
    assert not marker.exists()


def test_not_a_checkpoint_is_reported(tmp_path):
    plain = tmp_path / "legacy.pt"
    plain.write_bytes(pickle.dumps({"model": None}))
    with pytest.raises(OfficialCheckpointError, match="not a torch zip checkpoint"):
        read_official_checkpoint(plain)
    archive = tmp_path / "empty.pt"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("archive/version", "3")
    with pytest.raises(OfficialCheckpointError, match="expected one data.pkl"):
        read_official_checkpoint(archive)
    path = tmp_path / "nomodel.pt"
    torch.save({"epoch": 3, "model": None}, path)
    with pytest.raises(OfficialCheckpointError, match="no 'model' or 'ema' module"):
        import_official(path, ppad_core.load_model_config(REPO / "config" / "rmt_ppad_s.yaml"))


def test_collect_state_skips_non_persistent_buffers(square_small, tmp_path):
    _, model = square_small
    path = write_official_checkpoint(_official_state(model), tmp_path / "best.pt")
    record = read_official_checkpoint(path)["model"]
    state = collect_state(record)
    assert all(k.startswith("model.") for k in state)
    assert state["model.0.stem1.conv.weight"].dtype == torch.float16
    assert type(record).qualname == "ultralytics.nn.tasks.MTDETRModel"


def test_cli_import_official_writes_a_loadable_checkpoint(square_small, tmp_path):
    config, model = square_small
    path = write_official_checkpoint(_official_state(model), tmp_path / "best.pt")
    config_file = tmp_path / "square_s.yaml"
    config_file.write_text(json.dumps(config.to_dict()))
    out = tmp_path / "imported"
    result = run_ppad("import-official", str(path), str(out), "--config", str(config_file), "--json")
    summary = json.loads(result.stdout)
    assert summary["tensors"] == len(model.state_dict())
    assert summary["provenance"]["source"] == "best.pt"
    loaded = ppad_core.load(out)
    images = torch.rand(1, 3, 256, 256)
    with torch.inference_mode():
        a, b = loaded(images), import_official(path, config)[0](images)
    state_a, state_b = loaded.state_dict(), import_official(path, config)[0].state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)  # bit-identical weights
    for key in a:  # outputs agree up to the kernels' summation order
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    evil = tmp_path / "evil.pt"
    torch.save({"model": _Exploit(os.system, "true")}, evil)
    result = run_ppad("import-official", str(evil), str(tmp_path / "x"), check=False)
    assert result.returncode == 2 and "refusing pickled global" in result.stderr
    assert not (tmp_path / "x").exists()
