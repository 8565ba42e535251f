"""The `ppad` command line as a user runs it."""

from __future__ import annotations

import json

import pytest

from ppad_core.cli import build_parser
from ppad_core.cli.common import JSON_HELP
from ppad_core.cli.compress import prune_config
from ppad_core.compress.importance import ImportanceConfig
from ppad_core.compress.pruning import PruneConfig
from ppad_core.data.synth import generate_dataset
from ppad_core.model.checkpoint import save_checkpoint
from ppad_core.model.config import load_model_config

from conftest import REPO, conditioned_model, run_ppad

TINY = REPO / "test" / "data" / "rmt_ppad_tiny.yaml"


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


@pytest.fixture(scope="module")
def tiny_eval_setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_eval")
    generate_dataset(root / "data", {"train": 0, "val": 2}, seed=3, width=320, height=180, workers=1, progress=False)
    checkpoint = save_checkpoint(conditioned_model(load_model_config(TINY), seed=2), root / "tiny")
    return checkpoint, root / "data"


def test_eval_json_is_a_stdout_flag_and_json_out_writes_the_same_results(tiny_eval_setup, tmp_path):
    checkpoint, data = tiny_eval_setup
    out = tmp_path / "results.json"
    result = run_ppad("eval", str(checkpoint), "--data", str(data), "--batch", "1", "--json", "--json-out", str(out))
    printed = json.loads(result.stdout)  # the report table went to stderr
    assert printed == json.loads(out.read_text())
    assert printed["images"] == 2 and 0 <= printed["map50"] <= 1 and "mAP50" in result.stderr


def test_eval_old_json_path_spelling_still_writes_the_file_with_a_deprecation_warning(tiny_eval_setup, tmp_path):
    checkpoint, data = tiny_eval_setup
    out = tmp_path / "old.json"
    result = run_ppad("eval", str(checkpoint), "--data", str(data), "--batch", "1", "--json", str(out))
    assert json.loads(out.read_text())["images"] == 2
    assert f"--json {out} is deprecated, use --json-out {out}" in result.stderr
    assert "mAP50" in result.stdout  # no --json flag: the report stays on stdout


def test_every_command_takes_json_as_a_flag():
    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    assert set(commands) == {
        *("info", "import-official", "synth", "convert-bdd100k", "train", "eval"),
        *("predict", "export", "bench", "prune", "distill", "compress"),
    }
    for name, command in commands.items():
        (option,) = [a for a in command._actions if "--json" in a.option_strings]
        assert option.help.startswith(JSON_HELP), name
        assert option.nargs in (0, "?"), name  # a flag; "?" only for the deprecated `--json FILE`


def test_pruning_options_default_to_the_config_dataclasses():
    args = build_parser().parse_args(["prune", "teacher", "--out", "o"])
    config = prune_config(args)
    assert config == PruneConfig()
    assert config.importance == ImportanceConfig()


def test_eval_geometry_on_ground_truth_masks_scores_terrains_apart_and_draws_bev_plots(tmp_path):
    data = tmp_path / "scenes"
    generate_dataset(data, {"train": 0, "val": 6}, seed=7, workers=1, progress=False)
    out = tmp_path / "geometry.json"
    result = run_ppad(
        *("eval", "--data", str(data), "--split", "val", "--geometry", "--ground-truth-masks"),
        *("--json-out", str(out), "--plots", str(tmp_path / "bev"), "--plot-frames", "0,2"),
    )
    results = json.loads(out.read_text())
    assert results["flat"]["frames"] + results["hills"]["frames"] == results["all"]["frames"] == 6
    flat = results["flat"]
    assert flat["x_error_near_m"] < 0.1 and flat["free_iou"] > 0.97 and flat["range_within_40_rel_error"] < 0.01
    assert "road geometry: ground-truth masks" in result.stdout and "lane F-score" in result.stdout
    assert sorted(p.name for p in (tmp_path / "bev").iterdir()) == ["bev_val_7_000000.png", "bev_val_7_000002.png"]
    missing = run_ppad("eval", "--data", str(data), "--geometry", check=False)
    assert missing.returncode != 0 and "--ground-truth-masks" in missing.stderr
