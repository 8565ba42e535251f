"""Human-readable evaluation output: the protocol table, the threshold sweep and PNG plots."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

HEADLINE = [
    ("recall", "Recall (IoU 0.5, all queries)"),
    ("map50", "mAP50"),
    ("map50_95", "mAP50-95"),
    ("drivable_miou", "drivable mIoU"),
    ("lane_iou", "lane IoU"),
    ("lane_acc", "lane accuracy (balanced)"),
    ("lane_recall_acc", "lane accuracy (TP/(TP+FN))"),
]


def print_report(results: dict, console: Console) -> None:
    table = Table(
        title=f"{results.get('checkpoint', 'model')} on {results['images']} images "
        f"({results['ground_truth_boxes']} boxes)"
    )
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, label in HEADLINE:
        table.add_row(label, f"{100 * results[key]:.2f}")
    table.add_row(
        "skipped (corrupt / missing masks)", f"{results['corrupt_skipped']} / {results['missing_masks_skipped']}"
    )
    console.print(table)
    sweep = Table(title="segmentation threshold sweep")
    for column in ("threshold", "drivable mIoU", "lane IoU", "lane acc"):
        sweep.add_column(column, justify="right")
    for row in results["sweep"]:
        sweep.add_row(
            f"{row['threshold']:.2f}",
            f"{100 * row['drivable_miou']:.2f}",
            f"{100 * row['lane_iou']:.2f}",
            f"{100 * row['lane_acc']:.2f}",
        )
    console.print(sweep)


def write_plots(results: dict, out_dir: str | Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(5, 4))
    for curve in results["per_class"]:
        ax.plot(curve["pr_recall"], curve["pr_precision"], label=f"class {curve['class_id']}")
    if len(results["per_class"]) > 1:
        ax.legend()
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1),
        ylim=(0, 1.02),
        title=f"PR at IoU 0.5 (mAP50 {100 * results['map50']:.1f})",
    )
    fig.tight_layout()
    pr_path = out_dir / "pr_curve.png"
    fig.savefig(pr_path, dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 4))
    thresholds = [r["threshold"] for r in results["sweep"]]
    for key, label in (("drivable_miou", "drivable mIoU"), ("lane_iou", "lane IoU"), ("lane_acc", "lane acc")):
        ax.plot(thresholds, [r[key] for r in results["sweep"]], marker="o", label=label)
    ax.set(xlabel="sigmoid threshold", ylabel="score", title="segmentation threshold sweep")
    ax.legend()
    fig.tight_layout()
    sweep_path = out_dir / "threshold_sweep.png"
    fig.savefig(sweep_path, dpi=100)
    plt.close(fig)
    return [pr_path, sweep_path]
