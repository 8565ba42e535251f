"""Compression: importance arithmetic, safe aggregation, Torch-Pruning on the real architecture,
pruned layouts in checkpoints, feature distillation and the CLI."""

from __future__ import annotations

import copy
import dataclasses
import json

import numpy as np
import pytest
import torch
import yaml

from ppad_core.compress.ablation import ARMS, AblationSettings, finished_prune, markdown_table, run_ablation
from ppad_core.compress.distill import FeatureDistiller, channel_wise_distillation
from ppad_core.compress.importance import (
    ImportanceConfig,
    TaskGradientStatistics,
    combine,
    cosine_conflict,
    sign_conflict,
    taylor_importance,
)
from ppad_core.compress.pipeline import calibration_loader
from ppad_core.compress.pruning import PruneConfig, keep_decoder_layers, prune_model
from ppad_core.data.synth import generate_dataset
from ppad_core.model.checkpoint import load, read_metadata, save_checkpoint
from ppad_core.model.complexity import count_parameters
from ppad_core.model.config import load_model_config
from ppad_core.runtime.export import export_onnx, onnx_parity, sample_inputs
from ppad_core.train.config import DistillConfig

from conftest import REPO, conditioned_model, run_ppad

TINY = REPO / "test" / "data" / "rmt_ppad_tiny.yaml"


def _statistics_of(per_task_grads: list[torch.Tensor], weight: torch.Tensor) -> tuple[torch.Tensor, ...]:
    stats = TaskGradientStatistics()
    param = torch.nn.Parameter(weight)
    stats._add([param], [(g,) for g in per_task_grads])
    return stats.slices(param, 0, list(range(weight.shape[0])))


def test_conflict_is_zero_for_identical_and_maximal_for_opposite_gradients():
    weight = torch.randn(3, 5)
    g = torch.randn(3, 5)
    signed, dots, norms = _statistics_of([g, g, g], weight)
    assert torch.allclose(cosine_conflict(dots, norms), torch.zeros(3), atol=1e-6)
    assert torch.allclose(sign_conflict(signed), torch.zeros(3), atol=1e-6)
    # detection against drivable area, lane lines silent: that pair at cosine -1, the most a pair can
    # contribute; averaged over the three pairs -> 1/3 exactly
    signed, dots, norms = _statistics_of([g, -g, torch.zeros_like(g)], weight)
    assert torch.allclose(cosine_conflict(dots, norms), torch.full((3,), 1 / 3), atol=1e-6)
    assert torch.allclose(sign_conflict(signed), torch.ones(3), atol=1e-6)  # perfectly balanced signs
    # random gradients never exceed the opposite case for the same pair structure
    signed, dots, norms = _statistics_of([g, torch.randn(3, 5), torch.zeros_like(g)], weight)
    assert (cosine_conflict(dots, norms) <= 1 / 3 + 1e-6).all()


def test_taylor_importance_is_the_mean_of_squared_per_batch_terms():
    signed = torch.tensor([[[1.0, -2.0]], [[3.0, 2.0]]])  # [B=2, T=1, C=2]
    assert torch.allclose(taylor_importance(signed), torch.tensor([[5.0, 4.0]]))


def test_safe_aggregation_keeps_the_top_channel_of_every_single_task():
    # channel 0 matters only for lane lines (and is tiny for the other tasks); channels 1-7 are
    # moderately useful for detection and drivable area
    importance = torch.full((3, 8), 1.0)
    importance[2] = 0.3
    importance[:, 0] = torch.tensor([1e-4, 1e-4, 0.5])
    conflict = torch.zeros(8)
    conflict[0] = 1.0  # and its gradients conflict, which the penalty punishes
    lowest = lambda score, k: set(score.argsort()[:k].tolist())  # noqa: E731
    mean_score = combine(importance, conflict, ImportanceConfig(aggregation="mean", protect_top=0))
    assert 0 in lowest(mean_score, 4)  # averaging drowns the lane-only channel
    for aggregation_score in (
        combine(importance, conflict, ImportanceConfig(aggregation="max", protect_top=1, conflict_weight=1.0)),
        combine(importance, None, ImportanceConfig(aggregation="max", protect_top=0)),
    ):
        assert 0 not in lowest(aggregation_score, 6)
    # the top channel of each task survives even when every other channel is pruned
    random_importance = torch.rand(3, 16)
    score = combine(random_importance, torch.rand(16), ImportanceConfig(conflict_weight=1.0))
    tops = set(random_importance.argmax(1).tolist())
    assert tops.isdisjoint(lowest(score, 16 - len(tops)))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("compress_data")
    generate_dataset(root, {"train": 8, "val": 4}, seed=11, width=320, height=180, workers=1, progress=False)
    return root


@pytest.fixture(scope="module")
def tiny_model():
    return conditioned_model(load_model_config(TINY), seed=1)


def test_ratio_zero_leaves_the_model_identical(tiny_model):
    student, report = prune_model(
        tiny_model, PruneConfig(target_reduction=0.0, importance=ImportanceConfig("magnitude"))
    )
    assert report["reduction"] == 0 and student.config.pruned == {}
    x = torch.rand(2, 3, 128, 224)
    with torch.no_grad():
        a, b = tiny_model(x), student(x)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_taylor_pruning_hits_the_target_and_the_student_reloads_exports_and_fuses(tiny_model, tiny_data, tmp_path):
    cfg = PruneConfig(steps=2, calibration_batches=2)
    calibration = calibration_loader(tiny_data, "train2017", tiny_model.config, batch_size=2)
    torch.manual_seed(0)
    student, report = prune_model(tiny_model, cfg, calibration)
    before = count_parameters(tiny_model, trainable_only=False)
    reduction = 1 - count_parameters(student, trainable_only=False) / before
    assert reduction == pytest.approx(report["reduction"]) and abs(reduction - 0.327) <= 0.01
    assert count_parameters(tiny_model, trainable_only=False) == before  # the teacher is untouched
    path = save_checkpoint(student, tmp_path / "student", {"kind": "pruned"})
    layout = yaml.safe_load((path / "model.yaml").read_text())["model"]["pruned"]
    assert layout and all(
        "out_channels" in w or "num_features" in w or "out_features" in w or "normalized_shape" in w
        for w in layout.values()
    )
    reloaded = load(path)  # rebuilt from the recorded widths, no pruning re-run
    x = torch.rand(1, 3, 128, 224)
    with torch.no_grad():
        a, b = student(x), reloaded(x)
    assert all(torch.equal(a[k], b[k]) for k in a)
    onnx_path = export_onnx(reloaded, tmp_path / "student.onnx")
    diffs = onnx_parity(reloaded, onnx_path, sample_inputs(reloaded.config, tiny_data / "images", count=2))
    assert diffs["scores"] < 1e-3 and diffs["seg_logits"] < 1e-2


def test_feature_distillation_is_zero_against_itself_and_adapts_widths(tiny_model, tmp_path):
    teacher = conditioned_model(load_model_config(TINY), seed=1)
    itself = copy.deepcopy(teacher)
    same = FeatureDistiller(itself, teacher, DistillConfig(teacher="x"))
    x = torch.rand(2, 3, 128, 224)
    with torch.no_grad():
        itself(x)
        assert len(same.adapters) == 0 and same.loss(x).item() == pytest.approx(0.0, abs=1e-10)
    student, _ = prune_model(tiny_model, PruneConfig(importance=ImportanceConfig("magnitude")))
    distiller = FeatureDistiller(student, teacher, DistillConfig(teacher="x", loss="cwd"))
    assert len(distiller.adapters) > 0  # pruned stage widths are mapped back to the teacher's
    student.train()
    student(x, [{"labels": torch.zeros(0, dtype=torch.long), "boxes": torch.zeros(0, 4)}] * 2)
    loss = distiller.loss(x)
    loss.backward()
    assert loss.item() > 0 and all(p.grad is not None for p in distiller.adapters.parameters())
    # as the trainer's auxiliary term: logged as loss_distill, only the adapters trained, the teacher recorded
    assert distiller.name == "distill" and distiller.trainable is distiller.adapters
    assert distiller.provenance == {"kind": "distilled", "teacher": "x"}


def test_channel_wise_distillation_matches_a_hand_computed_kl():
    student = torch.tensor([[[[0.0, 0.0]]]])  # one channel, two positions: uniform
    teacher = torch.tensor([[[[0.0, 4.0 * np.log(3.0)]]]])  # at T=4: softmax (1/4, 3/4)
    expected = (0.25 * np.log(0.25 / 0.5) + 0.75 * np.log(0.75 / 0.5)) * 16
    assert channel_wise_distillation(student, teacher, 4.0).item() == pytest.approx(expected, rel=1e-5)


def _one_epoch_distill_config(tmp_path, data_root):
    config = tmp_path / "distill.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "data": {"root": str(data_root), "cache": False, "workers": 0},
                "epochs": 1,
                "batch_size": 4,
                "val_every": 0,
                "distill": {"weight": 1.0, "loss": "mse"},
            }
        )
    )
    return config


def test_cli_prune_then_distill_reports_teacher_vs_student(tiny_model, tiny_data, tmp_path):
    teacher = save_checkpoint(tiny_model, tmp_path / "teacher", {"kind": "trained", "data": str(tiny_data)})
    result = run_ppad(
        "prune",
        str(teacher),
        "--out",
        str(tmp_path / "pruned"),
        "--data",
        str(tiny_data),
        "--steps",
        "1",
        "--calib-batches",
        "2",
        "--no-progress",
        "--json",
    )
    summary = json.loads(result.stdout)
    assert abs(summary["prune"]["reduction"] - 0.327) <= 0.01
    provenance = read_metadata(tmp_path / "pruned")["provenance"]
    assert provenance["kind"] == "pruned" and provenance["teacher"] == str(teacher)
    assert provenance["source_provenance"] == read_metadata(teacher)["provenance"]
    assert provenance["data"] == str(tiny_data)  # INT8 export's default calibration data
    comparison = summary["comparison"]
    assert comparison["ratio"]["parameters"] < 0.7  # fused inference parameters drop about as much
    latency = ("latency_ms", "latency_onnxruntime_ms", "latency_openvino_ms")
    for key in ("recall", "map50", "drivable_miou", "lane_iou", "lane_acc", *latency):
        assert comparison["delta"][key] == pytest.approx(comparison["student"][key] - comparison["teacher"][key])
    for key in latency:
        assert comparison["teacher"][key] > 0 and 0 < comparison["ratio"][key] < 5
    config = _one_epoch_distill_config(tmp_path, tiny_data)
    result = run_ppad(
        "distill",
        str(tmp_path / "pruned"),
        "--teacher",
        str(teacher),
        "--config",
        str(config),
        "--run-dir",
        str(tmp_path / "run"),
        "--no-progress",
        "--no-compare",
        "--json",
    )
    best = json.loads(result.stdout)["student"]
    student = load(best)
    pruned = load(tmp_path / "pruned")
    assert count_parameters(student, trainable_only=False) == count_parameters(pruned, trainable_only=False)
    assert student.config.pruned == pruned.config.pruned
    assert "loss_distill" in (tmp_path / "run" / "results.csv").read_text().splitlines()[0]
    distill = ("distill", str(tmp_path / "pruned"), "--teacher", str(teacher), "--no-progress", "--no-compare")
    missing = run_ppad(*distill, "--run-dir", str(tmp_path / "no_run"), "--resume", check=False)
    assert missing.returncode == 2 and "no interrupted distillation to resume" in missing.stdout + missing.stderr
    run_ppad(*distill, "--run-dir", str(tmp_path / "run"), "--resume", "--set", "epochs=2")
    epochs = [line.split(",")[0] for line in (tmp_path / "run" / "results.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]


def test_cli_compress_resumes_an_interrupted_run_without_pruning_again(tiny_model, tiny_data, tmp_path):
    teacher = str(save_checkpoint(tiny_model, tmp_path / "teacher"))
    config = _one_epoch_distill_config(tmp_path, tiny_data)
    out = tmp_path / "compressed"
    missing = run_ppad("compress", teacher, "--out", str(out), "--resume", "--no-progress", check=False)
    assert missing.returncode == 2 and "no interrupted compression to resume" in missing.stdout + missing.stderr
    prune_options = ("--steps", "1", "--calib-batches", "2", "--no-progress", "--json")
    first = run_ppad("compress", teacher, "--out", str(out), "--config", str(config), "--no-compare", *prune_options)
    pruned_weights = (out / "pruned" / "model.safetensors").read_bytes()
    resumed = run_ppad(
        "compress", teacher, "--out", str(out), "--resume", "--set", "epochs=2", "--no-progress", "--json"
    )
    summary = json.loads(resumed.stdout)
    assert summary["prune"] == json.loads(first.stdout)["prune"]
    assert (out / "pruned" / "model.safetensors").read_bytes() == pruned_weights
    epochs = [line.split(",")[0] for line in (out / "distill" / "results.csv").read_text().splitlines()[1:]]
    assert epochs == ["1", "2"]
    assert load(out / "student").config.pruned == load(out / "pruned").config.pruned
    assert summary["comparison"]["ratio"]["parameters"] < 0.7
    elsewhere = tmp_path / "no_such_test_set"
    scored_elsewhere = run_ppad(
        "compress", teacher, "--out", str(out), "--resume", "--eval-data", str(elsewhere), "--no-progress", check=False
    )
    assert scored_elsewhere.returncode == 2 and str(elsewhere) in scored_elsewhere.stdout + scored_elsewhere.stderr


def test_head_scope_prunes_the_seg_decoder_and_reloads(tiny_model, tmp_path):
    magnitude = ImportanceConfig("magnitude")
    narrow, _ = prune_model(tiny_model, PruneConfig(steps=1, importance=magnitude))
    # the tiny model's widths move in coarse steps: 34 % is a reduction its +head scope can land on
    head_scope = PruneConfig(scope="backbone+encoder+head", steps=1, target_reduction=0.34, importance=magnitude)
    wide, report = prune_model(tiny_model, head_scope)
    channels = tiny_model.config.head.seg_channels
    assert narrow.head.segmenter.refine[0].out_channels == channels  # the default scope keeps the head
    seg = wide.head.segmenter
    shared = {p.out_channels for p in seg.proj} | {seg.upsample.in_channels, seg.upsample.out_channels}
    assert len(shared) == 1 and shared.pop() == seg.refine[0].in_channels < channels
    assert seg.refine[0].out_channels < channels and seg.refine[-1].in_channels == seg.refine[0].out_channels
    assert seg.refine[-1].out_channels == 1 and seg.scale_logits.shape == (2, 3)
    assert abs(report["reduction"] - 0.34) <= 0.01
    reloaded = load(save_checkpoint(wide, tmp_path / "student"))
    x = torch.rand(1, 3, *tiny_model.config.input_size)
    with torch.no_grad():
        a, b = wide(x), reloaded(x)
    assert all(torch.equal(a[k], b[k]) for k in a) and a["seg_logits"].shape == (1, 2, *x.shape[-2:])


def test_kept_decoder_layers_predict_what_they_predicted_in_the_teacher_and_reload(tiny_model, tmp_path):
    layers = tiny_model.config.head.decoder_layers
    magnitude = ImportanceConfig("magnitude")
    shallow, report = prune_model(tiny_model, PruneConfig(target_reduction=0.0, decoder_layers=1, importance=magnitude))
    assert report["decoder_layers"] == shallow.config.head.decoder_layers == 1 < layers
    assert tiny_model.config.head.decoder_layers == len(tiny_model.head.detector.decoder.layers) == layers
    decoder = tiny_model.head.detector.decoder
    dropped = [*decoder.layers[1:], *decoder.score_heads[1:], *decoder.box_heads[1:]]
    removed = sum(count_parameters(module, trainable_only=False) for module in dropped)
    assert report["parameters_before"] - report["parameters_after"] == removed
    # the kept layer computes what it computed in the teacher: the teacher's queries after it, through its score head
    captured = []
    hook = decoder.layers[0].register_forward_hook(lambda module, inputs, output: captured.append(output))
    x = torch.rand(1, 3, *tiny_model.config.input_size)
    with torch.no_grad():
        tiny_model(x)
        hook.remove()
        expected = decoder.score_heads[0](captured[0]).sigmoid()
        outputs = shallow(x)
        reloaded = load(save_checkpoint(shallow, tmp_path / "shallow"))(x)
    torch.testing.assert_close(outputs["scores"], expected)
    assert all(torch.equal(outputs[k], reloaded[k]) for k in outputs)
    with pytest.raises(ValueError, match=f"decoder_layers=9: the model has {layers} decoder layers"):
        keep_decoder_layers(copy.deepcopy(tiny_model), 9)


def test_module_ratio_fixes_one_part_while_the_search_still_meets_the_target(tiny_model):
    magnitude = ImportanceConfig("magnitude")
    base = PruneConfig(scope="backbone+encoder+head", steps=2, target_reduction=0.34, round_to=2, importance=magnitude)
    searched, searched_report = prune_model(tiny_model, base)
    fixed_seg = {"head.segmenter": 0.5}
    fixed, report = prune_model(tiny_model, dataclasses.replace(base, module_ratios=fixed_seg))
    channels = tiny_model.config.head.seg_channels  # 8: half kept, a multiple of round_to
    seg = fixed.head.segmenter
    assert {seg.upsample.out_channels, seg.refine[0].out_channels, *(p.out_channels for p in seg.proj)} == {4}
    assert searched.head.segmenter.upsample.out_channels > 4 == channels // 2
    # the seg decoder's few parameters barely move the searched ratio: the rest keeps its searched widths
    assert report["channel_ratio"] == pytest.approx(searched_report["channel_ratio"], abs=0.02)
    assert abs(report["reduction"] - 0.34) <= 0.01
    x = torch.rand(1, 3, *tiny_model.config.input_size)
    with torch.no_grad():
        assert fixed(x)["seg_logits"].shape == (1, 2, *x.shape[-2:])
    only_seg, _ = prune_model(tiny_model, dataclasses.replace(base, target_reduction=0.0, module_ratios=fixed_seg))
    assert only_seg.config.pruned and all(name.startswith("head.segmenter") for name in only_seg.config.pruned)
    for bad, message in (
        ({"head.nowhere": 0.5}, "does not have: head.nowhere"),
        ({"head.segmenter": 0.9}, "must be in"),
    ):
        with pytest.raises(ValueError, match=message):
            prune_model(tiny_model, dataclasses.replace(base, module_ratios=bad))
    with pytest.raises(ValueError, match="outside the 'backbone\\+encoder' scope: head.segmenter"):
        prune_model(tiny_model, PruneConfig(importance=magnitude, module_ratios={"head.segmenter": 0.5}))


def test_module_ratio_option_parses_name_and_ratio_and_refuses_malformed_text(capsys):
    from ppad_core.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(
        ["prune", "teacher", "--out", "o", "--module-ratio", "head.segmenter=0.5", "--module-ratio", "encoder=.25"]
    )
    assert args.module_ratio == [("head.segmenter", 0.5), ("encoder", 0.25)]
    for malformed in ("head.segmenter", "=0.5", "head.segmenter=half"):
        with pytest.raises(SystemExit):
            parser.parse_args(["prune", "teacher", "--out", "o", "--module-ratio", malformed])
        assert "expected MODULE=RATIO" in capsys.readouterr().err


def test_seg_decoder_channel_group_prunes_like_slicing_its_weights(tiny_model):
    """The shared upsampling runs three times on its own output and the tasks are mixed by learned
    weights: the dependency graph must remove the same channels from every member, nothing more."""
    import torch_pruning as tp

    from ppad_core.compress.pruning import build_pruner

    model = copy.deepcopy(tiny_model).eval()
    reference = copy.deepcopy(model.head.segmenter)
    head_scope = PruneConfig(scope="backbone+encoder+head")
    pruner = build_pruner(model, 0.3, head_scope, tp.importance.MagnitudeImportance(), steps=1)
    seg = model.head.segmenter
    dropped = [1, 3, 5]
    pruner.DG.get_pruning_group(seg.proj[0], tp.prune_conv_out_channels, idxs=dropped).prune()
    keep = [c for c in range(reference.upsample.out_channels) if c not in dropped]
    with torch.no_grad():
        for proj in reference.proj:
            proj.weight.data, proj.bias.data = proj.weight[keep], proj.bias[keep]
        reference.upsample.weight.data = reference.upsample.weight[keep][:, keep]
        reference.upsample.bias.data = reference.upsample.bias[keep]
        reference.refine[0].weight.data = reference.refine[0].weight[:, keep]
        features = [torch.randn(2, 32, 16 // s, 28 // s) for s in (1, 2, 4)]
        assert seg.upsample.weight.shape == reference.upsample.weight.shape
        assert torch.allclose(seg(features), reference(features), atol=1e-6)


def test_rounding_keeps_at_least_the_unpruned_fraction_of_every_group():
    from ppad_core.compress.pruning import pruned_after_rounding_up as round_to

    # (to prune before rounding, channels, round_to) -> pruned: kept widths round up, never down
    assert round_to(3, 8, 4) == 0  # 5 kept -> 8 (Torch-Pruning's own rounding keeps 4)
    assert round_to(3, 8, 2) == 2  # 5 kept -> 6
    assert round_to(17, 64, 4) == 16  # 47 kept -> 48
    assert round_to(16, 64, 8) == 16  # already a multiple
    assert round_to(5, 6, 8) == 0  # never wider than the layer


def test_dependency_graph_prunes_the_paper_sized_architecture(large_config):
    """The full RMT-PPAD-L graph (HGNetV2 concats, depthwise downsamples, RepC3, AIFI, GCA inputs) prunes
    consistently; the searched, Taylor-scored run is in benchmarks/run_cpu.sh (minutes, not a unit test)."""
    import torch_pruning as tp

    from ppad_core.compress.pruning import build_pruner
    from ppad_core.model.rmt_ppad import build_model

    torch.manual_seed(0)
    model = build_model(large_config).eval()
    before = count_parameters(model, trainable_only=False)
    build_pruner(model, 0.3, PruneConfig(), tp.importance.GroupMagnitudeImportance(p=1), steps=1).step()
    after = count_parameters(model, trainable_only=False)
    assert 0.2 < 1 - after / before < 0.4
    with torch.no_grad():
        outputs = model(torch.rand(1, 3, 320, 320))
    assert outputs["boxes"].shape == (1, 300, 4) and outputs["seg_logits"].shape == (1, 2, 320, 320)


def test_ablation_prunes_every_arm_to_one_budget_and_only_the_kd_arm_distils(tiny_model, tiny_data, tmp_path):
    teacher = save_checkpoint(tiny_model, tmp_path / "teacher")
    recipe = tmp_path / "finetune.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "data": {"root": str(tiny_data), "cache": False, "workers": 0},
                "batch_size": 4,
                "distill": {"weight": 1.0, "loss": "mse"},
            }
        )
    )
    settings = AblationSettings(
        teacher=str(teacher),
        data_root=str(tiny_data),
        train_config=str(recipe),
        out_dir=str(tmp_path / "ablation"),
        epochs=1,
        prune=PruneConfig(steps=1, calibration_batches=2),
        progress=False,
    )
    result = run_ablation(settings)
    arms = {row["arm"]: row for row in result["arms"]}
    assert list(arms) == [arm.name for arm in ARMS]
    assert all(abs(row["reduction"] - 0.327) <= 0.01 for row in arms.values())
    assert len({row["pruned"]["parameters"] for row in arms.values()}) == 1  # one budget, the same widths
    pruned = {slug: load(tmp_path / "ablation" / slug / "pruned") for slug in ("magnitude_l1", "taylor")}
    assert any(
        not torch.equal(a, b)
        for a, b in zip(pruned["magnitude_l1"].state_dict().values(), pruned["taylor"].state_dict().values())
    ), "magnitude and Taylor kept the same channels"
    assert not (tmp_path / "ablation" / "taylor_conflict_kd" / "pruned").exists()  # shares the conflict arm's
    for arm in ARMS:
        header = (tmp_path / "ablation" / arm.slug / "finetune" / "results.csv").read_text().splitlines()[0]
        assert ("loss_distill" in header) == arm.distill
        assert arms[arm.name]["finetuned"]["parameters"] == arms[arm.name]["pruned"]["parameters"]
    table = markdown_table(result).splitlines()
    assert len(table) == 2 + 1 + len(ARMS) and table[2].startswith("| teacher | 0 |")
    assert f"{100 * arms['Taylor']['finetuned']['map50']:.2f}" in table[4]

    # --reuse: the finished arms are scored again, neither pruned nor fine-tuned again
    out = tmp_path / "ablation"
    written = {path: path.stat().st_mtime_ns for path in out.glob("*/*/model.safetensors")}
    logs = {arm.slug: (out / arm.slug / "finetune" / "results.csv").read_text() for arm in ARMS[:2]}
    again = run_ablation(dataclasses.replace(settings, reuse=True), ARMS[:2])
    assert {path: path.stat().st_mtime_ns for path in out.glob("*/*/model.safetensors")} == written
    assert {arm.slug: (out / arm.slug / "finetune" / "results.csv").read_text() for arm in ARMS[:2]} == logs
    assert [row["finetuned"] for row in again["arms"]] == [arms[arm.name]["finetuned"] for arm in ARMS[:2]]
    other_budget = dataclasses.replace(settings.prune, target_reduction=0.2, importance=ARMS[0].importance)
    assert finished_prune(out / "magnitude_l1" / "pruned", str(teacher), other_budget) is None
