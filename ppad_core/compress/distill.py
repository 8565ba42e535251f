"""Head-agnostic feature distillation: a frozen teacher's backbone-stage and encoder features guide the
student through 1x1 adapters (where widths differ), with MSE or channel-wise distillation (CWD).
See docs/compression.md §3."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ppad_core.model.checkpoint import load_checkpoint
from ppad_core.model.rmt_ppad import RMTPPAD
from ppad_core.train.auxiliary import AuxiliaryLossFactory
from ppad_core.train.config import DistillConfig, TrainConfig


def _as_list(output) -> list[torch.Tensor]:
    return list(output) if isinstance(output, (list, tuple)) else [output]


class _FeatureTap:
    """Forward hooks that keep the latest outputs of named modules."""

    def __init__(self, model: nn.Module, layers: list[str]) -> None:
        modules = dict(model.named_modules())
        missing = [name for name in layers if name not in modules]
        if missing:
            raise ValueError(f"distillation layers not in the model: {missing}")
        self.features: dict[str, list[torch.Tensor]] = {}
        for name in layers:
            modules[name].register_forward_hook(lambda _m, _i, out, name=name: self._keep(name, out))

    def _keep(self, name: str, output) -> None:
        self.features[name] = _as_list(output)


def channel_wise_distillation(student: torch.Tensor, teacher: torch.Tensor, temperature: float) -> torch.Tensor:
    """CWD (Shu et al. 2021): KL between per-channel spatial softmax maps, times T^2, mean over channels."""
    s = (student.flatten(2) / temperature).log_softmax(-1)
    t = (teacher.flatten(2) / temperature).softmax(-1)
    return (t * (t.clamp_min(1e-12).log() - s)).sum(-1).mean() * temperature**2


class FeatureDistiller(nn.Module):
    """Holds the frozen teacher and the adapters; `loss(images)` after each student forward.

    An `AuxiliaryLoss` of the trainer: logged as loss_distill, the adapters trained (and kept in the
    training state, not in the student's checkpoint), `provenance` recorded in the student's checkpoints.
    """

    name = "distill"

    def __init__(
        self, student: nn.Module, teacher: nn.Module, cfg: DistillConfig, provenance: dict | None = None
    ) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.provenance = provenance if provenance is not None else {"kind": "distilled", "teacher": cfg.teacher}
        self.teacher = teacher.eval().requires_grad_(False)
        self.student_tap = _FeatureTap(student, cfg.layers)
        self.teacher_tap = _FeatureTap(self.teacher, cfg.layers)
        self.adapters = nn.ModuleDict()
        device = next(student.parameters()).device
        self.teacher.to(device)
        height, width = student.config.input_size
        was_training = student.training
        with torch.no_grad():  # observe the widths once to build the adapters
            student.eval()(torch.zeros(1, 3, height, width, device=device))
            self.teacher(torch.zeros(1, 3, height, width, device=device))
        student.train(was_training)
        for name in cfg.layers:
            for index, (s, t) in enumerate(zip(self.student_tap.features[name], self.teacher_tap.features[name])):
                if s.shape[1] != t.shape[1]:
                    self.adapters[self._key(name, index)] = nn.Conv2d(s.shape[1], t.shape[1], 1).to(device)

    @staticmethod
    def _key(name: str, index: int) -> str:
        return f"{name.replace('.', '_')}_{index}"

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """Feature loss between the student's latest features and the teacher's on the same images."""
        with torch.no_grad():
            self.teacher(images)
        total = images.new_zeros(())
        count = 0
        for name in self.cfg.layers:
            for index, (s, t) in enumerate(zip(self.student_tap.features[name], self.teacher_tap.features[name])):
                key = self._key(name, index)
                s = self.adapters[key](s) if key in self.adapters else s
                s, t = s.float(), t.float()
                total = total + (
                    F.mse_loss(s, t)
                    if self.cfg.loss == "mse"
                    else channel_wise_distillation(s, t, self.cfg.temperature)
                )
                count += 1
        return self.cfg.weight * total / max(count, 1)

    @property
    def trainable(self) -> nn.ModuleDict:
        """The adapters: the only weights distillation adds to training."""
        return self.adapters


def distillation_terms(config: TrainConfig) -> list[AuxiliaryLossFactory]:
    """The trainer's loss terms for `config`: feature distillation from `distill.teacher`, or none."""
    if not config.distill.teacher:
        return []
    provenance = {"kind": "distilled", "teacher": config.distill.teacher, "initialised_from": str(config.model)}

    def build(student: RMTPPAD) -> FeatureDistiller:
        return FeatureDistiller(student, load_checkpoint(config.distill.teacher)[0], config.distill, provenance)

    return [build]
