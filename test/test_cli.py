"""The `ppad` command line as a user runs it."""

from __future__ import annotations

import json

from conftest import REPO, run_ppad


def test_info_paper_model_json_reports_exact_parameter_counts():
    info = json.loads(run_ppad("info", str(REPO / "config" / "rmt_ppad_l.yaml"), "--json").stdout)
    assert info["parameters"]["trainable"] == 35_171_082
    assert info["parameters"]["fused"] == 34_332_106  # see test_model: the paper counts 34,348,746
    assert info["input_size"] == [640, 640]
    assert 90e9 < info["macs"] < 120e9  # RT-DETR-L is ~110 GFLOPs-class at 640; plus the seg decoder


def test_info_small_model_table_and_latency():
    result = run_ppad("info", "rmt_ppad_s", "--latency", "2")
    assert "after fusion" in result.stdout and "forward latency" in result.stdout
    info = json.loads(run_ppad("info", "rmt_ppad_s", "--latency", "2", "--json").stdout)
    assert info["latency_fused_fp32"]["median_ms"] > 0
    assert info["parameters"]["fused"] < info["parameters"]["trainable"]


def test_help_lists_commands_and_bad_target_is_a_clear_error():
    help_text = run_ppad("--help").stdout
    assert "info" in help_text and "import-official" in help_text
    result = run_ppad("info", "no_such_model", check=False)
    assert result.returncode == 2
    assert "no_such_model" in result.stderr and "rmt_ppad_s" in result.stderr
