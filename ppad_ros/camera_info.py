"""sensor_msgs/CameraInfo -> ppad_core.geometry.CameraModel, and one camera's road-geometry state in the node: the
latest camera_info's model and the extractor built for it.

The latest camera_info is the one used. A refused one (CameraModelError naming the field: K, D,
distortion_model, width/height, binning, roi) turns the camera's geometry off until a usable one arrives; the
image outputs do not depend on it. The extractor precomputes per-calibration lookup tables, so it is rebuilt only
when K, D, the distortion model or the image size change, and never in the subscription callback.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numpy as np
from sensor_msgs.msg import CameraInfo

from ppad_core.geometry.camera import CameraModel, CameraModelError, CameraPose
from ppad_core.geometry.extract import RoadGeometryExtractor
from ppad_core.geometry.road import GeometrySettings
from ppad_ros.wire_text import REASON_LIMIT, printable


def calibration_key(info: CameraInfo) -> tuple:
    """What the camera model is built from: a new key means a new calibration."""
    roi = info.roi
    return (
        tuple(np.asarray(info.k, np.float64).tolist()),
        tuple(np.asarray(info.d, np.float64).tolist()),
        info.distortion_model,
        info.width,
        info.height,
        info.binning_x,
        info.binning_y,
        (roi.x_offset, roi.y_offset, roi.width, roi.height),
    )


def camera_model(info: CameraInfo, pose: CameraPose) -> CameraModel:
    """The camera of `info` mounted at `pose`; a CameraModelError names the field that makes it unusable.

    K and D describe the full-resolution sensor the image comes from: binned or ROI images are refused."""
    for name in ("binning_x", "binning_y"):
        if getattr(info, name) > 1:
            raise CameraModelError(f"{name}={getattr(info, name)}: binned images are not supported")
    roi = info.roi
    full = (roi.x_offset, roi.y_offset) == (0, 0) and roi.width in (0, info.width) and roi.height in (0, info.height)
    if not full:
        raise CameraModelError(
            f"roi {roi.width}x{roi.height}+{roi.x_offset}+{roi.y_offset}: only the full {info.width}x{info.height} "
            "image is supported"
        )
    distortion_model = printable(info.distortion_model)  # text from the wire: escaped and cut before it is shown
    return CameraModel.from_calibration(info.k, info.d, distortion_model, info.width, info.height, pose)


@dataclass
class GeometryStatus:
    """What /diagnostics says about one camera's road geometry."""

    state: str  # "waiting for camera_info", "on", or "camera_info refused: <why>"
    camera_info_received: int
    camera_info_refused: int


class CameraGeometry:
    """One camera's road geometry: fed camera_info by the subscription callback, asked for an extractor by the
    inference thread (which alone builds one)."""

    def __init__(self, pose: CameraPose, settings: GeometrySettings) -> None:
        self.pose = pose
        self.settings = settings
        self._lock = threading.Lock()
        self._key: tuple | None = None  # the latest camera_info's
        self._model: CameraModel | None = None  # None while the latest camera_info is refused (or none came)
        self._error = ""  # why the latest camera_info was refused
        self._received = 0
        self._refused = 0
        self._extractor: RoadGeometryExtractor | None = None
        self._extractor_key: tuple | None = None
        self._build_error = ""  # why the tables of the latest usable calibration could not be built

    def on_camera_info(self, info: CameraInfo) -> str:
        """Take `info` as the camera's latest calibration; returns why it is refused ("" when usable)."""
        key = calibration_key(info)
        with self._lock:
            self._received += 1
            if key != self._key:
                try:
                    self._model, self._error = camera_model(info, self.pose), ""
                except CameraModelError as exc:
                    self._model, self._error = None, printable(exc, REASON_LIMIT)
                self._key = key
            self._refused += int(bool(self._error))
            return self._error

    @property
    def has_camera_info(self) -> bool:
        with self._lock:
            return self._key is not None

    def extractor(self) -> tuple[RoadGeometryExtractor | None, float | None]:
        """The extractor of the latest usable calibration (None while there is none), and the milliseconds it took
        to build when this call built it: the first call after a calibration change does (its lookup tables take
        a while). Inference thread only."""
        with self._lock:
            model, key = self._model, self._key
        if model is None:
            return None, None
        if key == self._extractor_key:
            return self._extractor, None
        start = time.perf_counter()
        # a build that fails is not retried for the same calibration: it would cost every frame its time
        self._extractor, self._extractor_key, self._build_error = None, key, ""
        try:
            self._extractor = RoadGeometryExtractor(model, self.settings)
        except Exception as exc:
            self._build_error = printable(exc, REASON_LIMIT)
            raise
        return self._extractor, (time.perf_counter() - start) * 1e3

    def status(self) -> GeometryStatus:
        with self._lock:
            if self._key is None:
                state = "waiting for camera_info"
            else:
                state = f"camera_info refused: {self._error}" if self._error else "on"
            if self._build_error and not self._error:
                state = f"geometry tables failed: {self._build_error}"
            return GeometryStatus(state, self._received, self._refused)
