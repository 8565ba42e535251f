"""`bag_from_images`: an image folder in the RMT-PPAD layout -> a rosbag2 camera bag (MCAP or sqlite3).

The bag records each frame's image name and the dataset it came from, so `bag_eval` scores every
frame against its labels without further arguments. Where the dataset has road-geometry ground truth
(`ppad synth` writes it: ppad_core/data/scene_geometry.py), each image gets a sensor_msgs/CameraInfo with its
stamp on the camera_info topic beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.console import Console

from ppad_core.data.layout import DatasetLayout
from ppad_core.data.scene_geometry import read_ground_truth
from ppad_ros.bag_io import STORAGES, BagError, write_image_bag

console = Console(stderr=True, soft_wrap=True)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bag_from_images",
        description="Write the images of one split of an RMT-PPAD-layout dataset (synthetic scenes, a BDD100K "
        "subset) into a rosbag2 with one camera topic, in name order at --rate.",
    )
    parser.add_argument("root", help="dataset root (images/<split>/, labels/, mask/)")
    parser.add_argument("--out", required=True, help="bag directory to create (must not exist)")
    parser.add_argument("--split", default="val2017", help="split folder (default val2017)")
    parser.add_argument("--topic", default="/camera/image_raw", help="camera topic (default /camera/image_raw)")
    parser.add_argument("--rate", type=float, default=10.0, help="frames per second (default 10)")
    parser.add_argument("--frame-id", default="camera", help="header frame_id (default camera)")
    parser.add_argument("--storage", choices=sorted(STORAGES), default="mcap", help="default mcap")
    parser.add_argument(
        "--compressed", action="store_true", help="sensor_msgs/CompressedImage holding the files' own bytes"
    )
    parser.add_argument("--limit", type=int, default=0, help="at most this many frames (0: all)")
    parser.add_argument(
        "--no-camera-info", action="store_true", help="no camera_info topic even where the dataset has calibration"
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON to stdout")
    return parser


def main(argv: list[str] | None = None) -> int:
    from ppad_core.runtime.allocator import configure_allocator

    try:
        configure_allocator()  # PPAD_ALLOCATOR (tuned unless it says default): the same process policy as ppad
        args = build_parser().parse_args(argv)
        layout = DatasetLayout(args.root, args.split)
        images = [sample.image for sample in layout.samples()]
        if args.limit:
            images = images[: args.limit]
        calibrations = None if args.no_camera_info else [_calibration(args.root, layout.split, p.stem) for p in images]
        out = Path(args.out)
        # the labels' location relative to the bag, so a bag and its dataset can move together
        root = os.path.relpath(Path(args.root).resolve(), out.resolve().parent)
        summary = write_image_bag(
            images,
            out,
            args.topic,
            args.rate,
            args.frame_id,
            args.storage,
            args.compressed,
            source={"root": root, "split": layout.split},
            calibrations=calibrations,
        )
    except (BagError, FileNotFoundError, ValueError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        console.print(f"wrote {summary['frames']} frames to {out} ({summary['type']} on {summary['topic']})")
    return 0


def _calibration(root: str, split: str, name: str) -> tuple | None:
    """(K, width, height) from the sample's geometry ground truth, or None without one."""
    truth = read_ground_truth(root, split, name)
    return None if truth is None else (truth.intrinsic, truth.width, truth.height)


if __name__ == "__main__":
    sys.exit(main())
