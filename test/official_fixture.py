"""Writes checkpoints in the official RMT-PPAD format (rmt_ppad_model.md §8) without the official code.

Stand-in classes with the official import paths (`ultralytics.nn.tasks.MTDETRModel`, ...) are
registered in sys.modules only while `torch.save` runs, so the pickle references them exactly as a
real `best.pt` does; leaf layers are genuine torch.nn modules. The tree is built from a flat
official state dict: every dotted prefix becomes a module holding its tensors.
"""

from __future__ import annotations

import sys
import types
from collections import OrderedDict
from contextlib import contextmanager
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


def _container_class(path: str, children: list[str], classes: dict) -> type:
    last = path.split(".")[-1]
    if set(children) >= {"conv", "bn"}:
        return classes["Conv"]
    if last.isdigit() and path.count(".") == 2:  # model.model.N: a layer of the YAML
        return (
            classes["MTDETRDecoder"]
            if "seg_head" in children
            else classes["HGBlock"]
            if "m" in children
            else classes["Conv"]
        )
    table = {
        "seg_head": "TransformerSegmentationDecoder",
        "cross_attn": "MSDeformAttn",
        "decoder": "DeformableTransformerDecoder",
        "query_pos_head": "MLP",
        "enc_bbox_head": "MLP",
    }
    if last in table:
        return classes[table[last]]
    if all(c.isdigit() for c in children):
        return nn.ModuleList
    return nn.Module


def _leaf(path: str, tensors: dict[str, torch.Tensor]) -> nn.Module:
    last = path.split(".")[-1]
    if "running_mean" in tensors:
        cls = nn.BatchNorm2d
    elif "in_proj_weight" in tensors:
        cls = nn.MultiheadAttention
    elif last == "upsample":
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
    """Nested modules following the dotted keys of `state` (keys start with 'model.')."""
    tensors_at: dict[str, dict[str, torch.Tensor]] = {}
    children_at: dict[str, list[str]] = {}
    for key, tensor in state.items():
        parent, name = key.rsplit(".", 1)
        tensors_at.setdefault(parent, {})[name] = tensor
        parts = parent.split(".")
        for i in range(1, len(parts)):
            kids = children_at.setdefault(".".join(parts[:i]), [])
            if parts[i] not in kids:
                kids.append(parts[i])

    def make(path: str) -> nn.Module:
        kids = children_at.get(path, [])
        own = tensors_at.get(path, {})
        if not kids and own:
            module = _leaf(path, own)
        else:
            module = _container_class(path, kids, classes)()
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
        sequential = build_record_tree(half, classes)
        root = classes["MTDETRModel"]()
        root.add_module("model", sequential.model if hasattr(sequential, "model") else sequential)
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
