"""Evaluation protocol: detection AP/Recall against pycocotools, segmentation metrics against hand counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ppad_core.boxes import cxcywh_to_xyxy, pairwise_iou
from ppad_core.evaluate.metrics import (
    MetricAccumulator,
    average_precision,
    box_iou_float32,
    class_curve,
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
            image_size=(1000, 1000),
        )
    return accumulator.compute(), accumulator.detection()["per_class"][0]


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
    result = class_curve(tp, np.array([0.9, 0.1]), num_gt=1)
    assert result["ap"][0] == pytest.approx(0.995)
    assert result["recall"] == 1.0
    # Ranked TP, FP, TP over 2 ground truths: precision envelope 1 up to recall 0.5, then 2/3.
    tp = np.array([[True], [False], [True]])
    result = class_curve(tp, np.array([0.9, 0.8, 0.7]), num_gt=2)
    x = np.linspace(0, 1, 101)
    envelope = np.where(x < 0.5, 1.0, np.where(x < 1.0, 2 / 3, 0.0))  # np.interp takes the right value at a jump
    expected = np.trapezoid(envelope, x)
    assert result["ap"][0] == pytest.approx(expected, abs=1e-3)
    assert average_precision(np.array([1.0]), np.array([1.0])) == pytest.approx(0.995)
    no_predictions = class_curve(np.zeros((0, 10), bool), np.zeros(0), num_gt=3)
    assert no_predictions["ap"][0] == 0.0 and no_predictions["recall"] == 0.0


def _greedy_by_iou(pred_boxes, gt_boxes, threshold: float = 0.5) -> list[bool]:
    """The rule ppad used before (and the earlier design note described): pairs by descending IoU, each
    prediction and ground truth once. Kept here only to show that the hand cases tell the two rules apart."""
    iou = box_iou_float32(gt_boxes, pred_boxes)
    pairs = sorted(((iou[g, p], g, p) for g in range(len(gt_boxes)) for p in range(len(pred_boxes))), reverse=True)
    tp, used_gt, used_pred = [False] * len(pred_boxes), set(), set()
    for value, g, p in pairs:
        if value >= threshold and g not in used_gt and p not in used_pred:
            used_gt.add(g)
            used_pred.add(p)
            tp[p] = True
    return tp


def test_high_score_low_iou_prediction_beats_low_score_high_iou_one():
    # One ground truth; A (score 0.9, IoU 0.62) and B (score 0.8, IoU 0.88). Both choose the ground truth,
    # which keeps the higher-scored A: A is the TP, B a false positive (greedy by IoU would take B).
    gt = np.array([[0.0, 0.0, 100.0, 100.0]])
    preds = np.array([[0.0, 0.0, 100.0, 62.0], [0.0, 0.0, 100.0, 88.0]])
    scores = np.array([0.9, 0.8])
    assert box_iou_float32(gt, preds)[0] == pytest.approx([0.62, 0.88], abs=1e-6)
    tp = match_predictions(preds, scores, np.zeros(2), gt, np.zeros(1))
    thresholds = np.round(np.linspace(0.5, 0.95, 10), 2)
    assert tp[0].tolist() == [t <= 0.62 for t in thresholds]  # A only where its IoU reaches the threshold
    assert tp[1].tolist() == [0.62 < t <= 0.88 for t in thresholds]  # B only where A no longer competes
    assert _greedy_by_iou(preds, gt) == [False, True]
    # AP50: the ranked list is TP, FP -> 0.995 (one ground truth found first); greedy's FP, TP would give
    # precision 0.5 up to recall 0.99 and the trapezoid to the sentinel: 0.99 * 0.5 + 0.01 * 0.25 = 0.4975.
    ap = detection_metrics(tp, scores, np.zeros(2), np.zeros(1))["ap"]
    assert ap[0] == pytest.approx(0.995)
    assert class_curve(np.array([[False], [True]]), scores, 1)["ap"][0] == pytest.approx(0.4975)


def test_a_prediction_whose_best_ground_truth_is_taken_gets_no_second_choice():
    # G1 [0,0,100,100], G2 [30,0,130,100]. P1 (0.9) is G1 exactly; P2 (0.8) [10,0,110,100] has IoU 90/110
    # with G1 and 80/120 with G2. P2 keeps only G1, which goes to P1: P2 is a false positive and G2 stays
    # unmatched, Recall 1/2. Greedy by IoU would hand P2 its second best, G2: Recall 2/2.
    gt = np.array([[0.0, 0.0, 100.0, 100.0], [30.0, 0.0, 130.0, 100.0]])
    preds = np.array([[0.0, 0.0, 100.0, 100.0], [10.0, 0.0, 110.0, 100.0]])
    scores = np.array([0.9, 0.8])
    iou = box_iou_float32(gt, preds)
    assert iou[:, 1] == pytest.approx([90 / 110, 80 / 120], abs=1e-6)
    tp = match_predictions(preds, scores, np.zeros(2), gt, np.zeros(2))
    assert tp[:, 0].tolist() == [True, False]
    assert _greedy_by_iou(preds, gt) == [True, True]
    result = detection_metrics(tp, scores, np.zeros(2), np.zeros(2))
    assert result["recall"] == pytest.approx(0.5)
    # AP50 from TP, FP over two ground truths: envelope 1 below recall 0.5, 0.5 at it, then the straight line
    # to the sentinel (1, 0): 0.49 + 0.01 * (1 + 0.5) / 2 + 0.5 * 0.5 / 2 = 0.6225 (greedy's TP, TP: 0.995).
    assert result["ap"][0] == pytest.approx(0.6225, abs=1e-9)


def test_matching_is_per_threshold_within_classes_and_ties_are_deterministic():
    gt = np.array([[0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0]])
    preds = np.array([[0.0, 0.0, 10.0, 10.0], [1.0, 0.0, 10.0, 10.0], [20.0, 0.0, 29.0, 10.0]])
    scores = np.array([0.9, 0.8, 0.7])
    tp = match_predictions(preds, scores, np.zeros(3), gt, np.zeros(2), np.array([0.5, 0.95]))
    assert tp[:, 0].tolist() == [True, False, True]  # the second prediction duplicates the first ground truth
    assert tp[:, 1].tolist() == [True, False, False]  # IoU 0.9 < 0.95
    assert not match_predictions(preds, scores, np.ones(3), gt, np.zeros(2)).any()  # classes must agree
    # The score decides, not the order given: the same predictions listed lowest score first.
    tp = match_predictions(preds[::-1], scores[::-1], np.zeros(3), gt, np.zeros(2), np.array([0.5]))
    assert tp[:, 0].tolist() == [True, False, True]
    # Equal scores: the earlier prediction wins the ground truth (stable sort).
    twins = np.array([[0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 10.0, 10.0]])
    tp = match_predictions(twins, np.array([0.5, 0.5]), np.zeros(2), gt[:1], np.zeros(1), np.array([0.5]))
    assert tp[:, 0].tolist() == [True, False]
    # Equal IoU with two ground truths: the prediction chooses the lower ground-truth index.
    between = np.array([[5.0, 0.0, 25.0, 10.0]])
    wide_gt = np.array([[0.0, 0.0, 20.0, 10.0], [10.0, 0.0, 30.0, 10.0]])
    iou = box_iou_float32(wide_gt, between)[:, 0]
    assert iou[0] == iou[1] == pytest.approx(150 / 250)
    second = np.array([[10.0, 0.0, 30.0, 10.0]])  # the exact copy of ground truth 1, lower score
    both = match_predictions(
        np.concatenate([between, second]), np.array([0.9, 0.1]), np.zeros(2), wide_gt, np.zeros(2), np.array([0.5])
    )
    assert both[:, 0].tolist() == [True, True]  # `between` took ground truth 0, leaving 1 to its copy


def test_per_class_ap_and_recall_are_averaged_over_the_ground_truth_classes():
    # class 0, two ground truths, ranked TP (0.9), FP (0.8), TP (0.7): envelope 1 to recall 0.5, then 2/3:
    #   0.49 + 0.01 * (1 + 2/3) / 2 + 0.49 * 2/3 + 0.01 * (2/3) / 2 = 0.828333...
    # class 1, one ground truth, FP (0.95), TP (0.6): envelope 0.5 everywhere: 0.99 * 0.5 + 0.01 * 0.25 = 0.4975
    # class 2 has predictions and no ground truth: left out of the mean.
    # class 3 has a ground truth and no prediction: AP 0 and Recall 0, counted.
    tp = np.array([[True], [False], [True], [False], [True], [False]])
    scores = np.array([0.9, 0.8, 0.7, 0.95, 0.6, 0.99])
    pred_classes = np.array([0, 0, 0, 1, 1, 2])
    gt_classes = np.array([0, 0, 1, 3])
    ap0 = 0.49 + 0.01 * (1 + 2 / 3) / 2 + 0.49 * 2 / 3 + 0.01 * (2 / 3) / 2
    ap1 = 0.99 * 0.5 + 0.01 * 0.25
    result = detection_metrics(tp, scores, pred_classes, gt_classes)
    assert sorted(result["per_class"]) == [0, 1, 3]
    assert result["per_class"][0]["ap"][0] == pytest.approx(ap0, abs=1e-9)
    assert result["per_class"][1]["ap"][0] == pytest.approx(ap1, abs=1e-9)
    assert result["ap"][0] == pytest.approx((ap0 + ap1 + 0.0) / 3, abs=1e-9)
    assert result["recall"] == pytest.approx((1.0 + 1.0 + 0.0) / 3)
    # Pooling every class into one curve (ppad's earlier rule) would give Recall 3/4 instead.
    assert class_curve(tp[:5], scores[:5], 4)["recall"] == pytest.approx(3 / 4)


def test_no_true_positive_at_all_gives_zero_everywhere():
    tp = np.zeros((3, 10), bool)
    result = detection_metrics(tp, np.array([0.9, 0.5, 0.1]), np.zeros(3, np.int64), np.zeros(2, np.int64))
    assert result["recall"] == 0.0 and not result["ap"].any()
    accumulator = MetricAccumulator()
    far = torch.tensor([[0.8, 0.8, 0.9, 0.9]])
    accumulator.add_detections(
        far,
        torch.tensor([0.9]),
        torch.zeros(1),
        torch.tensor([[0.0, 0.0, 0.1, 0.1]]),
        torch.zeros(1),
        image_size=(720, 1280),
    )
    results = accumulator.compute()
    assert results["map50"] == results["map50_95"] == results["recall"] == 0.0


def test_iou_is_computed_in_original_image_pixels_in_float32():
    assert box_iou_float32(np.array([[0.0, 0.0, 10.0, 10.0]]), np.array([[0.0, 0.0, 10.0, 5.0]]))[0, 0] == (
        np.float32(50) / (np.float32(100) + np.float32(50) - np.float32(50) + np.float32(1e-7))
    )
    # A box covering exactly half of the ground truth of a 1280x720 frame. In pixels the eps vanishes below
    # float32's resolution of the union (230400), IoU is exactly 0.5: a TP at 0.5. In normalised
    # coordinates the same eps would make it 0.4999998: a miss. The official validator works in pixels.
    gt = np.array([[0.0, 0.0, 0.5, 0.5]], np.float32)
    half = np.array([[0.0, 0.0, 0.25, 0.5]], np.float32)
    assert box_iou_float32(gt, half)[0, 0] < 0.5
    accumulator = MetricAccumulator()
    accumulator.add_detections(
        torch.from_numpy(half),
        torch.tensor([0.9]),
        torch.zeros(1),
        torch.from_numpy(gt),
        torch.zeros(1),
        image_size=(720, 1280),
    )
    assert accumulator.tp[0][:, 0].tolist() == [True]


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
