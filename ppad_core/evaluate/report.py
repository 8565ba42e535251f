"""Human-readable evaluation output: the protocol table, the threshold sweep and PNG plots."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from ppad_core.evaluate.metric_table import REPORT, SWEEP, Column, format_value, metrics, render_rich

REPORT_COLUMNS = [Column("metric", "metric", justify="left"), Column("value", "value")]
SWEEP_COLUMNS = [Column("threshold", "threshold"), *(Column(m.key, m.description) for m in metrics(SWEEP))]


def print_report(results: dict, console: Console) -> None:
    """The headline metrics (with the skipped samples), then the segmentation threshold sweep."""
    title = (
        f"{results.get('checkpoint', 'model')} on {results['images']} images ({results['ground_truth_boxes']} boxes)"
    )
    rows = [{"metric": m.description, "value": format_value(m.key, results[m.key])} for m in metrics(REPORT)]
    skipped = f"{results['corrupt_skipped']} / {results['missing_masks_skipped']}"
    rows.append({"metric": "skipped (corrupt / missing masks)", "value": skipped})
    console.print(render_rich(REPORT_COLUMNS, rows, title))
    sweep = [
        {"threshold": f"{row['threshold']:.2f}", **{m.key: format_value(m.key, row[m.key]) for m in metrics(SWEEP)}}
        for row in results["sweep"]
    ]
    console.print(render_rich(SWEEP_COLUMNS, sweep, "segmentation threshold sweep"))


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
    for m in metrics(SWEEP):
        ax.plot(thresholds, [r[m.key] for r in results["sweep"]], marker="o", label=m.description)
    ax.set(xlabel="sigmoid threshold", ylabel="score", title="segmentation threshold sweep")
    ax.legend()
    fig.tight_layout()
    sweep_path = out_dir / "threshold_sweep.png"
    fig.savefig(sweep_path, dpi=100)
    plt.close(fig)
    return [pr_path, sweep_path]
