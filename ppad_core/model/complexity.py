"""Parameter and MAC counting."""

from __future__ import annotations

import time

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


def forward_times_ms(
    model: nn.Module, input_size: tuple[int, int], runs: int, channels_last: bool = False
) -> list[float]:
    """Wall time of `runs` batch-1 forwards on a random image, after one warm-up forward (a channels-last
    image when the model has been converted to that layout)."""
    image = torch.rand(1, 3, *input_size)
    if channels_last:
        image = image.contiguous(memory_format=torch.channels_last)
    times = []
    with torch.inference_mode():
        model(image)
        for _ in range(runs):
            start = time.perf_counter()
            model(image)
            times.append((time.perf_counter() - start) * 1000)
    return times
