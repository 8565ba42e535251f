"""Import checkpoints written by the official RMT-PPAD code (an ultralytics fork).

The official `best.pt` is a `torch.save` zip whose pickle holds a dict; its `model` (or `ema`) entry is
the whole fp16 `MTDETRModel`. Loading that with `torch.load` would import the fork's classes and run
pickled code. Instead the pickle is read here by a restricted unpickler:

* tensors are rebuilt from the zip's raw storages by our own code;
* plain containers (dict, OrderedDict, list, tuple, set) are allowed;
* classes of the official module tree (`ultralytics.*`, `torch.nn.*`, numpy scalars) are never
  imported: each becomes an inert record that only keeps its attribute dict;
* every other global (functions such as `os.system`, `builtins.eval`, `subprocess.Popen`, ...) is
  refused with an error, so nothing from the file is ever executed.

Parameters and buffers are then collected from the records' `_parameters` / `_buffers` and mapped to
this package's names by `official_key_map`, which is derived from the architecture config. Layer
indices follow the official YAML (`model.0` stem ... `model.28` head); inside the head the GCA adapters
are `task_adapter_det/seg.N`, the gates `gate_det/seg.N` and the seg decoder's shared transposed conv
`seg_head.deconv_upsample`. For the paper config the map covers exactly the 1229 keys of the official
model (test/data/official_checkpoint_keys.tsv); any key that does not match is reported, never guessed.
See docs/model.md, "Official checkpoint import".
"""

from __future__ import annotations

import collections
import hashlib
import io
import pickle
import re
import zipfile
from pathlib import Path
from typing import Any

import torch

from ppad_core.model.checkpoint import state_mismatch_report
from ppad_core.model.config import ModelConfig
from ppad_core.model.rmt_ppad import RMTPPAD, build_model


class OfficialCheckpointError(RuntimeError):
    """The file is not a readable official checkpoint, or its weights do not fit the architecture."""


class UnsafePickleError(OfficialCheckpointError, pickle.UnpicklingError):
    """The pickle references a global that is neither a tensor builder, a container nor a module class."""


class OfficialRecord:
    """Inert stand-in for an instance of an official class: keeps constructor args and state only."""

    qualname = "?"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.__dict__["_ctor_args"] = args

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple) and len(state) == 2:  # (dict state, slot state)
            state = {**(state[0] or {}), **(state[1] or {})}
        if isinstance(state, dict):
            self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"<record of {self.qualname}>"


_RECORD_NAMESPACES = ("ultralytics.", "torch.nn.modules.", "types", "pathlib", "argparse")
# numpy scalars and arrays in the training metrics: kept as inert records, never rebuilt
_NUMPY_DATA = {"scalar", "dtype", "ndarray", "_reconstruct"}
_DTYPES = {
    "HalfStorage": torch.float16,
    "FloatStorage": torch.float32,
    "DoubleStorage": torch.float64,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
}


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    return torch.as_strided(storage, tuple(size), tuple(stride), offset).clone()


def _rebuild_parameter(data, requires_grad=False, hooks=None, state=None):
    return data


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("torch", "Size"): torch.Size,
}


class RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str) -> None:
        super().__init__(io.BytesIO(data))
        self._archive = archive
        self._prefix = prefix
        self._records: dict[str, type] = {}

    def find_class(self, module: str, name: str) -> Any:
        module = "builtins" if module == "__builtin__" else module  # protocol-2 pickles use Python 2 names
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]
        if module == "torch" and name in _DTYPES:
            return _DTYPES[name]
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            return getattr(torch, name)
        is_numpy_data = module.split(".")[0] == "numpy" and name in _NUMPY_DATA
        if is_numpy_data or (module.startswith(_RECORD_NAMESPACES) and name[:1].isupper()):
            qualname = f"{module}.{name}"
            if qualname not in self._records:
                self._records[qualname] = type(name, (OfficialRecord,), {"qualname": qualname})
            return self._records[qualname]
        raise UnsafePickleError(f"refusing pickled global {module}.{name}: not a tensor, container or module class")

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise UnsafePickleError(f"unsupported persistent id {pid!r}")
        _, dtype, key, _location, numel = pid
        if not isinstance(dtype, torch.dtype):
            raise UnsafePickleError(f"storage of unknown type {dtype!r}")
        raw = bytearray(self._archive.read(f"{self._prefix}data/{key}"))
        flat = torch.frombuffer(raw, dtype=dtype) if raw else torch.empty(0, dtype=dtype)
        if flat.numel() != numel:
            raise OfficialCheckpointError(f"storage {key}: {flat.numel()} elements, expected {numel}")
        return flat


def read_official_checkpoint(path: str | Path) -> dict[str, Any]:
    """Unpickle an official checkpoint without executing anything from it."""
    path = Path(path)
    if not path.is_file():
        raise OfficialCheckpointError(f"{path}: file not found")
    if not zipfile.is_zipfile(path):
        raise OfficialCheckpointError(f"{path}: not a torch zip checkpoint (legacy pre-1.6 format is not supported)")
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("data.pkl")]
        if len(pickles) != 1:
            raise OfficialCheckpointError(f"{path}: expected one data.pkl in the archive, found {len(pickles)}")
        prefix = pickles[0][: -len("data.pkl")]
        try:
            return RestrictedUnpickler(archive.read(pickles[0]), archive, prefix).load()
        except UnsafePickleError as exc:
            raise UnsafePickleError(f"{path}: {exc}") from exc
        except (pickle.UnpicklingError, EOFError, KeyError, AttributeError, TypeError, ValueError) as exc:
            raise OfficialCheckpointError(f"{path}: unreadable pickle: {exc}") from exc


def collect_state(record: Any, prefix: str = "") -> dict[str, torch.Tensor]:
    """Flatten a record tree's `_parameters` / persistent `_buffers` into a state dict."""
    state: dict[str, torch.Tensor] = {}
    attrs = getattr(record, "__dict__", {})
    skip = set(attrs.get("_non_persistent_buffers_set", ()))
    for group in ("_parameters", "_buffers"):
        for name, tensor in (attrs.get(group) or {}).items():
            if isinstance(tensor, torch.Tensor) and name not in skip:
                state[prefix + name] = tensor
    for name, child in (attrs.get("_modules") or {}).items():
        if child is not None:
            state.update(collect_state(child, f"{prefix}{name}."))
    return state


def _module_prefixes(config: ModelConfig) -> list[tuple[str, str, str]]:
    """(our prefix, official prefix, rule group) per top-level layer, in official index order."""
    prefixes = [("backbone.stem.", "model.0.", "backbone")]
    index = 1
    for s, stage in enumerate(config.backbone.stages):
        if stage.downsample:
            prefixes.append((f"backbone.stages.{s}.downsample.", f"model.{index}.", "backbone"))
            index += 1
        for b in range(stage.blocks):
            prefixes.append((f"backbone.stages.{s}.blocks.{b}.", f"model.{index}.", "backbone"))
            index += 1
    encoder_layout = {
        0: "proj_s5", 1: "aifi", 2: "lateral_s5", 4: "proj_s4", 6: "fpn_s4", 7: "lateral_s4",
        9: "proj_s3", 11: "fpn_s3", 12: "down_s3", 14: "pan_s4", 15: "down_s4", 17: "pan_s5",
    }  # fmt: skip
    for offset, name in encoder_layout.items():
        prefixes.append((f"encoder.{name}.", f"model.{index + offset}.", "encoder"))
    prefixes.append(("head.", f"model.{index + 18}.", "head"))
    return prefixes


_RULES = {
    "backbone": [
        (r"^units\.(\d+)\.pointwise\.", r"m.\1.conv1."),
        (r"^units\.(\d+)\.depthwise\.", r"m.\1.conv2."),
        (r"^units\.", "m."),
        (r"^squeeze\.", "sc."),
        (r"^excite\.", "ec."),
    ],
    "encoder": [
        (r"^main\.", "cv1."),
        (r"^skip\.", "cv2."),
        (r"^rep_convs\.(\d+)\.conv3x3\.", r"m.\1.conv1."),
        (r"^rep_convs\.(\d+)\.conv1x1\.", r"m.\1.conv2."),
        (r"^attn\.", "ma."),
        (r"^ffn_in\.", "fc1."),
        (r"^ffn_out\.", "fc2."),
        (r"^attn_norm\.", "norm1."),
        (r"^ffn_norm\.", "norm2."),
    ],
    "head": [
        (r"^(det|seg)_gca\.(\d+)\.adapter\.reduce\.", r"task_adapter_\1.\2.conv1."),
        (r"^(det|seg)_gca\.(\d+)\.adapter\.mix\.", r"task_adapter_\1.\2.conv3."),
        (r"^(det|seg)_gca\.(\d+)\.gate\.channel_gate\.", r"gate_\1.\2.channel_att."),
        (r"^(det|seg)_gca\.(\d+)\.gate\.spatial_gate\.", r"gate_\1.\2.spatial_att."),
        (r"^(det|seg)_gca\.(\d+)\.gate\.mixing\.", r"gate_\1.\2.alpha_net."),
        (r"^segmenter\.proj\.0\.", "seg_head.proj_s3."),
        (r"^segmenter\.proj\.1\.", "seg_head.proj_s4."),
        (r"^segmenter\.proj\.2\.", "seg_head.proj_s5."),
        (r"^segmenter\.scale_logits$", "seg_head.task_weights"),
        (r"^segmenter\.upsample\.", "seg_head.deconv_upsample."),
        (r"^segmenter\.", "seg_head."),
        (r"^detector\.decoder\.query_pos_head\.", "query_pos_head."),
        (r"^detector\.decoder\.score_heads\.", "dec_score_head."),
        (r"^detector\.decoder\.box_heads\.", "dec_bbox_head."),
        (r"^detector\.decoder\.layers\.(\d+)\.self_attn_norm\.", r"decoder.layers.\1.norm1."),
        (r"^detector\.decoder\.layers\.(\d+)\.cross_attn_norm\.", r"decoder.layers.\1.norm2."),
        (r"^detector\.decoder\.layers\.(\d+)\.ffn_norm\.", r"decoder.layers.\1.norm3."),
        (r"^detector\.decoder\.layers\.(\d+)\.ffn_in\.", r"decoder.layers.\1.linear1."),
        (r"^detector\.decoder\.layers\.(\d+)\.ffn_out\.", r"decoder.layers.\1.linear2."),
        (r"^detector\.decoder\.", "decoder."),
        (r"^detector\.", ""),
    ],
}


def official_key_map(model: RMTPPAD) -> dict[str, str]:
    """Official state-dict key -> this package's key, for every tensor of `model`."""
    prefixes = _module_prefixes(model.config)
    mapping: dict[str, str] = {}
    for ours in model.state_dict():
        ours_prefix, official_prefix, group = next(p for p in prefixes if ours.startswith(p[0]))
        rest = ours[len(ours_prefix) :]
        for pattern, replacement in _RULES[group]:
            rest = re.sub(pattern, replacement, rest)
        official = official_prefix + rest
        if official in mapping:
            raise AssertionError(f"key map collision on {official}")
        mapping[official] = ours
    return mapping


def _model_record(checkpoint: Any, path: Path) -> Any:
    if not isinstance(checkpoint, dict):
        raise OfficialCheckpointError(
            f"{path}: expected a dict at the top of the pickle, got {type(checkpoint).__name__}"
        )
    for key in ("ema", "model"):  # an unstripped checkpoint keeps its EMA weights under 'ema'
        if isinstance(checkpoint.get(key), OfficialRecord):
            return checkpoint[key]
    raise OfficialCheckpointError(f"{path}: no 'model' or 'ema' module in the checkpoint (keys: {sorted(checkpoint)})")


def official_state_to_model(state: dict[str, torch.Tensor], config: ModelConfig, source: str) -> RMTPPAD:
    """Build the model for `config` and load the official weights, failing on any mismatch."""
    model = build_model(config)
    mapping = official_key_map(model)
    expected = model.state_dict()
    problems = state_mismatch_report(
        {official: expected[ours].shape for official, ours in mapping.items()}, {k: v.shape for k, v in state.items()}
    )
    if problems:
        raise OfficialCheckpointError(
            "\n".join([f"{source}: official weights do not match the {config.name} architecture", *problems])
        )
    converted = {
        mapping[k]: (v.float() if v.is_floating_point() else v.to(expected[mapping[k]].dtype)) for k, v in state.items()
    }
    model.load_state_dict(converted)
    return model.eval()


def import_official(path: str | Path, config: ModelConfig) -> tuple[RMTPPAD, dict[str, Any]]:
    """Read an official checkpoint; returns our model with its weights and the provenance record."""
    path = Path(path)
    checkpoint = read_official_checkpoint(path)
    state = collect_state(_model_record(checkpoint, path))
    model = official_state_to_model(state, config, str(path))
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    provenance = {
        "kind": "imported",
        "source": path.name,
        "source_sha256": digest,
        "source_format": "RMT-PPAD official (ultralytics 8.2.99 fork), fp16 weights cast to fp32",
        "official_version": str(checkpoint.get("version", "unknown")),
        "official_date": str(checkpoint.get("date", "unknown")),
    }
    return model, provenance
