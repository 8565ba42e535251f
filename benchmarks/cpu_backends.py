"""CPU backends side by side: every model on every CPU backend, timed in alternating rounds in one process.

Issue 22's acceptance figures, from the repository root (run it on an otherwise idle machine):

    python benchmarks/cpu_backends.py --json-out runs/bench/cpu_backends.json

For each model (default: the paper-sized teacher `config/rmt_ppad_l.yaml` with random weights at 640x640, the
demo teacher and the demo student) and backend (torch fused fp32 / bf16 channels-last, ONNX Runtime fp32,
OpenVINO fp32 / bf16; bf16 only where the CPU has AVX512-BF16/AMX), the network call alone (the backend on a
preprocessed batch of one) is timed: `--rounds` rounds, each running every model on every backend
`--runs-per-round` times, so load drifting during the run hits all of them alike. Printed and written:
each latency's median and range over the rounds, its floor (the model's MACs over the best rate measured
for its precision, `floor_rates` in ppad_core/runtime/benchmark.py) and the median and range of the per-round
ratios: each backend to ONNX Runtime fp32 on the same model, and each model to the first demo model (the
teacher) on the same backend.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ppad_core.model.complexity import count_macs
from ppad_core.model.fusion import fuse_model
from ppad_core.runtime.allocator import configure_allocator
from ppad_core.runtime.backends import cpu_supports_bf16
from ppad_core.runtime.benchmark import (
    Variant,
    alternating_latencies,
    build_predictor,
    floor_rates,
    load_for_bench,
    machine_description,
)
from ppad_core.runtime.options import RuntimeOptions

REFERENCE = "onnxruntime fp32"
MODELS = (
    "paper-teacher=config/rmt_ppad_l.yaml",
    "demo-teacher=models/rmt_ppad_s_demo",
    "demo-student=models/rmt_ppad_s_demo_student",
)


def cpu_variants() -> list[Variant]:
    nhwc = {"backend": "torch", "channels_last": True}
    variants = [Variant("torch fused fp32 channels-last", RuntimeOptions(**nhwc))]
    if cpu_supports_bf16():
        variants.append(Variant("torch fused bf16 channels-last", RuntimeOptions(precision="bf16", **nhwc)))
    variants += [
        Variant(REFERENCE, RuntimeOptions(backend="onnxruntime")),
        Variant("openvino fp32", RuntimeOptions(backend="openvino")),
    ]
    if cpu_supports_bf16():
        variants.append(Variant("openvino bf16", RuntimeOptions(backend="openvino", precision="bf16")))
    return [Variant(v.label, v.options.validate()) for v in variants]


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _ratios(numerator: list[float], denominator: list[float]) -> dict[str, float]:
    return _spread([a / b for a, b in zip(numerator, denominator)])


def run(models: list[tuple[str, str]], rounds: int, runs_per_round: int, floor_seconds: float) -> dict:
    variants = cpu_variants()
    rates = floor_rates("cpu", variants, floor_seconds)
    backends, sizes, macs = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="ppad-cpu-backends-") as workdir:
        for label, spec in models:
            model = load_for_bench(spec)
            sizes[label] = model.config.input_size
            macs[label] = count_macs(fuse_model(model), model.config.input_size)
            folder = Path(workdir) / label
            folder.mkdir()
            backends[label] = {
                v.label: build_predictor(model, v.options, folder, lambda: None).backend for v in variants
            }
        latencies = alternating_latencies(backends, sizes, runs=rounds * runs_per_round, rounds=rounds)
    rows = []
    demo_models = [label for label, _ in models if label.startswith("demo")]
    for label, _ in models:
        for variant in variants:
            times = latencies[label][variant.label]
            rate = rates[variant.options.precision]["gflops"]
            floor_ms = 2 * macs[label] / (rate * 1e9) * 1e3 if rate else None
            row = {
                "model": label,
                "backend": variant.label,
                "input_size": list(sizes[label]),
                "gmacs": macs[label] / 1e9,
                "latency_ms": _spread(times),
                "floor_ms": floor_ms,
                "over_floor": statistics.median(times) / floor_ms if floor_ms else None,
                "vs_onnxruntime_fp32": _ratios(times, latencies[label][REFERENCE]),
            }
            if demo_models and label in demo_models:
                row["vs_demo_teacher"] = _ratios(times, latencies[demo_models[0]][variant.label])
            rows.append(row)
    return {"machine": machine_description("cpu"), "floor_rates": rates, "rounds": rounds, "rows": rows}


def print_table(result: dict) -> None:
    title = f"CPU backends side by side ({result['rounds']} alternating rounds; median [min-max])"
    table = Table(title=escape(title))
    for column in ("model", "backend", "ms", "floor ms", "x floor", "vs ORT fp32", "vs demo teacher"):
        table.add_column(column)
    for row in result["rows"]:
        cells = [row["model"], row["backend"], _cell(row["latency_ms"], 1)]
        cells.append(f"{row['floor_ms']:.1f}" if row["floor_ms"] else "-")
        cells.append(f"{row['over_floor']:.2f}" if row["over_floor"] else "-")
        cells += [_cell(row["vs_onnxruntime_fp32"], 2), _cell(row.get("vs_demo_teacher"), 2)]
        table.add_row(*map(escape, cells))
    console = Console(width=160)
    console.print(table)
    for precision, rate in result["floor_rates"].items():
        console.print(f"floor {precision}: {rate['gflops'] or 0:.0f} GFLOP/s ({rate['kernel'] or rate.get('note')})")


def _cell(spread: dict | None, digits: int) -> str:
    if not spread:
        return "-"
    return f"{spread['median']:.{digits}f} [{spread['min']:.{digits}f}-{spread['max']:.{digits}f}]"


def main() -> int:
    configure_allocator()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        metavar="LABEL=SPEC",
        help="checkpoint directories or architecture configs (random weights), labelled",
    )
    parser.add_argument("--rounds", type=int, default=12, help="alternating rounds")
    parser.add_argument("--runs-per-round", type=int, default=3, help="calls per model and backend in a round")
    parser.add_argument("--floor-seconds", type=float, default=2.0, help="how long each floor kernel is timed")
    parser.add_argument("--json-out", help="write the figures as JSON")
    args = parser.parse_args()
    models = [tuple(item.split("=", 1)) for item in args.models]
    result = run(models, args.rounds, args.runs_per_round, args.floor_seconds)
    print_table(result)
    if args.json_out:
        Path(args.json_out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json_out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
