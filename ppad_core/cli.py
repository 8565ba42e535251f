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
    image = torch.rand(1, 3, *input_size)
    times = []
    with torch.inference_mode():
        model(image)  # warm-up
        for _ in range(runs):
            start = time.perf_counter()
            model(image)
            times.append((time.perf_counter() - start) * 1000)
    return {
        "runs": runs,
        "threads": torch.get_num_threads(),
        "median_ms": statistics.median(times),
        "min_ms": min(times),
    }


def cmd_info(args: argparse.Namespace) -> int:
    from ppad_core.model.checkpoint import load_checkpoint
    from ppad_core.model.complexity import count_macs, count_parameters
    from ppad_core.model.config import resolve_model_config
    from ppad_core.model.fusion import fuse_model
    from ppad_core.model.rmt_ppad import build_model

    target = Path(args.target)
    provenance = None
    if (target / "model.yaml").is_file():
        model, meta = load_checkpoint(target)
        config, provenance = model.config, meta.get("provenance")
    else:
        config = resolve_model_config(args.target)
        model = build_model(config).eval()
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
    from ppad_core.runtime.predictor import Predictor

    predictor = Predictor.from_checkpoint(args.checkpoint)
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


def cmd_predict(args: argparse.Namespace) -> int:
    from ppad_core.runtime.predict import run_predict
    from ppad_core.runtime.predictor import Predictor

    predictor = Predictor.from_checkpoint(args.checkpoint, conf_threshold=args.conf)
    with console.status("predicting"):
        counts = run_predict(predictor, args.inputs, args.out, save_masks=args.save_masks)
    summary = {"output": str(args.out), **counts}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        _print_table("predictions written", summary)
    return 0


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
    pred.add_argument("--conf", type=float, default=0.25, help="detection score threshold (default 0.25)")
    pred.add_argument("--save-masks", action="store_true", help="also write the two masks as PNG per image")
    pred.add_argument("--json", action="store_true", help="print the summary as JSON to stdout")
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
    ev.set_defaults(func=cmd_eval)
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
