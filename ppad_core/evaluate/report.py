"""Human-readable evaluation output: the protocol table, the threshold sweep and PNG plots."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from ppad_core.evaluate.geometry_eval import TERRAINS
from ppad_core.evaluate.metric_table import GEOMETRY, REPORT, SWEEP, Column, format_value, metrics, render_rich

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


TERRAIN_COLUMNS = (*TERRAINS, "all")


def print_geometry_report(results: dict, console: Console) -> None:
    """One row per geometry metric, one column per terrain (frame counts in the headers)."""
    columns = [Column("metric", "metric", justify="left")]
    columns += [Column(t, f"{t} ({results[t]['frames']:.0f} frames)") for t in TERRAIN_COLUMNS]
    rows = [
        {"metric": m.description, **{t: format_value(m.key, results[t][m.key]) for t in TERRAIN_COLUMNS}}
        for m in metrics(GEOMETRY)
    ]
    missing = results["missing_ground_truth"]
    title = f"road geometry: {results['source']} on {results['data']} ({missing} frames without ground truth)"
    console.print(render_rich(columns, rows, title))


def write_geometry_plots(frames: list, out_dir: str | Path) -> list[Path]:
    """Per frame a bird's-eye view: the geometry (left) beside its ground truth (right)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for frame in frames:
        fig, (ax_pred, ax_true) = plt.subplots(1, 2, figsize=(9, 7), sharey=True)
        _draw_bev(ax_pred, frame.geometry.grid, "ppad geometry")
        for lane in frame.geometry.lanes:
            ax_pred.plot(lane.points[:, 1], lane.points[:, 0], color=LANE_COLOURS[lane.label], lw=2, label=lane.label)
        for edge in (frame.geometry.left_boundary, frame.geometry.right_boundary):
            ax_pred.plot(edge[:, 1], edge[:, 0], color="orange", lw=1, ls="--")
        if len(frame.geometry.ego_path):
            ax_pred.plot(frame.geometry.ego_path[:, 1], frame.geometry.ego_path[:, 0], color="magenta", lw=1.5, ls=":")
        obstacles = [(o.y_m, o.x_m) for o in frame.geometry.obstacles if o.range_m == o.range_m]
        if obstacles:
            ax_pred.scatter(*zip(*obstacles), marker="s", color="red", s=30, zorder=3)
        _draw_bev(ax_true, frame.truth.grid, f"ground truth ({'hills' if frame.truth.hilly else 'flat'})")
        for lane in frame.truth.lanes:
            seen = lane.points[lane.visibility]
            ax_true.plot(seen[:, 1], seen[:, 0], ".", ms=2, color=LANE_COLOURS[lane.label])
        if len(frame.truth.vehicle_ground):
            ax_true.scatter(
                frame.truth.vehicle_ground[:, 1], frame.truth.vehicle_ground[:, 0], marker="s", color="red", s=30
            )
        ax_pred.legend(loc="upper left", fontsize=7)
        fig.suptitle(frame.name)
        path = out_dir / f"bev_{frame.name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        paths.append(path)
    return paths


LANE_COLOURS = {
    "ego_left": "tab:blue",
    "ego_right": "tab:green",
    "left_2": "tab:cyan",
    "right_2": "tab:olive",
    "other": "grey",
}


def _draw_bev(ax, grid, title: str) -> None:
    """The grid as an image in base_link, y (left) drawn to the left: free white, occupied dark, unknown grey."""
    import numpy as np

    from ppad_core.geometry.road import FREE, OCCUPIED

    shade = np.where(grid.data == FREE, 1.0, np.where(grid.data == OCCUPIED, 0.25, 0.6))
    x_max = grid.origin_x_m + grid.data.shape[1] * grid.resolution_m
    y_max = grid.origin_y_m + grid.data.shape[0] * grid.resolution_m
    ax.imshow(shade.T[::-1, ::-1], cmap="gray", vmin=0, vmax=1, extent=(y_max, grid.origin_y_m, grid.origin_x_m, x_max))
    ax.set_xlim(y_max, grid.origin_y_m)
    ax.set_ylim(grid.origin_x_m, x_max)
    ax.set_xlabel("y (m, left)")
    ax.set_ylabel("x (m, forward)")
    ax.set_title(title)
