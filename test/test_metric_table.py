"""The metric table: every metric the evaluator returns is described once, and both renderers draw the
same table from one column spec."""

from __future__ import annotations

import numpy as np
import pytest
from rich.console import Console

from ppad_core.evaluate.geometry_metrics import GridMetric, LaneMetric, ObstacleMetric
from ppad_core.evaluate.metric_table import (
    GEOMETRY,
    METRICS,
    PAPER,
    REPORT,
    SELECTION,
    SWEEP,
    TRAINING,
    Column,
    format_delta,
    format_value,
    is_better,
    keys,
    metric,
    render_markdown,
    render_rich,
)
from ppad_core.evaluate.metrics import MetricAccumulator


def test_the_table_describes_every_scalar_metric_the_evaluator_returns():
    accumulator = MetricAccumulator()
    accumulator.add_segmentation(np.full((2, 4, 4), 0.99, np.float32), np.ones((2, 4, 4), np.uint8))
    results = accumulator.compute()
    counts = {"images", "ground_truth_boxes"}
    scalars = {k for k, v in results.items() if isinstance(v, float) and k not in counts}
    assert scalars == {m.key for m in METRICS if GEOMETRY not in m.tags}
    assert set(keys(SWEEP)) == set(results["sweep"][0]) - {"threshold"}
    assert SELECTION in keys(TRAINING)


def test_the_geometry_rows_are_keys_the_geometry_metrics_return():
    lanes, grid, obstacles = LaneMetric(), GridMetric(), ObstacleMetric()
    returned = {**lanes.result(), **grid.result(), **obstacles.result()}
    assert set(keys(GEOMETRY)) <= set(returned)
    assert not set(keys(GEOMETRY)) & {m.key for m in METRICS if GEOMETRY not in m.tags}


def test_views_are_in_table_order_and_the_paper_reports_five_metrics():
    assert keys(PAPER) == ("recall", "map50", "drivable_miou", "lane_iou", "lane_acc")
    assert keys(TRAINING) == (*keys(PAPER), "fitness")
    order = [m.key for m in METRICS]
    assert list(keys(REPORT)) == sorted(keys(REPORT), key=order.index)


def test_values_are_scaled_formatted_and_compared_by_direction():
    assert format_value("map50", 0.63214) == "63.21" and format_delta("lane_iou", -0.0123) == "-1.23"
    assert format_value("fitness", 1.234567) == "1.2346"
    assert is_better("fitness", 0.5, 0.4) and not is_better("fitness", 0.4, 0.4)
    assert metric("map50").label == "mAP50"
    with pytest.raises(KeyError, match="not in the metric table"):
        metric("accuracy")


def test_rich_and_markdown_render_the_same_cells_from_one_spec():
    columns = [Column("name", "", justify="left"), Column("map50", "mAP50")]
    rows = [{"name": "teacher", "map50": "60.00"}, {"name": "student"}]
    assert render_markdown(columns, rows) == "|  | mAP50 |\n|---|---|\n| teacher | 60.00 |\n| student |  |\n"
    console = Console(width=80, record=True)
    console.print(render_rich(columns, rows, "title"))
    text = console.export_text()
    assert "title" in text and "teacher" in text and "60.00" in text and "mAP50" in text
