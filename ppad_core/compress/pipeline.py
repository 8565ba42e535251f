"""The compression commands' steps: prune a checkpoint, distil a student, compare teacher and student."""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppad_core.compress.pruning import PruneConfig, prune_model
from ppad_core.data.dataset import DrivingDataset, collate
from ppad_core.evaluate.evaluator import evaluate
from ppad_core.model.checkpoint import load_checkpoint, save_checkpoint
from ppad_core.model.complexity import count_macs, count_parameters, forward_times_ms
from ppad_core.model.fusion import fuse_model
from ppad_core.model.rmt_ppad import RMTPPAD
from ppad_core.runtime.predictor import Predictor
from ppad_core.train.config import load_train_config
from ppad_core.train.trainer import METRIC_COLUMNS, Trainer

METRICS = tuple(METRIC_COLUMNS[:5])  # recall, map50, drivable_miou, lane_iou, lane_acc
METRIC_LABELS = ("Recall", "mAP50", "DA mIoU", "LL IoU", "LL acc")


def calibration_loader(
    data_root: str | Path, split: str, model_config, batch_size: int = 4, seed: int = 0
) -> Callable[[], Iterator[dict]]:
    """Fresh shuffled passes over a labelled split (no augmentation): what the Taylor statistics see."""
    dataset = DrivingDataset(data_root, split, model_config.input_size, model_config.num_classes)
    passes = iter(range(1_000_000))

    def batches() -> Iterator[dict]:
        generator = torch.Generator().manual_seed(seed + next(passes))
        return iter(
            torch.utils.data.DataLoader(
                dataset, batch_size=batch_size, shuffle=True, collate_fn=collate, generator=generator
            )
        )

    return batches


def run_prune(
    teacher: str | Path,
    out_dir: str | Path,
    cfg: PruneConfig,
    data_root: str | Path | None = None,
    split: str = "train2017",
    on_step: Callable[[int, float], None] | None = None,
    batch_size: int = 4,
) -> tuple[Path, dict]:
    model, _ = load_checkpoint(teacher)
    calibration = None
    if cfg.importance.criterion == "taylor" and cfg.target_reduction > 0:
        if data_root is None:
            raise ValueError("Taylor importance needs labelled calibration data (--data)")
        calibration = calibration_loader(data_root, split, model.config, batch_size)
    torch.manual_seed(0)  # denoising queries drawn during the statistics pass
    student, report = prune_model(model, cfg, calibration, on_step=on_step)
    provenance = {"kind": "pruned", "teacher": str(teacher), "prune": dataclasses.asdict(cfg), "report": report}
    return save_checkpoint(student, out_dir, provenance), report


def run_distill(
    student: str | Path,
    teacher: str | Path | None,
    train_config: str | Path,
    run_dir: str | Path,
    overrides: dict[str, Any] | None = None,
    progress: bool = True,
    resume: bool = False,
) -> Path:
    """Fine-tune the student with the task losses plus feature distillation from `teacher` (task losses
    only when None); returns its best checkpoint. `resume` continues the run in `run_dir`."""
    config = load_train_config(
        train_config, {**(overrides or {}), "model": str(student), "distill.teacher": str(teacher or "")}
    )
    Trainer(config, run_dir, resume=resume, progress=progress).fit()
    return Path(run_dir) / "best"


def score(
    model: RMTPPAD,
    data_root: str | Path,
    split: str = "val2017",
    progress: bool = True,
    fused: torch.nn.Module | None = None,
) -> dict[str, float]:
    """Inference parameters and MACs (of `fused`, its fused form when the caller already has it) and the
    five metrics of one model on a labelled split."""
    fused = fused if fused is not None else fuse_model(model)
    dataset = DrivingDataset(data_root, split, model.config.input_size, model.config.num_classes)
    metrics = evaluate(Predictor.from_model(model), dataset, progress=progress)
    return {
        "parameters": count_parameters(fused, trainable_only=False),
        "macs": count_macs(fused, model.config.input_size),
        **{k: metrics[k] for k in METRICS},
    }


def compare(
    teacher: str | Path,
    student: str | Path,
    data_root: str | Path,
    split: str = "val2017",
    latency_runs: int = 60,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Parameters, MACs, CPU latency (measured alternately in this run) and the five metrics of both.

    Latency is timed as the node profiles run the models: fused, channels-last, fp32; the latency ratio is
    the median over rounds of student/teacher measured back to back.
    """
    models = {"teacher": load_checkpoint(teacher)[0], "student": load_checkpoint(student)[0]}
    fused = {name: fuse_model(model).to(memory_format=torch.channels_last) for name, model in models.items()}
    rows = {name: score(model, data_root, split, progress, fused[name]) for name, model in models.items()}
    latencies: dict[str, list[float]] = {name: [] for name in models}
    rounds = 12
    for _ in range(rounds):  # interleaved, so drifting machine load hits both alike
        for name, model in models.items():
            runs = max(1, latency_runs // rounds)
            times = forward_times_ms(fused[name], model.config.input_size, runs, channels_last=True)
            latencies[name].append(statistics.median(times))
    for name in models:
        rows[name]["latency_ms"] = float(np.median(latencies[name]))
    rows["delta"] = {k: rows["student"][k] - rows["teacher"][k] for k in rows["teacher"]}
    rows["ratio"] = {k: rows["student"][k] / rows["teacher"][k] for k in ("parameters", "macs")}
    # the median of back-to-back pairs: a load spike during one round moves one pair, not the verdict
    per_round = [s / t for s, t in zip(latencies["student"], latencies["teacher"])]
    rows["ratio"]["latency_ms"] = float(np.median(per_round))
    return rows
