"""Structured pruning on Torch-Pruning's dependency graph, to a requested whole-model parameter reduction
(docs/compression.md §2)."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import math
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
import torch_pruning as tp
from torch import nn

from ppad_core.compress.importance import ImportanceConfig, TaskAwareTaylorImportance, TaskGradientStatistics
from ppad_core.model.complexity import count_parameters
from ppad_core.model.gca import TaskGate
from ppad_core.model.pruned_layout import pruned_layout
from ppad_core.model.rmt_ppad import RMTPPAD, build_model
from ppad_core.train.losses import LossConfig

SCOPES = ("backbone+encoder", "backbone+encoder+head")
# +head adds the head's input projections, GCA and the segmentation decoder's channels. The first two
# feed the detection decoder's residual width, so they only shrink where Torch-Pruning finds groups
# that stay inside the head.


@dataclass
class PruneConfig:
    target_reduction: float = 0.327  # fraction of the whole model's parameters removed
    tolerance: float = 0.01  # the reduction is searched to within this many points (fraction)
    scope: str = "backbone+encoder"  # or +head: also the head's input projections, GCA and seg decoder
    steps: int = 4  # iterative steps, statistics recomputed before each
    calibration_batches: int = 16
    round_to: int = 8  # kept widths rounded up to multiples of this (SIMD-friendly); halved until the target fits
    max_layer_ratio: float = 0.8  # no layer loses more than this fraction of its channels
    # module name -> fixed channel ratio for the groups rooted inside it, outside the search: narrows the
    # layers that cost time rather than parameters (the demo's full-resolution seg decoder)
    module_ratios: dict[str, float] = field(default_factory=dict)
    # detection decoder layers kept (the first N with their heads; 0: all): a layer costs a fixed time per frame
    # whatever the widths, so at small input sizes depth rather than width bounds a student's latency
    decoder_layers: int = 0
    importance: ImportanceConfig = field(default_factory=ImportanceConfig)

    def validate(self) -> None:
        if not 0.0 <= self.target_reduction < 0.9:
            raise ValueError(f"target_reduction must be in [0, 0.9), got {self.target_reduction}")
        if self.scope not in SCOPES:
            raise ValueError(f"scope {self.scope!r} is not one of {SCOPES}")
        if self.steps < 1 or self.calibration_batches < 1 or self.round_to < 1:
            raise ValueError("steps, calibration_batches and round_to must be >= 1")
        if self.decoder_layers < 0:
            raise ValueError(f"decoder_layers must be >= 0 (0: all), got {self.decoder_layers}")
        for name, ratio in self.module_ratios.items():
            if not 0.0 <= ratio <= self.max_layer_ratio:
                raise ValueError(f"module ratio of {name!r} must be in [0, {self.max_layer_ratio}], got {ratio}")
        self.importance.validate()


def ignored_layers(model: RMTPPAD, scope: str) -> list[nn.Module | nn.Parameter]:
    """Modules whose outputs keep their width: the detection decoder (queries, heads, denoising) and the
    AIFI attention (native multi-head attention) always; the head's input projections, GCA and
    segmentation decoder unless the scope includes the head. With the head, the segmentation decoder's
    channels (projections, shared upsampling, refinement) are pruned; its per-task mixing weights and
    logit layer keep their shapes. Inputs of ignored modules still shrink with the channels that feed them."""
    head = model.head
    ignored = [head.detector, model.encoder.aifi.attn]
    if scope == "backbone+encoder":
        return ignored + [head.input_proj, head.det_gca, head.seg_gca, head.segmenter]
    segmenter = head.segmenter
    # the gates' two-input grouped convolutions are not handled by the dependency graph either
    gates = [m for m in head.modules() if isinstance(m, TaskGate)]
    # scale_logits only weighs whole scales; as an unwrapped parameter the graph would try to prune it
    return ignored + gates + [segmenter.refine[-1], segmenter.scale_logits]


def module_ratio_dict(
    model: RMTPPAD, cfg: PruneConfig, ignored: list[nn.Module | nn.Parameter]
) -> dict[nn.Module, float]:
    """`cfg.module_ratios` keyed by module, as Torch-Pruning takes them (a module stands for all its submodules);
    `ignored` is the pruner's ignored_layers, inside which a ratio would have no effect."""
    modules = dict(model.named_modules())
    unknown = sorted(set(cfg.module_ratios) - set(modules))
    if unknown:
        raise ValueError(f"module ratios name modules this model does not have: {', '.join(unknown)}")
    frozen = {id(m) for layer in ignored if isinstance(layer, nn.Module) for m in layer.modules()}
    outside = sorted(name for name in cfg.module_ratios if id(modules[name]) in frozen)
    if outside:
        raise ValueError(f"module ratios name modules outside the {cfg.scope!r} scope: {', '.join(outside)}")
    return {modules[name]: ratio for name, ratio in cfg.module_ratios.items()}


def _output_tensors(outputs: dict) -> list[torch.Tensor]:
    return [outputs["boxes"], outputs["scores"], outputs["seg_logits"]]


def pruned_after_rounding_up(n_pruned: int, channels: int, round_to: int) -> int:
    """Channels to prune once the kept width is rounded up to a multiple of `round_to` (at most `channels`)."""
    kept = min(channels, math.ceil((channels - n_pruned) / round_to) * round_to)
    return channels - kept


class RoundKeptUpPruner(tp.pruner.BasePruner):
    """Torch-Pruning's pruner with widths rounded up to a multiple of `round_to`, never down: rounding down
    can take half of a narrow group (the demo model's 8-channel segmentation decoder at a 33 % ratio keeps
    4), rounding up keeps at least (1 - ratio) of every group and the ratio search makes up the rest."""

    def _round_to(self, n_pruned: int, current_channels: int, round_to: int) -> int:
        return pruned_after_rounding_up(n_pruned, current_channels, round_to)


def build_pruner(
    model: RMTPPAD, ratio: float, cfg: PruneConfig, importance: tp.importance.Importance, steps: int
) -> tp.pruner.BasePruner:
    height, width = model.config.input_size
    example = torch.rand(1, 3, height, width, device=next(model.parameters()).device)
    ignored = ignored_layers(model, cfg.scope)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Unwrapped parameters detected")
        return RoundKeptUpPruner(
            model,
            example,
            importance=importance,
            pruning_ratio=ratio,
            pruning_ratio_dict=module_ratio_dict(model, cfg, ignored),
            iterative_steps=steps,
            ignored_layers=ignored,
            round_to=cfg.round_to if cfg.round_to > 1 else None,
            max_pruning_ratio=cfg.max_layer_ratio,
            output_transform=_output_tensors,
        )


def reduction_at(model: RMTPPAD, ratio: float, cfg: PruneConfig) -> float:
    """Whole-model parameter reduction of a channel ratio (local ranking: widths do not depend on scores)."""
    trial = copy.deepcopy(model).eval()
    before = count_parameters(trial, trainable_only=False)
    build_pruner(trial, ratio, cfg, tp.importance.GroupMagnitudeImportance(p=1), steps=1).step()
    return 1 - count_parameters(trial, trainable_only=False) / before


def search_ratio(model: RMTPPAD, cfg: PruneConfig, max_trials: int = 12) -> tuple[float, float]:
    """Bisection for the smallest channel ratio whose parameter reduction reaches the target; it must land
    within the tolerance above it (widths move in steps of `round_to` channels)."""
    if cfg.target_reduction == 0:
        return 0.0, 0.0
    low, high = 0.0, cfg.max_layer_ratio
    best = (high, reduction_at(model, high, cfg))
    if best[1] < cfg.target_reduction:
        raise RuntimeError(
            f"even a {high:.0%} channel ratio removes only {best[1]:.1%} of the parameters; widen the scope"
        )
    for _ in range(max_trials):
        ratio = (low + high) / 2
        reduction = reduction_at(model, ratio, cfg)
        if reduction >= cfg.target_reduction:
            high, best = ratio, (ratio, reduction)
            if reduction - cfg.target_reduction <= cfg.tolerance / 2:
                break
        else:
            low = ratio
    if best[1] - cfg.target_reduction > cfg.tolerance:
        raise RuntimeError(
            f"no channel ratio reaches a {cfg.target_reduction:.1%} parameter reduction within "
            f"{cfg.tolerance:.1%} (closest: {best[1]:.1%} at ratio {best[0]:.3f}); lower round_to or widen the scope"
        )
    return best


def search_ratio_and_rounding(model: RMTPPAD, cfg: PruneConfig) -> tuple[float, float, int]:
    """The coarsest channel rounding (round_to, round_to/2, ..., 1) that can hit the target."""
    round_to = max(1, cfg.round_to)
    while True:
        try:
            ratio, reduction = search_ratio(model, dataclasses.replace(cfg, round_to=round_to))
            return ratio, reduction, round_to
        except RuntimeError:
            if round_to == 1:
                raise
            round_to //= 2


def keep_decoder_layers(model: RMTPPAD, keep: int) -> None:
    """Keeps the first `keep` detection decoder layers of `model` with their score and box heads, and records it in
    `model.config`. Every layer's heads are trained (RT-DETR's auxiliary losses), so the shallower decoder
    predicts before any fine-tuning; the decoder is outside the channel search, so its layers drop whole."""
    decoder = model.head.detector.decoder
    if not 1 <= keep <= len(decoder.layers):
        raise ValueError(f"decoder_layers={keep}: the model has {len(decoder.layers)} decoder layers")
    for name in ("layers", "score_heads", "box_heads"):
        setattr(decoder, name, nn.ModuleList(list(getattr(decoder, name))[:keep]))
    model.config.head.decoder_layers = keep


def prune_model(
    model: RMTPPAD,
    cfg: PruneConfig,
    calibration: Callable[[], Iterator[dict]] | None = None,
    loss_config: LossConfig | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> tuple[RMTPPAD, dict]:
    """A pruned copy of `model` (the original is untouched) and a report of what was removed.

    `calibration()` yields fresh training batches (collate format); Taylor statistics are gathered
    on `cfg.calibration_batches` of them before each of the `cfg.steps` iterative steps.
    """
    cfg.validate()
    reference = build_model(model.config)
    student = copy.deepcopy(model).eval()
    device = next(student.parameters()).device
    before = count_parameters(student, trainable_only=False)
    ratio, expected, round_to = search_ratio_and_rounding(student, cfg)
    cfg = dataclasses.replace(cfg, round_to=round_to)
    if ratio > 0 or cfg.module_ratios:
        if cfg.importance.criterion == "magnitude":
            importance = tp.importance.GroupMagnitudeImportance(p=1)
        else:
            if calibration is None:
                raise ValueError("Taylor importance needs calibration batches")
            importance = TaskAwareTaylorImportance(cfg.importance)
        pruner = build_pruner(student, ratio, cfg, importance, cfg.steps)
        for step in range(cfg.steps):
            if isinstance(importance, TaskAwareTaylorImportance):
                batches = itertools.islice(calibration(), cfg.calibration_batches)
                importance.statistics = TaskGradientStatistics().collect(
                    student, batches, loss_config or LossConfig(), device
                )
            pruner.step()
            if on_step:
                on_step(step + 1, 1 - count_parameters(student, trainable_only=False) / before)
    student.eval().zero_grad(set_to_none=True)
    student.config = copy.deepcopy(model.config)
    student.config.pruned = {**model.config.pruned, **pruned_layout(student, reference)}
    if cfg.decoder_layers:
        keep_decoder_layers(student, cfg.decoder_layers)
    after = count_parameters(student, trainable_only=False)
    report = {
        "channel_ratio": ratio,
        "round_to": round_to,
        "parameters_before": before,
        "parameters_after": after,
        "reduction": 1 - after / before,
        "searched_reduction": expected,
        "pruned_modules": len(student.config.pruned),
        "decoder_layers": len(student.head.detector.decoder.layers),
    }
    return student, report
