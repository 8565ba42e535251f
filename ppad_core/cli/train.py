"""`ppad train`: config-driven training, exact resume, DDP under torchrun."""

from __future__ import annotations

import argparse
from pathlib import Path

from ppad_core.cli.common import add_json_flag, add_set_option, parse_overrides
from ppad_core.cli.output import emit


def register(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser(
        "train",
        help="train a model from a training YAML (resume with --resume RUN_DIR; multi-GPU through torchrun)",
        description="Config-driven training with the official recipe: cosine LR with warm-up, gradient clipping, "
        "EMA, mixed precision, atomic state after every epoch (a killed run resumes exactly), best checkpoint by "
        "fitness. Run under `torchrun --nproc_per_node N` for DistributedDataParallel.",
    )
    train.add_argument("config", nargs="?", help="training YAML, e.g. config/train_synthetic_s.yaml")
    train.add_argument("--run-dir", help="output folder (default runs/<config name>)")
    train.add_argument("--resume", metavar="RUN_DIR", help="continue the run in RUN_DIR from its last epoch")
    add_set_option(train, "override a config value, e.g. --set epochs=5 --set data.root=/data/bdd")
    train.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    add_json_flag(train)
    train.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from ppad_core.compress.distill import distillation_terms
    from ppad_core.train.trainer import Trainer

    config, run_dir = _config_and_run_dir(args)
    trainer = Trainer(
        config, run_dir, resume=bool(args.resume), progress=not args.no_progress, auxiliary=distillation_terms(config)
    )
    summary = trainer.fit()
    return emit(summary, args.json)


def _config_and_run_dir(args: argparse.Namespace):
    """The training config (with --set applied) and the run folder, from --resume RUN_DIR or a YAML."""
    from ppad_core.train.config import load_train_config

    if args.resume:
        run_dir = Path(args.resume)
        return load_train_config(run_dir / "train.yaml", parse_overrides(args.set)), run_dir
    if not args.config:
        raise ValueError("give a training config YAML, or --resume RUN_DIR")
    config = load_train_config(args.config, parse_overrides(args.set))
    run_dir = Path(args.run_dir or Path("runs") / Path(args.config).stem)
    if (run_dir / "last_state.pt").exists():
        raise ValueError(f"{run_dir} already holds a run; use --resume {run_dir} or another --run-dir")
    return config, run_dir
