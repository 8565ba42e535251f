"""Predictions -> ROS messages (vision_msgs 4.1 detections and labels, mono8 masks, the combined result)."""

from __future__ import annotations

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
        hypothesis.hypothesis.class_id = class_names[class_id] if class_id_mode == "name" else str(class_id)
        hypothesis.hypothesis.score = float(score)
        detection.results.append(hypothesis)
        array.detections.append(detection)
    return array


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
