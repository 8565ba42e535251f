"""Inference fusion: Conv+BN folding and RepConv re-parameterisation (the paper's 34.3 M counts the fused model)."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ppad_core.model.layers import ConvBNAct, RepConv


def fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A biased Conv2d computing bn(conv(x)) with bn in eval mode."""
    fused = nn.Conv2d(
        conv.in_channels,
        conv.out_channels,
        conv.kernel_size,
        conv.stride,
        conv.padding,
        conv.dilation,
        conv.groups,
        bias=True,
    ).to(device=conv.weight.device, dtype=conv.weight.dtype)
    scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
    bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
    with torch.no_grad():
        fused.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        fused.bias.copy_(bn.bias + (bias - bn.running_mean) * scale)
    return fused


def _fuse_conv_bn_act(module: ConvBNAct) -> nn.Module:
    return nn.Sequential(fold_conv_bn(module.conv, module.bn), module.act)


def _fuse_repconv(module: RepConv) -> nn.Module:
    big = fold_conv_bn(module.conv3x3.conv, module.conv3x3.bn)
    small = fold_conv_bn(module.conv1x1.conv, module.conv1x1.bn)
    with torch.no_grad():
        big.weight.add_(F.pad(small.weight, [1, 1, 1, 1]))
        big.bias.add_(small.bias)
    return nn.Sequential(big, module.act)


def _fold_sequential_pairs(sequence: nn.Sequential) -> None:
    """Fold each Conv2d directly followed by a BatchNorm2d; the BN's slot becomes an Identity."""
    for index in range(len(sequence) - 1):
        conv, bn = sequence[index], sequence[index + 1]
        if type(conv) is nn.Conv2d and isinstance(bn, nn.BatchNorm2d):
            sequence[index] = fold_conv_bn(conv, bn)
            sequence[index + 1] = nn.Identity()


def _replace(parent: nn.Module) -> None:
    if isinstance(parent, nn.Sequential):
        _fold_sequential_pairs(parent)
    for name, child in parent.named_children():
        if isinstance(child, RepConv):
            setattr(parent, name, _fuse_repconv(child))
        elif isinstance(child, ConvBNAct):
            setattr(parent, name, _fuse_conv_bn_act(child))
        else:
            _replace(child)


def fuse_model(model: nn.Module, inplace: bool = False) -> nn.Module:
    """Return an eval-mode copy with every Conv+BN pair folded and every RepConv merged into one 3x3 conv."""
    fused = model if inplace else copy.deepcopy(model)
    fused.eval()
    _replace(fused)
    return fused
