"""Evaluation protocol: detection AP/Recall against pycocotools, segmentation metrics against hand counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppad_core.boxes import cxcywh_to_xyxy, pairwise_iou
from ppad_core.evaluate.metrics import (
    MetricAccumulator,
    average_precision,
    detection_metrics,
    match_predictions,
    segmentation_scores,
)


def _iou_with(box: np.ndarray, others: list[np.ndarray]) -> float:
    if not others:
        return 0.0
    a = cxcywh_to_xyxy(torch.tensor(box)[None])
    return float(pairwise_iou(a, cxcywh_to_xyxy(torch.tensor(np.array(others)))).max())


def _random_detection_set(seed: int, found: float, images: int = 60):
    """Ground truths, jittered detections of most of them and background queries that overlap no ground
    truth, so score-ordered (COCO) and IoU-ordered (protocol) matching pair the same boxes."""
    rng = np.random.default_rng(seed)
    data = []
    for _ in range(images):
        gt: list[np.ndarray] = []
        for _ in range(int(rng.integers(0, 8))):
            box = np.concatenate([rng.uniform(0.15, 0.85, 2), rng.uniform(0.05, 0.25, 2)])
            if _iou_with(box, gt) < 0.2:
                gt.append(box)
        preds, scores = [], []
        for box in gt:
            if rng.random() < found:
                preds.append(box + rng.normal(0, 0.04, 4) * [box[2], box[3], box[2], box[3]])
                scores.append(rng.uniform(0.3, 1.0))
        while len(preds) < len(gt) + 20:
            box = np.concatenate([rng.uniform(0.1, 0.9, 2), rng.uniform(0.02, 0.3, 2)])
            if _iou_with(box, gt) < 0.4:
                preds.append(box)
                scores.append(rng.uniform(0.0, 0.7))
        data.append((np.array(gt).reshape(-1, 4), np.array(preds).reshape(-1, 4), np.array(scores)))
    return data


def _coco_ap50_and_recall(data) -> tuple[float, float]:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    size = 1000.0
    images, annotations, detections = [], [], []
    for image_id, (gt, preds, scores) in enumerate(data, 1):
        images.append({"id": image_id, "width": 1000, "height": 1000})
        for box in cxcywh_to_xyxy(gt) * size:
            w, h = box[2] - box[0], box[3] - box[1]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": 1,
                    "iscrowd": 0,
                    "bbox": [box[0], box[1], w, h],
                    "area": w * h,
                }
            )
        for box, score in zip(cxcywh_to_xyxy(preds) * size, scores):
            detections.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "score": float(score),
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                }
            )
    gt_api = COCO()
    gt_api.dataset = {"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "vehicle"}]}
    gt_api.createIndex()
    evaluator = COCOeval(gt_api, gt_api.loadRes(detections), "bbox")
    evaluator.params.maxDets = [1, 10, 300]
    evaluator.evaluate()
    evaluator.accumulate()
    evaluator.summarize()
    recall = evaluator.eval["recall"][0, 0, 0, -1]  # IoU 0.5, class 1, all areas, 300 detections
    return float(evaluator.stats[1]), float(recall)


def _ours(data) -> tuple[dict, dict]:
    accumulator = MetricAccumulator()
    for gt, preds, scores in data:
        accumulator.add_detections(
            cxcywh_to_xyxy(torch.tensor(preds)),
            torch.tensor(scores),
            torch.zeros(len(preds), dtype=torch.long),
            cxcywh_to_xyxy(torch.tensor(gt)),
            torch.zeros(len(gt), dtype=torch.long),
        )
    curve = detection_metrics(np.concatenate(accumulator.tp), np.concatenate(accumulator.scores), accumulator.num_gt)
    return accumulator.compute(), curve


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map50_and_recall_agree_with_pycocotools_when_every_object_is_found(seed):
    # ~2000 ground truths: recall steps far below the 0.01 grid, where the protocol's trapezoid rule and
    # COCO's step rule integrate the same envelope.
    data = _random_detection_set(seed, found=1.0, images=300)
    ours, _ = _ours(data)
    coco_ap50, coco_recall = _coco_ap50_and_recall(data)
    assert 0.3 < coco_ap50 < 0.95  # false positives outrank some true ones: a non-trivial curve
    assert abs(ours["map50"] - coco_ap50) < 0.005
    assert abs(ours["recall"] - coco_recall) < 0.005


@pytest.mark.parametrize("seed", [0, 1])
def test_missed_objects_add_the_official_tail_triangle(seed):
    # With misses, the protocol's sentinel (recall 1, precision 0) is joined linearly to the last PR point;
    # COCO counts nothing beyond the maximum recall. The gap is that triangle; Recall still agrees.
    data = _random_detection_set(seed, found=0.85, images=300)
    ours, curve = _ours(data)
    coco_ap50, coco_recall = _coco_ap50_and_recall(data)
    recall, precision = curve["pr_curve"]
    tail = (1 - recall[-1]) * precision[-1] / 2
    assert tail > 0.005
    assert abs(ours["map50"] - coco_ap50 - tail) < 0.005
    assert abs(ours["recall"] - coco_recall) < 0.005


def test_ap_hand_cases():
    # One ground truth found by the top-scored prediction: the 101-point trapezoid gives 0.995, not 1
    # (the official code's convention; COCO's step rule would say 1.0).
    tp = np.array([[True], [False]])
    result = detection_metrics(tp, np.array([0.9, 0.1]), num_gt=1)
    assert result["ap"][0] == pytest.approx(0.995)
    assert result["recall"] == 1.0
    # Ranked TP, FP, TP over 2 ground truths: precision envelope 1 up to recall 0.5, then 2/3.
    tp = np.array([[True], [False], [True]])
    result = detection_metrics(tp, np.array([0.9, 0.8, 0.7]), num_gt=2)
    x = np.linspace(0, 1, 101)
    envelope = np.where(x < 0.5, 1.0, np.where(x < 1.0, 2 / 3, 0.0))  # np.interp takes the right value at a jump
    expected = np.trapezoid(envelope, x)
    assert result["ap"][0] == pytest.approx(expected, abs=1e-3)
    assert average_precision(np.array([1.0]), np.array([1.0])) == pytest.approx(0.995)
    no_predictions = detection_metrics(np.zeros((0, 10), bool), np.zeros(0), num_gt=3)
    assert no_predictions["ap"][0] == 0.0 and no_predictions["recall"] == 0.0


def test_matching_is_greedy_by_iou_and_one_to_one():
    gt = torch.tensor([[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]])
    preds = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 10.0, 10.0], [20.0, 0.0, 29.0, 10.0]])
    tp = match_predictions(preds, torch.zeros(3), gt, torch.zeros(2), np.array([0.5, 0.95]))
    assert tp[:, 0].tolist() == [True, False, True]  # the second prediction duplicates the first ground truth
    assert tp[:, 1].tolist() == [True, False, False]  # IoU 0.9 < 0.95
    assert not match_predictions(preds, torch.ones(3), gt, torch.zeros(2)).any()  # classes must agree


def test_segmentation_scores_hand_computed():
    gt = np.zeros((4, 4), bool)
    gt[0, :] = True  # 4 foreground pixels
    pred = np.zeros((4, 4), bool)
    pred[0, :2] = True
    pred[1, :2] = True  # TP 2, FP 2, FN 2, TN 10
    s = segmentation_scores(pred, gt)
    assert s["iou"] == pytest.approx(2 / 6)
    assert s["miou"] == pytest.approx((2 / 6 + 10 / 14) / 2)
    assert s["balanced_acc"] == pytest.approx((2 / 4 + 10 / 12) / 2)
    assert s["recall_acc"] == pytest.approx(2 / 4)
    assert s["pixel_acc"] == pytest.approx(12 / 16)


def test_empty_image_conventions_and_the_two_lane_accuracies():
    empty = np.zeros((8, 8), bool)
    s = segmentation_scores(empty, empty)
    assert s["iou"] == pytest.approx(1.0)  # no lane and none predicted: IoU 1 thanks to the epsilons
    assert s["miou"] == pytest.approx(1.0)
    # Balanced accuracy (RMT-PPAD) of an image without lane pixels is at most 0.5; the lane-class recall
    # definition (YOLOP's "accuracy") gives 0 for it, and ignores false positives on images with lanes.
    assert s["balanced_acc"] == pytest.approx(0.5)
    assert s["recall_acc"] == pytest.approx(0.0)
    gt = np.zeros((8, 8), bool)
    gt[:, 3] = True
    everything = np.ones((8, 8), bool)
    s = segmentation_scores(everything, gt)
    assert s["recall_acc"] == pytest.approx(1.0)
    assert s["balanced_acc"] == pytest.approx(0.5)


def test_segmentation_is_averaged_per_image_not_per_pixel():
    accumulator = MetricAccumulator(seg_thresholds=(0.5, 0.5))
    gt_a = np.zeros((2, 4, 4), np.uint8)
    gt_a[:, 0, :] = 1
    probs_a = gt_a.astype(np.float32)  # perfect
    gt_b = np.zeros((2, 4, 4), np.uint8)
    gt_b[:, :, :] = 1
    probs_b = np.zeros((2, 4, 4), np.float32)  # misses everything
    accumulator.add_segmentation(probs_a, gt_a)
    accumulator.add_segmentation(probs_b, gt_b)
    results = accumulator.compute()
    assert results["lane_iou"] == pytest.approx(0.5)  # mean of 1 and 0; pixel-pooled IoU would be 4/20
    sweep = {row["threshold"]: row for row in results["sweep"]}
    assert sweep[0.5]["lane_iou"] == pytest.approx(0.5)
    assert sweep[0.95]["lane_iou"] == pytest.approx(0.5)
