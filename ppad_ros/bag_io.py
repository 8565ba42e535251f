"""rosbag2 (MCAP or sqlite3) image bags through `rosbags`: no ROS installation needed.

A bag written here records which dataset image each frame came from (bag metadata `custom_data`:
`ppad.frames` maps header stamps to image names, `ppad.source` the dataset root and split), so
`bag_eval` can find the labels of every frame.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from rosbags.rosbag2 import Reader, ReaderError, StoragePlugin, Writer, WriterError
from rosbags.typesys import Stores, get_typestore

IMAGE = "sensor_msgs/msg/Image"
COMPRESSED = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
START_NS = 1_700_000_000_000_000_000  # stamps of written bags start here (a fixed, recognisable epoch)
FRAMES_KEY, SOURCE_KEY = "ppad.frames", "ppad.source"
STORAGES = {"mcap": StoragePlugin.MCAP, "sqlite3": StoragePlugin.SQLITE3}

TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)  # sensor_msgs definitions are identical from Humble to Kilted


class BagError(RuntimeError):
    """A bag that cannot be used; the message names the bag and what is wrong."""


@dataclass
class BagFrame:
    index: int
    stamp_ns: int  # header stamp
    log_time_ns: int  # when it was recorded (publication schedule on replay)
    msg: object  # rosbags message with the sensor_msgs fields (encoding/height/width/step/data or format/data)
    name: str | None  # the dataset image it came from, when the bag records it


def _stamp(ns: int) -> object:
    sec, nanosec = divmod(ns, 1_000_000_000)
    return TYPESTORE.types["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec)


def _header(ns: int, frame_id: str) -> object:
    return TYPESTORE.types["std_msgs/msg/Header"](stamp=_stamp(ns), frame_id=frame_id)


def image_message(path: Path, stamp_ns: int, frame_id: str, compressed: bool) -> object:
    """A raw bgr8 Image of the decoded file, or a CompressedImage holding the file's own bytes (no re-encoding)."""
    if compressed:
        suffix = path.suffix.lower().lstrip(".")
        data = np.frombuffer(path.read_bytes(), np.uint8)
        return TYPESTORE.types[COMPRESSED](
            header=_header(stamp_ns, frame_id), format="jpeg" if suffix in ("jpg", "jpeg") else suffix, data=data
        )
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise BagError(f"{path}: cannot be decoded as an image")
    return TYPESTORE.types[IMAGE](
        header=_header(stamp_ns, frame_id),
        height=image.shape[0],
        width=image.shape[1],
        encoding="bgr8",
        is_bigendian=0,
        step=image.shape[1] * 3,
        data=image.reshape(-1),
    )


def camera_info_topic(image_topic: str) -> str:
    """camera_info in the image topic's namespace, as image_transport pairs them: /cam/image_raw, /cam/camera_info."""
    namespace = image_topic.rsplit("/", 1)[0]
    return f"{namespace}/camera_info"


def camera_info_message(intrinsic: np.ndarray, width: int, height: int, stamp_ns: int, frame_id: str) -> object:
    """An undistorted pinhole CameraInfo (plumb_bob, zero D, identity R, P = [K | 0])."""
    k = np.asarray(intrinsic, np.float64).reshape(3, 3)
    projection = np.concatenate([k, np.zeros((3, 1))], axis=1)
    roi = TYPESTORE.types["sensor_msgs/msg/RegionOfInterest"](
        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return TYPESTORE.types[CAMERA_INFO](
        header=_header(stamp_ns, frame_id),
        height=height,
        width=width,
        distortion_model="plumb_bob",
        d=np.zeros(5),
        k=k.ravel(),
        r=np.eye(3).ravel(),
        p=projection.ravel(),
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def write_image_bag(
    images: list[Path],
    out: str | Path,
    topic: str = "/camera/image_raw",
    rate_hz: float = 10.0,
    frame_id: str = "camera",
    storage: str = "mcap",
    compressed: bool = False,
    source: dict | None = None,
    calibrations: list[tuple[np.ndarray, int, int] | None] | None = None,
) -> dict:
    """One message per image at `rate_hz`; returns a summary. With `calibrations` (per image: K, width,
    height, or None) a CameraInfo with the image's stamp goes on `camera_info_topic(topic)` beside each image."""
    if storage not in STORAGES:
        raise ValueError(f"storage {storage!r} is not one of {', '.join(STORAGES)}")
    if rate_hz <= 0:
        raise ValueError(f"rate must be positive, got {rate_hz}")
    if not images:
        raise ValueError("no images to write")
    msgtype = COMPRESSED if compressed else IMAGE
    period_ns = round(1e9 / rate_hz)
    frames = {}
    calibrations = calibrations or [None] * len(images)
    info_count = sum(c is not None for c in calibrations)
    try:
        with Writer(out, version=9, storage_plugin=STORAGES[storage]) as writer:
            connection = writer.add_connection(topic, msgtype, typestore=TYPESTORE)
            info = (
                writer.add_connection(camera_info_topic(topic), CAMERA_INFO, typestore=TYPESTORE)
                if info_count
                else None
            )
            for index, (path, calibration) in enumerate(zip(images, calibrations)):
                stamp = START_NS + index * period_ns
                if calibration is not None:  # before its image: a node that needs it has it in time
                    message = camera_info_message(*calibration, stamp, frame_id)
                    writer.write(info, stamp, TYPESTORE.serialize_cdr(message, CAMERA_INFO))
                message = image_message(path, stamp, frame_id, compressed)
                writer.write(connection, stamp, TYPESTORE.serialize_cdr(message, msgtype))
                frames[str(stamp)] = path.stem
            writer.set_custom_data(FRAMES_KEY, json.dumps(frames))
            writer.set_custom_data(SOURCE_KEY, json.dumps(source or {}))
    except WriterError as exc:
        raise BagError(f"{out}: {exc}") from exc
    return {
        "bag": str(out),
        "topic": topic,
        "type": msgtype,
        "frames": len(images),
        "camera_info": camera_info_topic(topic) if info_count else None,
        "camera_info_messages": info_count,
        "rate_hz": rate_hz,
        "storage": storage,
        "duration_s": (len(images) - 1) / rate_hz,
    }


def bag_topics(reader: Reader) -> dict[str, str]:
    return {name: info.msgtype for name, info in reader.topics.items()}


def open_bag(path: str | Path) -> Reader:
    path = Path(path)
    if not path.exists():
        raise BagError(f"{path}: no such bag")
    try:
        reader = Reader(path)
        reader.open()
    except (ReaderError, OSError, ValueError, KeyError) as exc:
        raise BagError(f"{path}: not a readable rosbag2 ({exc})") from exc
    return reader


def image_topic(reader: Reader, topic: str | None) -> str:
    """The requested image topic, or the bag's only one; errors list what the bag has."""
    topics = bag_topics(reader)
    listing = ", ".join(f"{name} ({kind})" for name, kind in sorted(topics.items())) or "none"
    if topic is not None:
        if topic not in topics:
            raise BagError(f"{reader.path}: no topic {topic!r}; the bag has: {listing}")
        if topics[topic] not in (IMAGE, COMPRESSED):
            raise BagError(f"{reader.path}: {topic} is {topics[topic]}, not an image topic")
        return topic
    images = [name for name, kind in topics.items() if kind in (IMAGE, COMPRESSED)]
    if len(images) != 1:
        raise BagError(f"{reader.path}: choose an image topic with --topic; the bag has: {listing}")
    return images[0]


def bag_custom_data(reader: Reader) -> tuple[dict[int, str], dict]:
    metadata = getattr(reader.storage, "metadata", None)  # metadata.yaml of a bag directory
    custom = getattr(metadata, "custom", None) or {}
    frames = {int(k): v for k, v in json.loads(custom.get(FRAMES_KEY, "{}")).items()}
    return frames, json.loads(custom.get(SOURCE_KEY, "{}"))


def read_frames(path: str | Path, topic: str | None = None) -> tuple[str, Iterator[BagFrame], dict]:
    """(topic, frames in recording order, source info); a corrupt or truncated bag raises BagError."""
    reader = open_bag(path)
    try:
        topic = image_topic(reader, topic)
        names, source = bag_custom_data(reader)
    except BagError:
        reader.close()
        raise
    connections = [c for c in reader.connections if c.topic == topic]

    def frames() -> Iterator[BagFrame]:
        try:
            for index, (connection, log_time, raw) in enumerate(reader.messages(connections=connections)):
                msg = TYPESTORE.deserialize_cdr(raw, connection.msgtype)
                stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
                yield BagFrame(index, stamp, log_time, msg, names.get(stamp))
        except (ReaderError, ValueError, KeyError, IndexError, OSError) as exc:
            raise BagError(f"{path}: bag is truncated or corrupt ({type(exc).__name__}: {exc})") from exc
        finally:
            reader.close()

    return topic, frames(), source
