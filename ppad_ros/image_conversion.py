"""sensor_msgs image <-> numpy without cv_bridge (not installable here, and broken on NumPy 2 on PyPI).

Decoding works on any object with the message's fields, so it is tested without ROS. Packed 8-bit
layouts are wrapped zero-copy (a strided view on the message buffer); only colour conversion copies.
"""

from __future__ import annotations

import array

import cv2
import numpy as np

from ppad_ros.image_header import HeaderError, encoded_size
from ppad_ros.wire_text import printable

# encoding -> (bytes per pixel, OpenCV conversion to BGR or None when the layout already is BGR)
ENCODINGS: dict[str, tuple[int, int | None]] = {
    "bgr8": (3, None),
    "rgb8": (3, cv2.COLOR_RGB2BGR),
    "bgra8": (4, cv2.COLOR_BGRA2BGR),
    "rgba8": (4, cv2.COLOR_RGBA2BGR),
    "mono8": (1, cv2.COLOR_GRAY2BGR),
    "8UC1": (1, cv2.COLOR_GRAY2BGR),
    "8UC3": (3, None),
    "yuv422": (2, cv2.COLOR_YUV2BGR_UYVY),  # ROS's yuv422 is UYVY
    "uyvy": (2, cv2.COLOR_YUV2BGR_UYVY),
    "yuv422_yuy2": (2, cv2.COLOR_YUV2BGR_YUY2),
    "yuyv": (2, cv2.COLOR_YUV2BGR_YUY2),
    # OpenCV names a Bayer pattern by the second row's first two pixels
    "bayer_rggb8": (1, cv2.COLOR_BayerBG2BGR),
    "bayer_bggr8": (1, cv2.COLOR_BayerRG2BGR),
    "bayer_gbrg8": (1, cv2.COLOR_BayerGR2BGR),
    "bayer_grbg8": (1, cv2.COLOR_BayerGB2BGR),
}
DEFAULT_MAX_PIXELS = 7680 * 4320  # 8K


class ImageError(ValueError):
    """A frame that cannot be used; the message names the field at fault."""


def image_to_bgr(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/Image -> BGR uint8 [H, W, 3]."""
    encoding = msg.encoding
    if encoding not in ENCODINGS:
        raise ImageError(f"encoding '{printable(encoding)}' is not supported (supported: {', '.join(ENCODINGS)})")
    channels, conversion = ENCODINGS[encoding]
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    if height <= 0 or width <= 0:
        raise ImageError(f"zero-size image: height={height} width={width}")
    if height * width > max_pixels:
        raise ImageError(f"image of {width}x{height} exceeds max_image_pixels={max_pixels}")
    if channels == 2 and width % 2:
        raise ImageError(f"{encoding} needs an even width, got {width}")
    if step < width * channels:
        raise ImageError(f"step {step} is smaller than width*bytes_per_pixel = {width * channels} for {encoding}")
    buffer = np.frombuffer(msg.data, dtype=np.uint8)
    needed = step * (height - 1) + width * channels
    if buffer.size < needed:
        raise ImageError(f"data holds {buffer.size} bytes, {needed} needed for {width}x{height} {encoding} step {step}")
    pixels = np.lib.stride_tricks.as_strided(
        buffer, shape=(height, width, channels), strides=(step, channels, 1), writeable=False
    )
    if conversion is None:
        return pixels
    if channels == 1:
        pixels = pixels[..., 0]
    return cv2.cvtColor(np.ascontiguousarray(pixels) if step != width * channels else pixels, conversion)


def compressed_to_bgr(msg, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """sensor_msgs/CompressedImage (JPEG, PNG, WebP, BMP or TIFF; any colour layout) -> BGR uint8 [H, W, 3].

    The size is read from the encoded header and checked before decoding; the decoder ignores EXIF
    orientation, so the masks keep the size the camera sent."""
    data = np.frombuffer(msg.data, dtype=np.uint8)
    described = f"compressed image ('{printable(msg.format)}', {data.size} bytes)"
    if data.size == 0:
        raise ImageError("compressed image with empty data")
    try:
        kind, width, height = encoded_size(data.tobytes())
    except HeaderError as exc:
        raise ImageError(f"{described} refused: {exc}") from None
    if width * height > max_pixels:
        raise ImageError(f"{kind} image of {width}x{height} exceeds max_image_pixels={max_pixels}")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    if image is None:
        raise ImageError(f"{described} could not be decoded")
    return image


def fill_image(msg, pixels: np.ndarray, encoding: str):
    """Fill a sensor_msgs/Image from a contiguous uint8 array (mono8 [H, W] or bgr8 [H, W, 3])."""
    pixels = np.ascontiguousarray(pixels, dtype=np.uint8)
    msg.height, msg.width = int(pixels.shape[0]), int(pixels.shape[1])
    msg.encoding = encoding
    msg.is_bigendian = 0
    msg.step = int(pixels.strides[0])
    data = array.array("B")
    data.frombytes(pixels.data)  # one memcpy; a list or bytes would be checked element by element
    msg.data = data
    return msg
