"""Architecture configuration: one dataclass schema shared by YAML configs and checkpoints."""

from __future__ import annotations

import dataclasses
import importlib.metadata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


@dataclass
class StageConfig:
    """One HGNetV2 stage: an optional stride-2 depthwise downsample, then HGBlocks."""

    mid_channels: int
    out_channels: int
    kernel_size: int = 3
    units: int = 6
    blocks: int = 1
    light: bool = False
    downsample: bool = True


@dataclass
class BackboneConfig:
    stem_mid: int = 32
    stem_out: int = 48
    stages: list[StageConfig] = field(default_factory=list)


@dataclass
class EncoderConfig:
    """Hybrid encoder: AIFI on the stride-32 map plus CNN cross-scale fusion (RepC3)."""

    hidden_dim: int = 256
    ffn_dim: int = 1024
    num_heads: int = 8
    repc3_depth: int = 3


@dataclass
class HeadConfig:
    """Multi-task head: input projection, GCA, RT-DETR decoder, adaptive segmentation decoder."""

    hidden_dim: int = 256
    num_queries: int = 300
    num_heads: int = 8
    num_points: int = 4
    decoder_layers: int = 6
    ffn_dim: int = 1024
    num_denoising: int = 100
    label_noise_ratio: float = 0.5
    box_noise_scale: float = 1.0
    gate_reduction: int = 8
    seg_channels: int = 64


@dataclass
class ModelConfig:
    """Everything needed to rebuild a model and interpret its outputs."""

    name: str = "rmt_ppad_l"
    input_size: tuple[int, int] = (640, 640)  # (height, width), both divisible by 32
    class_names: list[str] = field(default_factory=lambda: ["vehicle"])
    seg_names: list[str] = field(default_factory=lambda: ["drivable_area", "lane_line"])
    seg_thresholds: list[float] = field(default_factory=lambda: [0.45, 0.90])
    conf_threshold: float = 0.25  # detection score kept by the Predictor (evaluation scores every query)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    head: HeadConfig = field(default_factory=HeadConfig)
    # module name -> channel widths of a pruned student (ppad_core.model.pruned_layout); empty when unpruned
    pruned: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def validate(self) -> None:
        height, width = self.input_size
        if height % 32 or width % 32 or height <= 0 or width <= 0:
            raise ValueError(f"input_size {self.input_size} must be positive multiples of 32")
        if len(self.seg_names) != 2 or len(self.seg_thresholds) != 2:
            raise ValueError("seg_names and seg_thresholds need 2 entries (drivable area, lane line)")
        if not self.class_names:
            raise ValueError("class_names must name at least one detection class")
        if self.encoder.hidden_dim % self.encoder.num_heads:
            raise ValueError("encoder.hidden_dim must be divisible by encoder.num_heads")
        if self.head.hidden_dim % self.head.num_heads:
            raise ValueError("head.hidden_dim must be divisible by head.num_heads")
        if len(self.backbone.stages) != 4:
            raise ValueError("backbone needs 4 stages (strides 4, 8, 16, 32)")

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["input_size"] = list(self.input_size)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown model config keys: {sorted(unknown)}")
        data = dict(data)
        backbone = dict(data.pop("backbone", {}))
        backbone["stages"] = [StageConfig(**s) for s in backbone.get("stages", [])]
        config = cls(
            backbone=BackboneConfig(**backbone),
            encoder=EncoderConfig(**data.pop("encoder", {})),
            head=HeadConfig(**data.pop("head", {})),
            **data,
        )
        config.input_size = tuple(config.input_size)
        config.validate()
        return config


def load_model_config(path: str | Path) -> ModelConfig:
    """Read an architecture YAML (a `config/*.yaml` file or a checkpoint's `model.yaml`)."""
    path = Path(path)
    with path.open() as f:
        data = yaml.safe_load(f)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    data = data.get("model", data)
    try:
        return ModelConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc


def builtin_config_dirs() -> list[Path]:
    """Where architecture YAMLs ship: the source tree's `config/`, then the folder(s) the installed `ppad`
    distribution put its `config/*.yaml` data files in (setup.py says where; this module does not)."""
    try:
        files = importlib.metadata.files("ppad") or []
    except importlib.metadata.PackageNotFoundError:
        files = []
    installed = {Path(f.locate()).parent for f in files if f.parent.name == "config" and f.suffix == ".yaml"}
    return [Path(__file__).resolve().parents[2] / "config", *sorted(installed)]


def builtin_config_names() -> list[str]:
    names = set()
    for directory in builtin_config_dirs():
        names.update(p.stem for p in directory.glob("rmt_ppad_*.yaml"))
    return sorted(names)


def resolve_model_config(spec: str | Path) -> ModelConfig:
    """A YAML path, a checkpoint directory, or the name of a shipped config (e.g. `rmt_ppad_s`)."""
    path = Path(spec)
    if path.is_dir():
        path = path / "model.yaml"
    if path.is_file():
        return load_model_config(path)
    for directory in builtin_config_dirs():
        candidate = directory / f"{spec}.yaml"
        if candidate.is_file():
            return load_model_config(candidate)
    raise FileNotFoundError(
        f"{spec}: no such config file or checkpoint directory, and not a shipped config "
        f"(available: {', '.join(builtin_config_names()) or 'none found'})"
    )
