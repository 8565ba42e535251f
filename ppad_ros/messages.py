"""Predictions <-> ROS messages (vision_msgs 4.1 detections and labels, mono8 masks, the combined result): the
encoders the node publishes with and the decoder of a published result, kept together so they agree."""

from __future__ import annotations

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header
from vision_msgs.msg import (
    BoundingBox2D,
    Detection2D,
    Detection2DArray,
    LabelInfo,
    ObjectHypothesisWithPose,
    VisionClass,
)

from ppad_core.runtime.predictor import Prediction, StageTimes
from ppad_ros.image_conversion import fill_image
from ppad_ros.msg import PerceptionResult


def detections_message(
    prediction: Prediction, header: Header, class_names: list[str], class_id_mode: str = "index"
) -> Detection2DArray:
    """One Detection2D per box: centre and size in original-image pixels (x right, y down, origin at the
    top-left corner of the top-left pixel), the top class as one hypothesis, pose left zero, id empty."""
    array = Detection2DArray(header=header)
    for box, score, class_id in zip(
        prediction.boxes.tolist(), prediction.scores.tolist(), prediction.class_ids.tolist()
    ):
        x1, y1, x2, y2 = box
        detection = Detection2D(header=header)
        detection.bbox = BoundingBox2D()
        detection.bbox.center.position.x = (x1 + x2) / 2
        detection.bbox.center.position.y = (y1 + y2) / 2
        detection.bbox.size_x = x2 - x1
        detection.bbox.size_y = y2 - y1
        hypothesis = ObjectHypothesisWithPose()
        hypothesis.hypothesis.class_id = encode_class_id(class_id, class_names, class_id_mode)
        hypothesis.hypothesis.score = float(score)
        detection.results.append(hypothesis)
        array.detections.append(detection)
    return array


def encode_class_id(class_id: int, class_names: list[str], class_id_mode: str = "index") -> str:
    """ObjectHypothesis.class_id: the decimal class index, or the class name when `class_id_mode` is name."""
    return class_names[class_id] if class_id_mode == "name" else str(class_id)


def decode_class_id(class_id: str, class_names: list[str]) -> int:
    """The class index behind an ObjectHypothesis.class_id written in either mode."""
    if class_id.isdigit():
        return int(class_id)
    if class_id not in class_names:
        raise ValueError(f"class_id {class_id!r} is neither an index nor one of the classes {class_names}")
    return class_names.index(class_id)


def mask_message(mask, header: Header) -> Image:
    """mono8, one class id per pixel (0 background, 1 the class), at the input image's resolution."""
    return fill_image(Image(header=header), mask, "mono8")


def label_info_message(class_names: list[str], threshold: float, header: Header) -> LabelInfo:
    return LabelInfo(
        header=header,
        class_map=[VisionClass(class_id=i, class_name=name) for i, name in enumerate(class_names)],
        threshold=float(threshold),
    )


def combined_message(
    detections: Detection2DArray,
    drivable: Image,
    lane: Image,
    model_name: str,
    times: StageTimes,
) -> PerceptionResult:
    return PerceptionResult(
        header=detections.header,
        detections=detections,
        drivable_area_mask=drivable,
        lane_line_mask=lane,
        model_name=model_name,
        preprocess_ms=float(times.preprocess_ms),
        inference_ms=float(times.inference_ms),
        postprocess_ms=float(times.postprocess_ms),
    )


def mask_from_message(image: Image) -> np.ndarray:
    """A mono8 mask message back into a [H, W] uint8 array (row padding dropped)."""
    return np.frombuffer(image.data, np.uint8).reshape(image.height, image.step)[:, : image.width].copy()


def result_prediction(result: PerceptionResult, class_names: list[str]) -> Prediction:
    """A published PerceptionResult back into the Prediction it was made from (pixels, class ids, masks)."""
    boxes, scores, classes = [], [], []
    for detection in result.detections.detections:
        centre, box = detection.bbox.center.position, detection.bbox
        half_w, half_h = box.size_x / 2, box.size_y / 2
        boxes.append([centre.x - half_w, centre.y - half_h, centre.x + half_w, centre.y + half_h])
        hypothesis = detection.results[0].hypothesis
        scores.append(hypothesis.score)
        classes.append(decode_class_id(hypothesis.class_id, class_names))
    return Prediction(
        np.array(boxes, np.float32).reshape(-1, 4),
        np.array(scores, np.float32),
        np.array(classes, np.int64),
        mask_from_message(result.drivable_area_mask),
        mask_from_message(result.lane_line_mask),
    )
