"""Pruned architectures as data: per-module channel widths stored in the checkpoint's model.yaml.

A pruned student is rebuilt from its base config plus this layout (no pruning is re-run), then its
weights load strictly like any other checkpoint.
"""

from __future__ import annotations

import torch
from torch import nn

_WIDTH_ATTRIBUTES = {
    nn.Conv2d: ("in_channels", "out_channels", "groups"),
    nn.ConvTranspose2d: ("in_channels", "out_channels", "groups"),
    nn.BatchNorm2d: ("num_features",),
    nn.Linear: ("in_features", "out_features"),
    nn.LayerNorm: ("normalized_shape",),
}


def _widths(module: nn.Module) -> dict[str, int] | None:
    attributes = next((a for kind, a in _WIDTH_ATTRIBUTES.items() if isinstance(module, kind)), None)
    if attributes is None:
        return None
    values = {name: getattr(module, name) for name in attributes}
    if "normalized_shape" in values:
        values["normalized_shape"] = int(values["normalized_shape"][0])
    return values


def pruned_layout(model: nn.Module, reference: nn.Module) -> dict[str, dict[str, int]]:
    """Widths of every module whose widths differ from the unpruned reference build."""
    reference_modules = dict(reference.named_modules())
    layout = {}
    for name, module in model.named_modules():
        widths = _widths(module)
        if widths is not None and widths != _widths(reference_modules[name]):
            layout[name] = widths
    return layout


def apply_pruned_layout(model: nn.Module, layout: dict[str, dict[str, int]]) -> nn.Module:
    """Resize the named modules in place (fresh uninitialised tensors; weights are loaded afterwards)."""
    modules = dict(model.named_modules())
    for name, widths in layout.items():
        if name not in modules:
            raise ValueError(f"pruned layout names module {name!r}, which this architecture does not have")
        _resize(modules[name], widths)
    return model


def _resize(module: nn.Module, widths: dict[str, int]) -> None:
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        module.in_channels, module.out_channels, module.groups = (
            widths["in_channels"],
            widths["out_channels"],
            widths["groups"],
        )
        if isinstance(module, nn.ConvTranspose2d):
            shape = (module.in_channels, module.out_channels // module.groups, *module.kernel_size)
        else:
            shape = (module.out_channels, module.in_channels // module.groups, *module.kernel_size)
        _replace(module, "weight", shape)
        _replace(module, "bias", (module.out_channels,))
    elif isinstance(module, nn.BatchNorm2d):
        module.num_features = widths["num_features"]
        for name in ("weight", "bias", "running_mean", "running_var"):
            _replace(module, name, (module.num_features,))
    elif isinstance(module, nn.Linear):
        module.in_features, module.out_features = widths["in_features"], widths["out_features"]
        _replace(module, "weight", (module.out_features, module.in_features))
        _replace(module, "bias", (module.out_features,))
    elif isinstance(module, nn.LayerNorm):
        module.normalized_shape = (widths["normalized_shape"],)
        _replace(module, "weight", module.normalized_shape)
        _replace(module, "bias", module.normalized_shape)
    else:
        raise ValueError(f"cannot resize a {type(module).__name__}")


def _replace(module: nn.Module, name: str, shape: tuple[int, ...]) -> None:
    current = getattr(module, name, None)
    if current is None:
        return
    fresh = torch.empty(shape, dtype=current.dtype, device=current.device)
    if isinstance(current, nn.Parameter):
        setattr(module, name, nn.Parameter(fresh, requires_grad=current.requires_grad))
    else:
        module.register_buffer(name, fresh)
