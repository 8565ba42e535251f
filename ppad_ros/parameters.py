"""The perception node's parameters: one table (name, default, range, meaning), used to declare them,
validate them and document them (README's table is checked against it by the tests)."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ppad_ros.image_conversion import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ParameterSpec:
    name: str
    default: Any
    description: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None


PARAMETERS: tuple[ParameterSpec, ...] = (
    ParameterSpec(
        "checkpoint",
        "",
        "ppad checkpoint directory (or exported .onnx); relative paths are tried "
        "against the working directory, then the package's share directory",
    ),
    ParameterSpec("model_name", "", "name published in each PerceptionResult; empty: the checkpoint folder name"),
    ParameterSpec("backend", "torch", "inference backend", choices=("torch", "onnxruntime")),
    ParameterSpec("device", "cpu", "cpu, cuda or cuda:N"),
    ParameterSpec(
        "precision",
        "fp32",
        "fp32; bf16 (CPU with AVX512-BF16/AMX) or fp16 (CUDA) with torch; int8 with onnxruntime",
        choices=("fp32", "bf16", "fp16", "int8"),
    ),
    ParameterSpec("channels_last", False, "torch: NHWC memory layout (faster convolutions on CPU)"),
    ParameterSpec("cuda_graph", False, "torch on CUDA: replay one captured forward per input size (no launch cost)"),
    ParameterSpec(
        "score_threshold",
        -1.0,
        "detections below this score are not published; < 0: the checkpoint's",
        minimum=-1.0,
        maximum=1.0,
    ),
    ParameterSpec(
        "resize",
        "stretch",
        "stretch (the paper's protocol) or aspect-preserving letterbox",
        choices=("stretch", "letterbox"),
    ),
    ParameterSpec("input_height", 0, "network input height (multiple of 32); 0: the checkpoint's", minimum=0),
    ParameterSpec("input_width", 0, "network input width (multiple of 32); 0: the checkpoint's", minimum=0),
    ParameterSpec(
        "class_id_mode",
        "index",
        "ObjectHypothesis.class_id as the decimal class index (joins LabelInfo) or the class name",
        choices=("index", "name"),
    ),
    ParameterSpec(
        "input_transport",
        "raw",
        "subscribe to `image` (sensor_msgs/Image) or `image/compressed` (sensor_msgs/CompressedImage)",
        choices=("raw", "compressed"),
    ),
    ParameterSpec(
        "max_input_age_ms", 0.0, "> 0: frames whose header stamp is older than this are dropped", minimum=0.0
    ),
    ParameterSpec("max_image_pixels", DEFAULT_MAX_PIXELS, "larger frames are rejected", minimum=1),
    ParameterSpec("publish_overlay", True, "render `debug/overlay` (only while it has subscribers)"),
    ParameterSpec("publish_combined", True, "publish the combined `perception` message"),
    ParameterSpec("warmup_iterations", 2, "inferences on a blank frame before the node reports ready", minimum=0),
    ParameterSpec("diagnostics_period_s", 1.0, "period of the /diagnostics status", minimum=0.1),
    ParameterSpec("autostart", True, "configure and activate at start-up; false: wait for a lifecycle manager"),
)


@dataclass
class NodeParameters:
    checkpoint: str
    model_name: str
    backend: str
    device: str
    precision: str
    channels_last: bool
    cuda_graph: bool
    score_threshold: float
    resize: str
    input_height: int
    input_width: int
    class_id_mode: str
    input_transport: str
    max_input_age_ms: float
    max_image_pixels: int
    publish_overlay: bool
    publish_combined: bool
    warmup_iterations: int
    diagnostics_period_s: float
    autostart: bool

    @classmethod
    def from_values(cls, values: dict[str, Any]) -> NodeParameters:
        """Validated parameters; a ValueError names the parameter and its allowed values or range."""
        specs = {spec.name: spec for spec in PARAMETERS}
        for name, value in values.items():
            spec = specs[name]
            if spec.choices and value not in spec.choices:
                raise ValueError(f"parameter {name}={value!r} is not one of {', '.join(spec.choices)}")
            if spec.minimum is not None and value < spec.minimum:
                raise ValueError(f"parameter {name}={value} is below its minimum {spec.minimum}")
            if spec.maximum is not None and value > spec.maximum:
                raise ValueError(f"parameter {name}={value} is above its maximum {spec.maximum}")
        if not values.get("checkpoint"):
            raise ValueError("parameter checkpoint is empty: set it (config/teacher.yaml, config/student.yaml)")
        for name in ("input_height", "input_width"):
            if values[name] % 32:
                raise ValueError(f"parameter {name}={values[name]} must be a multiple of 32 (or 0)")
        return cls(**{f.name: values[f.name] for f in fields(cls)})


def markdown_table() -> str:
    """The README's parameter table."""
    lines = ["| parameter | default | meaning |", "|---|---|---|"]
    for spec in PARAMETERS:
        meaning = spec.description
        if spec.choices:
            meaning += " (" + " \\| ".join(spec.choices) + ")"
        lines.append(f"| `{spec.name}` | `{spec.default!r}` | {meaning} |")
    return "\n".join(lines) + "\n"
