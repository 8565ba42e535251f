"""ppad_core.geometry.camera: flat-ground projection against hand-computed cases, and pixel <-> ground round
trips through OpenCV's plumb_bob and equidistant distortion."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ppad_core.geometry.camera import CameraModel, CameraModelError, CameraPose

K = [1000.0, 0.0, 640.0, 0.0, 1000.0, 360.0, 0.0, 0.0, 1.0]


def camera(pose: CameraPose | None = None, D=(0.0,) * 5, model: str = "plumb_bob") -> CameraModel:
    return CameraModel.from_calibration(K, D, model, 1280, 720, pose or CameraPose())


def test_a_level_camera_maps_rows_below_the_principal_point_to_range_and_columns_to_the_side():
    level = camera(CameraPose(z=1.5))
    # 1.5 m high, f = 1000 px: the ground 20 m ahead is 1000 * 1.5 / 20 = 75 px below the principal point,
    # and 2 m to the left is 1000 * 2 / 20 = 100 px left of it
    ground = level.pixel_to_ground(np.array([[640, 435], [540, 435], [740, 510], [640, 360], [640, 300]]))
    np.testing.assert_allclose(ground[:3], [[20, 0], [20, 2], [10, -1]], atol=1e-9)
    assert np.isnan(ground[3:]).all()  # the horizon and the sky have no ground point


def test_pitch_yaw_and_mounting_offset_move_the_ground_point_as_hand_computed():
    pitched = camera(CameraPose(z=1.5, pitch=math.atan2(1.5, 20)))  # looking down at the ground 20 m ahead
    np.testing.assert_allclose(pitched.pixel_to_ground(np.array([[640, 360]])), [[20, 0]], atol=1e-9)
    left = camera(CameraPose(x=1.2, y=0.3, z=1.5, yaw=math.pi / 2))  # on the car's left side, looking left
    np.testing.assert_allclose(left.pixel_to_ground(np.array([[640, 435]])), [[1.2, 20.3]], atol=1e-9)
    far = camera(CameraPose(z=1.5)).pixel_to_ground(np.array([[640, 361.5]]), max_range=80.0)
    assert np.isnan(far).all()  # 100 m ahead, beyond the range limit


@pytest.mark.parametrize(
    "model, D",
    [
        ("plumb_bob", (-0.3, 0.1, 0.001, -0.0005, -0.02)),
        ("rational_polynomial", (-0.2, 0.05, 0.0, 0.0, 0.0, 0.01, 0.0, 0.0)),
        ("equidistant", (0.05, -0.01, 0.002, -0.0005)),
    ],
)
def test_ground_points_survive_projection_and_back_projection_through_distortion(model, D):
    rig = camera(CameraPose(x=1.5, y=-0.2, z=1.4, roll=0.01, pitch=0.05, yaw=-0.03), D, model)
    rng = np.random.default_rng(0)
    ground = np.stack([rng.uniform(6, 60, 200), rng.uniform(-8, 8, 200)], axis=1)
    pixels = rig.ground_to_pixel(ground)
    inside = (pixels[:, 0] >= 0) & (pixels[:, 0] < 1280) & (pixels[:, 1] >= 0) & (pixels[:, 1] < 720)
    assert inside.sum() > 100
    np.testing.assert_allclose(rig.pixel_to_ground(pixels[inside]), ground[inside], atol=1e-6)
    undistorted = camera(CameraPose(x=1.5, y=-0.2, z=1.4, roll=0.01, pitch=0.05, yaw=-0.03))
    assert np.abs(undistorted.ground_to_pixel(ground[inside]) - pixels[inside]).max() > 1.0  # distortion acts


def test_an_empty_plumb_bob_distortion_is_an_undistorted_camera():
    pixels = np.array([[100.0, 600.0], [1200.0, 500.0]])
    np.testing.assert_allclose(camera(D=()).pixel_to_ground(pixels), camera().pixel_to_ground(pixels), atol=1e-12)


def test_points_behind_the_camera_have_no_pixel():
    assert np.isnan(camera().ground_to_pixel(np.array([[-5.0, 0.0]]))).all()


@pytest.mark.parametrize(
    "change, message",
    [
        ({"K": [0.0] * 9}, "K is all zero"),
        ({"K": K[:8]}, "K must hold 9 values"),
        ({"K": [math.nan] + K[1:]}, "K holds NaN"),
        ({"D": (0.0,) * 4}, "D holds 4 values; plumb_bob needs 5"),
        ({"D": (math.nan,) * 5}, "D holds NaN"),
        ({"model": "kannala"}, "distortion_model 'kannala' is not one of plumb_bob, rational_polynomial"),
    ],
)
def test_unusable_calibration_is_refused_naming_the_field(change, message):
    values = {"K": K, "D": (0.0,) * 5, "model": "plumb_bob"} | change
    with pytest.raises(CameraModelError, match=message):
        CameraModel.from_calibration(values["K"], values["D"], values["model"], 1280, 720, CameraPose())
