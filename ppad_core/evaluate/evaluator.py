"""`ppad eval`: a checkpoint scored on a dataset split with the RMT-PPAD protocol, through the Predictor
(docs/evaluation.md)."""

from __future__ import annotations

import numpy as np
import torch
from rich.progress import Progress

from ppad_core.boxes import cxcywh_to_xyxy
from ppad_core.data.dataset import DrivingDataset, collate
from ppad_core.evaluate.metrics import MetricAccumulator
from ppad_core.runtime.predictor import Predictor


def evaluate(
    predictor: Predictor, dataset: DrivingDataset, batch_size: int = 8, workers: int = 0, progress: bool = True
) -> dict:
    """Every query of every image scored (no NMS, no confidence threshold); segmentation at network size."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate)
    accumulator = MetricAccumulator(tuple(predictor.config.seg_thresholds))
    corrupt: list[str] = []
    with Progress(transient=True, disable=not progress) as bar:
        task = bar.add_task("evaluating", total=len(dataset))
        for batch in loader:
            corrupt += batch["corrupt"]
            if batch["images"] is not None:
                add_batch(accumulator, predictor.forward(batch["images"]), batch)
            bar.advance(task, len(batch["names"]) + len(batch["corrupt"]))
    results = accumulator.compute()
    results["corrupt_skipped"] = len(corrupt)
    results["missing_masks_skipped"] = len(dataset.skipped)
    return results


def add_batch(accumulator: MetricAccumulator, outputs: dict[str, np.ndarray], batch: dict) -> np.ndarray:
    """Score one batch (boxes matched in each image's original pixels, `batch["original_sizes"]`); returns the
    segmentation probabilities [B, 2, H, W] it computed."""
    scores, classes = torch.from_numpy(outputs["scores"]).max(-1)
    boxes = torch.from_numpy(outputs["boxes"])
    seg_probs = 1.0 / (1.0 + np.exp(-outputs["seg_logits"]))
    for i, target in enumerate(batch["targets"]):
        accumulator.add_detections(
            cxcywh_to_xyxy(boxes[i]),
            scores[i],
            classes[i],
            cxcywh_to_xyxy(target["boxes"]),
            target["labels"],
            image_size=batch["original_sizes"][i],
        )
        accumulator.add_segmentation(seg_probs[i], batch["masks"][i].numpy())
    return seg_probs
