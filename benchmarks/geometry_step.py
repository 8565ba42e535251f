"""The road-geometry step's cost per 1280x720 frame (ppad_core/geometry/extract.py): lanes, grid, boundaries and
obstacles from one frame's masks and boxes, without the network.

Frames are rendered scenes; their masks are the demo teacher's (`--source model`, the masks the node would
see) or the labelled ones (`--source labels`). Rounds visit the frames in turn, so one slow frame cannot hide in
one block; the machine should be otherwise idle. From the repository root:

    python benchmarks/geometry_step.py [--frames 20] [--rounds 30] [--source model]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from ppad_core.data.scene_geometry import scene_ground_truth
from ppad_core.data.synth import render_scene
from ppad_core.evaluate.geometry_eval import camera_of
from ppad_core.geometry.extract import RoadGeometryExtractor


def frames(count: int, source: str, checkpoint: str) -> list[tuple]:
    """(extractor, lane mask, drivable mask, boxes, lane logits) per rendered scene."""
    predictor = None
    if source == "model":
        from ppad_core.runtime.predictor import Predictor

        predictor = Predictor.from_checkpoint(checkpoint)
    out = []
    for index in range(count):
        scene = render_scene(11, "val", index)
        extractor = RoadGeometryExtractor(camera_of(scene_ground_truth(scene)))
        if predictor is None:
            masks = (scene.lane > 0).astype(np.uint8), (scene.drivable > 0).astype(np.uint8), scene.boxes, None
        else:
            p = predictor([scene.image])[0]
            masks = p.lane_mask, p.drivable_mask, p.boxes, p.lane_logits
        out.append((extractor, *masks))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=20, help="rendered scenes (default 20)")
    parser.add_argument("--rounds", type=int, default=30, help="passes over all frames (default 30)")
    parser.add_argument("--source", choices=("model", "labels"), default="model", help="whose masks (default model)")
    parser.add_argument("--checkpoint", default="models/rmt_ppad_s_demo", help="model for --source model")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args()
    data = frames(args.frames, args.source, args.checkpoint)
    for extractor, *masks in data:  # warm-up: first calls allocate
        extractor.extract(*masks)
    times = np.zeros((args.rounds, len(data)))
    for r in range(args.rounds):
        for i, (extractor, *masks) in enumerate(data):
            start = time.perf_counter()
            extractor.extract(*masks)
            times[r, i] = (time.perf_counter() - start) * 1e3
    per_frame = np.median(times, axis=0)
    summary = {
        "source": args.source,
        "frames": len(data),
        "rounds": args.rounds,
        "p50_ms": round(float(np.median(times)), 3),
        "p95_ms": round(float(np.percentile(times, 95)), 3),
        "frame_median_range_ms": [round(float(per_frame.min()), 3), round(float(per_frame.max()), 3)],
        "lanes_per_frame": round(float(np.mean([len(e.extract(*m).lanes) for e, *m in data])), 2),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"geometry step, {summary['frames']} frames x {summary['rounds']} rounds, {args.source} masks: "
            f"p50 {summary['p50_ms']} ms, p95 {summary['p95_ms']} ms, per-frame medians "
            f"{summary['frame_median_range_ms'][0]}-{summary['frame_median_range_ms'][1]} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
