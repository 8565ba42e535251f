"""Task-aware channel importance for structured pruning (docs/compression.md §1).

For every calibration batch b and task t (detection, drivable area, lane lines) we keep, per channel
slice of every prunable parameter: the signed Taylor term s = sum(w * dL_t/dw) and the gradient inner
products <g_i, g_j>. A Torch-Pruning group (all coupled slices of one channel) sums them, then:

  I_t(c)  = mean_b s_t(c)^2                              per-task first-order Taylor (BN included)
  Î_t(c)  = I_t(c) / mean_c' I_t(c')                     per-task normalisation
  I(c)    = max_t Î_t(c)                                 safe aggregation (or mean, for ablation)
  C(c)    = mean_b mean_{i<j} max(0, -cos(g_i, g_j))     gradient conflict in [0, 1]  (or sign variant)
  S(c)    = I(c) * (1 - lambda * C(c)), the top channel of each task protected.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning.pruner import function

from ppad_core.train.losses import LossConfig, task_losses, total_loss

TASKS = ("detection", "drivable", "lane")
PAIRS = tuple(itertools.combinations(range(len(TASKS)), 2))
PRUNABLE_TYPES = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, nn.BatchNorm2d, nn.LayerNorm)
_OUT_FNS = {
    function.prune_conv_out_channels,
    function.prune_linear_out_channels,
    function.prune_batchnorm_out_channels,
    function.prune_layernorm_out_channels,
}
_IN_FNS = {function.prune_conv_in_channels, function.prune_linear_in_channels}


# the allowed values of ImportanceConfig's string fields (the CLI's choices too)
IMPORTANCE_CHOICES = {
    "criterion": ("taylor", "magnitude"),
    "conflict": ("cosine", "sign", "none"),
    "aggregation": ("max", "mean"),
}


@dataclass
class ImportanceConfig:
    criterion: str = "taylor"  # taylor (per-task, the method) | magnitude (L1 baseline)
    conflict: str = "cosine"  # cosine | sign | none
    conflict_weight: float = 0.5  # lambda
    aggregation: str = "max"  # max (safe: important to any task survives) | mean
    protect_top: int = 1  # the top-k channels of every task are never pruned

    def validate(self) -> None:
        for name, allowed in IMPORTANCE_CHOICES.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"importance.{name} = {getattr(self, name)!r} is not one of {allowed}")
        if not 0.0 <= self.conflict_weight <= 1.0:
            raise ValueError(f"importance.conflict_weight must be in [0, 1], got {self.conflict_weight}")


# ----- the per-channel arithmetic (pure functions on [batches, tasks or pairs, channels] tensors) -----


def taylor_importance(signed: torch.Tensor) -> torch.Tensor:
    """[B, T, C] signed Taylor terms -> [T, C] mean over batches of their squares."""
    return signed.pow(2).mean(0)


def cosine_conflict(dots: torch.Tensor, sq_norms: torch.Tensor) -> torch.Tensor:
    """[B, P, C] inner products and [B, T, C] squared norms -> [C] mean negative cosine in [0, 1]."""
    cosines = torch.stack(
        [dots[:, p] / (sq_norms[:, i] * sq_norms[:, j]).sqrt().clamp_min(1e-30) for p, (i, j) in enumerate(PAIRS)], 1
    )
    return (-cosines).clamp_min(0).mean(1).mean(0)


def sign_conflict(signed: torch.Tensor) -> torch.Tensor:
    """GradDrop-style sign disagreement of the signed Taylor terms: 0 all agree, 1 balanced opposition."""
    purity = 0.5 * (1 + signed.sum(1) / signed.abs().sum(1).clamp_min(1e-30))
    return (1 - (2 * purity - 1).abs()).mean(0)


def combine(importance: torch.Tensor, conflict: torch.Tensor | None, cfg: ImportanceConfig) -> torch.Tensor:
    """[T, C] importance (+ [C] conflict) -> [C] pruning score, higher = keep."""
    normalised = importance / importance.mean(1, keepdim=True).clamp_min(1e-30)
    score = normalised.max(0).values if cfg.aggregation == "max" else normalised.mean(0)
    if conflict is not None and cfg.conflict_weight > 0:
        score = score * (1 - cfg.conflict_weight * conflict)
    if cfg.protect_top > 0:
        top = normalised.topk(min(cfg.protect_top, normalised.shape[1]), dim=1).indices.flatten()
        score[top] = score.max() + 1 + normalised.max(0).values[top]
    return score


# ----- statistics over calibration batches --------------------------------------------------------------


class TaskGradientStatistics:
    """Per-batch, per-task channel statistics of every prunable parameter, for both channel axes."""

    def __init__(self) -> None:
        self.signed: dict[tuple[int, int], list[torch.Tensor]] = {}  # (id(param), axis) -> [T, n] per batch
        self.dots: dict[tuple[int, int], list[torch.Tensor]] = {}  # [P, n]
        self.sq_norms: dict[tuple[int, int], list[torch.Tensor]] = {}  # [T, n]

    @property
    def batches(self) -> int:
        return len(next(iter(self.signed.values()), []))

    def collect(
        self, model: nn.Module, batches: Iterable[dict], loss_config: LossConfig, device: torch.device
    ) -> TaskGradientStatistics:
        params = [p for m in model.modules() if isinstance(m, PRUNABLE_TYPES) for p in m.parameters(recurse=False)]
        model.train()
        for module in model.modules():  # losses need training mode; BN statistics stay frozen
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                module.eval()
        for batch in batches:
            if batch["images"] is None:
                continue
            images = batch["images"].to(device).float() / 255.0
            targets = [{k: v.to(device) for k, v in t.items()} for t in batch["targets"]]
            _, terms = total_loss(model(images, targets), targets, batch["masks"].to(device), loss_config)
            losses = task_losses(terms)
            grads = [torch.autograd.grad(losses[task], params, retain_graph=True, allow_unused=True) for task in TASKS]
            self._add(params, grads)
        model.eval()
        return self

    @torch.no_grad()
    def _add(self, params: list[nn.Parameter], grads: list[tuple]) -> None:
        for index, param in enumerate(params):
            per_task = [g[index] if g[index] is not None else torch.zeros_like(param) for g in grads]
            for axis in range(min(param.dim(), 2)):
                others = [d for d in range(param.dim()) if d != axis]

                def reduce(x: torch.Tensor, dims=others) -> torch.Tensor:
                    return x.sum(dims) if dims else x

                key = (id(param), axis)
                self.signed.setdefault(key, []).append(torch.stack([reduce(param * g) for g in per_task]))
                self.sq_norms.setdefault(key, []).append(torch.stack([reduce(g * g) for g in per_task]))
                self.dots.setdefault(key, []).append(torch.stack([reduce(per_task[i] * per_task[j]) for i, j in PAIRS]))

    def slices(self, param: nn.Parameter, axis: int, idxs: list[int]) -> tuple[torch.Tensor, ...] | None:
        """([B, T, k] signed, [B, P, k] dots, [B, T, k] squared norms) for channel indices `idxs`."""
        key = (id(param), axis)
        if key not in self.signed:
            return None
        index = torch.as_tensor(idxs, dtype=torch.long)
        return tuple(torch.stack(store[key])[..., index] for store in (self.signed, self.dots, self.sq_norms))


class TaskAwareTaylorImportance(tp.importance.Importance):
    """Torch-Pruning importance from TaskGradientStatistics (refresh `statistics` before each step)."""

    def __init__(self, cfg: ImportanceConfig, statistics: TaskGradientStatistics | None = None) -> None:
        cfg.validate()
        self.cfg = cfg
        self.statistics = statistics

    @torch.no_grad()
    def __call__(self, group) -> torch.Tensor | None:
        if self.statistics is None or self.statistics.batches == 0:
            raise RuntimeError("TaskAwareTaylorImportance needs statistics collected on calibration batches")
        size = len(group[0].idxs)
        batches, tasks, pairs = self.statistics.batches, len(TASKS), len(PAIRS)
        signed = torch.zeros(batches, tasks, size)
        dots = torch.zeros(batches, pairs, size)
        sq_norms = torch.zeros(batches, tasks, size)
        for i, (dep, idxs) in enumerate(group):
            root = torch.as_tensor(group[i].root_idxs, dtype=torch.long)
            for part in self._member_slices(dep.layer, dep.pruning_fn, idxs):
                signed.index_add_(2, root, part[0])
                dots.index_add_(2, root, part[1])
                sq_norms.index_add_(2, root, part[2])
        conflict = None
        if self.cfg.conflict == "cosine":
            conflict = cosine_conflict(dots, sq_norms)
        elif self.cfg.conflict == "sign":
            conflict = sign_conflict(signed)
        return combine(taylor_importance(signed), conflict, self.cfg)

    def _member_slices(self, layer: nn.Module, prune_fn, idxs: list[int]):
        if not isinstance(layer, PRUNABLE_TYPES):
            return
        transposed = isinstance(layer, nn.ConvTranspose2d)
        if prune_fn in _OUT_FNS:
            weight_axis = 1 if transposed else 0
            for name, axis in (("weight", weight_axis), ("bias", 0)):
                param = getattr(layer, name, None)
                if param is not None and (part := self.statistics.slices(param, axis, idxs)) is not None:
                    yield part
        elif prune_fn in _IN_FNS:
            axis = 0 if transposed else 1
            groups = getattr(layer, "groups", 1)
            if groups > 1 and groups == getattr(layer, "in_channels", 0):
                return  # depthwise: its output-channel entry already covers the channel
            if groups > 1 and not transposed:
                per_group = layer.weight.shape[1]
                idxs = [i % per_group for i in idxs]  # grouped conv: every group shares the slice layout
            if (part := self.statistics.slices(layer.weight, axis, idxs)) is not None:
                yield part
