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
    ev.add_argument("checkpoint", help="checkpoint directory")
    ev.add_argument("--data", required=True, help="dataset root in the RMT-PPAD layout")
    ev.add_argument("--split", default="val2017", help="split folder name (default val2017)")
    ev.add_argument("--batch", type=int, default=8, help="batch size (default 8)")
    ev.add_argument("--workers", type=int, default=0, help="data loading processes (default 0)")
    ev.add_argument("--plots", metavar="DIR", help="write PR curve and threshold sweep PNGs to DIR")
    add_json_options(ev, "all results")
    _add_runtime_options(ev, exclude=("input_size", "resize", "score_threshold"))
    ev.set_defaults(func=cmd_eval)


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
    print_report(results, Console(stderr=args.json))
    if args.plots:
        for path in write_plots(results, args.plots):
            console.print(f"wrote {path}")
    if args.json_out:
        write_json(args.json_out, results)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0
