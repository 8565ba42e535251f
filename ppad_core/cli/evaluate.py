"""`ppad eval`: a checkpoint scored on a dataset split with the RMT-PPAD protocol."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

from ppad_core.cli.common import _add_runtime_options, _predictor_from_args, add_json_options, console
from ppad_core.cli.output import write_json


def register(sub: argparse._SubParsersAction) -> None:
    ev = sub.add_parser(
        "eval",
        help="score a checkpoint with the RMT-PPAD protocol (mAP50, Recall, drivable mIoU, lane IoU/accuracy)",
        description="All queries, no NMS; AP at IoU 0.5 with 101-point interpolation; Recall at the lowest "
        "confidence; per-image segmentation metrics at network resolution averaged over images, at the "
        "checkpoint's thresholds; plus a threshold sweep and mAP50-95.",
    )
    ev.add_argument("checkpoint", nargs="?", help="checkpoint directory (not needed with --ground-truth-masks)")
    ev.add_argument("--data", required=True, help="dataset root in the RMT-PPAD layout")
    ev.add_argument("--split", default="val2017", help="split folder name (default val2017)")
    ev.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    ev.add_argument("--workers", type=int, default=0, help="data loading processes (default 0)")
    ev.add_argument(
        "--plots", metavar="DIR", help="write PR curve and threshold sweep PNGs (with --geometry: BEV plots) to DIR"
    )
    geometry = ev.add_argument_group(
        "road geometry",
        "score lanes, drivable grid and obstacle ranges in metres against the dataset's geometry "
        "ground truth (geometry/<split>/, written by `ppad synth`) instead of the protocol metrics",
    )
    geometry.add_argument("--geometry", action="store_true", help="score road geometry (flat and hilly scenes apart)")
    geometry.add_argument(
        "--ground-truth-masks",
        action="store_true",
        help="with --geometry: use the labelled masks and boxes instead of a model (the geometry step alone)",
    )
    geometry.add_argument(
        "--plot-frames", default="0,1,2", help="with --geometry --plots: frame indices to draw (default 0,1,2)"
    )
    add_json_options(ev, "all results")
    _add_runtime_options(ev, exclude=("input_size", "resize", "score_threshold"))
    ev.set_defaults(func=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    if args.geometry:
        return cmd_eval_geometry(args)
    if args.checkpoint is None:
        raise SystemExit("ppad eval: a checkpoint is needed (only --geometry --ground-truth-masks runs without one)")
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
    print_report(results, Console(stderr=args.json))
    return _write_outputs(args, results, lambda: write_plots(results, args.plots))


def cmd_eval_geometry(args: argparse.Namespace) -> int:
    from ppad_core.evaluate.geometry_eval import evaluate_geometry
    from ppad_core.evaluate.report import print_geometry_report, write_geometry_plots

    if args.ground_truth_masks:
        predictor, source = None, "ground-truth masks"
    elif args.checkpoint is None:
        raise SystemExit("ppad eval --geometry: give a checkpoint, or --ground-truth-masks")
    else:
        predictor, source = _predictor_from_args(args), str(args.checkpoint)
    frames = [int(index) for index in args.plot_frames.split(",") if index.strip()] if args.plots else []
    results, kept = evaluate_geometry(args.data, args.split, predictor, keep_frames=frames)
    results["source"], results["data"], results["split"] = source, str(args.data), args.split
    print_geometry_report(results, Console(stderr=args.json))
    return _write_outputs(args, results, lambda: write_geometry_plots(kept, args.plots))


def _write_outputs(args: argparse.Namespace, results: dict, write_plots) -> int:
    """What both evaluations write after their table: the plots (`--plots`), the JSON file and the JSON on stdout."""
    if args.plots:
        for path in write_plots():
            console.print(f"wrote {path}")
    if args.json_out:
        write_json(args.json_out, results)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0
