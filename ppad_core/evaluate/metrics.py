"""Metrics of the RMT-PPAD protocol (docs/evaluation.md).

Detection: all queries, no NMS. Matching per image and IoU threshold follows the official validator
(`match_predictions`): every prediction keeps its highest-IoU ground truth, then every ground truth keeps the
highest-scored prediction that chose it. AP and Recall per class (each class its own PR curve), averaged over
the classes present in the ground truth: AP from the precision envelope with 101-point trapezoid integration,
Recall = matched ground truths at IoU 0.5 over ground truths with every prediction (the lowest confidence).
Segmentation: per image and task a 2x2 confusion matrix; IoU_c = (TP_c + 1e-9) / (TP_c + FP_c + FN_c + 1e-9);
drivable mIoU = mean(IoU_bg, IoU_fg); lane IoU = IoU_fg; lane accuracy = balanced accuracy
(TP/(TP+FN) + TN/(TN+FP)) / 2 with 1e-12 in the denominators; averaged over images.
"""

from __future__ import annotations

import numpy as np
import torch

IOU_THRESHOLDS = np.linspace(0.5, 0.95, 10)
SWEEP_THRESHOLDS = np.round(np.arange(0.40, 0.951, 0.05), 2)
IOU_EPS = 1e-7  # the official box_iou's epsilon, in float32
RECALL_EPS = 1e-16  # the official recall denominator's epsilon


def box_iou_float32(gt_xyxy: np.ndarray, pred_xyxy: np.ndarray) -> np.ndarray:
    """IoU [M, N] between ground truths [M, 4] and predictions [N, 4], xyxy pixels, float32, eps 1e-7."""
    a = np.asarray(gt_xyxy, np.float32)[:, None, :]
    b = np.asarray(pred_xyxy, np.float32)[None, :, :]
    wh = (np.minimum(a[..., 2:], b[..., 2:]) - np.maximum(a[..., :2], b[..., :2])).clip(min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / (area_a + area_b - inter + np.float32(IOU_EPS))


def match_predictions(
    pred_boxes: np.ndarray | torch.Tensor,
    pred_scores: np.ndarray | torch.Tensor,
    pred_classes: np.ndarray | torch.Tensor,
    gt_boxes: np.ndarray | torch.Tensor,
    gt_classes: np.ndarray | torch.Tensor,
    thresholds: np.ndarray = IOU_THRESHOLDS,
) -> np.ndarray:
    """True-positive flags [N_pred, T] of one image, in the order the predictions were given.

    Boxes are xyxy in original-image pixels. For each threshold t, among same-class pairs with IoU >= t:
    each prediction keeps only its highest-IoU ground truth (it is never offered its second best), then each
    ground truth keeps the highest-scored prediction that chose it; those are the true positives.
    Ties: equal IoU -> the lower ground-truth index; equal score -> the earlier prediction (stable sort).
    """
    pred_boxes, gt_boxes = np.asarray(pred_boxes), np.asarray(gt_boxes)
    tp = np.zeros((len(pred_boxes), len(thresholds)), bool)
    if len(pred_boxes) == 0 or len(gt_boxes) == 0:
        return tp
    rank = np.empty(len(pred_boxes), np.int64)
    rank[np.argsort(-np.asarray(pred_scores, np.float64), kind="stable")] = np.arange(len(pred_boxes))
    iou = box_iou_float32(gt_boxes, pred_boxes)
    same_class = np.asarray(gt_classes)[:, None] == np.asarray(pred_classes)[None, :]
    iou = np.where(same_class, iou, np.float32(-1.0))
    best_gt = iou.argmax(0)  # first maximum: the lower ground-truth index on equal IoU
    best_iou = iou[best_gt, np.arange(len(pred_boxes))]
    for t, threshold in enumerate(np.asarray(thresholds, np.float32)):
        choosers = np.nonzero(best_iou >= threshold)[0]
        if len(choosers) == 0:
            continue
        by_rank = choosers[np.argsort(rank[choosers], kind="stable")]
        _, first = np.unique(best_gt[by_rank], return_index=True)
        tp[by_rank[first], t] = True
    return tp


def average_precision(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the precision envelope, 101 recall points, trapezoid rule."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[1.0], precision, [0.0]])
    mpre = np.flip(np.maximum.accumulate(np.flip(mpre)))
    x = np.linspace(0, 1, 101)
    return float(np.trapezoid(np.interp(x, mrec, mpre), x))


def class_curve(tp: np.ndarray, scores: np.ndarray, num_gt: int) -> dict[str, float | np.ndarray]:
    """One class: AP per IoU threshold, its PR curve at IoU 0.5 and Recall at the lowest confidence.

    Predictions of all images are ranked by descending score; equal scores keep their order of arrival
    (image by image, query by query)."""
    if num_gt == 0 or len(tp) == 0:
        return {"ap": np.zeros(tp.shape[1]), "recall": 0.0, "pr_curve": (np.zeros(0), np.zeros(0))}
    order = np.argsort(-scores, kind="stable")
    tp = tp[order]
    tpc = tp.cumsum(0)
    fpc = (1 - tp).cumsum(0)
    recall = tpc / (num_gt + RECALL_EPS)
    precision = tpc / (tpc + fpc)
    ap = np.array([average_precision(recall[:, t], precision[:, t]) for t in range(tp.shape[1])])
    return {"ap": ap, "recall": float(recall[-1, 0]), "pr_curve": (recall[:, 0], precision[:, 0])}


def detection_metrics(
    tp: np.ndarray, scores: np.ndarray, pred_classes: np.ndarray, gt_classes: np.ndarray
) -> dict[str, float | np.ndarray | dict]:
    """AP per IoU threshold and Recall, each averaged over the classes present in the ground truth.

    `tp` [N, T], `scores` and `pred_classes` [N] are every prediction of the set; `gt_classes` [M] every
    ground truth. With no true positive at all every detection metric is 0, as in the official validator."""
    classes = np.unique(gt_classes)
    per_class = {
        int(c): class_curve(tp[pred_classes == c], scores[pred_classes == c], int(np.sum(gt_classes == c)))
        for c in classes
    }
    if not per_class or not tp.any():
        return {"ap": np.zeros(tp.shape[1]), "recall": 0.0, "per_class": per_class}
    return {
        "ap": np.mean([curve["ap"] for curve in per_class.values()], axis=0),
        "recall": float(np.mean([curve["recall"] for curve in per_class.values()])),
        "per_class": per_class,
    }


def segmentation_scores(pred: np.ndarray, gt: np.ndarray) -> dict[str, float]:
    """Per-image scores of one binary task from boolean prediction and ground truth arrays."""
    tp = float(np.count_nonzero(pred & gt))
    fp = float(np.count_nonzero(pred & ~gt))
    fn = float(np.count_nonzero(~pred & gt))
    tn = float(pred.size) - tp - fp - fn
    iou_fg = (tp + 1e-9) / (tp + fp + fn + 1e-9)
    iou_bg = (tn + 1e-9) / (tn + fn + fp + 1e-9)
    return {
        "iou": iou_fg,
        "miou": (iou_fg + iou_bg) / 2,
        "balanced_acc": (tp / (tp + fn + 1e-12) + tn / (tn + fp + 1e-12)) / 2,
        "pixel_acc": (tp + tn) / pred.size,
        "recall_acc": tp / (tp + fn + 1e-12),
    }


class MetricAccumulator:
    """Collects per-image detection matches and per-image segmentation scores at every sweep threshold."""

    def __init__(self, seg_thresholds: tuple[float, float] = (0.45, 0.90)) -> None:
        self.seg_thresholds = seg_thresholds
        self._all_thresholds = sorted(set(SWEEP_THRESHOLDS.tolist()) | set(seg_thresholds))
        self.tp: list[np.ndarray] = []
        self.scores: list[np.ndarray] = []
        self.pred_classes: list[np.ndarray] = []
        self.gt_classes: list[np.ndarray] = []
        self.seg: dict[str, list[dict]] = {"drivable": [], "lane": []}  # per image: threshold -> scores
        self.images = 0

    @property
    def num_gt(self) -> int:
        return sum(len(c) for c in self.gt_classes)

    def add_detections(
        self,
        pred_xyxy: torch.Tensor,
        scores: torch.Tensor,
        classes: torch.Tensor,
        gt_xyxy: torch.Tensor,
        gt_classes: torch.Tensor,
        image_size: tuple[int, int],
    ) -> None:
        """One image: boxes are normalised xyxy; `image_size` (height, width) of the original image, whose
        pixels the IoU is computed in, as the official validator does."""
        height, width = image_size
        scale = np.array([width, height, width, height], np.float32)
        pred_pixels = np.asarray(pred_xyxy, np.float32) * scale
        gt_pixels = np.asarray(gt_xyxy, np.float32) * scale
        self.tp.append(match_predictions(pred_pixels, scores, classes, gt_pixels, gt_classes))
        self.scores.append(np.asarray(scores, np.float64))
        self.pred_classes.append(np.asarray(classes, np.int64))
        self.gt_classes.append(np.asarray(gt_classes, np.int64))

    def add_segmentation(self, probs: np.ndarray, gt: np.ndarray) -> None:
        """probs [2, H, W] (drivable, lane) and 0/1 ground truth of the same size."""
        for channel, task in enumerate(("drivable", "lane")):
            truth = gt[channel] > 0
            self.seg[task].append({t: segmentation_scores(probs[channel] > t, truth) for t in self._all_thresholds})
        self.images += 1

    def seg_mean(self, task: str, threshold: float, key: str) -> float:
        return float(np.mean([image[threshold][key] for image in self.seg[task]])) if self.seg[task] else 0.0

    def detection(self) -> dict:
        """`detection_metrics` over every image added so far."""

        def joined(parts: list[np.ndarray], dtype, *shape: int) -> np.ndarray:
            return np.concatenate(parts) if parts else np.zeros((0, *shape), dtype)

        return detection_metrics(
            joined(self.tp, bool, len(IOU_THRESHOLDS)),
            joined(self.scores, np.float64),
            joined(self.pred_classes, np.int64),
            joined(self.gt_classes, np.int64),
        )

    def compute(self) -> dict:
        det = self.detection()
        drivable_t, lane_t = self.seg_thresholds
        results = {
            "images": self.images,
            "ground_truth_boxes": self.num_gt,
            "recall": det["recall"],
            "map50": float(det["ap"][0]),
            "map50_95": float(det["ap"].mean()),
            "drivable_miou": self.seg_mean("drivable", drivable_t, "miou"),
            "drivable_iou": self.seg_mean("drivable", drivable_t, "iou"),
            "lane_iou": self.seg_mean("lane", lane_t, "iou"),
            "lane_miou": self.seg_mean("lane", lane_t, "miou"),
            "lane_acc": self.seg_mean("lane", lane_t, "balanced_acc"),
            "lane_recall_acc": self.seg_mean("lane", lane_t, "recall_acc"),
        }
        results["fitness"] = fitness(results)
        results["sweep"] = [
            {
                "threshold": float(t),
                "drivable_miou": self.seg_mean("drivable", float(t), "miou"),
                "lane_iou": self.seg_mean("lane", float(t), "iou"),
                "lane_acc": self.seg_mean("lane", float(t), "balanced_acc"),
            }
            for t in SWEEP_THRESHOLDS
        ]
        results["per_class"] = [
            {
                "class_id": class_id,
                "ground_truth_boxes": int(sum(np.count_nonzero(c == class_id) for c in self.gt_classes)),
                "recall": curve["recall"],
                "ap50": float(curve["ap"][0]),
                "ap50_95": float(curve["ap"].mean()),
                "pr_recall": curve["pr_curve"][0][::10].tolist(),
                "pr_precision": curve["pr_curve"][1][::10].tolist(),
            }
            for class_id, curve in det["per_class"].items()
        ]
        return results


def fitness(m: dict) -> float:
    """Model selection score of the official trainer: 0.1 R + 0.9 mAP50 + sum over seg tasks of (IoU + mIoU)/2."""
    return (
        0.1 * m["recall"]
        + 0.9 * m["map50"]
        + (m["drivable_iou"] + m["drivable_miou"]) / 2
        + (m["lane_iou"] + m["lane_miou"]) / 2
    )
