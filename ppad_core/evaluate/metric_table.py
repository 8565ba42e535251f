"""The one table of evaluation metrics, and the column spec every results table is rendered from.

Each metric `evaluate.metrics.MetricAccumulator.compute` returns is described once here: its key, a
short label (column headers, the paper's abbreviations), a description (rows of the `ppad eval`
report), the scale it is shown at (100: a percentage), whether higher is better and its number
format. Tags name the views: which metrics the paper's tables, the evaluation report and the trainer
show. A table is a list of `Column`s and rows of cells keyed by column; `render_rich` (terminal) and
`render_markdown` (files) draw the same table from the same spec.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from rich.table import Table

PAPER = "paper"  # the five figures RMT-PPAD's tables report: compression tables, the ablation
REPORT = "report"  # the headline rows of the `ppad eval` report
TRAINING = "training"  # the trainer's epoch log, results.csv and checkpoint provenance
SWEEP = "sweep"  # the segmentation metrics evaluated at every threshold of results["sweep"]
GEOMETRY = "geometry"  # road geometry against its ground truth (`ppad eval --geometry`, geometry_metrics.py)


@dataclass(frozen=True)
class Metric:
    key: str
    label: str  # short column header
    description: str  # row label of the evaluation report
    tags: frozenset[str] = frozenset()
    scale: float = 100.0  # shown value = value * scale
    higher_is_better: bool = True
    fmt: str = ".2f"  # format spec of the shown value


def _tags(*names: str) -> frozenset[str]:
    return frozenset(names)


METRICS: tuple[Metric, ...] = (
    Metric("recall", "Recall", "Recall (IoU 0.5, all queries)", _tags(PAPER, REPORT, TRAINING)),
    Metric("map50", "mAP50", "mAP50", _tags(PAPER, REPORT, TRAINING)),
    Metric("map50_95", "mAP50-95", "mAP50-95", _tags(REPORT)),
    Metric("drivable_miou", "DA mIoU", "drivable mIoU", _tags(PAPER, REPORT, TRAINING, SWEEP)),
    Metric("drivable_iou", "DA IoU", "drivable IoU"),
    Metric("lane_iou", "LL IoU", "lane IoU", _tags(PAPER, REPORT, TRAINING, SWEEP)),
    Metric("lane_miou", "LL mIoU", "lane mIoU"),
    Metric("lane_acc", "LL acc", "lane accuracy (balanced)", _tags(PAPER, REPORT, TRAINING, SWEEP)),
    Metric("lane_recall_acc", "LL recall acc", "lane accuracy (TP/(TP+FN))", _tags(REPORT)),
    Metric("fitness", "fitness", "fitness", _tags(TRAINING), scale=1.0, fmt=".4f"),
    Metric("lane_f_score", "lane F", "lane F-score (Gen-LaneNet rule)", _tags(GEOMETRY)),
    Metric("lane_precision", "lane P", "lane precision", _tags(GEOMETRY)),
    Metric("lane_recall", "lane R", "lane recall", _tags(GEOMETRY)),
    Metric("x_error_near_m", "x err near", "lane x error 0-40 m (m)", _tags(GEOMETRY), 1.0, False, ".3f"),
    Metric("x_error_far_m", "x err far", "lane x error 40-100 m (m)", _tags(GEOMETRY), 1.0, False, ".3f"),
    Metric("label_accuracy", "label acc", "lane position-label accuracy", _tags(GEOMETRY)),
    Metric("free_iou", "grid IoU", "drivable-grid IoU within 40 m", _tags(GEOMETRY)),
    Metric(
        "range_0_20_rel_error", "range 0-20", "obstacle range error 0-20 m (median, %)", _tags(GEOMETRY), 100.0, False
    ),
    Metric(
        "range_20_40_rel_error",
        "range 20-40",
        "obstacle range error 20-40 m (median, %)",
        _tags(GEOMETRY),
        100.0,
        False,
    ),
    Metric(
        "range_40_plus_rel_error", "range 40+", "obstacle range error 40+ m (median, %)", _tags(GEOMETRY), 100.0, False
    ),
    Metric(
        "range_within_40_rel_error",
        "range <40",
        "obstacle range error within 40 m (median, %)",
        _tags(GEOMETRY),
        100.0,
        False,
    ),
)
SELECTION = "fitness"  # the metric the trainer keeps its best checkpoint by

_BY_KEY = {m.key: m for m in METRICS}


def metric(key: str) -> Metric:
    """The table's entry for `key`."""
    try:
        return _BY_KEY[key]
    except KeyError:
        raise KeyError(f"{key!r} is not in the metric table ({', '.join(_BY_KEY)})") from None


def metrics(tag: str) -> tuple[Metric, ...]:
    """The metrics of one view (PAPER, REPORT, TRAINING, SWEEP), in table order."""
    return tuple(m for m in METRICS if tag in m.tags)


def keys(tag: str) -> tuple[str, ...]:
    """The keys of one view, in table order."""
    return tuple(m.key for m in metrics(tag))


def format_value(key: str, value: float) -> str:
    """`value` as shown in tables: scaled and formatted (0.6321 -> '63.21' for a percentage)."""
    m = metric(key)
    return f"{value * m.scale:{m.fmt}}"


def format_delta(key: str, delta: float) -> str:
    """A difference of two values of `key`, signed ('+1.20')."""
    m = metric(key)
    return f"{delta * m.scale:+{m.fmt}}"


def is_better(key: str, value: float, reference: float) -> bool:
    """Whether `value` is strictly better than `reference` by the metric's direction."""
    return value > reference if metric(key).higher_is_better else value < reference


@dataclass(frozen=True)
class Column:
    key: str  # the cell's key in each row
    header: str
    justify: str = "right"  # right | left (rich alignment; Markdown tables are left as written)


def metric_columns(tag: str) -> list[Column]:
    """One column per metric of a view, headed by the metric's label."""
    return [Column(m.key, m.label) for m in metrics(tag)]


def render_rich(columns: list[Column], rows: Iterable[Mapping[str, str]], title: str | None = None) -> Table:
    """The table for the terminal; a cell missing from a row is left empty."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column.header, justify=column.justify)
    for row in rows:
        add_rich_row(table, columns, row)
    return table


def add_rich_row(table: Table, columns: list[Column], row: Mapping[str, str]) -> None:
    """Append one row to a table `render_rich` made (e.g. while a benchmark runs)."""
    table.add_row(*(row.get(column.key, "") for column in columns))


def render_markdown(columns: list[Column], rows: Iterable[Mapping[str, str]]) -> str:
    """The same table as Markdown lines, ending with a newline."""
    lines = [_markdown_line(column.header for column in columns), "|" + "---|" * len(columns)]
    lines += [_markdown_line(row.get(column.key, "") for column in columns) for row in rows]
    return "\n".join(lines) + "\n"


def _markdown_line(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"
