"""ONNX export (fused graph, dynamic batch, architecture and thresholds in the file's metadata), parity
check of ONNX Runtime or OpenVINO against PyTorch, and optional INT8 static quantisation with ONNX Runtime."""

from __future__ import annotations

import logging
import os
import platform
import warnings
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import torch
import yaml
from torch import nn

from ppad_core.image import IMAGE_SUFFIXES, stretch_to_input
from ppad_core.model.checkpoint import META_FILE, WEIGHTS_FILE, load_checkpoint, read_metadata
from ppad_core.model.config import ModelConfig
from ppad_core.model.fusion import fuse_model
from ppad_core.model.rmt_ppad import RMTPPAD
from ppad_core.runtime.backends import OUTPUT_NAMES, TorchBackend, file_digest, onnx_backend
from ppad_core.runtime.options import RuntimeOptions

CONFIG_METADATA_KEY = "ppad_model_config"
REDUCE_RANGE_METADATA_KEY = "ppad_int8_reduce_range"
CPUINFO = "/proc/cpuinfo"
VNNI_FLAGS = ("avx512_vnni", "avx_vnni")
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
# the file each precision runs: bf16 (openvino) splits the fp32 graph, int8 runs the quantised one
ONNX_FILES = {"fp32": "model.onnx", "bf16": "model.onnx", "auto": "model.onnx", "int8": "model.int8.onnx"}
DEFAULT_OPSET = 17
NOISE_SEED = 0  # the parity check's noise images when no data is given: the same on every run
ONNXRUNTIME_CPU = RuntimeOptions(backend="onnxruntime")

log = logging.getLogger(__name__)


class _OutputTuple(nn.Module):
    """The model with its output mapping flattened to the fixed ONNX output order."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, ...]:
        outputs = self.model(images)
        return tuple(outputs[name] for name in OUTPUT_NAMES)


def export_onnx(
    model: RMTPPAD, path: str | Path, opset: int = DEFAULT_OPSET, config: ModelConfig | None = None
) -> Path:
    """Fused fp32 graph with input `images` [B, 3, H, W] in [0, 1]; the batch dimension is dynamic. `config`
    (default the model's) is stored in the file: its input size is the graph's."""
    config = config or model.config
    if opset < 17:
        raise ValueError(f"opset {opset} is too old: LayerNorm and grid_sample need opset >= 17")
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fused = _OutputTuple(fuse_model(model).float().cpu()).eval()
    height, width = config.input_size
    dynamic = {"images": {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    partial = path.with_name(path.name + ".partial")
    with warnings.catch_warnings():
        # The tracer notes that shapes become constants: intended, the input size is fixed per checkpoint.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", message="Constant folding")
        warnings.filterwarnings("ignore", category=DeprecationWarning)  # the TorchScript exporter: chosen
        torch.onnx.export(
            fused,
            (torch.rand(1, 3, height, width),),
            str(partial),
            input_names=["images"],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic,
            opset_version=opset,
            dynamo=False,
        )
    graph = onnx.load(str(partial))
    _set_metadata(graph, {CONFIG_METADATA_KEY: yaml.safe_dump(config.to_dict(), sort_keys=False)})
    onnx.save(graph, str(partial))
    os.replace(partial, path)
    return path


def _set_metadata(graph, values: dict[str, str]) -> None:
    for key, value in values.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value


def onnx_model_config(path: str | Path) -> ModelConfig:
    """The architecture, class names and thresholds stored in an exported file (read with onnx: a few ms, where an
    ONNX Runtime session would first optimise the whole graph)."""
    import onnx

    metadata = {entry.key: entry.value for entry in onnx.load(str(path), load_external_data=False).metadata_props}
    if CONFIG_METADATA_KEY not in metadata:
        raise ValueError(f"{path}: not exported by ppad (no {CONFIG_METADATA_KEY} metadata)")
    return ModelConfig.from_dict(yaml.safe_load(metadata[CONFIG_METADATA_KEY]))


def resolve_onnx(path: str | Path, options: RuntimeOptions) -> tuple[Path, ModelConfig]:
    """An .onnx file as given, the one in a checkpoint directory for `options.precision`, or (fp32, bf16) the checkpoint
    exported on first use into `options.onnx_cache_dir()`, a folder per weights digest. Logs the file it uses."""
    path = Path(path)
    if path.suffix == ".onnx":
        return path, onnx_model_config(path)
    candidate = path / ONNX_FILES[options.precision]
    if candidate.is_file():
        return candidate, onnx_model_config(candidate)
    if candidate.name != ONNX_FILES["fp32"]:
        raise FileNotFoundError(
            f"{candidate} not found; create it with `ppad export {path} --format onnx --int8 --calib IMAGES`"
        )
    cached = options.onnx_cache_dir() / _weights_digest(path) / ONNX_FILES["fp32"]
    if cached.is_file():
        log.info("%s: %s runs as %s (ONNX cache)", options.backend, path, cached)
    else:
        log.warning("%s: exporting %s to %s (ONNX cache, first use)", options.backend, path, cached)
        export_onnx(load_checkpoint(path)[0], cached)
    return cached, onnx_model_config(cached)


def _weights_digest(checkpoint: Path) -> str:
    weights = checkpoint / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(f"{checkpoint}: not a ppad checkpoint directory (no {WEIGHTS_FILE})")
    return file_digest(weights)


def sample_inputs(config: ModelConfig, image_dir: str | Path, count: int = 8) -> np.ndarray:
    """uint8 RGB batch [N, 3, H, W] of the first `count` images under a folder (searched recursively)."""
    files = sorted(p for p in Path(image_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)[:count]
    images = [image for image in (cv2.imread(str(p), cv2.IMREAD_COLOR) for p in files) if image is not None]
    if not images:
        raise FileNotFoundError(f"{image_dir}: no readable images")
    batch = np.stack([stretch_to_input(image, config.input_size) for image in images])
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def calibration_dir(checkpoint: str | Path, given: str | Path | None = None) -> Path:
    """Where INT8 calibration images come from: the folder `given`, else the training data the checkpoint's
    model.yaml records (provenance `data`). Never a default data set: a model is calibrated on its own domain."""
    if given:
        return Path(given)
    is_checkpoint = (Path(checkpoint) / META_FILE).is_file()
    recorded = (read_metadata(checkpoint).get("provenance") or {}).get("data") if is_checkpoint else None
    if not recorded:
        raise ValueError(
            f"INT8 calibration needs images: {checkpoint} records no training data (provenance `data` in "
            f"{META_FILE}); give a folder of images with --calib"
        )
    if not Path(recorded).is_dir():
        raise FileNotFoundError(
            f"INT8 calibration: {checkpoint} was trained on {recorded}, which is not here; give --calib IMAGES"
        )
    return Path(recorded)


def own_images(
    checkpoint: str | Path, config: ModelConfig, given: str | Path | None, count: int, required: bool
) -> np.ndarray | None:
    """`sample_inputs` of `calibration_dir`, or None where there is no such data and none is `required` (a folder
    that was `given` always is): the caller then falls back to images of its own."""
    try:
        return sample_inputs(config, calibration_dir(checkpoint, given), count)
    except (ValueError, FileNotFoundError):
        if required or given:
            raise
    return None


def check_inputs(
    checkpoint: str | Path, config: ModelConfig, given: str | Path | None, count: int, calibrate: bool
) -> np.ndarray:
    """Images for the parity check and, when `calibrate`, INT8 calibration (`calibration_dir`). Without any
    data a parity check alone runs on seeded uniform noise, which exercises every output as well."""
    images = own_images(checkpoint, config, given, count, required=calibrate)
    if images is not None:
        return images
    height, width = config.input_size
    return np.random.default_rng(NOISE_SEED).integers(0, 256, (count, 3, height, width), dtype=np.uint8)


def onnx_parity(
    model: RMTPPAD, onnx_path: str | Path, images_uint8: np.ndarray, options: RuntimeOptions = ONNXRUNTIME_CPU
) -> dict[str, float]:
    """Max absolute difference of each output between the fused PyTorch model (fp32, CPU) and the exported graph
    run by the backend `options` name: ONNX Runtime by default, or OpenVINO (whose compiled models go to
    `options.openvino_cache_dir()`)."""
    reference = TorchBackend(model)(images_uint8)
    exported = onnx_backend(onnx_path, options)(images_uint8)
    return {name: float(np.abs(reference[name] - exported[name]).max()) for name in OUTPUT_NAMES}


class _CalibrationReader:
    """onnxruntime.quantization.CalibrationDataReader over single-image batches."""

    def __init__(self, input_name: str, images_uint8: np.ndarray) -> None:
        self.input_name = input_name
        self._batches: Iterator[np.ndarray] = iter(images_uint8[i : i + 1] for i in range(len(images_uint8)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else {self.input_name: batch.astype(np.float32) / 255.0}


def cpu_has_vnni(cpuinfo: str | Path = CPUINFO) -> bool:
    """Whether this CPU has x86 VNNI (AVX512-VNNI or AVX-VNNI) int8 dot products, by the flags in /proc/cpuinfo;
    False where that file cannot be read."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}
    return bool(flags & set(VNNI_FLAGS))


def needs_reduce_range(machine: str | None = None, cpuinfo: str | Path = CPUINFO) -> bool:
    """7-bit weights for an x86 CPU without VNNI: its u8 x s8 int8 kernels add pairs of products in int16
    (vpmaddubsw), which saturates with full 8-bit weights (ONNX Runtime's quantisation notes); other CPUs
    keep 8 bits."""
    machine = (machine or platform.machine()).lower()
    return machine in X86_MACHINES and not cpu_has_vnni(cpuinfo)


def quantize_int8(
    onnx_path: str | Path,
    out_path: str | Path,
    calibration_uint8: Iterable[np.ndarray],
    reduce_range: bool | None = None,
) -> Path:
    """Static QDQ quantisation of the convolutions and matrix multiplies (per-channel weights): QuantizeLinear /
    DequantizeLinear pairs around fp32 operators, which ONNX Runtime fuses into QLinearConv and OpenVINO reads as
    FakeQuantize and runs in int8. `reduce_range` (7-bit weights) defaults to `needs_reduce_range()` of the
    machine that quantises; the choice is recorded in the file's metadata (`ppad_int8_reduce_range`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if reduce_range is None:
        reduce_range = needs_reduce_range()
    out_path = Path(out_path)
    prepared = out_path.with_name(out_path.stem + ".prep.onnx")
    quant_pre_process(str(onnx_path), str(prepared), skip_symbolic_shape=True)
    try:
        quantize_static(
            str(prepared),
            str(out_path),
            _CalibrationReader("images", np.asarray(calibration_uint8)),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "MatMul"],
            per_channel=True,
            reduce_range=reduce_range,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        prepared.unlink(missing_ok=True)
    _copy_metadata(onnx_path, out_path, {REDUCE_RANGE_METADATA_KEY: str(reduce_range).lower()})
    return out_path


def _copy_metadata(source: str | Path, target: str | Path, extra: dict[str, str] | None = None) -> None:
    import onnx

    original = {entry.key: entry.value for entry in onnx.load(str(source), load_external_data=False).metadata_props}
    original.update(extra or {})
    graph = onnx.load(str(target))
    present = {entry.key for entry in graph.metadata_props}
    _set_metadata(graph, {k: v for k, v in original.items() if k not in present})
    onnx.save(graph, str(target))
