"""The replay library behind `bag_eval` and live replay: ground truth per frame (dataset labels or a
reference model), scoring of predictions, the per-frame records, the summary, and the files and table
a replay ends with. Entry points: `bag_eval` (offline and CLI) and `live_replay` (against a node)."""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from ppad_core.boxes import cxcywh_to_xyxy, xyxy_to_cxcywh
from ppad_core.data.dataset import load_targets
from ppad_core.data.layout import DatasetLayout
from ppad_core.data.scene_geometry import SceneGroundTruth, read_ground_truth
from ppad_core.evaluate.evaluator import add_batch
from ppad_core.evaluate.geometry_eval import GeometryScores
from ppad_core.evaluate.metric_table import GEOMETRY, REPORT, format_value, keys, metric
from ppad_core.evaluate.metrics import MetricAccumulator, segmentation_scores
from ppad_core.model.config import ModelConfig
from ppad_core.runtime.predictor import Prediction, Predictor
from ppad_core.runtime.visualize import draw_overlay
from ppad_ros.bag_io import COMPRESSED, BagError, BagFrame
from ppad_ros.image_conversion import compressed_to_bgr, image_to_bgr

SUMMARY_METRICS = tuple(k for k in keys(REPORT) if k != "lane_recall_acc")  # the eval report's headline rows
OVERLAY_FRAMES = 8


def decode(frame: BagFrame) -> np.ndarray:
    return compressed_to_bgr(frame.msg) if frame.msg.__msgtype__ == COMPRESSED else image_to_bgr(frame.msg)


@dataclass
class Targets:
    labels: np.ndarray  # [N] class ids
    boxes: np.ndarray  # [N, 4] normalised cxcywh
    masks: np.ndarray  # [2, H, W] 0/1 at the network input size


class LabelSource:
    """Ground truth per frame: dataset labels by image name, or a reference model's predictions."""

    def __init__(self, config: ModelConfig, labels: str | None, split: str, reference: Predictor | None) -> None:
        self.config, self.reference = config, reference
        self.layout = DatasetLayout(labels, split) if labels else None

    def geometry(self, frame: BagFrame) -> SceneGroundTruth | None:
        """The frame's road-geometry ground truth, where the dataset has it (ppad synth writes it)."""
        if self.layout is None or frame.name is None:
            return None
        return read_ground_truth(self.layout.root, self.layout.split, frame.name)

    def __call__(self, frame: BagFrame, image: np.ndarray) -> Targets:
        if self.reference is not None:
            return reference_targets(self.reference, image, self.config.input_size)
        if frame.name is None:
            raise BagError(
                f"frame {frame.index} (stamp {frame.stamp_ns}) has no recorded image name to find its labels"
            )
        labels, boxes, masks = load_targets(
            self.layout.sample(frame.name), self.config.input_size, self.config.num_classes
        )
        return Targets(labels, boxes, masks)


def reference_targets(reference: Predictor, image: np.ndarray, input_size: tuple[int, int]) -> Targets:
    """A reference model's confident boxes and its thresholded masks (at the network resolution) as ground truth."""
    outputs, (prediction,), _ = reference.run([image])
    height, width = image.shape[:2]
    boxes = xyxy_to_cxcywh(prediction.boxes / np.array([width, height, width, height], np.float32))
    masks = reference.network_masks(outputs)[0]
    if masks.shape[1:] != tuple(input_size):
        masks = np.stack([cv2.resize(m, input_size[::-1], interpolation=cv2.INTER_NEAREST) for m in masks])
    return Targets(prediction.class_ids.astype(np.int64), boxes.astype(np.float32), masks)


def _batch(targets: Targets, image_size: tuple[int, int]) -> dict:
    return {
        "original_sizes": [image_size],
        "targets": [{"labels": torch.from_numpy(targets.labels), "boxes": torch.from_numpy(targets.boxes)}],
        "masks": torch.from_numpy(targets.masks)[None],
    }


def frame_scores(seg_probs: np.ndarray, targets: Targets, thresholds: list[float]) -> dict[str, float]:
    return {
        f"{task}_iou": segmentation_scores(seg_probs[i] > thresholds[i], targets.masks[i] > 0)["iou"]
        for i, task in enumerate(("drivable", "lane"))
    }


@dataclass
class Replay:
    """What a replay collected: per-frame records, the protocol accumulator, overlays."""

    config: ModelConfig
    accumulator: MetricAccumulator
    geometry: GeometryScores = field(default_factory=GeometryScores)
    records: list[dict] = field(default_factory=list)
    overlays: list[np.ndarray] = field(default_factory=list)

    def overlay(self, image: np.ndarray, prediction: Prediction) -> None:
        if len(self.overlays) < OVERLAY_FRAMES:
            self.overlays.append(draw_overlay(image, prediction, self.config.class_names))


def run_offline(predictor: Predictor, frames, labels: LabelSource | None) -> Replay:
    replay = Replay(predictor.config, MetricAccumulator(tuple(predictor.config.seg_thresholds)))
    for frame in frames:
        image = decode(frame)
        outputs, (prediction,), times = predictor.run([image])
        record = {
            "index": frame.index,
            "stamp_ns": frame.stamp_ns,
            "name": frame.name,
            "detections": len(prediction.boxes),
            "preprocess_ms": times.preprocess_ms,
            "inference_ms": times.inference_ms,
            "postprocess_ms": times.postprocess_ms,
        }
        if labels is not None:
            targets = labels(frame, image)
            probs = add_batch(replay.accumulator, outputs, _batch(targets, image.shape[:2]))[0]
            record.update(
                frame_scores(probs, targets, predictor.config.seg_thresholds), ground_truth=len(targets.labels)
            )
            truth = labels.geometry(frame)
            if truth is not None:
                lanes = replay.geometry.add(
                    truth, prediction.lane_mask, prediction.drivable_mask, prediction.boxes, prediction.lane_logits
                ).lanes
                record["lanes"] = len(lanes)
        replay.records.append(record)
        replay.overlay(image, prediction)
    return replay


def summarise(replay: Replay, mode: str, extra: dict) -> dict:
    summary: dict = {"mode": mode, "frames": len(replay.records), **extra}
    if replay.accumulator.images:
        metrics = replay.accumulator.compute()
        summary["metrics"] = {k: metrics[k] for k in SUMMARY_METRICS if k in metrics}
    geometry = replay.geometry.result()
    if geometry["all"]["frames"]:
        summary["geometry"] = {terrain: {k: scores[k] for k in keys(GEOMETRY)} for terrain, scores in geometry.items()}
    for key in ("inference_ms", "end_to_end_ms"):
        values = [r[key] for r in replay.records if key in r]
        if values:
            summary[key] = {
                "p50": float(np.percentile(values, 50)),
                "p95": float(np.percentile(values, 95)),
                "max": float(max(values)),
                "mean": statistics.fmean(values),
            }
    return summary


def write_results(replay: Replay, summary: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "frames.jsonl", "w") as handle:
        for record in replay.records:
            handle.write(json.dumps(record) + "\n")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    for i, image in enumerate(replay.overlays):
        cv2.imwrite(str(out / f"overlay_{i:02d}.jpg"), image)
    _plot(replay.records, out / "frames.png")


def _plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latency_key = "end_to_end_ms" if any("end_to_end_ms" in r for r in records) else "inference_ms"
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    shown = [r for r in records if latency_key in r]
    top.plot([r["index"] for r in shown], [r[latency_key] for r in shown], ".-")
    top.set_ylabel(latency_key.replace("_", " "))
    for key in ("drivable_iou", "lane_iou"):
        scored = [r for r in records if key in r]
        bottom.plot([r["index"] for r in scored], [r[key] for r in scored], ".-", label=key)
    bottom.set_xlabel("frame")
    bottom.set_ylabel("IoU")
    bottom.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def print_summary(summaries: dict[str, dict], stderr: bool = False) -> None:
    """One column per run (e.g. student and teacher side by side)."""
    table = Table(title="bag_eval")
    table.add_column("")
    for name in summaries:
        table.add_column(name, justify="right")
    rows = [("mode", lambda s: s["mode"]), ("frames published/read", lambda s: s["frames"])]
    if any("outputs" in s for s in summaries.values()):
        rows += [
            ("outputs received", lambda s: s.get("outputs", "-")),
            ("frames without output", lambda s: s.get("dropped", "-")),
            ("node: received / processed / dropped", lambda s: _node_counts(s)),
            ("node: lost before it (sequence gaps)", lambda s: _node_counts(s, "frames_lost_transport")),
        ]
    for key in ("end_to_end_ms", "inference_ms"):
        for stat in ("p50", "p95", "max"):
            rows.append((f"{key.replace('_ms', '')} {stat} (ms)", lambda s, k=key, t=stat: _fmt(s.get(k, {}).get(t))))
    for key in SUMMARY_METRICS:
        rows.append((metric(key).description, lambda s, k=key: _shown(k, s.get("metrics", {}))))
    if any("geometry" in s for s in summaries.values()):
        for key in keys(GEOMETRY):
            rows.append(
                (f"{metric(key).description}, flat", lambda s, k=key: _shown(k, s.get("geometry", {}).get("flat", {})))
            )
    for label, getter in rows:
        table.add_row(label, *(str(getter(s)) for s in summaries.values()))
    Console(stderr=stderr, width=max(Console().width, 100)).print(table)


def _node_counts(summary: dict, *keys: str) -> str:
    node = summary.get("node_diagnostics")
    keys = keys or ("frames_received", "frames_processed", "frames_dropped")
    return " / ".join(str(node.get(key, "-")) for key in keys) if node else "-"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.2f}"


def _shown(key: str, metrics: dict) -> str:
    return format_value(key, metrics[key]) if key in metrics else "-"


def score_published(
    accumulator: MetricAccumulator,
    prediction: Prediction,
    targets: Targets,
    size: tuple[int, int],
    config: ModelConfig,
) -> dict[str, float]:
    """Protocol metrics of what the node published (thresholded boxes; binary masks at network size)."""
    height, width = size
    scale = np.array([width, height, width, height], np.float32)
    accumulator.add_detections(
        torch.from_numpy(prediction.boxes / scale),
        torch.from_numpy(prediction.scores),
        torch.from_numpy(prediction.class_ids),
        cxcywh_to_xyxy(torch.from_numpy(targets.boxes)),
        torch.from_numpy(targets.labels),
        image_size=(height, width),
    )
    input_h, input_w = config.input_size
    probs = np.stack(
        [
            cv2.resize(m, (input_w, input_h), interpolation=cv2.INTER_NEAREST)
            for m in (prediction.drivable_mask, prediction.lane_mask)
        ]
    ).astype(np.float32)
    accumulator.add_segmentation(probs, targets.masks)
    return frame_scores(probs, targets, config.seg_thresholds)
