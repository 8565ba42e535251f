"""Checkpoint directories: safetensors + YAML, exact round trip, clear errors."""

from __future__ import annotations

import json
import struct

import pytest
import torch
import yaml

import ppad_core
from ppad_core.model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint


def test_round_trip_reproduces_outputs_and_metadata(small_model, small_config, tmp_path):
    save_checkpoint(small_model, tmp_path / "ckpt", {"kind": "trained", "epochs": 3})
    model = ppad_core.load(tmp_path / "ckpt")
    assert not model.training
    images = torch.rand(1, 3, *small_config.input_size)
    with torch.inference_mode():
        a, b = small_model(images), model(images)
    state_a, state_b = small_model.state_dict(), model.state_dict()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-5), key
    _, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["model"]["class_names"] == ["vehicle"]
    assert meta["model"]["seg_thresholds"] == [0.45, 0.9]
    assert meta["provenance"]["kind"] == "trained" and meta["provenance"]["epochs"] == 3


def test_files_are_safetensors_and_yaml_without_pickle(small_model, tmp_path):
    path = save_checkpoint(small_model, tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == ["model.safetensors", "model.yaml"]
    raw = (path / "model.safetensors").read_bytes()
    header_len = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8 : 8 + header_len])
    assert "head.segmenter.scale_logits" in header
    assert b"\x80\x02" not in raw[:2]  # not a pickle stream
    assert yaml.safe_load((path / "model.yaml").read_text())["format"] == "ppad-checkpoint/1"


def test_missing_directory_and_files_are_named(small_model, tmp_path):
    with pytest.raises(CheckpointError, match="checkpoint directory not found"):
        ppad_core.load(tmp_path / "nowhere")
    path = save_checkpoint(small_model, tmp_path / "ckpt")
    (path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: not found"):
        ppad_core.load(path)


def test_corrupt_weights_and_wrong_architecture_are_reported(small_model, tmp_path):
    path = save_checkpoint(small_model, tmp_path / "ckpt")
    (path / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="unreadable safetensors"):
        ppad_core.load(path)
    path = save_checkpoint(small_model, tmp_path / "ckpt2")
    meta = yaml.safe_load((path / "model.yaml").read_text())
    meta["model"]["head"]["decoder_layers"] = 2
    (path / "model.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(CheckpointError, match=r"unexpected \(\d+\): head\.detector\.decoder\.box_heads\.2"):
        ppad_core.load(path)
