"""Checkpoint directories: `model.safetensors` (weights, no pickle) + `model.yaml` (architecture, metadata)."""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from ppad_core.model.config import ModelConfig, resolve_model_config
from ppad_core.model.rmt_ppad import RMTPPAD, build_model

WEIGHTS_FILE = "model.safetensors"
META_FILE = "model.yaml"
FORMAT = "ppad-checkpoint/1"


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, incomplete or does not match its architecture."""


def save_checkpoint(model: RMTPPAD, path: str | Path, provenance: dict[str, Any] | None = None) -> Path:
    """Write `path/model.safetensors` and `path/model.yaml`; each file is replaced atomically."""
    from ppad_core._version import __version__

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    meta = {
        "format": FORMAT,
        "model": model.config.to_dict(),
        "provenance": {
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "ppad_version": __version__,
            **(provenance or {"kind": "initialised"}),
        },
    }
    tensors = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    _atomic_write(path / WEIGHTS_FILE, lambda tmp: save_file(tensors, tmp, metadata={"format": FORMAT}))
    _atomic_write(path / META_FILE, lambda tmp: Path(tmp).write_text(yaml.safe_dump(meta, sort_keys=False)))
    return path


def _atomic_write(target: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; a checkpoint is an ordinary shared file
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def read_metadata(path: str | Path) -> dict[str, Any]:
    meta_path = Path(path) / META_FILE
    if not meta_path.is_file():
        raise CheckpointError(
            f"{meta_path}: not found (a checkpoint is a directory with {META_FILE} and {WEIGHTS_FILE})"
        )
    try:
        meta = yaml.safe_load(meta_path.read_text())
    except yaml.YAMLError as exc:
        raise CheckpointError(f"{meta_path}: not valid YAML: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "model" not in meta:
        raise CheckpointError(f"{meta_path}: not a {FORMAT} file (needs 'format: {FORMAT}' and a 'model' section)")
    return meta


def load_checkpoint(path: str | Path, device: str = "cpu") -> tuple[RMTPPAD, dict[str, Any]]:
    """Rebuild the model from `model.yaml`, load its weights; returns (model in eval mode, metadata)."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint directory not found")
    meta = read_metadata(path)
    try:
        config = ModelConfig.from_dict(meta["model"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path / META_FILE}: invalid model section: {exc}") from exc
    weights_path = path / WEIGHTS_FILE
    if not weights_path.is_file():
        raise CheckpointError(f"{weights_path}: not found")
    try:
        state = load_file(weights_path, device=device)
    except (SafetensorError, OSError) as exc:
        raise CheckpointError(f"{weights_path}: unreadable safetensors file: {exc}") from exc
    model = build_model(config).to(device)
    load_state_strict(model, state, source=str(weights_path))
    return model.eval(), meta


def state_mismatch_report(expected: dict[str, tuple], found: dict[str, tuple], limit: int = 10) -> list[str]:
    """Lines naming missing, unexpected and mis-shaped tensors (name -> shape maps); empty if they agree."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = sorted(k for k in set(expected) & set(found) if tuple(expected[k]) != tuple(found[k]))
    lines = []
    for label, keys in (("missing", missing), ("unexpected", unexpected)):
        if keys:
            more = " ..." if len(keys) > limit else ""
            lines.append(f"  {label} ({len(keys)}): {', '.join(keys[:limit])}{more}")
    lines += [f"  shape of {k}: file {tuple(found[k])} vs model {tuple(expected[k])}" for k in mismatched[:limit]]
    return lines


def load_state_strict(model: nn.Module, state: dict, source: str) -> None:
    """load_state_dict that names the missing, unexpected and mis-shaped tensors of `source`."""
    expected = {k: v.shape for k, v in model.state_dict().items()}
    problems = state_mismatch_report(expected, {k: v.shape for k, v in state.items()})
    if problems:
        raise CheckpointError("\n".join([f"{source}: weights do not match the architecture", *problems]))
    model.load_state_dict(state)


def load(path: str | Path, device: str = "cpu") -> RMTPPAD:
    """Load a checkpoint directory as an eval-mode model (no pickle involved)."""
    return load_checkpoint(path, device)[0]


def load_or_build(spec: str | Path) -> tuple[RMTPPAD, dict[str, Any] | None]:
    """A checkpoint directory with its weights and metadata, or an architecture (config name or YAML)
    built with fresh weights and no metadata; eval mode either way."""
    if (Path(spec) / META_FILE).is_file():
        return load_checkpoint(spec)
    return build_model(resolve_model_config(spec)).eval(), None
