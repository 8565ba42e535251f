"""`ppad bench`: teacher and student through every backend, side by side in one run.

Per row: pre/infer/post latency (median and p95 after warm-up, batch 1), throughput at each batch size, peak
memory, page faults and user/system CPU time per call, parameters and MACs, and the physical floor: the model's
MACs (2 FLOP each) over the best rate this machine reaches, in this run, for the row's precision.

Which rate backs which row (each the best of repeated calls for about `FLOOR_SECONDS`, at the threads the rows
use, measured just before the rows and so under the same load):
- fp32 rows (torch eager/fused/channels-last, onnxruntime fp32, openvino fp32): the best of torch's matrix
  multiply (`matmul_rate`: MKL sgemm on CPU), torch's 1x1 convolution on a channels-last [1, 512, 40, 40]
  tensor (`conv_rate`: oneDNN on CPU, cuDNN on CUDA) and, on CPU when such rows run, the same convolution
  in ONNX Runtime and in OpenVINO. MKL's sgemm alone understates what the convolution kernels reach on
  AVX-512 machines; on AVX2-only CPUs both are held to the same FMA peak.
- bf16 rows (CPU): torch bf16 matrix multiply and 1x1 convolution, only where the CPU has AVX512-BF16 or AMX
  (`cpu_supports_bf16`); elsewhere bf16 is emulated, no bf16 row runs and no bf16 floor is given (None, with
  the reason in `floor_rates`). bf16/fp16 rows on CUDA: the same two kernels in that type.
- int8 rows (onnxruntime int8, CPU): ONNX Runtime's QLinearConv 1x1 with uint8 activations and per-channel
  int8 weights, the kernel its QDQ-quantised graphs run. Not torch's `_int_mm`: on a 2-core AVX2 VM without
  VNNI/AMX it ran a 2048^3 product at about 0.5 GOP/s, a fallback path no int8 row takes.
A row whose precision has no measured rate gets NaN floor columns. The JSON keeps every kernel's rate
(`floor_rates`, in GFLOP/s; GOP/s for int8) and, per row, the rate and kernel its floor used
(`floor_rate_gflops`, `floor_kernel`).

Page faults and CPU time come from `getrusage(RUSAGE_SELF)` deltas over the timed batch-1 calls (whole
Predictor calls: pre, inference, post) divided by the number of calls; the worker threads of torch, ONNX
Runtime and OpenVINO run in this process, so their time and faults are included.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ppad_core.image import stretch_to_input
from ppad_core.model.checkpoint import load_or_build
from ppad_core.model.complexity import count_macs, count_parameters
from ppad_core.model.config import ModelConfig
from ppad_core.model.fusion import fuse_model
from ppad_core.model.rmt_ppad import RMTPPAD
from ppad_core.runtime.backends import cpu_supports_bf16, onnxruntime_session_options, openvino_cpu_properties
from ppad_core.runtime.export import export_onnx, own_images, quantize_int8
from ppad_core.runtime.options import RuntimeOptions
from ppad_core.runtime.predictor import Predictor

CALIBRATION_IMAGES = 16  # INT8 rows: latency barely depends on the calibration, 16 images keep it quick
FLOOR_SECONDS = 0.75  # each floor rate: the best call within this long (on a loaded machine, its quietest)
CONV_CHANNELS, CONV_SIZE = 512, 40  # the floors' 1x1 convolution: [1, 512, 40, 40], a mid-network layer
BF16_UNSUPPORTED = "this CPU has no AVX512-BF16/AMX, so bf16 would be emulated, slower than fp32: no bf16 row"


@dataclass(frozen=True)
class Variant:
    """One way of running a model: a label and the runtime options that make it."""

    label: str
    options: RuntimeOptions


def default_variants(base: RuntimeOptions, int8: bool = False) -> list[Variant]:
    """The eager baseline first, then each optimisation `base.device` supports; every variant is `base` with the
    knobs its label names changed."""

    def variant(label: str, **knobs) -> Variant:
        return Variant(label, dataclasses.replace(base, **knobs).validate())

    torch_nhwc = {"backend": "torch", "channels_last": True}
    variants = [
        variant("torch eager fp32", backend="torch", fuse=False),
        variant("torch fused fp32", backend="torch"),
        variant("torch fused fp32 channels-last", **torch_nhwc),
    ]
    if base.on_cuda:
        variants += [
            variant("torch fused fp16 channels-last", precision="fp16", **torch_nhwc),
            variant("torch fused fp32 channels-last cuda-graph", cuda_graph=True, **torch_nhwc),
            variant("torch fused fp16 channels-last cuda-graph", precision="fp16", cuda_graph=True, **torch_nhwc),
        ]
    elif cpu_supports_bf16():
        variants.append(variant("torch fused bf16 channels-last", precision="bf16", **torch_nhwc))
    variants.append(variant("onnxruntime fp32", backend="onnxruntime"))
    if not base.on_cuda:
        variants.append(variant("openvino fp32", backend="openvino"))
    if not base.on_cuda and cpu_supports_bf16():  # bf16 but the detection decoder, as torch's bf16 row
        variants.append(variant("openvino bf16", backend="openvino", precision="bf16"))
    if int8 and not base.on_cuda:
        variants.append(variant("onnxruntime int8", backend="onnxruntime", precision="int8"))
        variants.append(variant("openvino int8", backend="openvino", precision="int8"))  # the same QDQ file
    return variants


def load_for_bench(spec: str) -> RMTPPAD:
    """A checkpoint directory (its weights) or an architecture config (random weights: latency only)."""
    torch.manual_seed(0)  # the same random weights on every run
    return load_or_build(spec)[0].eval()


def matmul_rate(
    device: str, dtype: torch.dtype = torch.float32, size: int = 2048, seconds: float = FLOOR_SECONDS
) -> float:
    """Best sustained multiply-add rate of a square matrix product, in FLOP/s (2 per MAC)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    with torch.inference_mode():
        return _best_rate(lambda: torch.mm(a, b), 2 * size**3, seconds, lambda: _sync(device))


def conv_rate(
    device: str,
    dtype: torch.dtype = torch.float32,
    channels: int = CONV_CHANNELS,
    size: int = CONV_SIZE,
    seconds: float = FLOOR_SECONDS,
) -> float:
    """Best sustained rate of a 1x1 convolution, `channels` in and out, on a channels-last [1, channels, size,
    size] tensor in inference mode (oneDNN on CPU, cuDNN on CUDA), in FLOP/s."""
    x, w = _conv_tensors(device, dtype, channels, size)
    with torch.inference_mode():
        return _best_rate(
            lambda: torch.nn.functional.conv2d(x, w), _conv_flop(channels, size), seconds, lambda: _sync(device)
        )


def _conv_tensors(device: str, dtype: torch.dtype, channels: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(1, channels, size, size, generator=generator).to(device, dtype)
    w = torch.randn(channels, channels, 1, 1, generator=generator).to(device, dtype)
    return x.contiguous(memory_format=torch.channels_last), w.contiguous(memory_format=torch.channels_last)


def _conv_flop(channels: int, size: int) -> int:
    return 2 * channels * channels * size * size


def torch_conv_kernel(device: str, dtype: torch.dtype, channels: int = CONV_CHANNELS, size: int = CONV_SIZE) -> str:
    """The convolution implementation torch picks for `conv_rate`'s problem (mkldnn = oneDNN), or '' where this
    torch cannot say."""
    x, w = _conv_tensors(device, dtype, channels, size)
    try:
        backend = torch._C._select_conv_backend(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, None)
    except (AttributeError, RuntimeError, TypeError):
        return ""
    return str(backend).rsplit(".", 1)[-1].lower()


def _conv_graph(precision: str, channels: int, size: int):
    """A one-node ONNX graph: a 1x1 Conv (fp32), or QLinearConv with uint8 activations and per-channel int8
    weights (int8), input `x` [1, channels, size, size]."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    shape = [1, channels, size, size]
    if precision == "fp32":
        weights = rng.standard_normal((channels, channels, 1, 1)).astype(np.float32)
        node = helper.make_node("Conv", ["x", "w"], ["y"])
        initialisers, kind = [numpy_helper.from_array(weights, "w")], TensorProto.FLOAT
    else:
        weights = rng.integers(-127, 128, (channels, channels, 1, 1), dtype=np.int8)
        values = {
            "x_scale": np.float32(0.02),
            "x_zero": np.uint8(128),
            "w": weights,
            "w_scale": np.full(channels, 0.01, np.float32),
            "w_zero": np.zeros(channels, np.int8),
            "y_scale": np.float32(0.05),
            "y_zero": np.uint8(128),
        }
        node = helper.make_node("QLinearConv", ["x", *values], ["y"])
        initialisers = [numpy_helper.from_array(np.asarray(v), k) for k, v in values.items()]
        kind = TensorProto.UINT8
    graph = helper.make_graph(
        [node],
        "floor",
        [helper.make_tensor_value_info("x", kind, shape)],
        [helper.make_tensor_value_info("y", kind, None)],
        initialisers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def onnxruntime_conv_rate(
    precision: str = "fp32", channels: int = CONV_CHANNELS, size: int = CONV_SIZE, seconds: float = FLOOR_SECONDS
) -> float:
    """Best sustained rate of `conv_rate`'s 1x1 convolution in ONNX Runtime on the CPU, with the session settings
    of the onnxruntime backend: fp32 Conv, or (int8) QLinearConv u8 x s8, in FLOP/s (OP/s for int8)."""
    import onnxruntime as ort

    model = _conv_graph(precision, channels, size).SerializeToString()
    session = ort.InferenceSession(model, onnxruntime_session_options(), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(1)
    shape = (1, channels, size, size)
    x = rng.integers(0, 256, shape, dtype=np.uint8) if precision == "int8" else rng.standard_normal(shape, np.float32)
    return _best_rate(lambda: session.run(None, {"x": x}), _conv_flop(channels, size), seconds)


def openvino_conv_rate(
    precision: str = "fp32", channels: int = CONV_CHANNELS, size: int = CONV_SIZE, seconds: float = FLOOR_SECONDS
) -> float:
    """Best sustained rate of `conv_rate`'s 1x1 convolution in OpenVINO on the CPU, compiled as the openvino
    backend compiles (latency hint, torch's thread count) at inference precision `precision` (fp32 or bf16; the
    graph is fp32 either way), in FLOP/s."""
    import openvino as ov

    core = ov.Core()
    model = core.read_model(_conv_graph("fp32", channels, size).SerializeToString(), b"")
    compiled = core.compile_model(model, "CPU", openvino_cpu_properties(precision))
    request = compiled.create_infer_request()
    x = np.random.default_rng(1).standard_normal((1, channels, size, size), np.float32)
    return _best_rate(lambda: request.infer({0: x}, share_inputs=True), _conv_flop(channels, size), seconds)


def _best_rate(
    call: Callable[[], object], flop: float, seconds: float, sync: Callable[[], None] = lambda: None
) -> float:
    """`flop` over the quickest of repeated `call()`s (one untimed first) within `seconds`, at least three timed."""
    call()
    sync()
    best, calls = 0.0, 0
    deadline = time.perf_counter() + seconds
    while calls < 3 or time.perf_counter() < deadline:
        start = time.perf_counter()
        call()
        sync()
        best = max(best, flop / (time.perf_counter() - start))
        calls += 1
    return best


def floor_rates(device: str, variants: list[Variant], seconds: float = FLOOR_SECONDS) -> dict[str, dict]:
    """Per precision the rows of `variants` use: every kernel rate measured for it (GFLOP/s), the best of them
    (`gflops`) and its kernel; `gflops` None, with a `note`, where no rate applies. A CPU without native bf16
    lists bf16 with that note, so a table says why it has no bf16 row."""
    precisions = {v.options.precision for v in variants} | {"fp32"}
    conv = f"conv1x1 {CONV_CHANNELS}ch {CONV_SIZE}x{CONV_SIZE}"
    backends = {v.options.backend for v in variants}
    on_cuda = device.startswith("cuda")
    kernels: dict[str, dict[str, float]] = {}
    notes: dict[str, str] = {}
    for precision in sorted(precisions):
        measured: dict[str, float] = {}
        if precision in ("fp32", "bf16", "fp16") and (on_cuda or precision != "bf16" or cpu_supports_bf16()):
            dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[precision]
            blas = "cublas" if on_cuda else "mkl" if torch.backends.mkl.is_available() else ""
            convolution = torch_conv_kernel(device, dtype)
            measured[_kernel("torch", blas, "matmul 2048")] = matmul_rate(device, dtype, seconds=seconds)
            measured[_kernel("torch", convolution, conv)] = conv_rate(device, dtype, seconds=seconds)
        if not on_cuda and precision == "fp32" and "onnxruntime" in backends:
            measured[f"onnxruntime {conv}"] = onnxruntime_conv_rate("fp32", seconds=seconds)
        if not on_cuda and "openvino" in backends and (precision == "fp32" or precision == "bf16" and measured):
            measured[f"openvino {conv}"] = openvino_conv_rate(precision, seconds=seconds)
        if not on_cuda and precision == "int8":
            measured[f"onnxruntime QLinearConv u8s8 {conv}"] = onnxruntime_conv_rate("int8", seconds=seconds)
        if precision == "bf16" and not on_cuda and not measured:
            notes[precision] = BF16_UNSUPPORTED
        elif not measured:
            notes[precision] = f"no {precision} kernel is measured on {device}"
        kernels[precision] = {name: rate / 1e9 for name, rate in measured.items()}
    if not on_cuda and "bf16" not in kernels and not cpu_supports_bf16():
        kernels["bf16"], notes["bf16"] = {}, BF16_UNSUPPORTED
    rates = {}
    for precision, measured in kernels.items():
        best = max(measured, key=measured.get) if measured else None
        rates[precision] = {"gflops": measured[best] if best else None, "kernel": best, "kernels": measured}
        if precision in notes:
            rates[precision]["note"] = notes[precision]
    return rates


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def reset_peak_memory(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
        return
    try:  # Linux: writing 5 resets this process's peak resident set size (VmHWM)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        return torch.cuda.max_memory_allocated() / 2**20
    peak = process_memory_kb("self", ("VmHWM",))
    return peak["VmHWM"] / 1024 if peak else float("nan")


def process_memory_kb(pid: int | str = "self", keys: tuple[str, ...] = ("VmRSS",)) -> dict[str, int]:
    """Memory lines of a Linux process's /proc/PID/status (VmRSS, VmHWM, RssShmem, ...) in kB; empty when the
    process is gone or the system has no /proc."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    fields = (line.partition(":") for line in lines)
    return {key: int(value.split()[0]) for key, _, value in fields if key in keys}


def build_predictor(
    model: RMTPPAD, options: RuntimeOptions, workdir: Path, calibration: Callable[[], np.ndarray]
) -> Predictor:
    """The model run as `options` say; onnxruntime and openvino rows export it (at the options' input size) into
    `workdir`, INT8 rows quantise that export on `calibration()` images; openvino compiles into `workdir` too
    (unless `options.onnx_cache` names a folder), so a benchmark leaves no compiled models behind."""
    if options.backend == "torch":
        return Predictor.from_model(model, options)
    if options.backend == "openvino" and not options.onnx_cache:
        options = dataclasses.replace(options, onnx_cache=str(workdir / "cache"))
    onnx_path = workdir / "model.onnx"
    if not onnx_path.is_file():
        export_onnx(model, onnx_path, config=options.model_config(model.config))
    if options.precision == "int8":
        int8_path = workdir / "model.int8.onnx"
        if not int8_path.is_file():
            quantize_int8(onnx_path, int8_path, calibration())
        onnx_path = int8_path
    return Predictor.from_onnx(onnx_path, options)


def bench_calibration(spec: str, config: ModelConfig, given: str | None, frame: np.ndarray) -> np.ndarray:
    """INT8 calibration images of a benchmarked model: `given`, else the checkpoint's recorded training data, else
    (an architecture config, or data not on this machine) the benchmark frame itself: these rows measure latency."""
    images = own_images(spec, config, given, CALIBRATION_IMAGES, required=False)
    if images is not None:
        return images
    return np.ascontiguousarray(stretch_to_input(frame, config.input_size).transpose(2, 0, 1)[None])


def alternating_latencies(
    backends: dict[str, dict[str, Callable[[np.ndarray], object]]],
    input_sizes: dict[str, tuple[int, int]],
    runs: int,
    rounds: int = 12,
) -> dict[str, dict[str, list[float]]]:
    """Per model and backend, the median call time (ms) of each round on a random uint8 batch of one; rounds
    interleave models and backends, so drifting machine load hits all of them alike. Used by `ppad compress`'s
    comparison and benchmarks/cpu_backends.py."""
    images = {
        name: np.random.default_rng(0).integers(0, 256, (1, 3, *size), np.uint8) for name, size in input_sizes.items()
    }
    latencies = {name: {backend: [] for backend in per_model} for name, per_model in backends.items()}
    for name, per_model in backends.items():
        for backend in per_model.values():
            backend(images[name])  # warm-up: lazy initialisation and allocator growth
    for _ in range(rounds):
        for name, per_model in backends.items():
            for backend_name, backend in per_model.items():
                times = []
                for _ in range(max(1, runs // rounds)):
                    start = time.perf_counter()
                    backend(images[name])
                    times.append((time.perf_counter() - start) * 1000)
                latencies[name][backend_name].append(statistics.median(times))
    return latencies


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def measure(
    predictor: Predictor, frame: np.ndarray, device: str, warmup: int, runs: int, batch_sizes: list[int]
) -> dict:
    """Stage latencies at batch 1 and throughput at each batch size, after warm-up. Peak memory is counted from
    the end of the warm-up (every batch size included), where cuDNN tries algorithms with workspaces the steady
    state never needs."""
    for _ in range(warmup):
        predictor.predict([frame])
    for batch in batch_sizes:
        predictor.predict([frame] * batch)
    reset_peak_memory(device)
    stages: dict[str, list[float]] = {"preprocess": [], "inference": [], "postprocess": [], "total": []}
    before = _usage()
    for _ in range(runs):
        _, times = predictor.predict([frame])
        for key, value in zip(stages, (times.preprocess_ms, times.inference_ms, times.postprocess_ms, times.total_ms)):
            stages[key].append(value)
    after = _usage()
    result = {f"{k}_ms": {"median": statistics.median(v), "p95": _percentile(v, 95)} for k, v in stages.items()}
    result.update({f"{key}_per_call": (after[key] - before[key]) / runs for key in after})
    for batch in batch_sizes:
        if batch == 1:
            result["throughput_b1_fps"] = 1000.0 / result["total_ms"]["median"]
            continue
        frames = [frame] * batch
        timings = [predictor.predict(frames)[1].total_ms for _ in range(max(2, runs // 4))]
        result[f"throughput_b{batch}_fps"] = batch * 1000.0 / statistics.median(timings)
    result["peak_memory_mb"] = peak_memory_mb(device)
    return result


def _usage() -> dict[str, float]:
    """This process's page faults (minor: no disk read; major: read from disk) and user/system CPU time in ms, all
    its threads together; NaN where the platform has no getrusage."""
    try:
        import resource
    except ImportError:  # not a Unix
        return dict.fromkeys(("minor_faults", "major_faults", "user_ms", "sys_ms"), math.nan)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "minor_faults": float(usage.ru_minflt),
        "major_faults": float(usage.ru_majflt),
        "user_ms": usage.ru_utime * 1e3,
        "sys_ms": usage.ru_stime * 1e3,
    }


def run_benchmark(
    models: list[tuple[str, str]],
    variants: list[Variant],
    frame: np.ndarray,
    warmup: int = 2,
    runs: int = 10,
    batch_sizes: tuple[int, ...] = (1, 8),
    on_row: Callable[[dict], None] | None = None,
    calibration: str | None = None,
    floor_seconds: float = FLOOR_SECONDS,
) -> dict:
    """Rows for every (model, variant) on one BGR `frame` (all variants share a device and an input size); ratios
    against the first row and against the first model. `calibration`: INT8 images (see `bench_calibration`);
    `floor_seconds`: how long each floor rate is measured (see the module docstring)."""
    device, base = variants[0].options.device, variants[0].options
    rates = floor_rates(device, variants, floor_seconds)
    rows = []
    for model_label, spec in models:
        model = load_for_bench(spec)
        config = base.model_config(model.config)
        fused = fuse_model(model)
        params, macs = count_parameters(fused, trainable_only=False), count_macs(fused, config.input_size)
        calibrate = functools.partial(bench_calibration, spec, config, calibration, frame)
        with tempfile.TemporaryDirectory(prefix="ppad-bench-") as workdir:
            for variant in variants:
                predictor = build_predictor(model, variant.options, Path(workdir), calibrate)
                row = {
                    "model": model_label,
                    "source": spec,
                    "variant": variant.label,
                    "input_size": list(config.input_size),
                    "parameters": params,
                    "macs": macs,
                    **measure(predictor, frame, device, warmup, runs, list(batch_sizes)),
                }
                rate = rates[variant.options.precision]
                row["floor_rate_gflops"], row["floor_kernel"] = rate["gflops"], rate["kernel"]
                row["floor_ms"] = 2 * macs / (rate["gflops"] * 1e9) * 1e3 if rate["gflops"] else math.nan
                row["over_floor"] = row["inference_ms"]["median"] / row["floor_ms"]
                rows.append(row)
                if on_row:
                    on_row(row)
                del predictor
    _add_ratios(rows)
    return {
        "machine": machine_description(device),
        "floor_rates": rates,
        "rows": rows,
    }


def _add_ratios(rows: list[dict]) -> None:
    baseline = rows[0]["total_ms"]["median"]
    first_model = rows[0]["model"]
    reference = {r["variant"]: r["total_ms"]["median"] for r in rows if r["model"] == first_model}
    for row in rows:
        latency = row["total_ms"]["median"]
        row["speedup_vs_baseline"] = baseline / latency
        if row["variant"] in reference:
            row[f"latency_vs_{first_model}"] = latency / reference[row["variant"]]


def machine_description(device: str) -> dict:
    import onnxruntime

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    description = {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "python": platform.python_version(),
        "device": device,
    }
    try:
        import openvino

        description["openvino"] = openvino.get_version().split("-")[0]
    except ImportError:
        pass
    if device.startswith("cuda"):
        description["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return description


def _kernel(engine: str, implementation: str, problem: str) -> str:
    return " ".join(word for word in (engine, implementation, problem) if word)


def floor_summary(rates: dict[str, dict]) -> str:
    """One sentence per precision: the rate its rows' floors use, its kernel, the others measured, or why none."""
    parts = []
    for precision, rate in rates.items():
        if rate["gflops"] is None:
            parts.append(f"{precision}: no floor ({rate.get('note', 'not measured')})")
            continue
        unit = "GOP/s" if precision == "int8" else "GFLOP/s"
        others = ", ".join(f"{name} {value:.0f}" for name, value in rate["kernels"].items() if name != rate["kernel"])
        parts.append(
            f"{precision} {rate['gflops']:.0f} {unit} ({rate['kernel']}" + (f"; also {others}" if others else "") + ")"
        )
    return "; ".join(parts)


def markdown_table(result: dict) -> str:
    """The table as Markdown, with the machine it came from and the rates behind the floors."""
    machine = result["machine"]
    first_model = result["rows"][0]["model"]
    openvino = f", openvino {machine['openvino']}" if "openvino" in machine else ""
    lines = [
        f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, {machine['torch_threads']} torch "
        f"threads{', GPU ' + machine['gpu'] if 'gpu' in machine else ''}; torch {machine['torch']}, "
        f"onnxruntime {machine['onnxruntime']}{openvino}, Python {machine['python']}.",
        "",
        "Floor rates measured in this run (best of repeated calls, 2 FLOP per MAC): "
        + floor_summary(result["floor_rates"])
        + ".",
        "",
        "| model | variant | input | params (M) | GMAC | pre ms | infer ms (p50/p95) | post ms | total ms | "
        f"speed-up vs baseline | latency vs {first_model} | b1 img/s | b8 img/s | peak MB | "
        "faults/call minor/major | user/sys ms/call | floor ms | x floor |",
        "|" + "---|" * 18,
    ]
    for r in result["rows"]:
        ratio = r.get(f"latency_vs_{first_model}")
        lines.append(
            f"| {r['model']} | {r['variant']} | {r['input_size'][0]}x{r['input_size'][1]} | "
            f"{r['parameters'] / 1e6:.2f} | {r['macs'] / 1e9:.1f} | {r['preprocess_ms']['median']:.1f} | "
            f"{r['inference_ms']['median']:.1f} / {r['inference_ms']['p95']:.1f} | "
            f"{r['postprocess_ms']['median']:.1f} | {r['total_ms']['median']:.1f} | "
            f"{r['speedup_vs_baseline']:.2f}x | {'-' if ratio is None else f'{ratio:.2f}x'} | "
            f"{r.get('throughput_b1_fps', float('nan')):.2f} | {r.get('throughput_b8_fps', float('nan')):.2f} | "
            f"{r['peak_memory_mb']:.0f} | {r['minor_faults_per_call']:.0f} / {r['major_faults_per_call']:.0f} | "
            f"{r['user_ms_per_call']:.1f} / {r['sys_ms_per_call']:.1f} | {r['floor_ms']:.1f} | {r['over_floor']:.1f} |"
        )
    return "\n".join(lines) + "\n"
