"""Latest-frame-wins hand-over (per camera, batched) between the subscription callbacks and the inference
thread, and the counters and timings the node reports on /diagnostics. Plain Python: tested without ROS."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ppad_ros.wire_text import REASON_LIMIT, printable

MAX_TRACKED_PUBLISHERS = 64  # publishers remembered for loss counting; the longest silent one is forgotten first


def camera_topic(camera: str, topic: str) -> str:
    """`topic` of `camera` (relative to the node's namespace); the single unnamed camera keeps the plain name."""
    return f"{camera}/{topic}" if camera else topic


@dataclass
class _Waiting:
    item: Any
    since: float  # arrival of the camera's oldest frame not yet taken (a replaced frame keeps its place)


class LatestFramePerCamera:
    """The newest waiting frame of each camera, handed to the inference thread as one batch.

    A new frame replaces (drops) its camera's frame not yet taken. A batch holds at most `max_batch` cameras, those
    waiting longest first, so no camera starves however fast the others publish."""

    def __init__(self, cameras: Sequence[str]) -> None:
        self.cameras = tuple(cameras)
        self._condition = threading.Condition()
        self._waiting: dict[str, _Waiting] = {}
        self._closed = False

    def put(self, camera: str, item: Any) -> bool:
        """Store `item` as `camera`'s newest frame; True when it replaced a frame that was never processed."""
        if camera not in self.cameras:
            raise KeyError(f"unknown camera {camera!r}")
        with self._condition:
            waiting = self._waiting.get(camera)
            if waiting is None:
                self._waiting[camera] = _Waiting(item, time.monotonic())
            else:
                waiting.item = item
            self._condition.notify()
            return waiting is not None

    def take_batch(self, timeout: float, window_s: float = 0.0, max_batch: int = 1) -> list[tuple[str, Any]]:
        """`(camera, frame)` pairs, longest waiting first: empty after `timeout` seconds without a frame or once
        closed. Once a frame waits, cameras without one get until `window_s` after its arrival to join."""
        with self._condition:
            self._condition.wait_for(lambda: self._waiting or self._closed, timeout)
            if self._waiting and not self._closed:
                self._wait_for_late_cameras(window_s, min(max_batch, len(self.cameras)))
            if self._closed:
                return []
            chosen = sorted(self._waiting, key=lambda camera: self._waiting[camera].since)[:max_batch]
            return [(camera, self._waiting.pop(camera).item) for camera in chosen]

    def _wait_for_late_cameras(self, window_s: float, wanted: int) -> None:
        join_by = min(waiting.since for waiting in self._waiting.values()) + window_s
        while len(self._waiting) < wanted and not self._closed:
            remaining = join_by - time.monotonic()
            if remaining <= 0:
                return
            self._condition.wait(remaining)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        with self._condition:
            self._closed = True
            self._waiting.clear()
            self._condition.notify_all()


class TransportLosses:
    """Frames lost before the node, from the gaps in each publisher's sequence numbers.

    DDS numbers every sample a writer sends; a reader that sees 7 after 4 knows 5 and 6 were sent and never
    delivered (dropped by the transport, or overwritten in the reader's queue). Counting starts at the
    first sample seen from each publisher. Samples without a sequence number (an RMW that does not report
    one) are counted as `unnumbered`."""

    def __init__(self) -> None:
        self.lost = 0
        self.unnumbered = 0
        self._publishers: dict[bytes, list[int]] = {}  # gid -> [last sequence, received, lost], oldest first

    def observe(self, publisher: bytes, sequence: int | None) -> int:
        """Account for one received sample; returns the frames this one shows were lost (-1: a late one)."""
        if not sequence:
            self.unnumbered += 1
            return 0
        record = self._publishers.pop(publisher, None)  # re-inserted last: the dict stays in age order
        if record is None:
            record = [sequence, 0, 0]
            if len(self._publishers) >= MAX_TRACKED_PUBLISHERS:
                self._publishers.pop(next(iter(self._publishers)))
        # a sample older than the last one arrived late: it was counted lost when the later one came
        gap = sequence - record[0] - 1 if sequence > record[0] else -int(sequence < record[0] and record[2] > 0)
        record[0] = max(record[0], sequence)
        record[1] += 1
        record[2] += gap
        self._publishers[publisher] = record
        self.lost += gap
        return gap

    def by_publisher(self, limit: int = 8) -> str:
        """`publisher: lost/sent` for the publishers heard from most recently; a publisher is named by a short
        hash of its gid (the gid's first 12 bytes are the same for every publisher of one process)."""
        recent = list(self._publishers.items())[-limit:]
        return ", ".join(f"{_short(gid)}: {lost}/{received + lost}" for gid, (_, received, lost) in recent)


def _short(gid: bytes) -> str:
    return hashlib.blake2s(gid, digest_size=4).hexdigest()


@dataclass
class FrameStatistics:
    """Counts since start and timings over a sliding window of recent frames."""

    window: int = 100
    received: int = 0
    processed: int = 0
    dropped: int = 0  # replaced by a newer frame before inference could take them
    rejected: int = 0  # bad input: encoding, size, truncated, undecodable
    stale: int = 0  # older than max_input_age_ms
    last_rejection: str = ""
    transport: TransportLosses = field(default_factory=TransportLosses)
    stages: dict[str, deque] = field(default_factory=dict)
    _arrivals: deque = field(default_factory=lambda: deque(maxlen=100))
    _outputs: deque = field(default_factory=lambda: deque(maxlen=100))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_received(self, replaced: bool, publisher: bytes = b"", sequence: int | None = None) -> None:
        with self._lock:
            self.received += 1
            self.dropped += int(replaced)
            self.transport.observe(publisher, sequence)
            self._arrivals.append(time.monotonic())

    def on_rejected(self, reason: str) -> None:
        with self._lock:
            self.rejected += 1
            self.last_rejection = printable(reason, REASON_LIMIT)

    def on_stale(self) -> None:
        with self._lock:
            self.stale += 1

    def on_processed(self, timings_ms: dict[str, float]) -> None:
        with self._lock:
            self.processed += 1
            self._outputs.append(time.monotonic())
            for stage, value in timings_ms.items():
                self.stages.setdefault(stage, deque(maxlen=self.window)).append(value)

    @staticmethod
    def _rate(stamps: deque) -> float:
        if len(stamps) < 2 or stamps[-1] == stamps[0]:
            return 0.0
        return (len(stamps) - 1) / (stamps[-1] - stamps[0])

    def summary(self) -> dict[str, float | int | str]:
        with self._lock:
            values: dict[str, float | int | str] = {
                "frames_received": self.received,
                "frames_processed": self.processed,
                "frames_dropped": self.dropped,
                "frames_lost_transport": self.transport.lost,
                "transport_losses_by_publisher": self.transport.by_publisher(),
                "frames_rejected": self.rejected,
                "frames_stale": self.stale,
                "input_rate_hz": round(self._rate(self._arrivals), 2),
                "output_rate_hz": round(self._rate(self._outputs), 2),
                "last_rejection": self.last_rejection,
            }
            if self.transport.unnumbered:
                values["frames_without_sequence_number"] = self.transport.unnumbered
            for stage, samples in self.stages.items():
                values |= _mean_and_p95(f"{stage}_ms", samples)
            return values


def _mean_and_p95(name: str, samples: deque) -> dict[str, float]:
    data = np.asarray(samples)
    return {f"{name}_mean": round(float(data.mean()), 2), f"{name}_p95": round(float(np.percentile(data, 95)), 2)}


@dataclass
class BatchStatistics:
    """Batches since start (a histogram of their sizes) and their timings over a sliding window."""

    window: int = 100
    sizes: Counter = field(default_factory=Counter)
    stages: dict[str, deque] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on_batch(self, size: int, timings_ms: dict[str, float]) -> None:
        with self._lock:
            self.sizes[size] += 1
            for stage, value in timings_ms.items():
                self.stages.setdefault(stage, deque(maxlen=self.window)).append(value)

    def summary(self) -> dict[str, float | int | str]:
        with self._lock:
            values: dict[str, float | int | str] = {
                "batches": sum(self.sizes.values()),
                "batch_size_histogram": ", ".join(f"{size}: {n}" for size, n in sorted(self.sizes.items())),
            }
            for stage, samples in self.stages.items():
                values |= _mean_and_p95(f"batch_{stage}_ms", samples)
            return values
