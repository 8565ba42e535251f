"""Training configuration: one YAML file (see config/train_*.yaml) mapped onto dataclasses."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ppad_core.data.augment import AugmentConfig
from ppad_core.train.losses import LossConfig


@dataclass
class DataConfig:
    root: str = "data/synthetic"
    train_split: str = "train2017"
    val_split: str = "val2017"
    cache: bool = False  # decode and stretch every image once, keep it in memory
    workers: int = 2


@dataclass
class OptimizerConfig:
    name: str = "sgd"  # sgd (Nesterov, the official recipe) or adamw
    lr: float = 0.01
    momentum: float = 0.937
    weight_decay: float = 5e-4
    nominal_batch: int = 64  # weight decay is scaled by batch / nominal_batch, as the official trainer does


@dataclass
class ScheduleConfig:
    warmup_epochs: float = 3.0
    min_warmup_iters: int = 100
    final_lr_ratio: float = 0.01  # cosine from lr to lr * final_lr_ratio
    warmup_momentum: float = 0.8


@dataclass
class EMAConfig:
    decay: float = 0.9999
    tau: float = 2000.0


DEFAULT_DISTILL_LAYERS = ["backbone.stages.1", "backbone.stages.2", "backbone.stages.3", "encoder"]


@dataclass
class DistillConfig:
    """The training YAML's `distill` section. `compress` reads it and hands the trainer the matching
    feature-distillation loss term; the trainer itself never looks at it."""

    teacher: str = ""  # teacher checkpoint directory; empty disables distillation
    weight: float = 1.0  # the feature loss's weight next to the task losses
    loss: str = "mse"  # mse | cwd
    temperature: float = 4.0  # CWD softmax temperature
    layers: list[str] = field(default_factory=lambda: list(DEFAULT_DISTILL_LAYERS))

    def validate(self) -> None:
        if self.loss not in ("mse", "cwd"):
            raise ValueError(f"distill.loss {self.loss!r} is not one of mse, cwd")
        if self.weight < 0 or self.temperature <= 0:
            raise ValueError("distill.weight must be >= 0 and distill.temperature > 0")


@dataclass
class TrainConfig:
    model: str = "rmt_ppad_l"  # config name / YAML, or a checkpoint directory to start from
    data: DataConfig = field(default_factory=DataConfig)
    epochs: int = 250
    batch_size: int = 16  # global batch; each DDP process takes batch_size / world_size
    precision: str = "auto"  # auto (fp16 on CUDA, fp32 on CPU), fp32, bf16, fp16
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    grad_clip: float = 10.0
    ema: EMAConfig = field(default_factory=EMAConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    close_mosaic: int = 10  # last epochs trained without mosaic
    loss: LossConfig = field(default_factory=LossConfig)
    val_every: int = 10  # validate every N epochs (0: only after the last); the last epoch always validates
    # also save the training state every N iterations inside an epoch (0: at epoch ends only), so that a long
    # epoch killed midway resumes from its last save instead of its start
    save_every_iters: int = 0
    seed: int = 0
    distill: DistillConfig = field(default_factory=DistillConfig)  # feature distillation from a teacher

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        kinds = {
            "data": DataConfig,
            "optimizer": OptimizerConfig,
            "schedule": ScheduleConfig,
            "ema": EMAConfig,
            "augment": AugmentConfig,
            "loss": LossConfig,
            "distill": DistillConfig,
        }
        unknown = set(data) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown training config keys: {sorted(unknown)}")
        values = {}
        for key, value in data.items():
            if key in kinds:
                allowed = {f.name for f in dataclasses.fields(kinds[key])}
                bad = set(value or {}) - allowed
                if bad:
                    raise ValueError(f"unknown keys in '{key}': {sorted(bad)} (allowed: {sorted(allowed)})")
                values[key] = kinds[key](**(value or {}))
            else:
                values[key] = value
        config = cls(**values)
        if config.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ValueError(f"precision must be auto, fp32, bf16 or fp16, not {config.precision!r}")
        config.distill.validate()
        if config.save_every_iters < 0:
            raise ValueError(f"save_every_iters must be 0 or more, not {config.save_every_iters}")
        if config.optimizer.name not in ("sgd", "adamw"):
            raise ValueError(f"optimizer.name must be sgd or adamw, not {config.optimizer.name!r}")
        return config


def load_train_config(path: str | Path, overrides: dict[str, Any] | None = None) -> TrainConfig:
    path = Path(path)
    data = yaml.safe_load(path.read_text()) or {}
    for dotted, value in (overrides or {}).items():
        node = data
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    try:
        return TrainConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
