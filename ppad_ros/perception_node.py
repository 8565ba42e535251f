"""`perception_node`: camera image in; detections, drivable-area and lane-line masks out.

A lifecycle node that configures and activates itself unless started with `--ros-args -p
autostart:=false`: configure loads and warms up the model (a missing or corrupt checkpoint fails
here, and the process exits non-zero), activate subscribes. The subscription callback only parks the
newest frame in a one-slot hand-over; an inference thread takes it, so a slow model drops frames
instead of queueing them. Topics, QoS and parameters: docs/node.md (and README "ROS 2 node").
"""

from __future__ import annotations

import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import ParameterDescriptor, SetParametersResult
from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor
from rclpy.lifecycle import Node, State, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import (
    DurabilityPolicy,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.subscription import MessageInfo
from rclpy.time import Time
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

from ppad_core.runtime.backends import check_hardware
from ppad_core.runtime.options import OptionError
from ppad_core.runtime.predictor import Predictor
from ppad_core.runtime.visualize import draw_overlay
from ppad_ros.frame_flow import FrameStatistics, LatestFrameSlot, TransportLosses
from ppad_ros.image_conversion import ImageError, compressed_to_bgr, fill_image, image_to_bgr
from ppad_ros.messages import combined_message, detections_message, label_info_message, mask_message
from ppad_ros.msg import PerceptionResult
from ppad_ros.parameters import PARAMETERS, SPECS, NodeParameters
from ppad_ros.resources import find_resource
from ppad_ros.wire_text import REASON_LIMIT, printable

OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# SensorData (best effort, keep last 5). The callback only parks the newest frame in a one-slot
# hand-over, so a depth of 5 adds no latency: it lets every frame reach the callback and be counted
# (replaced frames are the `frames_dropped` of /diagnostics) instead of vanishing inside DDS.
CAMERA_QOS = qos_profile_sensor_data
WARMUP_FRAME = (720, 1280)
ERROR_LIMIT = 1000  # characters of a start-up error (it may list every place a checkpoint was looked for)


class PerceptionNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("perception", **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.params: NodeParameters | None = None
        self.predictor: Predictor | None = None
        self.error = ""  # why the last configure failed, for /diagnostics
        self.stats = FrameStatistics()
        self.slot = LatestFrameSlot()
        self.ready = False
        self._worker: threading.Thread | None = None
        self._subscription = None
        self._outputs: dict = {}
        # /diagnostics from construction on: an unconfigured or failed node still says why it is silent
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(self._diagnostics_period(), self._publish_diagnostics)
        self._warn_without_fastdds_profile()

    # ----- lifecycle -------------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self.params = params = self._validated(self._parameter_values())
            self.predictor = self._load_predictor(params)
            self._warm_up(params.warmup_iterations)
        except Exception as exc:  # any start-up failure must end in a readable message and a failed transition
            self.predictor = None
            self.error = f"configure failed: {printable(exc, ERROR_LIMIT)}"
            self.get_logger().fatal(self.error)
            self._publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self.error = ""
        self._create_publishers(params)
        self._restart_diagnostics(params.diagnostics_period_s)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        params = self.params
        if params.input_transport == "compressed":
            topic, message_type = "image/compressed", CompressedImage
        else:
            topic, message_type = "image", Image
        self.slot = LatestFrameSlot()
        self.stats.transport = TransportLosses()  # a new subscription: frames sent while inactive are not losses
        self._worker = threading.Thread(target=self._inference_loop, name="ppad-inference", daemon=True)
        self._worker.start()
        self._subscription = self.create_subscription(
            message_type,
            topic,
            self._on_image,
            CAMERA_QOS,
            qos_overriding_options=QoSOverridingOptions.with_default_policies(),
        )
        self._publish_label_info()
        self.ready = True
        self.get_logger().info(
            f"ready: {self.model_name} ({self.predictor.backend.description}) on {self.resolve_topic_name(topic)}"
        )
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.ready = False
        if self._subscription is not None:
            self.destroy_subscription(self._subscription)
            self._subscription = None
        self.slot.close()
        if self._worker is not None:
            self._worker.join(timeout=10)
        return super().on_deactivate(state)

    def on_cleanup(self, state: State) -> TransitionCallbackReturn:
        for publisher in self._outputs.values():
            self.destroy_publisher(publisher)
        self._outputs = {}
        self.predictor = None
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: State) -> TransitionCallbackReturn:
        self.slot.close()
        return TransitionCallbackReturn.SUCCESS

    # ----- parameters ------------------------------------------------------------------------------------
    def _parameter_values(self) -> dict:
        return {spec.name: self.get_parameter(spec.name).value for spec in PARAMETERS}

    @staticmethod
    def _validated(values: dict) -> NodeParameters:
        """The node's parameters if `values` can run on this machine; a ValueError names the parameter at fault."""
        params = NodeParameters.from_values(values)
        try:
            find_resource(params.checkpoint, "checkpoint")
            check_hardware(params.runtime)
        except (FileNotFoundError, OptionError) as exc:
            raise ValueError(f"parameter {exc}") from None
        return params

    def _on_set_parameters(self, parameters: list[Parameter]) -> SetParametersResult:
        """Refuses a change the next configure would fail on, with the same checks and messages as start-up.
        Accepted values take effect at the next configure (lifecycle cleanup, then configure)."""
        changed = {p.name: p.value for p in parameters if p.name in SPECS}
        if not changed:
            return SetParametersResult(successful=True)
        try:
            self._validated(self._parameter_values() | changed)
        except ValueError as exc:
            return SetParametersResult(successful=False, reason=printable(exc, ERROR_LIMIT))
        return SetParametersResult(successful=True)

    def _diagnostics_period(self) -> float:
        spec = SPECS["diagnostics_period_s"]
        try:
            value = spec.coerce(self.get_parameter(spec.name).value)
        except ValueError:
            return spec.default  # configure will refuse the value and say so
        return max(value, spec.minimum)

    def _restart_diagnostics(self, period_s: float) -> None:
        if abs(self._diagnostics_timer.timer_period_ns - period_s * 1e9) > 1:
            self.destroy_timer(self._diagnostics_timer)
            self._diagnostics_timer = self.create_timer(period_s, self._publish_diagnostics)

    # ----- set-up ----------------------------------------------------------------------------------------
    def _warn_without_fastdds_profile(self) -> None:
        if os.environ.get("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp").startswith("rmw_fastrtps") and not os.environ.get(
            "FASTDDS_DEFAULT_PROFILES_FILE"
        ):
            self.get_logger().warn(
                "FASTDDS_DEFAULT_PROFILES_FILE is not set: Fast DDS's 512 KiB shared-memory segment loses or delays "
                "samples over about 0.5 MB (camera frames, masks); load config/fastdds_localhost.xml here and in "
                "the camera driver (README, Transport)"
            )

    @property
    def model_name(self) -> str:
        return self.params.model_name or Path(self.params.checkpoint).name

    def _load_predictor(self, params: NodeParameters) -> Predictor:
        return Predictor.from_checkpoint(find_resource(params.checkpoint, "checkpoint"), params.runtime)

    def _warm_up(self, iterations: int) -> None:
        frame = np.zeros((*WARMUP_FRAME, 3), np.uint8)
        start = time.perf_counter()
        for _ in range(iterations):
            self.predictor.predict([frame])
        self.get_logger().info(f"warm-up: {iterations} inferences in {time.perf_counter() - start:.2f} s")

    def _create_publishers(self, params: NodeParameters) -> None:
        options = QoSOverridingOptions.with_default_policies()

        def publisher(message_type, topic, qos=OUTPUT_QOS):
            self._outputs[topic] = self.create_publisher(message_type, topic, qos, qos_overriding_options=options)

        publisher(Detection2DArray, "detections")
        publisher(Image, "drivable_area/mask")
        publisher(Image, "lane_lines/mask")
        for topic in ("detections/label_info", "drivable_area/label_info", "lane_lines/label_info"):
            publisher(LabelInfo, topic, LATCHED_QOS)
        if params.publish_combined:
            publisher(PerceptionResult, "perception")
        if params.publish_overlay:
            publisher(Image, "debug/overlay")

    def _publish_label_info(self) -> None:
        config = self.predictor.config
        header = Header(stamp=self.get_clock().now().to_msg())
        drivable_name, lane_name = config.seg_names
        drivable_threshold, lane_threshold = config.seg_thresholds
        infos = {
            "detections/label_info": (config.class_names, self.predictor.conf_threshold),
            "drivable_area/label_info": (["background", drivable_name], drivable_threshold),
            "lane_lines/label_info": (["background", lane_name], lane_threshold),
        }
        for topic, (names, threshold) in infos.items():
            self._outputs[topic].publish(label_info_message(names, threshold, header))

    # ----- frames ----------------------------------------------------------------------------------------
    def _on_image(self, msg, info: MessageInfo) -> None:
        publisher = (info.get("publisher_gid") or {}).get("data", b"")
        replaced = self.slot.put((msg, time.perf_counter()))
        self.stats.on_received(replaced, bytes(publisher), info.get("publication_sequence_number"))

    def _inference_loop(self) -> None:
        while not self.slot.closed:
            item = self.slot.take(timeout=0.2)
            if item is None:
                continue
            try:
                self._process(*item)
            except Exception as exc:  # one bad frame must never stop the node
                reason = printable(exc, REASON_LIMIT)
                self.stats.on_rejected(reason)
                self.get_logger().error(f"frame failed: {reason}", throttle_duration_sec=2.0)

    def _process(self, msg, received: float) -> None:
        params = self.params
        if params.max_input_age_ms > 0:
            age_ms = (self.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds / 1e6
            if age_ms > params.max_input_age_ms:
                self.stats.on_stale()
                return
        taken = time.perf_counter()
        try:
            decode = compressed_to_bgr if isinstance(msg, CompressedImage) else image_to_bgr
            image = decode(msg, params.max_image_pixels)
        except ImageError as exc:
            topic = self._subscription.topic_name if self._subscription else "image"
            reason = printable(exc, REASON_LIMIT)
            self.stats.on_rejected(reason)
            self.get_logger().error(f"dropped a frame on {topic}: {reason}", throttle_duration_sec=2.0)
            return
        decoded = time.perf_counter()
        (prediction,), times = self.predictor.predict([image])
        predicted = time.perf_counter()
        self._publish(msg.header, image, prediction, times)
        published = time.perf_counter()
        self.stats.on_processed(
            {
                "decode": (decoded - taken) * 1e3,
                "preprocess": times.preprocess_ms,
                "inference": times.inference_ms,
                "postprocess": times.postprocess_ms,
                "publish": (published - predicted) * 1e3,
                "end_to_end": (published - received) * 1e3,
                "node_overhead": (published - taken) * 1e3 - times.inference_ms,
            }
        )

    def _publish(self, header: Header, image: np.ndarray, prediction, times) -> None:
        publishers, params = self._outputs, self.params
        config = self.predictor.config
        detections = detections_message(prediction, header, config.class_names, params.class_id_mode)
        drivable = mask_message(prediction.drivable_mask, header)
        lane = mask_message(prediction.lane_mask, header)
        publishers["detections"].publish(detections)
        publishers["drivable_area/mask"].publish(drivable)
        publishers["lane_lines/mask"].publish(lane)
        if "perception" in publishers:
            publishers["perception"].publish(combined_message(detections, drivable, lane, self.model_name, times))
        overlay = publishers.get("debug/overlay")
        if overlay is not None and overlay.get_subscription_count() > 0:
            overlay.publish(
                fill_image(Image(header=header), draw_overlay(image, prediction, config.class_names), "bgr8")
            )

    # ----- diagnostics -----------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        summary = self.stats.summary()
        status = DiagnosticStatus(name=f"ppad: {self.get_fully_qualified_name()}")
        status.level, status.message = self._state(summary)
        values = summary
        if self.predictor is not None:
            status.hardware_id = self.params.runtime.device
            values = {"model": self.model_name, "backend": self.predictor.backend.description, **summary}
        status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
        message = DiagnosticArray(status=[status])
        message.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(message)

    def _state(self, summary: dict) -> tuple[bytes, str]:
        """Level and message of the node's status."""
        if self.error:
            return DiagnosticStatus.ERROR, self.error
        if self.predictor is None:
            return DiagnosticStatus.ERROR, "unconfigured: waiting for the configure transition"
        if not self.ready:
            return DiagnosticStatus.WARN, "not active"
        if summary["frames_received"] == 0:
            return DiagnosticStatus.WARN, "ready, no images received yet"
        return DiagnosticStatus.OK, "ready"


def _descriptor(spec) -> ParameterDescriptor:
    """Types and ranges are the parameter table's to check (NodeParameters.from_values), not rclpy's: rclpy would
    refuse `-p score_threshold:=1` (an integer for a float) and out-of-range overrides with a traceback."""
    return ParameterDescriptor(description=spec.description + spec.allowed(), dynamic_typing=True)


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = PerceptionNode()
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    code = 0
    try:
        if not node.get_parameter("autostart").value:
            executor.spin()  # transitions come from a lifecycle manager (lifecycle_msgs services)
        elif node.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            node.get_logger().fatal("the node could not be configured; exiting")
            code = 1
        else:
            node.trigger_activate()
            executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        node.slot.close()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
