"""The `ppad` command: one entry point, one subcommand per stage of the model's life cycle."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.live import Live
from rich.table import Table

console = Console(stderr=True)


def _describe_model(model, config, fused_params: int, macs: int) -> dict[str, Any]:
    head = model.head
    parts = {
        "backbone": model.backbone,
        "hybrid_encoder": model.encoder,
        "detection_decoder": [head.input_proj, head.detector],
        "gca": [head.det_gca, head.seg_gca],
        "segmentation_decoder": head.segmenter,
    }

    def count(modules) -> int:
        modules = modules if isinstance(modules, list) else [modules]
        return sum(p.numel() for m in modules for p in m.parameters())

    return {
        "name": config.name,
        "input_size": list(config.input_size),
        "class_names": config.class_names,
        "seg_names": config.seg_names,
        "seg_thresholds": config.seg_thresholds,
        "parameters": {
            "trainable": sum(p.numel() for p in model.parameters() if p.requires_grad),
            "fused": fused_params,
            "by_part": {name: count(m) for name, m in parts.items()},
        },
        "macs": macs,
    }


def _time_forward(model, input_size, runs: int) -> dict[str, float]:
    from ppad_core.model.complexity import forward_times_ms

    times = forward_times_ms(model, input_size, runs)
    return {
        "runs": runs,
        "threads": torch.get_num_threads(),
        "median_ms": statistics.median(times),
        "min_ms": min(times),
    }


def cmd_info(args: argparse.Namespace) -> int:
    from ppad_core.model.checkpoint import load_or_build
    from ppad_core.model.complexity import count_macs, count_parameters
    from ppad_core.model.fusion import fuse_model

    model, meta = load_or_build(args.target)
    config, provenance = model.config, (meta or {}).get("provenance")
    fused = fuse_model(model)
    info = _describe_model(model, config, count_parameters(fused), count_macs(fused, config.input_size))
    if provenance:
        info["provenance"] = provenance
    if args.latency:
        info["latency_fused_fp32"] = _time_forward(fused, config.input_size, args.latency)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    params = info["parameters"]
    rows = {f"params: {part}": f"{n:,}" for part, n in params["by_part"].items()}
    rows["params: trainable total"] = f"{params['trainable']:,}"
    rows["params: after fusion"] = f"{params['fused']:,}"
    rows["MACs (fused)"] = f"{info['macs'] / 1e9:.2f} G"
    rows["classes"] = ", ".join(config.class_names)
    rows["seg thresholds"] = ", ".join(f"{n}={t}" for n, t in zip(config.seg_names, config.seg_thresholds))
    if provenance:
        rows["provenance"] = ", ".join(f"{k}={v}" for k, v in provenance.items())
    if args.latency:
        lat = info["latency_fused_fp32"]
        rows[f"forward latency (median of {lat['runs']}, {lat['threads']} threads)"] = f"{lat['median_ms']:.1f} ms"
    _print_table(f"{config.name}  (input {config.input_size[0]}x{config.input_size[1]})", rows)
    return 0


def cmd_import_official(args: argparse.Namespace) -> int:
    from ppad_core.model.checkpoint import save_checkpoint
    from ppad_core.model.config import resolve_model_config
    from ppad_core.model.official import import_official

    config = resolve_model_config(args.config)
    with console.status(f"reading {args.checkpoint} with the restricted unpickler"):
        model, provenance = import_official(args.checkpoint, config)
    out = save_checkpoint(model, args.out_dir, provenance)
    summary = {
        "output": str(out),
        "tensors": len(model.state_dict()),
        "parameters": sum(p.numel() for p in model.parameters()),
        "provenance": provenance,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table(
            "imported official RMT-PPAD checkpoint",
            {**{k: v for k, v in summary.items() if k != "provenance"}, **provenance},
        )
    return 0


def cmd_synth(args: argparse.Namespace) -> int:
    from ppad_core.data.synth import generate_dataset

    started = time.time()
    counts = generate_dataset(
        args.out_dir, {"train": args.train, "val": args.val}, args.seed, args.width, args.height, args.workers
    )
    elapsed = time.time() - started
    summary = {
        "output": str(args.out_dir),
        "seed": args.seed,
        **counts,
        "seconds": round(elapsed, 1),
        "images_per_minute": round(60 * sum(counts.values()) / max(elapsed, 1e-9)),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table("synthetic scenes written", summary)
    return 0


def _parse_overrides(pairs: list[str]) -> dict[str, Any]:
    import yaml

    overrides = {}
    for pair in pairs:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        key, value = pair.split("=", 1)
        overrides[key] = yaml.safe_load(value)
    return overrides


def cmd_train(args: argparse.Namespace) -> int:
    from ppad_core.train.config import load_train_config
    from ppad_core.train.trainer import Trainer

    if args.resume:
        run_dir = Path(args.resume)
        config = load_train_config(run_dir / "train.yaml", _parse_overrides(args.set))
    else:
        if not args.config:
            raise ValueError("give a training config YAML, or --resume RUN_DIR")
        config = load_train_config(args.config, _parse_overrides(args.set))
        run_dir = Path(args.run_dir or Path("runs") / Path(args.config).stem)
        if (run_dir / "last_state.pt").exists():
            raise ValueError(f"{run_dir} already holds a run; use --resume {run_dir} or another --run-dir")
    summary = Trainer(config, run_dir, resume=bool(args.resume), progress=not args.no_progress).fit()
    if args.json:
        print(json.dumps(summary, indent=2, default=float))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from ppad_core.data.dataset import DrivingDataset
    from ppad_core.evaluate.evaluator import evaluate
    from ppad_core.evaluate.report import print_report, write_plots

    predictor = _predictor_from_args(args)
    config = predictor.config
    dataset = DrivingDataset(args.data, args.split, config.input_size, config.num_classes)
    results = evaluate(predictor, dataset, batch_size=args.batch, workers=args.workers)
    results["checkpoint"], results["data"], results["split"] = (
        str(args.checkpoint),
        str(args.data),
        dataset.layout.split,
    )
    print_report(results, Console())
    if args.plots:
        for path in write_plots(results, args.plots):
            console.print(f"wrote {path}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
        console.print(f"wrote {args.json}")
    return 0


def _print_table(title: str, values: dict[str, Any]) -> None:
    table = Table(title=title)
    table.add_column("item")
    table.add_column("value", justify="right")
    for key, value in values.items():
        table.add_row(key, str(value))
    Console().print(table)


def cmd_convert_bdd100k(args: argparse.Namespace) -> int:
    from ppad_core.data.bdd100k import DEFAULT_CLASS_MAP, convert, parse_class_map

    class_map = parse_class_map(args.class_map) if args.class_map else DEFAULT_CLASS_MAP
    det_json = {split: Path(path) for split, path in (("train", args.det_train), ("val", args.det_val)) if path}
    report = convert(
        Path(args.images),
        det_json,
        Path(args.drivable),
        Path(args.lane),
        Path(args.out_dir),
        class_map,
        args.dilate_val_lanes,
        args.copy_images,
        tuple(args.splits.split(",")),
    )
    summary = {
        "output": args.out_dir,
        **{f"images_{k}": v for k, v in report.images.items()},
        **{f"boxes_class_{k}": v for k, v in sorted(report.boxes.items())},
        "dropped_categories": dict(report.dropped_categories),
        "skipped": len(report.skipped),
    }
    for line in report.skipped[:5]:
        console.print(f"[yellow]skipped[/] {line}")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table("BDD100K converted to the RMT-PPAD layout", summary)
    return 0


def _add_runtime_options(
    parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None, exclude: tuple[str, ...] = ("input_size",)
) -> None:
    from ppad_core.runtime.options import add_runtime_arguments

    add_runtime_arguments(parser, only, exclude)


def _predictor_from_args(args: argparse.Namespace):
    from ppad_core.runtime.options import RuntimeOptions
    from ppad_core.runtime.predictor import Predictor

    return Predictor.from_checkpoint(args.checkpoint, RuntimeOptions.from_args(args))


def cmd_predict(args: argparse.Namespace) -> int:
    from ppad_core.runtime.predict import run_predict

    predictor = _predictor_from_args(args)
    with console.status("predicting"):
        counts = run_predict(predictor, args.inputs, args.out, save_masks=args.save_masks)
    summary = {"output": str(args.out), **counts}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table("predictions written", summary)
    return 0


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
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table("export", summary)
    if failed:
        console.print(f"[bold red]error:[/] ONNX Runtime differs from PyTorch by more than {args.tolerance}")
        return 1
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from ppad_core.data.synth import render_scene
    from ppad_core.runtime.benchmark import default_variants, markdown_table, run_benchmark
    from ppad_core.runtime.options import RuntimeOptions

    labels = args.labels or [Path(m).name for m in args.models]
    if len(labels) != len(args.models):
        raise ValueError(f"--labels names {len(labels)} models but {len(args.models)} were given")
    variants = default_variants(RuntimeOptions.from_args(args), int8=args.int8)
    if args.variants:
        variants = [v for v in variants if any(key in v.label for key in args.variants)]
        if not variants:
            raise ValueError(f"--variants {args.variants} matches none of the available variants")
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
        )
    final = _bench_table()
    for row in result["rows"]:
        _bench_row(final, row, ratios=True)
    Console(width=max(Console().width, 200)).print(final)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
        console.print(f"wrote {args.json}")
    if args.markdown:
        Path(args.markdown).write_text(markdown_table(result))
        console.print(f"wrote {args.markdown}")
    return 0


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
        f"{row['over_floor']:.1f}",
    )


def _prune_config(args: argparse.Namespace):
    from ppad_core.compress.importance import ImportanceConfig
    from ppad_core.compress.pruning import PruneConfig

    importance = ImportanceConfig(
        criterion=args.criterion,
        conflict=args.conflict,
        conflict_weight=args.conflict_weight,
        aggregation=args.aggregation,
    )
    return PruneConfig(
        target_reduction=args.target,
        scope=args.scope,
        steps=args.steps,
        calibration_batches=args.calib_batches,
        round_to=args.round_to,
        module_ratios=dict(args.module_ratio),
        importance=importance,
    )


def _compare_and_print(args: argparse.Namespace, teacher: str, student: Path, title: str) -> dict:
    from ppad_core.compress.pipeline import METRIC_LABELS, METRICS, compare

    rows = compare(teacher, student, args.eval_data or args.data, args.val_split, progress=not args.no_progress)
    table = Table(title=title)
    for column in ("", "parameters", "GMAC", "CPU ms torch NHWC", "CPU ms ORT", *METRIC_LABELS):
        table.add_column(column, justify="left" if not column else "right")
    for name in ("teacher", "student"):
        row = rows[name]
        table.add_row(
            name,
            f"{row['parameters']:,}",
            f"{row['macs'] / 1e9:.2f}",
            f"{row['latency_ms']:.1f}",
            f"{row['latency_onnxruntime_ms']:.1f}",
            *(f"{100 * row[k]:.2f}" for k in METRICS),
        )
    ratio, delta = rows["ratio"], rows["delta"]
    table.add_row(
        "student / delta",
        *(f"{ratio[k]:.3f}x" for k in ("parameters", "macs", "latency_ms", "latency_onnxruntime_ms")),
        *(f"{100 * delta[k]:+.2f}" for k in METRICS),
    )
    Console(stderr=args.json, width=max(Console().width, 140)).print(table)
    return rows


def _finish_compression(args: argparse.Namespace, summary: dict) -> int:
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    path, report = _prune_with_status(args, Path(args.out))
    summary = {"student": str(path), "prune": report}
    if (args.eval_data or args.data) and not args.no_compare:
        summary["comparison"] = _compare_and_print(args, args.checkpoint, path, "teacher vs pruned student")
    return _finish_compression(args, summary)


def cmd_distill(args: argparse.Namespace) -> int:
    from ppad_core.compress.pipeline import run_distill

    run_dir = Path(args.run_dir or f"runs/distill_{Path(args.student).name}")
    best = run_distill(
        args.student, args.teacher, args.config, run_dir, _parse_overrides(args.set), not args.no_progress
    )
    summary = {"student": str(best)}
    if not args.no_compare:
        data = args.data or load_train_config_root(args.config)
        args.data = data
        summary["comparison"] = _compare_and_print(args, args.teacher, best, "teacher vs distilled student")
    return _finish_compression(args, summary)


def load_train_config_root(path: str | Path) -> str:
    from ppad_core.train.config import load_train_config

    return load_train_config(path).data.root


def cmd_compress(args: argparse.Namespace) -> int:
    import shutil

    from ppad_core.compress.pipeline import run_distill

    out = Path(args.out)
    if args.resume:
        pruned, report = _pruned_for_resume(out)
        config, overrides = out / "distill" / "train.yaml", _parse_overrides(args.set)
        args.data = args.data or load_train_config_root(config)
    else:
        args.data = args.data or load_train_config_root(args.config)
        pruned, report = _prune_with_status(args, out / "pruned")
        config, overrides = args.config, {"data.root": args.data, **_parse_overrides(args.set)}
    best = run_distill(
        pruned, args.checkpoint, config, out / "distill", overrides, not args.no_progress, resume=args.resume
    )
    student = out / "student"
    if student.exists():
        shutil.rmtree(student)
    shutil.copytree(best, student)
    summary = {"student": str(student), "prune": report}
    if not args.no_compare:
        summary["comparison"] = _compare_and_print(args, args.checkpoint, student, "teacher vs compressed student")
    return _finish_compression(args, summary)


def _prune_with_status(args: argparse.Namespace, out_dir: Path) -> tuple[Path, dict]:
    from ppad_core.compress.pipeline import run_prune

    with console.status("pruning") as status:
        path, report = run_prune(
            args.checkpoint,
            out_dir,
            _prune_config(args),
            args.data,
            args.train_split,
            on_step=lambda step, reduction: status.update(f"pruning: step {step}, {reduction:.1%} removed"),
            batch_size=args.calib_batch_size,
        )
    console.print(
        f"wrote {path} ({report['reduction']:.2%} fewer parameters, channel ratio {report['channel_ratio']:.3f})"
    )
    return path, report


def _pruned_for_resume(out: Path) -> tuple[Path, dict]:
    """The pruned student and its report from an interrupted `ppad compress --out OUT`."""
    from ppad_core.model.checkpoint import read_metadata

    if not (out / "distill" / "last_state.pt").is_file():
        raise FileNotFoundError(f"{out / 'distill' / 'last_state.pt'}: no interrupted compression to resume")
    report = read_metadata(out / "pruned")["provenance"]["report"]
    console.print(f"resuming: {report['reduction']:.2%} fewer parameters already pruned in {out / 'pruned'}")
    return out / "pruned", report


def module_ratio_argument(text: str) -> tuple[str, float]:
    """argparse type of --module-ratio: MODULE=RATIO -> (module, ratio)."""
    name, sep, ratio = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(ratio)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MODULE=RATIO (e.g. head.segmenter=0.5), got {text!r}") from None


def _add_prune_options(parser: argparse.ArgumentParser) -> None:
    from ppad_core.compress.pruning import SCOPES, PruneConfig

    defaults = PruneConfig()
    group = parser.add_argument_group("pruning")
    group.add_argument(
        "--target",
        type=float,
        default=defaults.target_reduction,
        help="fraction of parameters removed (default %(default)s)",
    )
    group.add_argument(
        "--scope",
        choices=SCOPES,
        default=defaults.scope,
        help="prunable part (default %(default)s; +head adds the head's input projections, GCA and "
        "the seg decoder's channels)",
    )
    group.add_argument(
        "--steps", type=int, default=defaults.steps, help="iterative steps, statistics recomputed (default %(default)s)"
    )
    group.add_argument(
        "--round-to",
        type=int,
        default=defaults.round_to,
        help="kept widths rounded up to multiples of this (default %(default)s, halved until the target fits; "
        "2 suits models whose narrowest groups have 8 channels)",
    )
    group.add_argument(
        "--module-ratio",
        type=module_ratio_argument,
        action="append",
        default=[],
        metavar="MODULE=RATIO",
        help="fixed channel ratio for the groups inside MODULE (e.g. head.segmenter=0.5), outside the ratio search; "
        "for layers that cost latency rather than parameters; repeatable",
    )
    group.add_argument(
        "--calib-batches",
        type=int,
        default=defaults.calibration_batches,
        help="calibration batches per step (default %(default)s)",
    )
    group.add_argument("--calib-batch-size", type=int, default=4, help="images per calibration batch (default 4)")
    group.add_argument(
        "--criterion", choices=("taylor", "magnitude"), default="taylor", help="channel importance (default taylor)"
    )
    group.add_argument(
        "--conflict", choices=("cosine", "sign", "none"), default="cosine", help="gradient-conflict penalty"
    )
    group.add_argument("--conflict-weight", type=float, default=0.5, help="lambda of the penalty (default 0.5)")
    group.add_argument(
        "--aggregation", choices=("max", "mean"), default="max", help="across tasks: max = safe (default)"
    )
    group.add_argument("--train-split", default="train2017", help="calibration split (default train2017)")


def _add_compare_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--eval-data",
        help="labelled dataset root the final table scores (default: --data); a test set the run never saw, "
        "where the validation split chose the checkpoint",
    )
    parser.add_argument("--val-split", default="val2017", help="split scored in the final table (default val2017)")
    parser.add_argument("--no-compare", action="store_true", help="skip the final teacher/student table")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON to stdout")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ppad",
        description="RMT-PPAD multi-task perception (vehicles, drivable area, lane lines): model life-cycle tools.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = sub.add_parser(
        "info",
        help="architecture summary: parameters (trainable and fused), MACs, classes, thresholds",
        description="Summarise a model: a shipped config name (rmt_ppad_l, rmt_ppad_s), a config YAML or a "
        "checkpoint directory. Parameters are counted before and after inference fusion (Conv+BN folding, "
        "RepConv merging); MACs are for one fused forward at the configured input size.",
    )
    info.add_argument("target", help="config name, config YAML or checkpoint directory")
    info.add_argument(
        "--latency", type=int, default=0, metavar="RUNS", help="also time RUNS fused forwards on a random image"
    )
    info.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    info.set_defaults(func=cmd_info)

    imp = sub.add_parser(
        "import-official",
        help="convert an official RMT-PPAD best.pt into a ppad checkpoint (no pickled code is run)",
        description="Read a checkpoint written by the official RMT-PPAD code with a restricted unpickler "
        "(tensors and plain containers only; nothing from the file is executed), map every weight to this "
        "package's names (any missing or unexpected key is an error) and write OUT_DIR/model.safetensors "
        "and OUT_DIR/model.yaml.",
    )
    imp.add_argument("checkpoint", help="official checkpoint file, e.g. best.pt")
    imp.add_argument("out_dir", help="output checkpoint directory")
    imp.add_argument("--config", default="rmt_ppad_l", help="architecture the weights belong to (default: rmt_ppad_l)")
    imp.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    imp.set_defaults(func=cmd_import_official)

    synth = sub.add_parser(
        "synth",
        help="write procedural driving scenes (images, boxes, drivable and lane masks) in the RMT-PPAD layout",
        description="Render perspective roads with curves and hills, 2-4 lanes with dashed/solid white and yellow "
        "markings, vehicles of varied size, colour and occlusion, roadside clutter, lighting, blur and noise. "
        "Each scene is a pure function of (seed, split, index).",
    )
    synth.add_argument("out_dir", help="dataset root to write (images/, labels/, mask/)")
    synth.add_argument("--train", type=int, default=1000, help="training scenes (default 1000)")
    synth.add_argument("--val", type=int, default=200, help="validation scenes (default 200)")
    synth.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    synth.add_argument("--width", type=int, default=1280, help="image width (default 1280)")
    synth.add_argument("--height", type=int, default=720, help="image height (default 720)")
    synth.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    synth.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    synth.set_defaults(func=cmd_synth)

    conv = sub.add_parser(
        "convert-bdd100k",
        help="convert the official BDD100K downloads (detection JSON, drivable and lane masks) to the RMT-PPAD layout",
        description="Boxes from det_20 or 2018 label JSON (car, bus, truck, train merged into 'vehicle' unless "
        "--class-map says otherwise); drivable area from 2020 masks (0 direct, 1 alternative, 2 background) or "
        "2018 *_drivable_id.png maps, direct and alternative merged; lane lines from lane masks (255 = "
        "background). --dilate-val-lanes K widens val lane labels with a KxK ellipse, as RMT-PPAD's released "
        "val masks are (about 2 px lines to the 8 px training width: K = 7).",
    )
    conv.add_argument("out_dir", help="output dataset root")
    conv.add_argument("--images", required=True, help="bdd100k/images/100k (holding train/ and val/)")
    conv.add_argument(
        "--det-train", help="training detection JSON (det_train.json or bdd100k_labels_images_train.json)"
    )
    conv.add_argument("--det-val", help="validation detection JSON")
    conv.add_argument(
        "--drivable", required=True, help="folder holding train/ and val/ drivable masks (either encoding)"
    )
    conv.add_argument("--lane", required=True, help="folder holding train/ and val/ lane masks")
    conv.add_argument("--class-map", help="category=class_id list, e.g. 'car=0,bus=0,truck=0,train=0' (the default)")
    conv.add_argument(
        "--dilate-val-lanes", type=int, default=0, metavar="K", help="dilate val lane masks (K px kernel)"
    )
    conv.add_argument("--copy-images", action="store_true", help="copy images instead of symlinking them")
    conv.add_argument("--splits", default="train,val", help="splits to convert (default train,val)")
    conv.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    conv.set_defaults(func=cmd_convert_bdd100k)

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
    pred.add_argument("--json", action="store_true", help="print the summary as JSON to stdout")
    _add_runtime_options(pred)
    pred.set_defaults(func=cmd_predict)

    train = sub.add_parser(
        "train",
        help="train a model from a training YAML (resume with --resume RUN_DIR; multi-GPU through torchrun)",
        description="Config-driven training with the official recipe: cosine LR with warm-up, gradient clipping, "
        "EMA, mixed precision, atomic state after every epoch (a killed run resumes exactly), best checkpoint by "
        "fitness. Run under `torchrun --nproc_per_node N` for DistributedDataParallel.",
    )
    train.add_argument("config", nargs="?", help="training YAML, e.g. config/train_synthetic_s.yaml")
    train.add_argument("--run-dir", help="output folder (default runs/<config name>)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last epoch")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set epochs=5 --set data.root=/data/bdd",
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    train.add_argument("--json", action="store_true", help="print the summary as JSON to stdout")
    train.set_defaults(func=cmd_train)

    ev = sub.add_parser(
        "eval",
        help="score a checkpoint with the RMT-PPAD protocol (mAP50, Recall, drivable mIoU, lane IoU/accuracy)",
        description="All queries, no NMS; AP at IoU 0.5 with 101-point interpolation; Recall at the lowest "
        "confidence; per-image segmentation metrics at network resolution averaged over images, at the "
        "checkpoint's thresholds; plus a threshold sweep and mAP50-95.",
    )
    ev.add_argument("checkpoint", help="checkpoint directory")
    ev.add_argument("--data", required=True, help="dataset root in the RMT-PPAD layout")
    ev.add_argument("--split", default="val2017", help="split folder name (default val2017)")
    ev.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    ev.add_argument("--workers", type=int, default=0, help="data loading processes (default 0)")
    ev.add_argument("--plots", metavar="DIR", help="write PR curve and threshold sweep PNGs to DIR")
    ev.add_argument("--json", metavar="FILE", help="write all results as JSON to FILE")
    _add_runtime_options(ev, exclude=("input_size", "resize", "score_threshold"))
    ev.set_defaults(func=cmd_eval)

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
    exp.add_argument("--json", action="store_true", help="print machine-readable JSON to stdout")
    exp.set_defaults(func=cmd_export)

    bench = sub.add_parser(
        "bench",
        help="latency/throughput/memory of teacher and student on every backend, side by side",
        description="Each MODEL (checkpoint directory, or an architecture config for random weights) runs through "
        "every backend variant this device supports: torch eager (unfused, the baseline), fused, channels-last, "
        "bf16/fp16, onnxruntime (and INT8 with --int8). A 1280x720 frame goes through the full Predictor: "
        "pre/infer/post latency median and p95, throughput at each batch size, peak memory, parameters, MACs, "
        "and the physical floor (MACs over the measured matrix-multiply rate).",
    )
    bench.add_argument("models", nargs="+", help="checkpoint directories or config names (first = reference)")
    bench.add_argument("--labels", nargs="+", help="row labels, e.g. teacher student")
    _add_runtime_options(bench, only=("device", "input_size"))
    bench.add_argument("--warmup", type=int, default=2, help="warm-up runs (default 2)")
    bench.add_argument("--runs", type=int, default=10, help="timed runs at batch 1 (default 10)")
    bench.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8], help="throughput batches (default 1 8)")
    bench.add_argument("--int8", action="store_true", help="include ONNX Runtime INT8 (CPU)")
    bench.add_argument(
        "--calib",
        help="INT8 calibration images (default: each checkpoint's recorded training data, else the benchmark frame)",
    )
    bench.add_argument("--variants", nargs="+", help="only variants whose label contains one of these words")
    bench.add_argument("--json", metavar="FILE", help="write all figures as JSON")
    bench.add_argument("--markdown", metavar="FILE", help="write the table as Markdown (benchmarks/RESULTS.md)")
    bench.set_defaults(func=cmd_bench)

    prune = sub.add_parser(
        "prune",
        help="task-aware safe structured pruning of a checkpoint to a parameter budget",
        description="Per-task Taylor importance (BatchNorm included) from calibration batches, per-task "
        "normalisation, safe max aggregation, a gradient-conflict penalty, then structured pruning on "
        "Torch-Pruning's dependency graph in iterative steps; the channel ratio is searched so the whole "
        "model loses --target of its parameters (within 1 point). The pruned widths go into model.yaml.",
    )
    prune.add_argument("checkpoint", help="teacher checkpoint directory")
    prune.add_argument("--out", required=True, help="output checkpoint directory")
    prune.add_argument("--data", help="labelled dataset root (calibration; also scored in the final table)")
    _add_prune_options(prune)
    _add_compare_options(prune)
    prune.set_defaults(func=cmd_prune)

    distill = sub.add_parser(
        "distill",
        help="fine-tune a (pruned) student with task losses plus feature distillation from a frozen teacher",
        description="Training (as `ppad train`) of STUDENT with the teacher's backbone-stage and encoder features "
        "as extra targets (MSE through 1x1 adapters where widths differ, or CWD); adapters are not saved.",
    )
    distill.add_argument("student", help="student checkpoint directory (e.g. from ppad prune)")
    distill.add_argument("--teacher", required=True, help="teacher checkpoint directory")
    distill.add_argument(
        "--config", default="config/distill_synthetic_s.yaml", help="training YAML with a distill section"
    )
    distill.add_argument("--run-dir", help="output folder (default runs/distill_<student>)")
    distill.add_argument("--data", help="dataset scored in the final table (default: the config's)")
    distill.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    _add_compare_options(distill)
    distill.set_defaults(func=cmd_distill)

    compress = sub.add_parser(
        "compress",
        help="prune then distil in one command; ends with the teacher vs student table",
        description="`ppad prune` followed by `ppad distill` of the result: OUT/pruned, OUT/distill (the "
        "training run) and OUT/student (the final checkpoint).",
    )
    compress.add_argument("checkpoint", help="teacher checkpoint directory")
    compress.add_argument("--out", required=True, help="output folder")
    compress.add_argument("--config", default="config/distill_synthetic_s.yaml", help="distillation training YAML")
    compress.add_argument("--data", help="labelled dataset root (default: the config's data.root)")
    compress.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config value")
    compress.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in OUT: keep OUT/pruned, resume OUT/distill from its last epoch "
        "(its train.yaml; --set still applies, e.g. more epochs)",
    )
    _add_prune_options(compress)
    _add_compare_options(compress)
    compress.set_defaults(func=cmd_compress)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (FileNotFoundError, ValueError, RuntimeError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
