"""Compression commands: `ppad prune`, `ppad distill` and `ppad compress` (prune then distil), each ending
with the teacher vs student table."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rich.console import Console

from ppad_core.cli.common import add_json_flag, add_set_option, console, parse_overrides
from ppad_core.cli.output import emit
from ppad_core.evaluate.metric_table import (
    PAPER,
    Column,
    format_delta,
    format_value,
    keys,
    metric_columns,
    render_rich,
)

DEFAULT_DISTILL_CONFIG = "config/distill_synthetic_s.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    _register_prune(sub)
    _register_distill(sub)
    _register_compress(sub)


def _register_prune(sub: argparse._SubParsersAction) -> None:
    prune = sub.add_parser(
        "prune",
        help="task-aware safe structured pruning of a checkpoint to a parameter budget",
        description="Per-task Taylor importance (BatchNorm included) from calibration batches, per-task "
        "normalisation, safe max aggregation, a gradient-conflict penalty, then structured pruning on "
        "Torch-Pruning's dependency graph in iterative steps; the channel ratio is searched so the whole "
        "model loses --target of its parameters (within 1 point). The pruned widths go into model.yaml.",
    )
    prune.add_argument("checkpoint", help="teacher checkpoint directory")
    prune.add_argument("--out", required=True, help="output checkpoint directory")
    prune.add_argument("--data", help="labelled dataset root (calibration; also scored in the final table)")
    add_prune_options(prune)
    _add_compare_options(prune)
    prune.set_defaults(func=cmd_prune)


def _register_distill(sub: argparse._SubParsersAction) -> None:
    distill = sub.add_parser(
        "distill",
        help="fine-tune a (pruned) student with task losses plus feature distillation from a frozen teacher",
        description="Training (as `ppad train`) of STUDENT with the teacher's backbone-stage and encoder features "
        "as extra targets (MSE through 1x1 adapters where widths differ, or CWD); adapters are not saved.",
    )
    distill.add_argument("student", help="student checkpoint directory (e.g. from ppad prune)")
    distill.add_argument("--teacher", required=True, help="teacher checkpoint directory")
    distill.add_argument("--config", default=DEFAULT_DISTILL_CONFIG, help="training YAML with a distill section")
    distill.add_argument("--run-dir", help="output folder (default runs/distill_<student>)")
    distill.add_argument("--data", help="dataset scored in the final table (default: the config's)")
    add_set_option(distill)
    distill.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in RUN_DIR from its last epoch (its train.yaml; --set still applies, "
        "e.g. more epochs)",
    )
    _add_compare_options(distill)
    distill.set_defaults(func=cmd_distill)


def _register_compress(sub: argparse._SubParsersAction) -> None:
    compress = sub.add_parser(
        "compress",
        help="prune then distil in one command; ends with the teacher vs student table",
        description="`ppad prune` followed by `ppad distill` of the result: OUT/pruned, OUT/distill (the "
        "training run) and OUT/student (the final checkpoint).",
    )
    compress.add_argument("checkpoint", help="teacher checkpoint directory")
    compress.add_argument("--out", required=True, help="output folder")
    compress.add_argument("--config", default=DEFAULT_DISTILL_CONFIG, help="distillation training YAML")
    compress.add_argument("--data", help="labelled dataset root (default: the config's data.root)")
    add_set_option(compress)
    compress.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted run in OUT: keep OUT/pruned, resume OUT/distill from its last epoch "
        "(its train.yaml; --set still applies, e.g. more epochs)",
    )
    add_prune_options(compress)
    _add_compare_options(compress)
    compress.set_defaults(func=cmd_compress)


def module_ratio_argument(text: str) -> tuple[str, float]:
    """argparse type of --module-ratio: MODULE=RATIO -> (module, ratio)."""
    name, sep, ratio = text.partition("=")
    try:
        if not sep or not name:
            raise ValueError
        return name, float(ratio)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected MODULE=RATIO (e.g. head.segmenter=0.5), got {text!r}") from None


def add_prune_options(parser: argparse.ArgumentParser) -> None:
    """The pruning group: one option per PruneConfig / ImportanceConfig field, defaults taken from them."""
    from ppad_core.compress.importance import IMPORTANCE_CHOICES, ImportanceConfig
    from ppad_core.compress.pipeline import CALIBRATION_BATCH_SIZE, CALIBRATION_SPLIT
    from ppad_core.compress.pruning import SCOPES, PruneConfig

    defaults, importance = PruneConfig(), ImportanceConfig()
    group = parser.add_argument_group("pruning")
    group.add_argument(
        "--target",
        type=float,
        default=defaults.target_reduction,
        help="fraction of parameters removed (default %(default)s)",
    )
    group.add_argument(
        "--scope",
        choices=SCOPES,
        default=defaults.scope,
        help="prunable part (default %(default)s; +head adds the head's input projections, GCA and "
        "the seg decoder's channels)",
    )
    group.add_argument(
        "--steps", type=int, default=defaults.steps, help="iterative steps, statistics recomputed (default %(default)s)"
    )
    group.add_argument(
        "--round-to",
        type=int,
        default=defaults.round_to,
        help="kept widths rounded up to multiples of this (default %(default)s, halved until the target fits; "
        "2 suits models whose narrowest groups have 8 channels)",
    )
    group.add_argument(
        "--module-ratio",
        type=module_ratio_argument,
        action="append",
        default=[],
        metavar="MODULE=RATIO",
        help="fixed channel ratio for the groups inside MODULE (e.g. head.segmenter=0.5), outside the ratio search; "
        "for layers that cost latency rather than parameters; repeatable",
    )
    group.add_argument(
        "--decoder-layers",
        type=int,
        default=defaults.decoder_layers,
        help="detection decoder layers kept, the first N with their heads (default 0: all); they come off on top "
        "of --target, which the channel search meets",
    )
    group.add_argument(
        "--calib-batches",
        type=int,
        default=defaults.calibration_batches,
        help="calibration batches per step (default %(default)s)",
    )
    group.add_argument(
        "--calib-batch-size",
        type=int,
        default=CALIBRATION_BATCH_SIZE,
        help="images per calibration batch (default %(default)s)",
    )
    group.add_argument(
        "--criterion",
        choices=IMPORTANCE_CHOICES["criterion"],
        default=importance.criterion,
        help="channel importance (default %(default)s)",
    )
    group.add_argument(
        "--conflict",
        choices=IMPORTANCE_CHOICES["conflict"],
        default=importance.conflict,
        help="gradient-conflict penalty (default %(default)s)",
    )
    group.add_argument(
        "--conflict-weight",
        type=float,
        default=importance.conflict_weight,
        help="lambda of the penalty (default %(default)s)",
    )
    group.add_argument(
        "--aggregation",
        choices=IMPORTANCE_CHOICES["aggregation"],
        default=importance.aggregation,
        help="across tasks: max = safe (default %(default)s)",
    )
    group.add_argument("--train-split", default=CALIBRATION_SPLIT, help="calibration split (default %(default)s)")


def _add_compare_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--eval-data",
        help="labelled dataset root the final table scores (default: --data); a test set the run never saw, "
        "where the validation split chose the checkpoint",
    )
    parser.add_argument("--val-split", default="val2017", help="split scored in the final table (default val2017)")
    parser.add_argument("--no-compare", action="store_true", help="skip the final teacher/student table")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_json_flag(parser)


def prune_config(args: argparse.Namespace, importance=None):
    """The PruneConfig the pruning options describe; its ImportanceConfig from the importance options unless
    `importance` is given (the ablation, whose arms choose their own)."""
    from ppad_core.compress.importance import ImportanceConfig
    from ppad_core.compress.pruning import PruneConfig

    if importance is None:
        importance = ImportanceConfig(
            criterion=args.criterion,
            conflict=args.conflict,
            conflict_weight=args.conflict_weight,
            aggregation=args.aggregation,
        )
    return PruneConfig(
        target_reduction=args.target,
        scope=args.scope,
        steps=args.steps,
        calibration_batches=args.calib_batches,
        round_to=args.round_to,
        module_ratios=dict(args.module_ratio),
        decoder_layers=args.decoder_layers,
        importance=importance,
    )


def cmd_prune(args: argparse.Namespace) -> int:
    path, report = _prune_with_status(args, Path(args.out), args.data)
    summary = {"student": str(path), "prune": report}
    if (args.eval_data or args.data) and not args.no_compare:
        summary["comparison"] = _compare_and_print(args, args.checkpoint, path, args.data, "teacher vs pruned student")
    return emit(summary, args.json)


def cmd_distill(args: argparse.Namespace) -> int:
    from ppad_core.compress.pipeline import run_distill

    run_dir = Path(args.run_dir or f"runs/distill_{Path(args.student).name}")
    config = _resumed_config(run_dir, "distillation") if args.resume else args.config
    best = run_distill(
        args.student, args.teacher, config, run_dir, parse_overrides(args.set), not args.no_progress, args.resume
    )
    summary = {"student": str(best)}
    if not args.no_compare:
        data = args.data or _config_data_root(config)
        summary["comparison"] = _compare_and_print(args, args.teacher, best, data, "teacher vs distilled student")
    return emit(summary, args.json)


def cmd_compress(args: argparse.Namespace) -> int:
    from ppad_core.compress.pipeline import run_distill

    out = Path(args.out)
    if args.resume:
        config, overrides = _resumed_config(out / "distill", "compression"), parse_overrides(args.set)
        pruned, report = _pruned_for_resume(out)
        data = args.data or _config_data_root(config)
    else:
        data = args.data or _config_data_root(args.config)
        pruned, report = _prune_with_status(args, out / "pruned", data)
        config, overrides = args.config, {"data.root": data, **parse_overrides(args.set)}
    best = run_distill(
        pruned, args.checkpoint, config, out / "distill", overrides, not args.no_progress, resume=args.resume
    )
    student = out / "student"
    if student.exists():
        shutil.rmtree(student)
    shutil.copytree(best, student)
    summary = {"student": str(student), "prune": report}
    if not args.no_compare:
        summary["comparison"] = _compare_and_print(
            args, args.checkpoint, student, data, "teacher vs compressed student"
        )
    return emit(summary, args.json)


def _config_data_root(path: str | Path) -> str:
    from ppad_core.train.config import load_train_config

    return load_train_config(path).data.root


def _prune_with_status(args: argparse.Namespace, out_dir: Path, data: str | None) -> tuple[Path, dict]:
    from ppad_core.compress.pipeline import run_prune

    with console.status("pruning") as status:
        path, report = run_prune(
            args.checkpoint,
            out_dir,
            prune_config(args),
            data,
            args.train_split,
            on_step=lambda step, reduction: status.update(f"pruning: step {step}, {reduction:.1%} removed"),
            batch_size=args.calib_batch_size,
        )
    console.print(
        f"wrote {path} ({report['reduction']:.2%} fewer parameters, channel ratio {report['channel_ratio']:.3f})"
    )
    return path, report


def _resumed_config(run_dir: Path, what: str) -> Path:
    """The training YAML of the interrupted training run in `run_dir`, which `--resume` continues."""
    from ppad_core.train.trainer import STATE_FILE

    if not (run_dir / STATE_FILE).is_file():
        raise FileNotFoundError(f"{run_dir / STATE_FILE}: no interrupted {what} to resume")
    return run_dir / "train.yaml"


def _pruned_for_resume(out: Path) -> tuple[Path, dict]:
    """The pruned student and its report from an interrupted `ppad compress --out OUT`."""
    from ppad_core.model.checkpoint import read_metadata

    report = read_metadata(out / "pruned")["provenance"]["report"]
    console.print(f"resuming: {report['reduction']:.2%} fewer parameters already pruned in {out / 'pruned'}")
    return out / "pruned", report


def _compare_and_print(args: argparse.Namespace, teacher: str, student: Path, data: str | None, title: str) -> dict:
    """Score teacher and student on --eval-data (default `data`) and print the table (to stderr under --json)."""
    from ppad_core.compress.pipeline import compare

    rows = compare(teacher, student, args.eval_data or data, args.val_split, progress=not args.no_progress)
    table = render_rich(_comparison_columns(), _comparison_rows(rows), title)
    Console(stderr=args.json, width=max(Console().width, 140)).print(table)
    return rows


def _comparison_columns() -> list[Column]:
    return [
        Column("name", "", justify="left"),
        Column("parameters", "parameters"),
        Column("macs", "GMAC"),
        Column("latency_ms", "CPU ms torch NHWC"),
        Column("latency_onnxruntime_ms", "CPU ms ORT"),
        Column("latency_openvino_ms", "CPU ms OpenVINO auto"),
        *metric_columns(PAPER),
    ]


def _comparison_rows(rows: dict) -> list[dict[str, str]]:
    """Teacher and student figures, then the student's ratios (size, latency) and deltas (metrics)."""
    from ppad_core.compress.pipeline import LATENCY_KEYS

    table = []
    for name in ("teacher", "student"):
        row = rows[name]
        table.append(
            {
                "name": name,
                "parameters": f"{row['parameters']:,}",
                "macs": f"{row['macs'] / 1e9:.2f}",
                **{k: f"{row[k]:.1f}" for k in LATENCY_KEYS},
                **{k: format_value(k, row[k]) for k in keys(PAPER)},
            }
        )
    ratio, delta = rows["ratio"], rows["delta"]
    ratios = {k: f"{ratio[k]:.3f}x" for k in ("parameters", "macs", *LATENCY_KEYS)}
    table.append({"name": "student / delta", **ratios, **{k: format_delta(k, delta[k]) for k in keys(PAPER)}})
    return table
