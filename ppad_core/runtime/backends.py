"""Inference backends behind the Predictor: PyTorch (eager, fused, channels-last, bf16/fp16, CUDA graphs), ONNX
Runtime and OpenVINO.

Every backend takes a uint8 RGB batch [B, 3, H, W] (numpy) and returns float32 numpy arrays `boxes`
[B, Q, 4] (normalised cx, cy, w, h), `scores` [B, Q, C] and `seg_logits` [B, 2, H, W].
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from ppad_core.model.fusion import fuse_model
from ppad_core.model.rmt_ppad import RMTPPAD
from ppad_core.runtime.openvino_split import onnx_scope, split_float32_head
from ppad_core.runtime.options import DEFAULT_OPTIONS, OptionError, RuntimeOptions

OUTPUT_NAMES = ("boxes", "scores", "seg_logits")
# The module kept in fp32 when the rest runs in bf16 (torch autocast, OpenVINO's bf16 trunk): the detection decoder,
# whose query selection ranks scores and whose boxes are regressed at a precision bf16 cannot hold (bf16 everywhere
# cost 11 mAP50 points on the demo model). The segmentation decoder, 46 % of the paper model's MACs, keeps its
# accuracy in bf16 (benchmarks/RESULTS.md).
FLOAT32_MODULE = "head.detector"

log = logging.getLogger(__name__)


class Backend(Protocol):
    description: str

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]: ...


def cpu_supports_bf16() -> bool:
    """Native bf16 matrix units (AVX512-BF16 or AMX); elsewhere bf16 is emulated and slower than fp32."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def resolve_precision(options: RuntimeOptions) -> RuntimeOptions:
    """`options` with precision `auto` made concrete, as training's `precision: auto`: fp16 with torch on CUDA,
    bf16 with torch or openvino on a CPU that runs it natively, fp32 elsewhere (onnxruntime included). Accuracy of
    the reduced precisions: benchmarks/RESULTS.md."""
    if options.precision != "auto":
        return options
    if options.on_cuda:
        precision = "fp16" if options.backend == "torch" else "fp32"
    else:
        precision = "bf16" if options.backend in ("torch", "openvino") and cpu_supports_bf16() else "fp32"
    return dataclasses.replace(options, precision=precision)


def check_hardware(options: RuntimeOptions) -> None:
    """An OptionError naming the option when this machine cannot run validated `options`: no CUDA device (or not
    that one), no GPU build of onnxruntime, bf16 on a CPU that would emulate it."""
    if options.on_cuda:
        _check_cuda(options)
    elif options.precision == "bf16" and not cpu_supports_bf16():
        raise OptionError(
            "precision", "precision='bf16' needs a CPU with AVX512-BF16 or AMX; this one would emulate it"
        )


def _check_cuda(options: RuntimeOptions) -> None:
    if options.backend == "onnxruntime":
        import onnxruntime as ort

        available = ort.get_available_providers()
        if not _gpu_providers(available):
            raise OptionError(
                "device", f"device={options.device!r}: this onnxruntime has only {available}; install onnxruntime-gpu"
            )
        return
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    index = int(options.device.partition(":")[2] or 0)
    if index >= count:
        found = f"{count} CUDA device(s)" if count else f"no CUDA device (torch {torch.__version__})"
        raise OptionError("device", f"device={options.device!r}: torch finds {found} on this machine; use cpu")


class _Float32Module(nn.Module):
    """Runs the wrapped module (`FLOAT32_MODULE`) in fp32 inside an autocast region, its tensor inputs cast up."""

    def __init__(self, module: nn.Module, device_type: str) -> None:
        super().__init__()
        self.module, self.device_type = module, device_type

    def forward(self, *args):
        with torch.autocast(self.device_type, enabled=False):
            return self.module(*(a.float() if torch.is_tensor(a) and a.is_floating_point() else a for a in args))


def _keep_float32(model: nn.Module, path: str, device_type: str) -> None:
    """Replaces the submodule at dotted `path` by its `_Float32Module`."""
    parent, _, name = path.rpartition(".")
    owner = model.get_submodule(parent)
    setattr(owner, name, _Float32Module(getattr(owner, name), device_type))


class CudaGraphRunner:
    """Replays one captured forward per input shape. At batch 1 these networks are launch-bound on a GPU (a few
    thousand small kernels, each one Python call): a replay launches them all at once. The outputs it returns are
    the graph's own buffers, overwritten by the next call."""

    def __init__(self, forward: Callable[[torch.Tensor], dict[str, torch.Tensor]], warmup: int = 3) -> None:
        self.forward, self.warmup = forward, warmup
        self.graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, torch.Tensor, dict[str, torch.Tensor]]] = {}

    def __call__(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (tuple(batch.shape), batch.stride(), batch.dtype, batch.device)
        if key not in self.graphs:
            self.graphs[key] = self._capture(batch)
        graph, static_input, static_outputs = self.graphs[key]
        static_input.copy_(batch)
        graph.replay()
        return static_outputs

    def _capture(self, batch: torch.Tensor) -> tuple[torch.cuda.CUDAGraph, torch.Tensor, dict[str, torch.Tensor]]:
        static_input = batch.clone()
        side = torch.cuda.Stream(batch.device)
        side.wait_stream(torch.cuda.current_stream(batch.device))
        with torch.cuda.stream(side):  # cuDNN autotuning and lazy initialisation must happen before the capture
            for _ in range(self.warmup):
                self.forward(static_input)
        torch.cuda.current_stream(batch.device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_outputs = self.forward(static_input)
        return graph, static_input, static_outputs


class TorchBackend:
    """PyTorch inference: Conv+BN folded and RepConv merged unless `options.fuse` is off (the eager baseline); on
    CUDA, `options.cuda_graph` captures the forward once per input shape and replays it."""

    def __init__(self, model: RMTPPAD, options: RuntimeOptions = DEFAULT_OPTIONS) -> None:
        options = resolve_precision(dataclasses.replace(options, backend="torch").validate())
        check_hardware(options)
        self.device = torch.device(options.device)
        if self.device.type == "cuda":  # the network's input size never changes: autotuned conv kernels pay off
            torch.backends.cudnn.benchmark = True
        self.autocast_dtype = _autocast_dtype(options.precision)
        model = fuse_model(model) if options.fuse else copy.deepcopy(model).eval()
        model = model.to(self.device)
        if self.autocast_dtype is not None:  # reduced precision for the convolutional trunk only
            _keep_float32(model, FLOAT32_MODULE, self.device.type)
        self.memory_format = torch.channels_last if options.channels_last else torch.contiguous_format
        if options.channels_last:
            model = model.to(memory_format=torch.channels_last)
        self.model = model
        self.run_network = CudaGraphRunner(self._network) if options.cuda_graph else self._network
        self.description = f"torch {_describe(options)} on {self.device}"

    def _network(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        # No autocast cast cache: a captured graph must not hold casts that the cache frees when the region ends.
        with torch.autocast(
            self.device.type, dtype=self.autocast_dtype, enabled=self.autocast_dtype is not None, cache_enabled=False
        ):
            outputs = self.model(batch)
        return {name: outputs[name] for name in OUTPUT_NAMES}

    @torch.inference_mode()
    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        batch = torch.from_numpy(images).to(self.device, non_blocking=True).float().div_(255.0)
        batch = batch.contiguous(memory_format=self.memory_format)
        outputs = self.run_network(batch)
        return {name: outputs[name].float().cpu().numpy() for name in OUTPUT_NAMES}


def _describe(options: RuntimeOptions) -> str:
    words = ["fused" if options.fuse else "eager", options.precision]
    words += ["channels-last"] if options.channels_last else []
    return " ".join(words + (["cuda-graph"] if options.cuda_graph else []))


def _autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast type of a precision that RuntimeOptions.validate and check_hardware accepted for torch."""
    return {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


class OnnxRuntimeBackend:
    """ONNX Runtime session: TensorRT, then CUDA execution providers on a GPU device; CPU otherwise."""

    def __init__(self, onnx_path: str | Path, options: RuntimeOptions = DEFAULT_OPTIONS) -> None:
        import onnxruntime as ort

        check_hardware(options)
        providers = _providers(options.device, ort.get_available_providers())
        self.session = ort.InferenceSession(str(onnx_path), onnxruntime_session_options(), providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.description = f"onnxruntime {Path(onnx_path).name} on {self.session.get_providers()[0]}"

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        batch = images.astype(np.float32) * np.float32(1 / 255)
        outputs = self.session.run(list(OUTPUT_NAMES), {self.input_name: batch})
        return dict(zip(OUTPUT_NAMES, outputs))


def onnxruntime_session_options():
    """The session settings of the onnxruntime backend (all graph optimisations, torch's thread count); the bench
    floors measure ONNX Runtime with them too."""
    import onnxruntime as ort

    session_options = ort.SessionOptions()
    session_options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session_options.intra_op_num_threads = torch.get_num_threads()
    return session_options


def openvino_cpu_properties(precision: str = "fp32") -> dict:
    """How the openvino backend compiles for the CPU at `precision` (fp32 or bf16; the bench floors compile their
    kernels the same way)."""
    return {
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_NUM_THREADS": torch.get_num_threads(),
        # explicit: the CPU's default is bf16 wherever it has AVX512-BF16/AMX, which moves the detections
        "INFERENCE_PRECISION_HINT": {"fp32": "f32", "bf16": "bf16"}[precision],
    }


@dataclasses.dataclass
class _Stage:
    """One compiled model's infer request; its first `handoff` outputs are the next stage's inputs."""

    request: object  # openvino.InferRequest
    handoff: list
    outputs: dict[str, object]  # OUTPUT_NAMES this stage computes -> its output port


class OpenVinoBackend:
    """OpenVINO on the CPU, latency hint, `torch.get_num_threads()` threads, reading the same ONNX files as ONNX
    Runtime: the fp32 export, or (precision int8) the QDQ file `quantize_int8` writes, whose QuantizeLinear /
    DequantizeLinear pairs OpenVINO reads as FakeQuantize and runs as int8 convolutions and matrix multiplies (the
    rest in fp32). Precision bf16 (CPUs with AVX512-BF16/AMX) splits the fp32 export in two compiled models, the
    trunk in bf16 and `FLOAT32_MODULE` in fp32 (ppad_core/runtime/openvino_split.py), as torch's bf16 does.
    One static-shape compile per batch size (a dynamic batch dimension runs slower on the CPU plugin),
    the first at batch 1 here, others on first use; each compiled model is cached on disk in `cache_dir`, a folder
    per ONNX file digest, OpenVINO version and precision inside `options.openvino_cache_dir()`. `loaded_from_cache`
    says, per batch size, whether its compile(s) were read back from that cache."""

    def __init__(self, onnx_path: str | Path, options: RuntimeOptions = DEFAULT_OPTIONS) -> None:
        import openvino as ov

        options = resolve_precision(dataclasses.replace(options, backend="openvino").validate())
        check_hardware(options)
        self.onnx_path = Path(onnx_path)
        self.precision = options.precision
        version = re.sub(r"[^\w.-]+", "_", ov.get_version())
        self.core = ov.Core()
        self.model = self.core.read_model(str(self.onnx_path))
        _check_quantised(self.onnx_path, self.model, self.precision)
        self.cache_dir = options.openvino_cache_dir() / file_digest(self.onnx_path) / version / self.precision
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        self.input_name = self.model.inputs[0].get_any_name()
        self.stages: dict[int, list[_Stage]] = {}
        self.loaded_from_cache: dict[int, bool] = {}
        self._lock = threading.Lock()  # one infer request per batch size: calls take turns
        self._stages(1)
        self.description = f"openvino {self.onnx_path.name} on CPU {self.precision}"

    def _stages(self, batch: int) -> list[_Stage]:
        """The stages compiled for `batch` images (compiled or read from the cache now if this batch size is new):
        one model, or the bf16 trunk and the fp32 detection decoder."""
        if batch not in self.stages:
            model = self.model.clone()
            model.reshape({self.input_name: [batch, *self._image_shape()]})
            if self.precision == "bf16":
                split = split_float32_head(model, onnx_scope(FLOAT32_MODULE))
                parts = [(split.trunk, "bf16", split.handoff), (split.head, "fp32", 0)]
            else:  # int8 compiles at f32: the FakeQuantize pairs choose the int8 kernels
                parts = [(model, "fp32", 0)]
            stages, cached = [], []
            for part, precision, handoff in parts:
                properties = {"CACHE_DIR": str(self.cache_dir), **openvino_cpu_properties(precision)}
                compiled = self.core.compile_model(part, "CPU", properties)
                cached.append(bool(compiled.get_property("LOADED_FROM_CACHE")))
                names = {name for port in compiled.outputs for name in port.get_names()}
                outputs = {name: compiled.output(name) for name in OUTPUT_NAMES if name in names}
                stages.append(_Stage(compiled.create_infer_request(), compiled.outputs[:handoff], outputs))
            self.stages[batch], self.loaded_from_cache[batch] = stages, all(cached)
            log.info(
                "openvino: batch %d of %s %s (%s)",
                batch,
                self.onnx_path,
                "read from the compiled-model cache" if self.loaded_from_cache[batch] else "compiled",
                self.cache_dir,
            )
        return self.stages[batch]

    def _image_shape(self) -> list[int]:
        return [dim.get_length() for dim in list(self.model.inputs[0].get_partial_shape())[1:]]

    def __call__(self, images: np.ndarray) -> dict[str, np.ndarray]:
        batch = images.astype(np.float32) * np.float32(1 / 255)
        outputs: dict[str, np.ndarray] = {}
        inputs: list[np.ndarray] = [batch]
        with self._lock:
            for stage in self._stages(len(batch)):
                # inputs are shared, not copied; the outputs are copies, which the next call leaves alone
                results = stage.request.infer(inputs, share_inputs=True)
                outputs.update({name: results[port] for name, port in stage.outputs.items()})
                inputs = [results[port] for port in stage.handoff]
        return {name: outputs[name] for name in OUTPUT_NAMES}


def _check_quantised(onnx_path: Path, model, precision: str) -> None:
    """An OptionError where the file and the precision disagree: int8 asks for a quantised (QDQ) graph, fp32 for a
    float one; either mismatch would run at the other precision and cache it under this one's name."""
    quantised = any(op.get_type_name() == "FakeQuantize" for op in model.get_ordered_ops())
    if precision == "int8" and not quantised:
        raise OptionError(
            "precision",
            f"precision='int8': {onnx_path} holds no QuantizeLinear/DequantizeLinear pairs; quantise it with "
            "`ppad export CHECKPOINT --int8 --calib IMAGES` (model.int8.onnx)",
        )
    if precision != "int8" and quantised:
        raise OptionError(
            "precision", f"precision={precision!r}: {onnx_path} is INT8-quantised; run it with precision='int8'"
        )


def file_digest(path: str | Path) -> str:
    """The first 16 hex digits of a file's SHA-256: the name of a cache folder that only this content fills."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


ONNX_BACKENDS = {"onnxruntime": OnnxRuntimeBackend, "openvino": OpenVinoBackend}


def onnx_backend(onnx_path: str | Path, options: RuntimeOptions = DEFAULT_OPTIONS) -> Backend:
    """The backend `options.backend` names for an exported graph; ONNX Runtime when that is torch."""
    return ONNX_BACKENDS.get(options.backend, OnnxRuntimeBackend)(onnx_path, options)


def _gpu_providers(available: list[str]) -> list[str]:
    return [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in available]


def _providers(device: str, available: list[str]) -> list[str]:
    """Execution providers for a device check_hardware accepted."""
    if not device.startswith("cuda"):
        return ["CPUExecutionProvider"]
    return _gpu_providers(available) + ["CPUExecutionProvider"]
