"""Which part of the compression recipe buys the accuracy: the same parameter budget pruned by each
importance criterion, then fine-tuned for the same epochs with or without feature distillation."""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from ppad_core.compress.importance import ImportanceConfig
from ppad_core.compress.pipeline import run_distill, run_prune, score
from ppad_core.compress.pruning import PruneConfig
from ppad_core.evaluate.metric_table import (
    PAPER,
    Column,
    format_delta,
    format_value,
    keys,
    metric_columns,
    render_markdown,
)
from ppad_core.model.checkpoint import CheckpointError, load_checkpoint, read_metadata
from ppad_core.train.trainer import STATE_FILE


@dataclass(frozen=True)
class AblationArm:
    name: str
    importance: ImportanceConfig
    distill: bool  # fine-tune with the teacher's features as extra targets

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_")


ARMS = (
    AblationArm("magnitude (L1)", ImportanceConfig(criterion="magnitude", conflict="none"), distill=False),
    AblationArm("Taylor", ImportanceConfig(criterion="taylor", conflict="none"), distill=False),
    AblationArm("Taylor + conflict", ImportanceConfig(criterion="taylor", conflict="cosine"), distill=False),
    AblationArm("Taylor + conflict + KD", ImportanceConfig(criterion="taylor", conflict="cosine"), distill=True),
)


@dataclass
class AblationSettings:
    teacher: str
    data_root: str
    train_config: str  # the fine-tuning recipe (a `ppad distill` YAML); its distill section is used by KD arms
    out_dir: str
    epochs: int = 1  # fine-tuning epochs per arm; 0 scores the pruned students only
    prune: PruneConfig = field(default_factory=PruneConfig)  # the budget; each arm swaps in its importance
    val_split: str = "val2017"
    eval_root: str | None = None  # dataset the rows are scored on (default data_root's val_split)
    progress: bool = True
    precision: str = (
        ""  # the recipe's fine-tuning precision unless set (bf16 is emulated, and slow, without AVX512-BF16)
    )
    reuse: bool = False  # arms already pruned / fine-tuned in out_dir with these settings are scored, not re-run
    save_every_iters: int = 25  # fine-tuning state saved this often inside an epoch: a stopped arm resumes there


def run_ablation(settings: AblationSettings, arms: tuple[AblationArm, ...] = ARMS) -> dict:
    """Teacher row plus one row per arm: parameters, MACs, the paper's metrics after pruning and after fine-tuning.

    Arms with the same importance share one pruned student, so the KD arm differs from "Taylor + conflict"
    only by the distillation.
    """
    out = Path(settings.out_dir)

    def score_checkpoint(path: str | Path) -> dict[str, float]:
        data = settings.eval_root or settings.data_root
        return score(load_checkpoint(path)[0], data, settings.val_split, settings.progress)

    result = {"teacher": score_checkpoint(settings.teacher), "arms": []}
    pruned_by_importance: dict[tuple, tuple[Path, dict, dict[str, float]]] = {}
    for arm in arms:
        key = dataclasses.astuple(arm.importance)
        if key not in pruned_by_importance:
            cfg = dataclasses.replace(settings.prune, importance=arm.importance)
            path = out / arm.slug / "pruned"
            report = finished_prune(path, settings.teacher, cfg) if settings.reuse else None
            if report is None:
                path, report = run_prune(settings.teacher, path, cfg, settings.data_root)
            pruned_by_importance[key] = (path, report, score_checkpoint(path))
        pruned, report, pruned_scores = pruned_by_importance[key]
        row = {"arm": arm.name, "reduction": report["reduction"], "distill": arm.distill, "pruned": pruned_scores}
        if settings.epochs > 0:
            run_dir = out / arm.slug / "finetune"
            best = run_distill(
                pruned,
                settings.teacher if arm.distill else None,
                settings.train_config,
                run_dir,
                {
                    "epochs": settings.epochs,
                    "data.root": settings.data_root,
                    "val_every": 0,
                    "save_every_iters": settings.save_every_iters,
                }
                | ({"precision": settings.precision} if settings.precision else {}),
                settings.progress,
                resume=settings.reuse and (run_dir / STATE_FILE).is_file(),
            )
            row["finetuned"] = score_checkpoint(best)
        result["arms"].append(row)
    return result


def finished_prune(path: Path, teacher: str, cfg: PruneConfig) -> dict | None:
    """The pruning report of the student in `path` when it was pruned from `teacher` with exactly `cfg`."""
    try:
        provenance = read_metadata(path).get("provenance", {})
    except CheckpointError:
        return None
    wanted = json.loads(json.dumps(dataclasses.asdict(cfg)))  # tuples as lists, as the YAML holds them
    same = provenance.get("teacher") == str(teacher) and provenance.get("prune") == wanted
    return provenance["report"] if same else None


ABLATION_COLUMNS = [
    Column("arm", "arm"),
    Column("removed", "params removed"),
    Column("macs", "GMAC"),
    Column("map50_pruned", "mAP50 pruned"),
    *metric_columns(PAPER),
]


def markdown_table(result: dict) -> str:
    """One line per arm: removed parameters, GMAC, mAP50 right after pruning, then the paper's metrics at the
    end (with the change from the teacher)."""
    stage = "finetuned" if all("finetuned" in row for row in result["arms"]) else "pruned"
    teacher = result["teacher"]
    rows = [{"arm": "teacher", "removed": "0", **_cells(teacher, teacher)}]
    for row in result["arms"]:
        cells = _cells(row[stage], row["pruned"], teacher)
        rows.append({"arm": row["arm"], "removed": f"{100 * row['reduction']:.2f}%", **cells})
    return render_markdown(ABLATION_COLUMNS, rows)


def _cells(final: dict, pruned: dict, teacher: dict | None = None) -> dict[str, str]:
    """GMAC, mAP50 after pruning and the paper's metrics, each with its change from `teacher` if given."""
    cells = {"macs": f"{final['macs'] / 1e9:.2f}", "map50_pruned": format_value("map50", pruned["map50"])}
    for key in keys(PAPER):
        value = format_value(key, final[key])
        cells[key] = value if teacher is None else f"{value} ({format_delta(key, final[key] - teacher[key])})"
    return cells
