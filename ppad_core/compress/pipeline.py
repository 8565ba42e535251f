"""The compression commands' steps: prune a checkpoint, distil a student, compare teacher and student."""

from __future__ import annotations

import dataclasses
import itertools
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ppad_core.compress.distill import distillation_terms
from ppad_core.compress.pruning import PruneConfig, prune_model
from ppad_core.data.dataset import DrivingDataset, collate
from ppad_core.evaluate.evaluator import evaluate
from ppad_core.evaluate.metric_table import PAPER, keys
from ppad_core.model.checkpoint import load_checkpoint, save_checkpoint
from ppad_core.model.complexity import count_macs, count_parameters
from ppad_core.model.rmt_ppad import RMTPPAD
from ppad_core.runtime.backends import Backend, OnnxRuntimeBackend, OpenVinoBackend, TorchBackend
from ppad_core.runtime.benchmark import alternating_latencies
from ppad_core.runtime.export import export_onnx
from ppad_core.runtime.options import RuntimeOptions
from ppad_core.runtime.predictor import Predictor
from ppad_core.train.config import load_train_config
from ppad_core.train.trainer import Trainer

CALIBRATION_SPLIT = "train2017"  # the labelled split the Taylor statistics are computed on
CALIBRATION_BATCH_SIZE = 4  # images per calibration batch


def calibration_loader(
    data_root: str | Path, split: str, model_config, batch_size: int = CALIBRATION_BATCH_SIZE, seed: int = 0
) -> Callable[[], Iterator[dict]]:
    """Fresh shuffled passes over a labelled split (no augmentation): what the Taylor statistics see."""
    dataset = DrivingDataset(data_root, split, model_config.input_size, model_config.num_classes)
    passes = itertools.count()  # pass i shuffles with seed + i

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
    split: str = CALIBRATION_SPLIT,
    on_step: Callable[[int, float], None] | None = None,
    batch_size: int = CALIBRATION_BATCH_SIZE,
) -> tuple[Path, dict]:
    model, meta = load_checkpoint(teacher)
    calibration = None
    if cfg.importance.criterion == "taylor" and cfg.target_reduction > 0:
        if data_root is None:
            raise ValueError("Taylor importance needs labelled calibration data (--data)")
        calibration = calibration_loader(data_root, split, model.config, batch_size)
    torch.manual_seed(0)  # denoising queries drawn during the statistics pass
    student, report = prune_model(model, cfg, calibration, on_step=on_step)
    return save_checkpoint(student, out_dir, pruned_provenance(teacher, meta, cfg, report)), report


def pruned_provenance(source: str | Path, source_meta: dict[str, Any], cfg: PruneConfig, report: dict) -> dict:
    """What a pruned checkpoint records: the checkpoint it was cut from with that one's own provenance (a student
    pruned again, e.g. to fewer decoder layers, keeps its distillation history) and its training data, which the
    pruned model shares and INT8 export calibrates on by default (ppad_core/runtime/export.py)."""
    source_provenance = source_meta.get("provenance") or {}
    provenance = {"kind": "pruned", "teacher": str(source), "prune": dataclasses.asdict(cfg), "report": report}
    if "data" in source_provenance:
        provenance["data"] = source_provenance["data"]
    return {**provenance, "source_provenance": source_provenance}


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
    Trainer(config, run_dir, resume=resume, progress=progress, auxiliary=distillation_terms(config)).fit()
    return Path(run_dir) / "best"


def score(model: RMTPPAD, data_root: str | Path, split: str = "val2017", progress: bool = True) -> dict[str, float]:
    """Inference parameters and MACs (of the fused model) and the five metrics of one model on a labelled split."""
    predictor = Predictor.from_model(model)
    fused = predictor.backend.model  # the fused network the evaluation runs
    dataset = DrivingDataset(data_root, split, model.config.input_size, model.config.num_classes)
    metrics = evaluate(predictor, dataset, progress=progress)
    return {
        "parameters": count_parameters(fused, trainable_only=False),
        "macs": count_macs(fused, model.config.input_size),
        **{k: metrics[k] for k in keys(PAPER)},
    }


LATENCY_BACKENDS = ("torch", "onnxruntime", "openvino")
PROFILE_OPTIONS = RuntimeOptions(backend="openvino", precision="auto")  # as config/teacher.yaml, student.yaml run


def _latency_key(backend: str) -> str:
    return "latency_ms" if backend == "torch" else f"latency_{backend}_ms"


LATENCY_KEYS = tuple(_latency_key(backend) for backend in LATENCY_BACKENDS)


def compare(
    teacher: str | Path,
    student: str | Path,
    data_root: str | Path,
    split: str = "val2017",
    latency_runs: int = 60,
    progress: bool = True,
) -> dict[str, dict[str, float]]:
    """Parameters, MACs, CPU latency on each backend (measured alternately in this run) and the five metrics.

    Latency is one batch-1 call of each CPU backend: fused channels-last fp32 PyTorch (`latency_ms`), fp32 ONNX
    Runtime (`latency_onnxruntime_ms`) and OpenVINO at the node profiles' precision `auto`, bf16 where the CPU
    runs it natively (`latency_openvino_ms`); each ratio is the median over rounds of student/teacher measured
    back to back.
    """
    models = {"teacher": load_checkpoint(teacher)[0], "student": load_checkpoint(student)[0]}
    rows = {name: score(model, data_root, split, progress) for name, model in models.items()}
    with tempfile.TemporaryDirectory(prefix="ppad-compare-") as workdir:
        backends = {name: _cpu_backends(model, Path(workdir), name) for name, model in models.items()}
        latencies = alternating_latencies(
            backends, {name: m.config.input_size for name, m in models.items()}, latency_runs
        )
    rows["delta"] = {k: rows["student"][k] - rows["teacher"][k] for k in rows["teacher"]}
    rows["ratio"] = {k: rows["student"][k] / rows["teacher"][k] for k in ("parameters", "macs")}
    for backend in LATENCY_BACKENDS:
        key = _latency_key(backend)
        per_model = {name: latencies[name][backend] for name in models}
        for name, rounds in per_model.items():
            rows[name][key] = float(np.median(rounds))
        rows["delta"][key] = rows["student"][key] - rows["teacher"][key]
        # the median of back-to-back pairs: a load spike during one round moves one pair, not the verdict
        rows["ratio"][key] = float(np.median([s / t for s, t in zip(per_model["student"], per_model["teacher"])]))
    return rows


def _cpu_backends(model: RMTPPAD, workdir: Path, name: str) -> dict[str, Backend]:
    onnx_path = export_onnx(model, workdir / f"{name}.onnx")
    return {
        "torch": TorchBackend(model, RuntimeOptions(channels_last=True)),
        "onnxruntime": OnnxRuntimeBackend(onnx_path),
        "openvino": OpenVinoBackend(onnx_path, dataclasses.replace(PROFILE_OPTIONS, onnx_cache=str(workdir))),
    }
