"""Loss terms against hand-computed values; matching on known permutations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ppad_core.train.losses import (
    LossConfig,
    detection_loss,
    focal_loss,
    hungarian_match,
    segmentation_loss,
    set_loss,
    task_losses,
    total_loss,
    tversky_loss,
    varifocal_loss,
)

CFG = LossConfig()


def test_focal_loss_hand_values():
    logits = torch.tensor([0.0, 0.0])
    target = torch.tensor([1.0, 0.0])
    # p = 0.5: positive -0.25*log(0.5)*0.5^2, negative -0.75*log(0.5)*0.5^2, then the mean
    expected = (0.25 * math.log(2) * 0.25 + 0.75 * math.log(2) * 0.25) / 2
    assert focal_loss(logits, target, 0.25, 2.0).item() == pytest.approx(expected, rel=1e-6)
    confident = focal_loss(torch.tensor([8.0]), torch.tensor([1.0]), 0.25, 2.0)
    assert confident.item() < 1e-7  # easy examples are down-weighted to nothing


def test_tversky_loss_hand_values():
    logits = torch.tensor([[10.0, -10.0], [10.0, -10.0]])  # p ~ [1, 0] per row
    target = torch.tensor([[1.0, 1.0], [0.0, 0.0]])  # TP 1, FN 1, FP 1
    expected = 1 - (1 + 1) / (1 + 0.7 * 1 + 0.3 * 1 + 1)
    assert tversky_loss(logits, target, 0.7).item() == pytest.approx(expected, abs=1e-4)
    assert tversky_loss(torch.full((4,), 20.0), torch.ones(4), 0.7).item() == pytest.approx(0.0, abs=1e-6)


def test_varifocal_weights_positives_by_iou_and_negatives_by_confidence():
    logits = torch.tensor([[[0.5], [2.0]]])
    target = torch.tensor([[[0.8], [0.0]]])
    positive = torch.tensor([[[1.0], [0.0]]])
    p_neg = torch.sigmoid(torch.tensor(2.0))
    expected = (
        F.binary_cross_entropy_with_logits(torch.tensor(0.5), torch.tensor(0.8)) * 0.8
        + F.binary_cross_entropy_with_logits(torch.tensor(2.0), torch.tensor(0.0)) * 0.75 * p_neg**2
    )
    assert varifocal_loss(logits, target, positive, 0.75, 2.0).item() == pytest.approx(expected.item(), rel=1e-6)


def _targets():
    return [
        {
            "labels": torch.tensor([0, 0, 0]),
            "boxes": torch.tensor([[0.2, 0.3, 0.1, 0.1], [0.6, 0.5, 0.2, 0.3], [0.8, 0.8, 0.1, 0.2]]),
        }
    ]


def test_hungarian_recovers_a_permutation_and_perfect_boxes_cost_nothing():
    targets = _targets()
    order = torch.tensor([2, 0, 1])
    boxes = torch.cat([targets[0]["boxes"][order], torch.tensor([[0.5, 0.5, 0.9, 0.9]])])[None]
    logits = torch.full((1, 4, 1), 3.0)
    ((queries, gts),) = hungarian_match(logits, boxes, targets, CFG)
    assert dict(zip(queries.tolist(), gts.tolist())) == {0: 2, 1: 0, 2: 1}
    terms = set_loss(logits, boxes, targets, [(queries, gts)], CFG)
    assert terms["bbox"].item() == pytest.approx(0.0, abs=1e-6)
    assert terms["giou"].item() == pytest.approx(0.0, abs=1e-6)
    # classification: matched queries target IoU 1 (weight 1), the spare query is a weighted negative
    p = torch.sigmoid(torch.tensor(3.0))
    expected = (
        3 * F.binary_cross_entropy_with_logits(torch.tensor(3.0), torch.tensor(1.0))
        + 0.75 * p**2 * F.binary_cross_entropy_with_logits(torch.tensor(3.0), torch.tensor(0.0))
    ) / 3
    assert terms["class"].item() == pytest.approx(expected.item(), rel=1e-5)


def test_box_terms_are_normalised_by_matched_pairs():
    targets = _targets()
    boxes = targets[0]["boxes"].clone()[None]
    boxes[0, :, 0] += 0.1  # every centre off by 0.1
    logits = torch.zeros(1, 3, 1)
    matches = [(torch.arange(3), torch.arange(3))]
    terms = set_loss(logits, boxes, targets, matches, CFG)
    assert terms["bbox"].item() == pytest.approx(5 * 0.1, rel=1e-5)  # gain 5 x mean L1 per pair


def test_detection_loss_covers_main_aux_encoder_and_denoising(small_config):
    from ppad_core.model.rmt_ppad import build_model

    torch.manual_seed(0)
    model = build_model(small_config).train()
    targets = [_targets()[0], {"labels": torch.tensor([0]), "boxes": torch.tensor([[0.5, 0.5, 0.3, 0.3]])}]
    outputs = model(torch.rand(2, 3, *small_config.input_size), targets)
    terms = detection_loss(outputs, targets, CFG)
    assert set(terms) == {f"{s}_{t}" for s in ("main", "aux", "dn") for t in ("class", "bbox", "giou")}
    assert all(torch.isfinite(v) and v > 0 for v in terms.values())
    masks = torch.zeros(2, 2, *small_config.input_size, dtype=torch.uint8)
    loss, all_terms = total_loss(outputs, targets, masks, CFG)
    per_task = task_losses(all_terms)
    assert loss.item() == pytest.approx(sum(v.item() for v in per_task.values()), rel=1e-5)
    loss.backward()


def test_segmentation_loss_uses_bce_for_drivable_and_tversky_for_lanes():
    logits = torch.zeros(1, 2, 2, 2)
    masks = torch.ones(1, 2, 2, 2)
    terms = segmentation_loss(logits, masks, CFG)
    assert terms["drivable_bce"].item() == pytest.approx(8 * math.log(2), rel=1e-6)
    # p = 0.5 everywhere on 4 lane pixels: TP 2, FN 2, FP 0
    assert terms["lane_tversky"].item() == pytest.approx(8 * (1 - 3 / (2 + 0.7 * 2 + 1)), rel=1e-6)
