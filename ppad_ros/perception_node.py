"""`perception_node`: camera images in; detections, drivable-area and lane-line masks out.

A lifecycle node that configures and activates itself unless started with `--ros-args -p
autostart:=false`: configure loads and warms up the model (a missing or corrupt checkpoint fails
here, and the process exits non-zero), activate subscribes. It serves one camera (`image`) or the
list in `cameras` (`<camera>/image`) with one model. The subscription callbacks only park each
camera's newest frame; one inference thread takes the waiting frames as one batch, so a slow model
drops frames instead of queueing them. With `road_geometry` it also subscribes each camera's
`camera_info` and, after a frame's image outputs are out, publishes its road geometry on `road/*`.
Topics, QoS and parameters: docs/node.md (and README "ROS 2 node").
"""

from __future__ import annotations

import math
import os
import sys
import threading
import time
from dataclasses import dataclass
from functools import partial
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
    QoSPolicyKind,
    QoSProfile,
    ReliabilityPolicy,
    qos_profile_sensor_data,
)
from rclpy.qos_overriding_options import QoSOverridingOptions
from rclpy.subscription import MessageInfo
from rclpy.time import Time
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from std_msgs.msg import Header
from vision_msgs.msg import Detection2DArray, LabelInfo

from ppad_core.runtime.backends import check_hardware
from ppad_core.runtime.options import OptionError
from ppad_core.runtime.predictor import Predictor
from ppad_core.runtime.visualize import draw_overlay
from ppad_ros.camera_info import CameraGeometry
from ppad_ros.frame_flow import (
    BatchStatistics,
    FrameStatistics,
    LatestFramePerCamera,
    TransportLosses,
    camera_topic,
)
from ppad_ros.image_conversion import ImageError, compressed_to_bgr, fill_image, image_to_bgr
from ppad_ros.messages import combined_message, detections_message, label_info_message, mask_message
from ppad_ros.msg import PerceptionResult
from ppad_ros.parameters import (
    PARAMETERS,
    PER_CAMERA,
    SPECS,
    NodeParameters,
    camera_parameter,
    split_camera_parameter,
)
from ppad_ros.resources import find_resource
from ppad_ros.road_messages import ROAD_TOPICS, road_header, road_messages
from ppad_ros.wire_text import REASON_LIMIT, printable

OUTPUT_QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)
LATCHED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
# SensorData (best effort, keep last 5). The callback only parks the camera's newest frame in the
# hand-over, so a depth of 5 adds no latency: it lets every frame reach the callback and be counted
# (replaced frames are the `frames_dropped` of /diagnostics) instead of vanishing inside DDS.
CAMERA_QOS = qos_profile_sensor_data
CAMERA_INFO_OVERRIDES = QoSOverridingOptions(
    [QoSPolicyKind.HISTORY, QoSPolicyKind.DEPTH, QoSPolicyKind.RELIABILITY, QoSPolicyKind.DURABILITY]
)
WARMUP_FRAME = (720, 1280)
ERROR_LIMIT = 1000  # characters of a start-up error (it may list every place a checkpoint was looked for)
SINGLE_CAMERA = ("",)  # `cameras` empty: one camera on the node's own `image`, `detections`, ...
LABEL_TOPICS = ("detections/label_info", "drivable_area/label_info", "lane_lines/label_info")
REPEAT_WARNING_S = 10.0  # the same road-geometry warning of one camera is logged at most this often


@dataclass
class _Frame:
    """One camera's decoded frame on its way through a batch."""

    camera: str
    header: Header
    image: np.ndarray
    received: float  # perf_counter at the subscription callback
    decode_ms: float


class PerceptionNode(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("perception", **kwargs)
        for spec in PARAMETERS:
            self.declare_parameter(spec.name, spec.default, _descriptor(spec))
        self._camera_parameters: list[str] = []  # declared `<camera>.<setting>` names
        self._declare_camera_parameters()
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.params: NodeParameters | None = None
        self.predictor: Predictor | None = None
        self.error = ""  # why the last configure failed, for /diagnostics
        self.cameras: tuple[str, ...] = SINGLE_CAMERA
        self.camera_stats = {"": FrameStatistics()}
        self.batch_stats = BatchStatistics()
        self.frames = LatestFramePerCamera(self.cameras)
        self.ready = False
        self._worker: threading.Thread | None = None
        self._camera_subscriptions: dict = {}  # camera -> its image subscription
        self._outputs: dict = {}  # topic relative to the namespace -> publisher
        self._geometry: dict[str, CameraGeometry] = {}  # cameras with road_geometry on; empty: no geometry work
        self._camera_info_subscriptions: dict = {}  # camera -> its camera_info subscription
        self._warnings: dict[tuple, tuple[str, float]] = {}  # (camera, kind) -> last text logged and when
        # /diagnostics from construction on: an unconfigured or failed node still says why it is silent
        self._diagnostics = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._diagnostics_timer = self.create_timer(self._diagnostics_period(), self._publish_diagnostics)
        self._warn_without_fastdds_profile()

    # ----- lifecycle -------------------------------------------------------------------------------------
    def on_configure(self, state: State) -> TransitionCallbackReturn:
        try:
            self._declare_camera_parameters()
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
        self.cameras = params.cameras or SINGLE_CAMERA
        self.camera_stats = {camera: FrameStatistics() for camera in self.cameras}
        self.batch_stats = BatchStatistics()
        self._warnings = {}
        self._geometry = {
            camera: CameraGeometry(params.camera(camera).pose, params.geometry)
            for camera in self.cameras
            if params.camera(camera).road_geometry
        }
        self._create_publishers(params)
        self._restart_diagnostics(params.diagnostics_period_s)
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: State) -> TransitionCallbackReturn:
        self.frames = LatestFramePerCamera(self.cameras)
        self._worker = threading.Thread(target=self._inference_loop, name="ppad-inference", daemon=True)
        self._worker.start()
        for camera in self.cameras:
            self.camera_stats[camera].transport = TransportLosses()  # frames sent while inactive are not losses
            compressed = self.params.camera(camera).input_transport == "compressed"
            topic, message_type = ("image/compressed", CompressedImage) if compressed else ("image", Image)
            self._camera_subscriptions[camera] = self.create_subscription(
                message_type,
                camera_topic(camera, topic),
                partial(self._on_image, camera),
                CAMERA_QOS,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )
        for camera in self._geometry:
            self._camera_info_subscriptions[camera] = self.create_subscription(
                CameraInfo,
                self._camera_info_topic(camera),
                partial(self._on_camera_info, camera),
                CAMERA_QOS,
                qos_overriding_options=CAMERA_INFO_OVERRIDES,  # durability too: a driver may latch it once
            )
        self._publish_label_info()
        self.ready = True
        inputs = ", ".join(subscription.topic_name for subscription in self._camera_subscriptions.values())
        self.get_logger().info(f"ready: {self.model_name} ({self.predictor.backend.description}) on {inputs}")
        if self._geometry:
            calibrations = ", ".join(
                subscription.topic_name for subscription in self._camera_info_subscriptions.values()
            )
            self.get_logger().info(f"road geometry in {self.params.base_frame} from {calibrations}")
        return super().on_activate(state)

    def on_deactivate(self, state: State) -> TransitionCallbackReturn:
        self.ready = False
        for subscription in [*self._camera_subscriptions.values(), *self._camera_info_subscriptions.values()]:
            self.destroy_subscription(subscription)
        self._camera_subscriptions, self._camera_info_subscriptions = {}, {}
        self.frames.close()
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
        self.frames.close()
        return TransitionCallbackReturn.SUCCESS

    # ----- parameters ------------------------------------------------------------------------------------
    def _parameter_values(self) -> dict:
        names = [spec.name for spec in PARAMETERS] + self._camera_parameters
        return {name: self.get_parameter(name).value for name in names}

    def _declare_camera_parameters(self) -> None:
        """`<camera>.<setting>` for every camera named now, unset unless a params file or `-p` gives a value (a
        camera added at runtime gets its own at the next configure)."""
        try:
            cameras = SPECS["cameras"].coerce(self.get_parameter("cameras").value)
        except ValueError:
            return  # configure refuses the value and says so
        for camera in cameras:
            for setting in PER_CAMERA:
                name = camera_parameter(camera, setting)
                if split_camera_parameter(name) and not self.has_parameter(name):
                    help_text = f"{camera}'s own {setting}; unset: the node-wide value{SPECS[setting].allowed()}"
                    self.declare_parameter(name, None, ParameterDescriptor(description=help_text, dynamic_typing=True))
                    self._camera_parameters.append(name)

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
        changed = {p.name: p.value for p in parameters if p.name in SPECS or split_camera_parameter(p.name)}
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
        outputs = [(Detection2DArray, "detections"), (Image, "drivable_area/mask"), (Image, "lane_lines/mask")]
        outputs += [(PerceptionResult, "perception")] if params.publish_combined else []
        outputs += [(Image, "debug/overlay")] if params.publish_overlay else []
        outputs = [(*output, OUTPUT_QOS) for output in outputs] + [(LabelInfo, t, LATCHED_QOS) for t in LABEL_TOPICS]
        road = [(message_type, topic, OUTPUT_QOS) for topic, message_type in ROAD_TOPICS.items()]
        options = QoSOverridingOptions.with_default_policies()
        for camera in self.cameras:
            for message_type, topic, qos in outputs + (road if camera in self._geometry else []):
                name = camera_topic(camera, topic)
                self._outputs[name] = self.create_publisher(message_type, name, qos, qos_overriding_options=options)

    def _camera_info_topic(self, camera: str) -> str:
        """`<camera>/camera_info` when a remapping names it, else beside the camera's image topic as image_transport
        places it (`/front/image_raw` -> `/front/camera_info`), so remapping only the image is enough."""
        own = camera_topic(camera, "camera_info")
        remapped = self.resolve_topic_name(own)
        if remapped != self.resolve_topic_name(own, only_expand=True):
            return remapped
        image = self.resolve_topic_name(camera_topic(camera, "image"))
        return f"{image.rpartition('/')[0]}/camera_info"

    def _publish_label_info(self) -> None:
        config = self.predictor.config
        header = Header(stamp=self.get_clock().now().to_msg())
        drivable_name, lane_name = config.seg_names
        drivable_threshold, lane_threshold = config.seg_thresholds
        infos = [
            (config.class_names, self.predictor.conf_threshold),
            (["background", drivable_name], drivable_threshold),
            (["background", lane_name], lane_threshold),
        ]
        for camera in self.cameras:
            for topic, (names, threshold) in zip(LABEL_TOPICS, infos):
                self._outputs[camera_topic(camera, topic)].publish(label_info_message(names, threshold, header))

    # ----- frames ----------------------------------------------------------------------------------------
    def _on_image(self, camera: str, msg, info: MessageInfo) -> None:
        publisher = (info.get("publisher_gid") or {}).get("data", b"")
        replaced = self.frames.put(camera, (msg, time.perf_counter()))
        self.camera_stats[camera].on_received(replaced, bytes(publisher), info.get("publication_sequence_number"))

    def _on_camera_info(self, camera: str, msg: CameraInfo) -> None:
        geometry = self._geometry[camera]
        had_model = geometry.status().state == "on"
        reason = geometry.on_camera_info(msg)
        topic = self._camera_info_subscriptions[camera].topic_name if camera in self._camera_info_subscriptions else ""
        if reason:
            self._warn(camera, "camera_info", f"refused camera_info on {topic}: {reason}; no road geometry", "error")
        elif not had_model:
            self._warnings.pop((camera, "camera_info"), None)
            self.get_logger().info(
                f"road geometry on for {topic or camera}: {msg.width}x{msg.height} "
                f"{printable(msg.distortion_model)} in {self.params.base_frame}"
            )

    def _warn(self, camera: str, kind: str, text: str, level: str = "warn", repeat_s: float = REPEAT_WARNING_S) -> None:
        """Log `text` now if it is new for (camera, kind), else at most every `repeat_s` (inf: once)."""
        now = time.monotonic()
        last = self._warnings.get((camera, kind))
        if last is None or last[0] != text or now - last[1] >= repeat_s:
            self._warnings[(camera, kind)] = (text, now)
            getattr(self.get_logger(), level)(text)

    def _inference_loop(self) -> None:
        params = self.params
        while not self.frames.closed:
            batch = self.frames.take_batch(0.2, params.batch_window_ms / 1e3, params.max_batch)
            if batch:
                self._process_batch(batch)

    def _process_batch(self, batch: list[tuple[str, tuple]]) -> None:
        """Decode each camera's frame, run the good ones through one forward pass, publish each camera's outputs."""
        taken = time.perf_counter()
        frames = [frame for camera, (msg, received) in batch if (frame := self._decoded(camera, msg, received))]
        if not frames:
            return
        try:
            predictions, times = self.predictor.predict([frame.image for frame in frames])
        except Exception as exc:  # one bad batch must never stop the node
            reason = printable(exc, REASON_LIMIT)
            for frame in frames:
                self.camera_stats[frame.camera].on_rejected(reason)
            self.get_logger().error(f"batch failed: {reason}", throttle_duration_sec=2.0)
            return
        published = [
            self._publish_frame(frame, prediction, times, taken) for frame, prediction in zip(frames, predictions)
        ]
        # road geometry once every frame of the batch has its image outputs out
        for frame, prediction, outputs in zip(frames, predictions, published):
            if outputs is None:
                continue
            timings, detections = outputs
            geometry_ms = self._publish_geometry(frame, prediction, detections) if self._geometry else None
            if geometry_ms is not None:
                timings["geometry"] = geometry_ms
            self.camera_stats[frame.camera].on_processed(timings)
        total_ms = (time.perf_counter() - taken) * 1e3
        self.batch_stats.on_batch(len(frames), {"total": total_ms, "inference": times.inference_ms})

    def _decoded(self, camera: str, msg, received: float) -> _Frame | None:
        """The camera's frame as BGR, or None (counted) when it is stale or bad."""
        settings, stats = self.params.camera(camera), self.camera_stats[camera]
        if settings.max_input_age_ms > 0:
            age_ms = (self.get_clock().now() - Time.from_msg(msg.header.stamp)).nanoseconds / 1e6
            if age_ms > settings.max_input_age_ms:
                stats.on_stale()
                return None
        start = time.perf_counter()
        try:
            decode = compressed_to_bgr if isinstance(msg, CompressedImage) else image_to_bgr
            image = decode(msg, settings.max_image_pixels)
        except Exception as exc:  # ImageError names the problem; anything else must not stop the node either
            reason = printable(exc, REASON_LIMIT)
            stats.on_rejected(reason)
            topic = self._camera_subscriptions[camera].topic_name if camera in self._camera_subscriptions else camera
            prefix = "dropped a frame on" if isinstance(exc, ImageError) else "frame failed on"
            self.get_logger().error(f"{prefix} {topic}: {reason}", throttle_duration_sec=2.0)
            return None
        return _Frame(camera, msg.header, image, received, (time.perf_counter() - start) * 1e3)

    def _publish_frame(self, frame: _Frame, prediction, times, taken: float) -> tuple[dict, Detection2DArray] | None:
        """Publish the frame's image outputs; their stage timings (for FrameStatistics.on_processed) and the
        detections message, or None when publishing failed (counted as rejected)."""
        start = time.perf_counter()
        try:
            detections = self._publish(frame.camera, frame.header, frame.image, prediction, times)
        except Exception as exc:  # one frame's failure must never stop the node or the batch
            reason = printable(exc, REASON_LIMIT)
            self.camera_stats[frame.camera].on_rejected(reason)
            self.get_logger().error(f"frame failed: {reason}", throttle_duration_sec=2.0)
            return None
        published = time.perf_counter()
        timings = {
            "decode": frame.decode_ms,
            "preprocess": times.preprocess_ms,
            "inference": times.inference_ms,
            "postprocess": times.postprocess_ms,
            "publish": (published - start) * 1e3,
            "end_to_end": (published - frame.received) * 1e3,
            "node_overhead": (published - taken) * 1e3 - times.inference_ms,
        }
        return timings, detections

    def _publish_geometry(self, frame: _Frame, prediction, detections: Detection2DArray) -> float | None:
        """The frame's `road/*` messages when its camera has road geometry and a usable camera_info; the
        milliseconds it took (None when nothing was published). Never affects the image outputs."""
        camera, geometry = frame.camera, self._geometry.get(frame.camera)
        if geometry is None:
            return None
        topic = self._camera_info_subscriptions[camera].topic_name if camera in self._camera_info_subscriptions else ""
        try:
            extractor, built_ms = geometry.extractor()  # built here, not in the callback, when calibration changed
            if built_ms is not None:
                self.get_logger().info(f"road geometry tables for {topic} built in {built_ms:.0f} ms")
            if extractor is None:
                if not geometry.has_camera_info:
                    self._warn(
                        camera,
                        "no_camera_info",
                        f"road_geometry is on but no camera_info has arrived on {topic}: no road/* output until one "
                        "does (detections and masks are published as usual)",
                        repeat_s=math.inf,  # once: /diagnostics keeps saying it
                    )
                return None
            height, width = frame.image.shape[:2]
            model = extractor.camera
            if (width, height) != (model.width, model.height):
                self._warn(
                    camera,
                    "size",
                    f"no road geometry: the image is {width}x{height} but camera_info on {topic} has width x height "
                    f"{model.width}x{model.height}",
                )
                return None
            start = time.perf_counter()
            road = extractor.extract(
                prediction.lane_mask,
                prediction.drivable_mask,
                prediction.boxes,
                getattr(prediction, "lane_logits", None),
            )
            header = road_header(frame.header, self.params.base_frame)
            markers = self._outputs[camera_topic(camera, "road/markers")].get_subscription_count() > 0  # as overlay
            for name, message in road_messages(road, header, detections, markers).items():
                self._outputs[camera_topic(camera, name)].publish(message)
            return (time.perf_counter() - start) * 1e3
        except Exception as exc:  # geometry must never stop the node or the image outputs
            reason = printable(exc, REASON_LIMIT)
            self._warn(camera, "failed", f"road geometry failed on {topic or camera}: {reason}", "error")
            return None

    def _publish(self, camera: str, header: Header, image: np.ndarray, prediction, times) -> Detection2DArray:
        publishers, params = self._outputs, self.params
        config = self.predictor.config
        detections = detections_message(prediction, header, config.class_names, params.class_id_mode)
        drivable = mask_message(prediction.drivable_mask, header)
        lane = mask_message(prediction.lane_mask, header)
        publishers[camera_topic(camera, "detections")].publish(detections)
        publishers[camera_topic(camera, "drivable_area/mask")].publish(drivable)
        publishers[camera_topic(camera, "lane_lines/mask")].publish(lane)
        combined = publishers.get(camera_topic(camera, "perception"))
        if combined is not None:
            combined.publish(combined_message(detections, drivable, lane, self.model_name, times))
        overlay = publishers.get(camera_topic(camera, "debug/overlay"))
        if overlay is not None and overlay.get_subscription_count() > 0:
            overlay.publish(
                fill_image(Image(header=header), draw_overlay(image, prediction, config.class_names), "bgr8")
            )
        return detections

    # ----- diagnostics -----------------------------------------------------------------------------------
    def _publish_diagnostics(self) -> None:
        name = f"ppad: {self.get_fully_qualified_name()}"
        if self.cameras == SINGLE_CAMERA:
            statuses = [self._status(name, self._camera_summary(""))]
        else:
            summaries = {camera: self._camera_summary(camera) for camera in self.camera_stats}
            received = sum(summary["frames_received"] for summary in summaries.values())
            statuses = [self._status(name, {"cameras": ", ".join(self.cameras), "frames_received": received})]
            statuses += [self._status(f"{name}/{camera}", summary) for camera, summary in summaries.items()]
        statuses[0].values += [KeyValue(key=k, value=str(v)) for k, v in self.batch_stats.summary().items()]
        message = DiagnosticArray(status=statuses)
        message.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics.publish(message)

    def _camera_summary(self, camera: str) -> dict:
        """The camera's counters and timings, and with road geometry its state and camera_info counts."""
        summary = self.camera_stats[camera].summary()
        geometry = self._geometry.get(camera)
        if geometry is not None:
            status = geometry.status()
            subscription = self._camera_info_subscriptions.get(camera)
            summary |= {
                "road_geometry": status.state,
                "camera_info_topic": subscription.topic_name if subscription else "",
                "camera_info_received": status.camera_info_received,
                "camera_info_refused": status.camera_info_refused,
            }
        return summary

    def _status(self, name: str, summary: dict) -> DiagnosticStatus:
        status = DiagnosticStatus(name=name)
        status.level, status.message = self._state(summary)
        values = summary
        if self.predictor is not None:
            status.hardware_id = self.params.runtime.device
            values = {"model": self.model_name, "backend": self.predictor.backend.description, **summary}
        status.values = [KeyValue(key=key, value=str(value)) for key, value in values.items()]
        return status

    def _state(self, summary: dict) -> tuple[bytes, str]:
        """Level and message of a status (the node's, or one camera's)."""
        if self.error:
            return DiagnosticStatus.ERROR, self.error
        if self.predictor is None:
            return DiagnosticStatus.ERROR, "unconfigured: waiting for the configure transition"
        if not self.ready:
            return DiagnosticStatus.WARN, "not active"
        if summary["frames_received"] == 0:
            return DiagnosticStatus.WARN, "ready, no images received yet"
        if summary.get("road_geometry", "on") != "on":
            return DiagnosticStatus.WARN, f"ready; no road geometry: {summary['road_geometry']}"
        return DiagnosticStatus.OK, "ready"


def _descriptor(spec) -> ParameterDescriptor:
    """Types and ranges are the parameter table's to check (NodeParameters.from_values), not rclpy's: rclpy would
    refuse `-p score_threshold:=1` (an integer for a float) and out-of-range overrides with a traceback."""
    return ParameterDescriptor(description=spec.description + spec.allowed(), dynamic_typing=True)


def main(args: list[str] | None = None) -> int:
    from ppad_core.runtime.allocator import AllocatorError, configure_allocator

    try:  # PPAD_ALLOCATOR (tuned unless it says default): before DDS and the inference thread start
        configure_allocator()
    except AllocatorError as exc:
        print(f"perception_node: {exc}", file=sys.stderr)
        return 2
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
        node.frames.close()
        node.destroy_node()
        if rclpy.ok():
            rclpy.shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
