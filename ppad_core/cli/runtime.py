"""Deployment commands: `ppad predict` (images, folders, videos), `ppad export` (ONNX, INT8) and
`ppad bench` (every backend variant side by side)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

from ppad_core.cli.common import _add_runtime_options, _predictor_from_args, add_json_flag, add_json_options, console
from ppad_core.cli.output import emit, write_json
from ppad_core.runtime.benchmark import FLOOR_SECONDS


def register(sub: argparse._SubParsersAction) -> None:
    _register_predict(sub)
    _register_export(sub)
    _register_bench(sub)


def _register_predict(sub: argparse._SubParsersAction) -> None:
    pred = sub.add_parser(
        "predict",
        help="run a checkpoint on images, folders or videos; write overlays and predictions.jsonl",
        description="Boxes in original-image pixels above --conf (no NMS: queries are one-to-one), drivable-area "
        "and lane masks thresholded with the checkpoint's thresholds at the original resolution. Writes one "
        "overlay JPEG per image (MP4 per video) and one JSON line per image or frame.",
    )
    pred.add_argument("checkpoint", help="checkpoint directory")
    pred.add_argument("inputs", nargs="+", help="image files, folders of images, or videos")
    pred.add_argument("--out", required=True, help="output folder")
    pred.add_argument("--save-masks", action="store_true", help="also write the two masks as PNG per image")
    add_json_flag(pred)
    _add_runtime_options(pred)
    pred.set_defaults(func=cmd_predict)


def _register_export(sub: argparse._SubParsersAction) -> None:
    exp = sub.add_parser(
        "export",
        help="export a checkpoint to ONNX (fused, dynamic batch) and check it against PyTorch; optional INT8",
        description="Write CHECKPOINT/model.onnx (or --out): the fused fp32 graph, input `images` [B,3,H,W] in "
        "[0,1], outputs boxes/scores/seg_logits, with the architecture, class names and thresholds in its "
        "metadata. ONNX Runtime is then run on sample images and compared with PyTorch (fails above "
        "--tolerance). --int8 adds model.int8.onnx by static QDQ quantisation calibrated on --calib images.",
    )
    exp.add_argument("checkpoint", help="checkpoint directory")
    exp.add_argument("--format", choices=("onnx",), default="onnx", help="export format (onnx)")
    exp.add_argument("--out", help="output file (default CHECKPOINT/model.onnx)")
    exp.add_argument("--opset", type=int, default=17, help="ONNX opset, >= 17 (default 17)")
    exp.add_argument("--int8", action="store_true", help="also write an INT8 model calibrated on --calib")
    exp.add_argument(
        "--calib",
        help="folder of calibration/check images (default: the checkpoint's recorded training data; without "
        "either, --int8 is refused and the parity check runs on seeded noise)",
    )
    exp.add_argument("--calib-count", type=int, default=32, help="images used for calibration (default 32)")
    exp.add_argument("--tolerance", type=float, default=1e-3, help="max |diff| of boxes and scores (default 1e-3)")
    exp.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime parity check")
    add_json_flag(exp)
    exp.set_defaults(func=cmd_export)


def _register_bench(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser(
        "bench",
        help="latency/throughput/memory of teacher and student on every backend, side by side",
        description="Each MODEL (checkpoint directory, or an architecture config for random weights) runs through "
        "every backend variant this device supports: torch eager (unfused, the baseline), fused, channels-last, "
        "bf16 (CPUs with AVX512-BF16/AMX) or fp16 (CUDA), onnxruntime, openvino (CPU) and onnxruntime INT8 with "
        "--int8. A 1280x720 frame goes through the full Predictor: pre/infer/post latency median and p95, "
        "throughput at each batch size, peak memory, page faults and user/system CPU time per call (--markdown, "
        "JSON), parameters, MACs, and the physical floor: MACs over the best rate measured in this run for the "
        "row's precision (fp32: MKL sgemm and oneDNN / ONNX Runtime / OpenVINO 1x1 convolution; bf16: only on "
        "CPUs with native bf16; int8: ONNX Runtime QLinearConv).",
    )
    bench.add_argument("models", nargs="+", help="checkpoint directories or config names (first = reference)")
    bench.add_argument("--labels", nargs="+", help="row labels, e.g. teacher student")
    _add_runtime_options(bench, only=("device", "input_size"), exclude=())  # bench may run at another size
    bench.add_argument("--warmup", type=int, default=2, help="warm-up runs (default 2)")
    bench.add_argument("--runs", type=int, default=10, help="timed runs at batch 1 (default 10)")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="throughput batches (default 1 8)")
    bench.add_argument("--int8", action="store_true", help="include ONNX Runtime INT8 (CPU)")
    bench.add_argument(
        "--floor-seconds",
        type=float,
        default=FLOOR_SECONDS,
        help="how long each floor rate (matrix multiply, 1x1 convolution per engine) is measured; the best call "
        f"counts (default {FLOOR_SECONDS})",
    )
    bench.add_argument(
        "--calib",
        help="INT8 calibration images (default: each checkpoint's recorded training data, else the benchmark frame)",
    )
    bench.add_argument("--variants", nargs="+", help="only variants whose label contains one of these words")
    add_json_options(bench, "all figures")
    bench.add_argument("--markdown", metavar="FILE", help="write the table as Markdown (benchmarks/RESULTS.md)")
    bench.set_defaults(func=cmd_bench)


def cmd_predict(args: argparse.Namespace) -> int:
    from ppad_core.runtime.predict import run_predict

    predictor = _predictor_from_args(args)
    with console.status("predicting"):
        counts = run_predict(predictor, args.inputs, args.out, save_masks=args.save_masks)
    return emit({"output": str(args.out), **counts}, args.json, "predictions written")


def cmd_export(args: argparse.Namespace) -> int:
    from ppad_core.model.checkpoint import load_checkpoint
    from ppad_core.runtime.export import ONNX_FILES, check_inputs, export_onnx, onnx_parity, quantize_int8

    model = load_checkpoint(args.checkpoint)[0]
    out = Path(args.out) if args.out else Path(args.checkpoint) / ONNX_FILES["fp32"]
    images = check_inputs(args.checkpoint, model.config, args.calib, args.calib_count, calibrate=args.int8)
    with console.status(f"exporting {out}"):
        export_onnx(model, out, opset=args.opset)
    summary: dict[str, Any] = {"onnx": str(out), "opset": args.opset, "size_mb": round(out.stat().st_size / 2**20, 2)}
    failed = False
    if not args.no_check:
        with console.status("checking ONNX Runtime against PyTorch"):
            diffs = onnx_parity(model, out, images[: min(len(images), 4)])
        summary.update({f"max_abs_diff_{k}": v for k, v in diffs.items()})
        failed = max(diffs["boxes"], diffs["scores"]) > args.tolerance
    if args.int8:
        int8_out = out.with_name(ONNX_FILES["int8"])
        with console.status(f"calibrating and quantising to {int8_out} ({len(images)} images)"):
            quantize_int8(out, int8_out, images)
        diffs = onnx_parity(model, int8_out, images[: min(len(images), 4)])
        summary.update({"int8_onnx": str(int8_out), **{f"int8_max_abs_diff_{k}": v for k, v in diffs.items()}})
    emit(summary, args.json, "export")
    if failed:
        console.print(f"[bold red]error:[/] ONNX Runtime differs from PyTorch by more than {args.tolerance}")
        return 1
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ppad_core.data.synth import render_scene
    from ppad_core.runtime.benchmark import floor_summary, markdown_table, run_benchmark
    from ppad_core.runtime.options import RuntimeOptions

    labels = args.labels or [Path(m).name for m in args.models]
    if len(labels) != len(args.models):
        raise ValueError(f"--labels names {len(labels)} models but {len(args.models)} were given")
    variants = _bench_variants(RuntimeOptions.from_args(args), args.int8, args.variants)
    table = _bench_table()
    with Live(table, console=console, refresh_per_second=2):
        result = run_benchmark(
            list(zip(labels, args.models)),
            variants,
            frame=render_scene(seed=3, split="bench", index=0).image,  # a 1280x720 street scene
            warmup=args.warmup,
            runs=args.runs,
            batch_sizes=tuple(args.batch_sizes),
            on_row=lambda row: _bench_row(table, row),
            calibration=args.calib,
            floor_seconds=args.floor_seconds,
        )
    final = _bench_table()
    for row in result["rows"]:
        _bench_row(final, row, ratios=True)
    output = Console(stderr=args.json, width=max(Console().width, 200))
    output.print(final)
    output.print("floors: " + floor_summary(result["floor_rates"]))
    if args.json_out:
        write_json(args.json_out, result)
    if args.markdown:
        Path(args.markdown).write_text(markdown_table(result))
        console.print(f"wrote {args.markdown}")
    return emit(result, args.json)


def _bench_variants(options, int8: bool, words: list[str] | None) -> list:
    """The variants `options` (device, input size) allow, or those whose label contains one of `words`."""
    from ppad_core.runtime.benchmark import default_variants

    variants = default_variants(options, int8=int8)
    if not words:
        return variants
    chosen = [v for v in variants if any(key in v.label for key in words)]
    if not chosen:
        raise ValueError(f"--variants {words} matches none of the available variants")
    return chosen


def _bench_table() -> Table:
    table = Table(title="ppad bench (latency in ms, median after warm-up; batch 1 unless noted)")
    for name in (
        "model",
        "variant",
        "params M",
        "GMAC",
        "pre",
        "infer p50/p95",
        "post",
        "total",
        "speed-up",
        "b1 img/s",
        "b8 img/s",
        "peak MB",
        "faults min/maj",
        "user/sys ms",
        "x floor",
    ):
        table.add_column(name, justify="left" if name in ("model", "variant") else "right")
    return table


def _bench_row(table: Table, row: dict, ratios: bool = False) -> None:
    table.add_row(
        row["model"],
        row["variant"],
        f"{row['parameters'] / 1e6:.2f}",
        f"{row['macs'] / 1e9:.1f}",
        f"{row['preprocess_ms']['median']:.1f}",
        f"{row['inference_ms']['median']:.1f} / {row['inference_ms']['p95']:.1f}",
        f"{row['postprocess_ms']['median']:.1f}",
        f"{row['total_ms']['median']:.1f}",
        f"{row['speedup_vs_baseline']:.2f}x" if ratios else "",
        f"{row.get('throughput_b1_fps', float('nan')):.2f}",
        f"{row.get('throughput_b8_fps', float('nan')):.2f}",
        f"{row['peak_memory_mb']:.0f}",
        f"{row['minor_faults_per_call']:.0f} / {row['major_faults_per_call']:.0f}",
        f"{row['user_ms_per_call']:.0f} / {row['sys_ms_per_call']:.1f}",
        f"{row['over_floor']:.1f}",
    )
