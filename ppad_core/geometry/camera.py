"""A calibrated camera mounted on the vehicle: intrinsics (K and distortion, through OpenCV) and its pose in
base_link, with pixel <-> flat-ground (z = 0) projection.

The pose is the camera body frame (REP-103 axes: x forward along the optical axis, y left, z up) relative
to base_link as x, y, z and roll, pitch, yaw (fixed axes X, then Y, then Z, as tf's RPY): pitch > 0 looks
down, yaw > 0 looks left. The optical frame of sensor_msgs/Image and CameraInfo (z forward, x right,
y down) is that body frame turned by OPTICAL_TO_BODY.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

# distortion model (sensor_msgs/CameraInfo names) -> coefficient counts OpenCV accepts for it
DISTORTION_MODELS = {"plumb_bob": (5,), "rational_polynomial": (8,), "equidistant": (4,)}
OPTICAL_TO_BODY = np.array([[0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 0.0]])  # columns: optical x, y, z
UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 50, 1e-10)
DEFAULT_MAX_RANGE_M = 100.0


class CameraModelError(ValueError):
    """Calibration that cannot be used; the message names the field (K, D, distortion_model, width, height)."""


@dataclass(frozen=True)
class CameraPose:
    """The camera body frame in base_link: metres and radians."""

    x: float = 0.0
    y: float = 0.0
    z: float = 1.5
    roll: float = 0.0
    pitch: float = 0.0
    yaw: float = 0.0

    def rotation(self) -> np.ndarray:
        """base_link <- camera body rotation, Rz(yaw) Ry(pitch) Rx(roll)."""
        cr, sr = math.cos(self.roll), math.sin(self.roll)
        cp, sp = math.cos(self.pitch), math.sin(self.pitch)
        cy, sy = math.cos(self.yaw), math.sin(self.yaw)
        rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
        ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
        return rz @ ry @ rx

    @property
    def position(self) -> np.ndarray:
        return np.array([self.x, self.y, self.z])


@dataclass(frozen=True)
class CameraModel:
    """Pinhole camera with OpenCV distortion at `pose`; `width` x `height` is the calibrated image size."""

    K: np.ndarray
    D: np.ndarray
    distortion_model: str
    width: int
    height: int
    pose: CameraPose

    @classmethod
    def from_calibration(cls, K, D, distortion_model: str, width: int, height: int, pose: CameraPose) -> CameraModel:
        """A validated model (K as 9 row-major values or 3x3, as in CameraInfo); CameraModelError names the field."""
        K = np.asarray(K, np.float64).reshape(3, 3) if np.size(K) == 9 else None
        if K is None:
            raise CameraModelError("K must hold 9 values (row-major 3x3)")
        D = np.asarray(D, np.float64).ravel()
        _check_calibration(K, D, distortion_model, width, height)
        return cls(K, D, distortion_model, int(width), int(height), pose)

    @cached_property
    def optical_to_base(self) -> np.ndarray:
        """base_link <- camera optical frame rotation (computed once: every projection uses it)."""
        return self.pose.rotation() @ OPTICAL_TO_BODY

    @property
    def fisheye(self) -> bool:
        return self.distortion_model == "equidistant"

    def rays(self, pixels: np.ndarray) -> np.ndarray:
        """Unit viewing rays [N, 3] in base_link through `pixels` [N, 2] (u right, v down)."""
        points = np.asarray(pixels, np.float64).reshape(-1, 1, 2)
        if len(points) == 0:  # OpenCV returns None for no points
            return np.zeros((0, 3))
        if self.fisheye:
            normalised = cv2.fisheye.undistortPoints(points, self.K, self.D, criteria=UNDISTORT_CRITERIA)
        else:
            normalised = cv2.undistortPoints(points, self.K, self.D, R=None, P=None, criteria=UNDISTORT_CRITERIA)
        optical = np.concatenate([normalised.reshape(-1, 2), np.ones((len(points), 1))], axis=1)
        rays = optical @ self.optical_to_base.T
        return rays / np.linalg.norm(rays, axis=1, keepdims=True)

    def pixel_to_ground(self, pixels: np.ndarray, max_range: float = DEFAULT_MAX_RANGE_M) -> np.ndarray:
        """Ground points [N, 2] (x, y in base_link, z = 0) seen at `pixels`; NaN at or above the horizon and
        beyond `max_range` metres from base_link's origin."""
        rays = self.rays(pixels)
        down = rays[:, 2] < -1e-9
        with np.errstate(divide="ignore", invalid="ignore"):
            distance = np.where(down, -self.pose.z / rays[:, 2], np.nan)
        ground = self.pose.position[:2] + distance[:, None] * rays[:, :2]
        ground[np.hypot(ground[:, 0], ground[:, 1]) > max_range] = np.nan
        return ground

    def ground_to_pixel(self, points: np.ndarray) -> np.ndarray:
        """Pixels [N, 2] of base_link points [N, 2] (on the ground) or [N, 3]; NaN behind the camera."""
        points = np.asarray(points, np.float64)
        if points.shape[-1] == 2:
            points = np.concatenate([points, np.zeros((len(points), 1))], axis=1)
        optical = (points - self.pose.position) @ self.optical_to_base
        zero = np.zeros(3)
        if self.fisheye:
            pixels, _ = cv2.fisheye.projectPoints(optical.reshape(-1, 1, 3), zero, zero, self.K, self.D)
        else:
            pixels, _ = cv2.projectPoints(optical.reshape(-1, 1, 3), zero, zero, self.K, self.D)
        pixels = pixels.reshape(-1, 2)
        pixels[optical[:, 2] <= 1e-9] = np.nan
        return pixels


def _check_calibration(K: np.ndarray, D: np.ndarray, model: str, width: int, height: int) -> None:
    if not np.isfinite(K).all():
        raise CameraModelError("K holds NaN or infinite values")
    if not K.any():
        raise CameraModelError("K is all zero: the camera is not calibrated")
    if K[0, 0] <= 0 or K[1, 1] <= 0 or K[2, 2] != 1 or K[1, 0] or K[2, 0] or K[2, 1]:
        raise CameraModelError(f"K is not an upper-triangular camera matrix with fx, fy > 0: {K.ravel().tolist()}")
    if model not in DISTORTION_MODELS:
        raise CameraModelError(f"distortion_model {model!r} is not one of {', '.join(DISTORTION_MODELS)}")
    if D.size not in DISTORTION_MODELS[model] and not (D.size == 0 and model == "plumb_bob"):
        raise CameraModelError(f"D holds {D.size} values; {model} needs {DISTORTION_MODELS[model][0]}")
    if not np.isfinite(D).all():
        raise CameraModelError("D holds NaN or infinite values")
    if width <= 0 or height <= 0:
        raise CameraModelError(f"width and height must be positive, not {width}x{height}")
