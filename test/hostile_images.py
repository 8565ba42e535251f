"""Encoded images a camera never sends but an adversary might: headers far larger than the data, EXIF
orientation tags. Shared by the ROS-free and the rclpy tests."""

from __future__ import annotations

import struct

import cv2
import numpy as np

HUGE_SIDE = 10000  # 10000x10000 = 100 Mpx: three times the node's default max_image_pixels (8K)


def encode(image: np.ndarray, suffix: str, *params: int) -> bytes:
    ok, data = cv2.imencode(suffix, image, list(params))
    assert ok, suffix
    return data.tobytes()


def huge_jpeg() -> bytes:
    """A real 10000x10000 JPEG of one grey level: 1.6 MB that decodes to 300 MB."""
    return encode(np.full((HUGE_SIDE, HUGE_SIDE, 3), 90, np.uint8), ".jpg", cv2.IMWRITE_JPEG_QUALITY, 10)


def huge_webp() -> bytes:
    """A real lossless 10000x10000 WebP of one grey level: about 4 kB that decode to 300 MB."""
    return encode(np.full((HUGE_SIDE, HUGE_SIDE, 3), 90, np.uint8), ".webp", cv2.IMWRITE_WEBP_QUALITY, 101)


def with_jpeg_size(jpeg: bytes, width: int, height: int) -> bytes:
    """`jpeg` with its frame header (SOF0) claiming another size; the scan data stays as it was."""
    data = bytearray(jpeg)
    start = data.find(b"\xff\xc0")
    data[start + 5 : start + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def exif_rotated_jpeg(image: np.ndarray, orientation: int = 6) -> bytes:
    """A JPEG of `image` with an EXIF APP1 segment whose Orientation tag (0x0112) asks viewers to rotate it
    (6: 90 degrees clockwise)."""
    entry = struct.pack("<HHII", 0x0112, 3, 1, orientation)  # tag, SHORT, one value, the value
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry + struct.pack("<I", 0)
    app1 = b"Exif\x00\x00" + tiff
    jpeg = encode(image, ".jpg")
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpeg[2:]
