"""`ppad bench`: teacher and student through every backend, side by side in one run.

Per row: pre/infer/post latency (median and p95 after warm-up, batch 1), throughput at each batch
size, peak memory, parameters and MACs, and the physical floor (MACs over this machine's measured
matrix-multiply rate) with the measured inference time over it.
"""

from __future__ import annotations

import dataclasses
import functools
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
from ppad_core.runtime.backends import cpu_supports_bf16
from ppad_core.runtime.export import export_onnx, own_images, quantize_int8
from ppad_core.runtime.options import RuntimeOptions
from ppad_core.runtime.predictor import Predictor

CALIBRATION_IMAGES = 16  # INT8 rows: latency barely depends on the calibration, 16 images keep it quick


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
    if int8 and not base.on_cuda:
        variants.append(variant("onnxruntime int8", backend="onnxruntime", precision="int8"))
    return variants


def load_for_bench(spec: str) -> RMTPPAD:
    """A checkpoint directory (its weights) or an architecture config (random weights: latency only)."""
    torch.manual_seed(0)  # the same random weights on every run
    return load_or_build(spec)[0].eval()


def matmul_rate(device: str, dtype: torch.dtype = torch.float32, size: int = 2048, seconds: float = 1.0) -> float:
    """Best sustained multiply-add rate of a square matrix product, in FLOP/s (2 per MAC)."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    best = 0.0
    deadline = time.perf_counter() + seconds
    with torch.inference_mode():
        torch.mm(a, b)
        while time.perf_counter() < deadline:
            _sync(device)
            start = time.perf_counter()
            torch.mm(a, b)
            _sync(device)
            best = max(best, 2 * size**3 / (time.perf_counter() - start))
    return best


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
    """The model run as `options` say; onnxruntime rows export it (at the options' input size) into `workdir`, INT8
    rows quantise that export on `calibration()` images."""
    if options.backend == "torch":
        return Predictor.from_model(model, options)
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
    for _ in range(runs):
        _, times = predictor.predict([frame])
        for key, value in zip(stages, (times.preprocess_ms, times.inference_ms, times.postprocess_ms, times.total_ms)):
            stages[key].append(value)
    result = {f"{k}_ms": {"median": statistics.median(v), "p95": _percentile(v, 95)} for k, v in stages.items()}
    for batch in batch_sizes:
        if batch == 1:
            result["throughput_b1_fps"] = 1000.0 / result["total_ms"]["median"]
            continue
        frames = [frame] * batch
        timings = [predictor.predict(frames)[1].total_ms for _ in range(max(2, runs // 4))]
        result[f"throughput_b{batch}_fps"] = batch * 1000.0 / statistics.median(timings)
    result["peak_memory_mb"] = peak_memory_mb(device)
    return result


def run_benchmark(
    models: list[tuple[str, str]],
    variants: list[Variant],
    frame: np.ndarray,
    warmup: int = 2,
    runs: int = 10,
    batch_sizes: tuple[int, ...] = (1, 8),
    on_row: Callable[[dict], None] | None = None,
    calibration: str | None = None,
) -> dict:
    """Rows for every (model, variant) on one BGR `frame` (all variants share a device and an input size); ratios
    against the first row and against the first model. `calibration`: INT8 images (see `bench_calibration`)."""
    device, base = variants[0].options.device, variants[0].options
    rates = {"fp32": matmul_rate(device)}
    if any(v.options.precision in ("bf16", "fp16") for v in variants):
        half = torch.float16 if device.startswith("cuda") else torch.bfloat16
        rates["half"] = matmul_rate(device, half)
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
                rate = rates["half"] if variant.options.precision in ("bf16", "fp16") else rates["fp32"]
                row["floor_ms"] = 2 * macs / rate * 1e3
                row["over_floor"] = row["inference_ms"]["median"] / row["floor_ms"]
                rows.append(row)
                if on_row:
                    on_row(row)
                del predictor
    _add_ratios(rows)
    return {
        "machine": machine_description(device),
        "matmul_gflops": {k: v / 1e9 for k, v in rates.items()},
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
    if device.startswith("cuda"):
        description["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return description


def markdown_table(result: dict) -> str:
    """The table as Markdown, with the machine it came from."""
    machine = result["machine"]
    first_model = result["rows"][0]["model"]
    lines = [
        f"Machine: {machine['cpu']}, {machine['logical_cpus']} logical CPUs, {machine['torch_threads']} torch "
        f"threads{', GPU ' + machine['gpu'] if 'gpu' in machine else ''}; torch {machine['torch']}, "
        f"onnxruntime {machine['onnxruntime']}, Python {machine['python']}. Measured matrix-multiply rate: "
        + ", ".join(f"{k} {v:.0f} GFLOP/s" for k, v in result["matmul_gflops"].items())
        + ".",
        "",
        "| model | variant | input | params (M) | GMAC | pre ms | infer ms (p50/p95) | post ms | total ms | "
        f"speed-up vs baseline | latency vs {first_model} | b1 img/s | b8 img/s | peak MB | floor ms | x floor |",
        "|" + "---|" * 16,
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
            f"{r['peak_memory_mb']:.0f} | {r['floor_ms']:.1f} | {r['over_floor']:.1f} |"
        )
    return "\n".join(lines) + "\n"
