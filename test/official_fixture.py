"""Writes checkpoints in the official RMT-PPAD format without the official code (docs/model.md, "Official
checkpoint import").

Stand-in classes with the official import paths (`ultralytics.nn.tasks.MTDETRModel`, ...) are
registered in sys.modules only while `torch.save` runs, so the pickle references them exactly as a
real `best.pt` does; leaf layers are genuine torch.nn modules. The tree is built from a flat
official state dict: every dotted prefix becomes a module holding its tensors.
"""

from __future__ import annotations

import json
import sys
import types
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

_CLASS_PATHS = {
    "MTDETRModel": "ultralytics.nn.tasks",
    "HGStem": "ultralytics.nn.modules.block",
    "HGBlock": "ultralytics.nn.modules.block",
    "RepC3": "ultralytics.nn.modules.block",
    "Conv": "ultralytics.nn.modules.conv",
    "DWConv": "ultralytics.nn.modules.conv",
    "LightConv": "ultralytics.nn.modules.conv",
    "RepConv": "ultralytics.nn.modules.conv",
    "Concat": "ultralytics.nn.modules.conv",
    "AIFI": "ultralytics.nn.modules.transformer",
    "MLP": "ultralytics.nn.modules.transformer",
    "MSDeformAttn": "ultralytics.nn.modules.transformer",
    "DeformableTransformerDecoder": "ultralytics.nn.modules.transformer",
    "DeformableTransformerDecoderLayer": "ultralytics.nn.modules.transformer",
    "TransformerSegmentationDecoder": "ultralytics.nn.modules.transformer",
    "MTDETRDecoder": "ultralytics.nn.modules.head",
    "TaskAdapterLite": "ultralytics.nn.modules.head",
    "LiteDynamicGate": "ultralytics.nn.modules.head",
    "IterableSimpleNamespace": "ultralytics.utils",
}


OFFICIAL_KEYS = Path(__file__).parent / "data" / "official_checkpoint_keys.tsv"


def read_key_list(path: Path = OFFICIAL_KEYS) -> list[tuple[str, tuple[int, ...], torch.dtype]]:
    """(key, shape, dtype) of every tensor of the official paper model, in module order.

    The file is the copy of shared/design/official_checkpoint_keys.tsv, taken from the model the official
    code builds for the paper config."""
    rows = []
    for line in path.read_text().splitlines():
        key, shape, dtype = line.split("\t")
        rows.append((key, tuple(json.loads(shape)), getattr(torch, dtype)))
    return rows


def random_official_state(rows, seed: int = 0) -> dict[str, torch.Tensor]:
    """A state dict with exactly the keys, shapes and dtypes of `rows`, filled so that a forward stays finite:
    weights ~ N(0, 1/fan_in), norm scales near 1, small biases, BatchNorm variances in [0.5, 1.5]."""
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape, low, high):
        return low + (high - low) * torch.rand(shape, generator=generator)

    state = {}
    for key, shape, dtype in rows:
        name = key.rsplit(".", 1)[1]
        if not dtype.is_floating_point:
            state[key] = torch.zeros(shape, dtype=dtype)
        elif name == "running_var":
            state[key] = uniform(shape, 0.5, 1.5)
        elif name in ("running_mean", "bias") or name.endswith("_bias"):
            state[key] = 0.05 * torch.randn(shape, generator=generator)
        elif len(shape) == 1:  # BatchNorm / LayerNorm scales
            state[key] = uniform(shape, 0.8, 1.2)
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod()) if len(shape) > 1 else shape[0])
            state[key] = torch.randn(shape, generator=generator) / fan_in**0.5
        state[key] = state[key].to(dtype)
    return state


@contextmanager
def fake_ultralytics():
    """Register stand-in `ultralytics` modules/classes for the duration of a torch.save."""
    added, classes = [], {}
    for name, module_path in _CLASS_PATHS.items():
        parts = module_path.split(".")
        for i in range(1, len(parts) + 1):
            mod_name = ".".join(parts[:i])
            if mod_name not in sys.modules:
                sys.modules[mod_name] = types.ModuleType(mod_name)
                added.append(mod_name)
        base = object if name == "IterableSimpleNamespace" else nn.Module
        cls = type(name, (base,), {"__module__": module_path})
        setattr(sys.modules[module_path], name, cls)
        classes[name] = cls
    try:
        yield classes
    finally:
        for mod_name in added:
            sys.modules.pop(mod_name, None)


_HEAD_CHILDREN = {
    "decoder": "DeformableTransformerDecoder",
    "cross_attn": "MSDeformAttn",
    "query_pos_head": "MLP",
    "enc_bbox_head": "MLP",
    "seg_head": "TransformerSegmentationDecoder",
}
_LIST_CLASSES = {  # lists whose items are official classes
    "dec_bbox_head": "MLP",
    "layers": "DeformableTransformerDecoderLayer",
    "task_adapter_det": "TaskAdapterLite",
    "task_adapter_seg": "TaskAdapterLite",
    "gate_det": "LiteDynamicGate",
    "gate_seg": "LiteDynamicGate",
}
_MODULE_LISTS = {"m", "input_proj", "dec_score_head", *_LIST_CLASSES}


@dataclass
class _Tree:
    """The module tree implied by dotted state-dict keys: tensors and child names per module path."""

    tensors: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    children: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> _Tree:
        tree = cls()
        for key, tensor in state.items():
            parent, name = key.rsplit(".", 1)
            tree.tensors.setdefault(parent, {})[name] = tensor
            parts = parent.split(".")
            for i in range(1, len(parts)):
                kids = tree.children.setdefault(".".join(parts[:i]), [])
                if parts[i] not in kids:
                    kids.append(parts[i])
        return tree


def _layer_class(path: str, tree: _Tree, classes: dict) -> type:
    """The official class of a top-level layer `model.N`, recognised by its children."""
    kids = set(tree.children.get(path, []))
    if "stem1" in kids:
        return classes["HGStem"]
    if {"m", "sc", "ec"} <= kids:
        return classes["HGBlock"]
    if {"cv1", "cv2", "m"} <= kids:
        return classes["RepC3"]
    if "ma" in kids:
        return classes["AIFI"]
    if "seg_head" in kids:
        return classes["MTDETRDecoder"]
    depthwise = tree.tensors[f"{path}.conv"]["weight"].shape[1] == 1
    return classes["DWConv"] if depthwise else classes["Conv"]


def _container_class(path: str, tree: _Tree, classes: dict) -> type:
    parts = path.split(".")
    children = tree.children.get(path, [])
    last, parent = parts[-1], parts[-2]
    if len(parts) == 2:  # model.N: a layer of the official YAML
        return _layer_class(path, tree, classes)
    if set(children) == {"conv1", "conv2"}:  # m.N of a RepC3 (RepConv) or of an HGBlock (LightConv)
        in_rep_c3 = "cv1" in tree.children.get(".".join(parts[:2]), [])
        return classes["RepConv"] if in_rep_c3 else classes["LightConv"]
    if set(children) >= {"conv", "bn"}:
        return classes["Conv"]
    if last in _HEAD_CHILDREN:
        return classes[_HEAD_CHILDREN[last]]
    if last.isdigit() and parent in _LIST_CLASSES:
        return classes[_LIST_CLASSES[parent]]
    if all(c.isdigit() for c in children):
        return nn.ModuleList if last in _MODULE_LISTS else nn.Sequential
    return nn.Module


def _leaf(path: str, tensors: dict[str, torch.Tensor]) -> nn.Module:
    last = path.split(".")[-1]
    if "running_mean" in tensors:
        cls = nn.BatchNorm2d
    elif "in_proj_weight" in tensors:
        cls = nn.MultiheadAttention
    elif last == "deconv_upsample":
        cls = nn.ConvTranspose2d
    elif last == "denoising_class_embed":
        cls = nn.Embedding
    elif tensors["weight"].dim() == 4:
        cls = nn.Conv2d
    elif tensors["weight"].dim() == 2:
        cls = nn.Linear
    else:
        cls = nn.LayerNorm
    module = object.__new__(cls)
    nn.Module.__init__(module)
    return module


def build_record_tree(state: dict[str, torch.Tensor], classes: dict) -> nn.Module:
    """Nested modules following the dotted keys of `state` (keys start with 'model.'), each of the official
    class its place in the tree implies."""
    tree = _Tree.from_state(state)

    def make(path: str) -> nn.Module:
        kids = tree.children.get(path, [])
        own = tree.tensors.get(path, {})
        if path == "model":
            module = nn.Sequential()
        elif not kids and own:
            module = _leaf(path, own)
        else:
            module = _container_class(path, tree, classes)()
        for name, tensor in own.items():
            if name in ("running_mean", "running_var", "num_batches_tracked"):
                module.register_buffer(name, tensor)
            else:
                module.register_parameter(name, nn.Parameter(tensor, requires_grad=False))
        for kid in kids:
            module.add_module(kid, make(f"{path}.{kid}"))
        if isinstance(module, classes["Conv"]):
            module.add_module("act", nn.SiLU())
        return module

    return make("model")


def write_official_checkpoint(state: dict[str, torch.Tensor], path: Path, extra: dict | None = None) -> Path:
    """Save `state` (official keys 'model.N....', any dtype; stored fp16 like the release) as best.pt."""
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in state.items()}
    with fake_ultralytics() as classes:
        root = classes["MTDETRModel"]()
        root.add_module("model", build_record_tree(half, classes))
        root.yaml = {"nc": 3, "nc_list": {"detection": 1, "segmentation": 2}, "backbone": [], "head": []}
        root.names = {0: "vehicle", 1: "drivable", 2: "lane"}
        args = classes["IterableSimpleNamespace"]()
        args.__dict__.update({"imgsz": 640, "epochs": 250, "mask_threshold": [0.45, 0.9]})
        root.args = args
        checkpoint = OrderedDict(
            date="2025-08-01T12:00:00",
            version="8.2.99",
            license="AGPL-3.0 License (https://ultralytics.com/license)",
            docs="https://docs.ultralytics.com",
            epoch=-1,
            best_fitness=None,
            model=root,
            ema=None,
            updates=None,
            optimizer=None,
            train_args={"model": "rtdetr-l_bdd.yaml", "imgsz": 640, "batch": 45},
            train_metrics={"metrics/recall(B)": 0.954, "metrics/mAP50(B)": 0.849},
            train_results=None,
        )
        checkpoint.update(extra or {})
        torch.save(dict(checkpoint), path)
    return path
