"""How a model is run: every runtime knob, its choices, default and help, in one table.

`RuntimeOptions` is that table. The `ppad` flags (`add_runtime_arguments`), the perception node's
parameters (ppad_ros.parameters) and the benchmark variants are all generated from it, and
`validate` is the one place where a combination is accepted or refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ppad_core.image import RESIZE_MODES
from ppad_core.model.config import ModelConfig

BACKENDS = ("torch", "onnxruntime", "openvino")
PRECISIONS = ("fp32", "bf16", "fp16", "int8", "auto")
BACKEND_PRECISIONS = {
    "torch": ("fp32", "bf16", "fp16", "auto"),
    "onnxruntime": ("fp32", "int8", "auto"),
    # bf16: all but the detection decoder in bf16; int8: the QDQ file ONNX Runtime's quantiser writes (model.int8.onnx)
    "openvino": ("fp32", "bf16", "int8", "auto"),
}
CPU_ONLY_BACKENDS = ("openvino",)  # OpenVINO's GPU plugin drives Intel GPUs, not the CUDA devices `device` names
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")
CHECKPOINT_SCORE_THRESHOLD = -1.0  # score_threshold below 0: the checkpoint's own
CHECKPOINT_INPUT_SIZE = 0  # an input_size entry of 0: the checkpoint's own


class OptionError(ValueError):
    """A runtime option has a value it does not accept; `option` is its field name."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class Knob:
    """The description of one runtime option. `flag` is its `ppad` spelling ("" = not a flag); `node` says
    whether the perception node declares it as a parameter."""

    help: str
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    flag: str = ""
    node: bool = True


def _knob(default: Any, help: str, **kwargs: Any) -> Any:
    return field(default=default, metadata={"knob": Knob(help, **kwargs)})


@dataclass(frozen=True)
class RuntimeOptions:
    """Every runtime knob. Sentinel defaults (-1 score threshold, 0 input size) mean "the checkpoint's"."""

    backend: str = _knob(
        "torch",
        "inference backend; onnxruntime and openvino run the checkpoint's ONNX export",
        choices=BACKENDS,
        flag="--backend",
    )
    device: str = _knob("cpu", "cpu, cuda or cuda:N (torch, onnxruntime); openvino runs on cpu", flag="--device")
    precision: str = _knob(
        "fp32",
        "fp32 (every backend); bf16 (CPU with AVX512-BF16/AMX) with torch or openvino; fp16 (CUDA) with torch; "
        "int8 with onnxruntime or openvino; auto: fp16 with torch on CUDA, bf16 with torch or openvino where the "
        "CPU runs it natively, else fp32",
        choices=PRECISIONS,
        flag="--precision",
    )
    channels_last: bool = _knob(False, "torch: NHWC memory layout (faster convolutions on CPU)", flag="--channels-last")
    cuda_graph: bool = _knob(
        False, "torch on CUDA: replay one captured forward per input size (no launch cost)", flag="--cuda-graph"
    )
    score_threshold: float = _knob(
        CHECKPOINT_SCORE_THRESHOLD,
        "detections below this score are not kept; < 0: the checkpoint's",
        minimum=-1.0,
        maximum=1.0,
        flag="--conf",
    )
    resize: str = _knob(
        "stretch",
        "stretch (the paper's protocol) or aspect-preserving letterbox",
        choices=RESIZE_MODES,
        flag="--resize",
    )
    input_size: tuple[int, int] = _knob(
        (CHECKPOINT_INPUT_SIZE, CHECKPOINT_INPUT_SIZE),
        "network input (height, width), multiples of 32; 0: the checkpoint's",
        minimum=0,
        flag="--input-size",
    )
    onnx_cache: str = _knob(
        "",
        "folder where onnxruntime and openvino keep the ONNX export of a checkpoint directory, and openvino its "
        "compiled models (under openvino/); empty: $XDG_CACHE_HOME/ppad/onnx (~/.cache/ppad/onnx)",
        flag="--onnx-cache",
    )
    fuse: bool = _knob(True, "torch: fold Conv+BN and merge RepConv (false: the eager benchmark baseline)", node=False)

    def validate(self) -> RuntimeOptions:
        """These options, or an OptionError (a ValueError) naming the option and what it accepts."""
        for item in dataclasses.fields(self):
            knob = item.metadata["knob"]
            check_value(item.name, getattr(self, item.name), knob.choices, knob.minimum, knob.maximum)
        if not DEVICE_PATTERN.fullmatch(self.device):
            raise OptionError("device", f"device={self.device!r} is not one of cpu, cuda, cuda:N")
        allowed = BACKEND_PRECISIONS[self.backend]
        if self.precision not in allowed:
            raise OptionError(
                "precision",
                f"precision={self.precision!r} is not available with the {self.backend} backend ({', '.join(allowed)})",
            )
        if self.backend in CPU_ONLY_BACKENDS and self.device != "cpu":
            raise OptionError(
                "device",
                f"device={self.device!r} is not available with the {self.backend} backend (cpu only); "
                "torch and onnxruntime run on CUDA",
            )
        if self.precision == "fp16" and not self.on_cuda:
            raise OptionError("precision", "precision='fp16' needs a CUDA device; on CPU use bf16 (or fp32)")
        if self.cuda_graph and self.backend != "torch":
            raise OptionError("cuda_graph", "cuda_graph is an option of the torch backend")
        if self.cuda_graph and not self.on_cuda:
            raise OptionError("cuda_graph", f"cuda_graph needs a CUDA device, not device={self.device!r}")
        if len(self.input_size) != 2 or any(side % 32 for side in self.input_size):
            raise OptionError(
                "input_size", f"input_size={self.input_size} must be (height, width), multiples of 32 (or 0)"
            )
        return self

    @property
    def on_cuda(self) -> bool:
        return self.device.startswith("cuda")

    @property
    def conf_threshold_override(self) -> float | None:
        """The score threshold asked for, or None for the checkpoint's."""
        return None if self.score_threshold < 0 else self.score_threshold

    def model_config(self, config: ModelConfig, fixed_size: bool = False) -> ModelConfig:
        """`config` at the asked input size: the one way a model runs at another size than it was saved with.
        `fixed_size`: the network cannot change size (an exported ONNX graph); a different size is refused."""
        size = tuple(asked or own for asked, own in zip(self.input_size, config.input_size))
        if size == tuple(config.input_size):
            return config
        if fixed_size:
            raise OptionError(
                "input_size",
                f"input_size={size}: the ONNX graph was exported at {tuple(config.input_size)}; "
                "another input size needs the torch backend",
            )
        resized = dataclasses.replace(config, input_size=size)
        resized.validate()
        return resized

    def onnx_cache_dir(self) -> Path:
        """The explicit `onnx_cache`, else the documented default under $XDG_CACHE_HOME (~/.cache)."""
        if self.onnx_cache:
            return Path(self.onnx_cache)
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ppad" / "onnx"

    def openvino_cache_dir(self) -> Path:
        """Where the openvino backend keeps compiled models: `openvino/` inside `onnx_cache_dir()`."""
        return self.onnx_cache_dir() / "openvino"

    @classmethod
    def from_args(cls, namespace: argparse.Namespace, **overrides: Any) -> RuntimeOptions:
        """The options `add_runtime_arguments` put on `namespace` (others at their defaults), validated."""
        values = {name: getattr(namespace, name) for name in KNOBS if hasattr(namespace, name)}
        if "input_size" in values:
            values["input_size"] = tuple(values["input_size"])
        return cls(**(values | overrides)).validate()


def check_value(
    name: str, value: Any, choices: tuple = (), minimum: float | None = None, maximum: float | None = None
) -> None:
    """The one choices/range check of an option or parameter (each side of a tuple against the range); an
    OptionError names it."""
    if choices and value not in choices:
        raise OptionError(name, f"{name}={value!r} is not one of {', '.join(choices)}")
    for part in value if isinstance(value, tuple) else (value,):
        if minimum is not None and part < minimum:
            raise OptionError(name, f"{name}={value!r} is below its minimum {minimum}")
        if maximum is not None and part > maximum:
            raise OptionError(name, f"{name}={value!r} is above its maximum {maximum}")


KNOBS: dict[str, Knob] = {item.name: item.metadata["knob"] for item in dataclasses.fields(RuntimeOptions)}
DEFAULT_OPTIONS = RuntimeOptions()


def add_runtime_arguments(
    parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ()
) -> None:
    """A "runtime" argument group with the `ppad` flag of each option (all with a flag, or `only` those), less
    `exclude`; `RuntimeOptions.from_args` reads them back."""
    group = parser.add_argument_group("runtime")
    for name, knob in KNOBS.items():
        if not knob.flag or name in exclude or (only is not None and name not in only):
            continue
        group.add_argument(knob.flag, dest=name, help=flag_help(name), **_argument_kind(name, knob))


def flag_help(name: str) -> str:
    """The option's help with its default, as `ppad --help` shows it."""
    default = getattr(DEFAULT_OPTIONS, name)
    if isinstance(default, bool) or default == "":
        return KNOBS[name].help
    shown = " ".join(map(str, default)) if isinstance(default, tuple) else default
    return f"{KNOBS[name].help} (default {shown})"


def _argument_kind(name: str, knob: Knob) -> dict[str, Any]:
    default = getattr(DEFAULT_OPTIONS, name)
    if isinstance(default, bool):
        return {"action": "store_true"}
    if isinstance(default, tuple):
        return {"type": int, "nargs": 2, "metavar": ("H", "W"), "default": default}
    kind: dict[str, Any] = {"type": type(default), "default": default, "metavar": knob.flag[2:].upper()}
    return kind | ({"choices": knob.choices} if knob.choices else {})
