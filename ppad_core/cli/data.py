"""Dataset commands: `ppad synth` (procedural scenes) and `ppad convert-bdd100k` (the official downloads),
both writing the RMT-PPAD layout."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from ppad_core.cli.common import add_json_flag, console
from ppad_core.cli.output import emit


def register(sub: argparse._SubParsersAction) -> None:
    _register_synth(sub)
    _register_convert_bdd100k(sub)


def _register_synth(sub: argparse._SubParsersAction) -> None:
    synth = sub.add_parser(
        "synth",
        help="write procedural driving scenes (images, boxes, drivable and lane masks) in the RMT-PPAD layout",
        description="Render perspective roads with curves and hills, 2-4 lanes with dashed/solid white and yellow "
        "markings, vehicles of varied size, colour and occlusion, roadside clutter, lighting, blur and noise. "
        "Each scene is a pure function of (seed, split, index). Beside each sample goes its road-geometry ground "
        "truth: the camera and 3-D lane lines in the OpenLane v1 layout, vehicle ground positions and a BEV "
        "drivable grid (geometry/<split>/, described in ppad_core/data/scene_geometry.py).",
    )
    synth.add_argument("out_dir", help="dataset root to write (images/, labels/, mask/, geometry/)")
    synth.add_argument("--train", type=int, default=1000, help="training scenes (default 1000)")
    synth.add_argument("--val", type=int, default=200, help="validation scenes (default 200)")
    synth.add_argument("--seed", type=int, default=0, help="scene seed (default 0)")
    synth.add_argument("--width", type=int, default=1280, help="image width (default 1280)")
    synth.add_argument("--height", type=int, default=720, help="image height (default 720)")
    synth.add_argument("--workers", type=int, default=2, help="rendering processes (default 2)")
    synth.add_argument(
        "--geometry-only",
        action="store_true",
        help="write only the geometry ground truth, for scenes already written with the same arguments",
    )
    add_json_flag(synth)
    synth.set_defaults(func=cmd_synth)


def _register_convert_bdd100k(sub: argparse._SubParsersAction) -> None:
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
    add_json_flag(conv)
    conv.set_defaults(func=cmd_convert_bdd100k)


def cmd_synth(args: argparse.Namespace) -> int:
    from ppad_core.data.synth import generate_dataset

    started = time.time()
    counts = generate_dataset(
        args.out_dir,
        {"train": args.train, "val": args.val},
        args.seed,
        args.width,
        args.height,
        args.workers,
        geometry_only=args.geometry_only,
    )
    elapsed = time.time() - started
    summary = {
        "output": str(args.out_dir),
        "seed": args.seed,
        **counts,
        "seconds": round(elapsed, 1),
        "images_per_minute": round(60 * sum(counts.values()) / max(elapsed, 1e-9)),
    }
    return emit(summary, args.json, "synthetic scenes written")


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
    return emit(summary, args.json, "BDD100K converted to the RMT-PPAD layout")
