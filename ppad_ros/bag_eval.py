"""`bag_eval`: replay a rosbag2 of camera images and measure accuracy, latency and dropped frames.

The command line only: the replay itself is ppad_ros.replay (offline) and ppad_ros.live_replay (live).

offline: every frame through the Predictor in this process (deterministic; compute latency).
live:    frames published at the recorded rate (times --rate) to a running perception node; its
         `perception` outputs are matched by header stamp (end-to-end latency, drops, the node's
         own /diagnostics counts alongside).
Ground truth: an RMT-PPAD label folder matched by frame name (bags written by `bag_from_images`
record the names), or --reference CHECKPOINT: that model's predictions are the reference
(teacher-vs-student agreement on unlabelled drives).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from ppad_core.model.config import ModelConfig
from ppad_core.runtime.options import RuntimeOptions, add_runtime_arguments
from ppad_core.runtime.predictor import Predictor
from ppad_ros.bag_io import BagError, read_frames
from ppad_ros.replay import LabelSource, print_summary, run_offline, summarise, write_results

console = Console(stderr=True, soft_wrap=True)
RUNTIME_FLAGS = ("backend", "device", "precision", "channels_last", "cuda_graph", "onnx_cache")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bag_eval",
        description="Replay a rosbag2 (MCAP or sqlite3) of sensor_msgs/Image or CompressedImage frames: offline "
        "through the Predictor, or live against a running perception node. Writes frames.jsonl (one line per "
        "frame), summary.json, frames.png (latency and per-frame IoU) and overlay JPEGs to --out.",
    )
    parser.add_argument("bag", help="bag directory (or a .mcap / .db3 file)")
    parser.add_argument("--mode", choices=("offline", "live"), default="offline", help="default offline")
    parser.add_argument("--topic", help="image topic in the bag (default: its only image topic)")
    parser.add_argument("--checkpoint", help="offline: model to run; live: model whose config scores outputs")
    parser.add_argument("--labels", help="RMT-PPAD dataset root with the frames' labels (default: recorded in the bag)")
    parser.add_argument("--split", default="val2017", help="label split (default val2017, or as recorded)")
    parser.add_argument("--reference", help="checkpoint whose predictions are the reference (no labels needed)")
    parser.add_argument("--no-labels", action="store_true", help="latency and drops only")
    parser.add_argument("--rate", type=float, default=1.0, help="live: replay speed factor (default 1.0)")
    parser.add_argument("--namespace", default="/perception_demo", help="live: the node's namespace")
    parser.add_argument("--timeout", type=float, default=120.0, help="live: seconds to wait for the node")
    parser.add_argument("--label", help="name of this run in tables (default: mode and model)")
    parser.add_argument("--compare", nargs="*", default=[], help="summary.json files printed side by side")
    parser.add_argument("--out", default="runs/bag_eval", help="output folder (default runs/bag_eval)")
    parser.add_argument("--json", action="store_true", help="print the summary JSON to stdout")
    add_runtime_arguments(parser, only=RUNTIME_FLAGS)  # offline: the model and the reference run this way
    return parser


def main(argv: list[str] | None = None) -> int:
    from ppad_core.runtime.allocator import configure_allocator

    try:
        configure_allocator()  # PPAD_ALLOCATOR (tuned unless it says default), before the model is built
        args = build_parser().parse_args(argv)
        return _run(args)
    except (BagError, FileNotFoundError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2


def _run(args: argparse.Namespace) -> int:
    topic, frames, source = read_frames(args.bag, args.topic)
    if not args.checkpoint:
        raise ValueError("--checkpoint is required (the model to run offline, or the live node's model for scoring)")
    options = RuntimeOptions.from_args(args)
    predictor = Predictor.from_checkpoint(args.checkpoint, options)
    labels = _label_source(args, source, predictor.config, options)
    extra = {
        "bag": str(args.bag),
        "topic": topic,
        "checkpoint": str(args.checkpoint),
        "ground_truth": _ground_truth_name(args, source),
    }
    if args.mode == "offline":
        replay = run_offline(predictor, frames, labels)
    else:
        from ppad_ros.live_replay import run_live

        replay, live = run_live(list(frames), predictor.config, labels, args.namespace, args.rate, args.timeout)
        extra.update(live)
    summary = summarise(replay, args.mode, extra)
    out = Path(args.out)
    write_results(replay, summary, out)
    label = args.label or f"{args.mode} {Path(args.checkpoint).name}"
    others = {Path(p).parent.name: json.loads(Path(p).read_text()) for p in args.compare}
    print_summary({label: summary, **others}, stderr=args.json)
    console.print(f"wrote {out}/summary.json, frames.jsonl, frames.png, overlay_*.jpg")
    if args.json:
        print(json.dumps(summary, indent=2))
    return 0


def _label_source(
    args: argparse.Namespace, source: dict, config: ModelConfig, options: RuntimeOptions
) -> LabelSource | None:
    if args.no_labels:
        return None
    if args.reference:
        return LabelSource(config, None, args.split, Predictor.from_checkpoint(args.reference, options))
    if args.labels:
        return LabelSource(config, args.labels, args.split, None)
    if not source.get("root"):
        return None
    root = Path(args.bag).resolve().parent / source["root"]  # recorded relative to the bag
    return LabelSource(config, str(root), source.get("split", args.split), None)


def _ground_truth_name(args: argparse.Namespace, source: dict) -> str:
    if args.no_labels:
        return "none"
    if args.reference:
        return f"reference model {args.reference}"
    return str(args.labels or source.get("root") or "none")


if __name__ == "__main__":
    sys.exit(main())
