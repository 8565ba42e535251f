"""Compression ablation: magnitude (L1), Taylor, Taylor + conflict, Taylor + conflict + KD at one budget.

Every arm removes the same fraction of the teacher's parameters (the channel ratio is searched per arm;
local ranking gives all arms the same widths) and is then fine-tuned for the same number of epochs with
the same recipe; only the KD arm adds the teacher's features as targets. From the repository root:

    python benchmarks/compression_ablation.py models/rmt_ppad_s_demo --epochs 1 --out runs/ablation

Writes OUT/ablation.json and OUT/ablation.md (the table) and prints the table.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.markdown import Markdown

from ppad_core.cli.compress import module_ratio_argument, prune_config
from ppad_core.compress.ablation import ARMS, AblationSettings, markdown_table, run_ablation
from ppad_core.compress.importance import ImportanceConfig
from ppad_core.compress.pruning import SCOPES, PruneConfig


def main() -> int:
    budget = PruneConfig()  # the defaults of `ppad prune`
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("teacher", help="teacher checkpoint directory")
    parser.add_argument("--data", default="data/synthetic", help="labelled dataset (calibration, fine-tuning, scoring)")
    parser.add_argument("--eval-data", help="labelled dataset the rows are scored on (default --data)")
    parser.add_argument("--config", default="config/distill_synthetic_s.yaml", help="fine-tuning recipe (YAML)")
    parser.add_argument("--out", default="runs/ablation", help="output folder")
    parser.add_argument("--epochs", type=int, default=1, help="fine-tuning epochs per arm (0: score pruned only)")
    parser.add_argument("--target", type=float, default=budget.target_reduction, help="fraction of parameters removed")
    parser.add_argument("--scope", choices=SCOPES, default=budget.scope, help="prunable part (see ppad prune)")
    parser.add_argument("--steps", type=int, default=budget.steps, help="iterative pruning steps")
    parser.add_argument(
        "--round-to", type=int, default=budget.round_to, help="kept widths rounded up to multiples of this"
    )
    parser.add_argument(
        "--module-ratio",
        type=module_ratio_argument,
        action="append",
        default=[],
        metavar="MODULE=RATIO",
        help="fixed channel ratio inside MODULE (see ppad prune); repeatable",
    )
    parser.add_argument(
        "--calib-batches", type=int, default=budget.calibration_batches, help="calibration batches per step"
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "bf16", "fp16", "auto"),
        default="",
        help="fine-tuning precision instead of the recipe's (fp32 on CPUs without AVX512-BF16, where bf16 is emulated)",
    )
    parser.add_argument("--arms", nargs="+", choices=[arm.slug for arm in ARMS], help="a subset of the arms")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="score arms already pruned / fine-tuned in --out with the same settings instead of re-running them "
        "(a stopped ablation continues; a changed evaluator re-scores without training)",
    )
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args()
    settings = AblationSettings(
        teacher=args.teacher,
        data_root=args.data,
        eval_root=args.eval_data,
        train_config=args.config,
        out_dir=args.out,
        epochs=args.epochs,
        prune=prune_config(args, importance=ImportanceConfig()),  # the budget; each arm sets its importance
        progress=not args.no_progress,
        precision=args.precision,
        reuse=args.reuse,
    )
    arms = tuple(arm for arm in ARMS if not args.arms or arm.slug in args.arms)
    result = run_ablation(settings, arms)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = markdown_table(result)
    (out / "ablation.json").write_text(json.dumps({"settings": vars(args), **result}, indent=2))
    (out / "ablation.md").write_text(table)
    Console().print(Markdown(table))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
