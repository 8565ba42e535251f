"""Parameter and MAC counting."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, trainable_only: bool = True) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def count_macs(model: nn.Module, input_size: tuple[int, int], batch: int = 1) -> int:
    """Multiply-accumulates of one eval forward (convolutions, linear layers and attention matmuls)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model(torch.zeros(batch, 3, *input_size, device=device))
    model.train(was_training)
    return counter.get_total_flops() // 2
