"""Transport soak: a raw camera stream into the perception node, counted end to end.

Starts `python -m ppad_ros.perception_node` (config/student.yaml, overlay off) in namespace /soak on
its own ROS_DOMAIN_ID with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST, publishes `--frames` frames of
`--size` bgr8 at `--rate` Hz to /soak/image from this process and records every output. Reported:

- frames sent; the node's /diagnostics frames_received, frames_processed, frames_dropped (replaced in
  the one-slot hand-over) and frames_lost_transport (when the node reports it, else sent - received);
- per output topic: messages, latency p50/p95/max = arrival here minus the publish time of the input
  frame with the same stamp, and the longest gap between two arrivals;
- the node's resident memory (VmRSS, and its RssShmem part) after start-up and at the end.

The Fast DDS configuration is the environment's (scripts/ros_env.sh) unless `--profile` names an XML
file (`--profile none` unsets FASTDDS_DEFAULT_PROFILES_FILE). From the repository root, the
acceptance run through the README's configuration:

    source scripts/ros_env.sh && python benchmarks/transport_soak.py --frames 3000 --rate 15
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import threading
import time
from collections import defaultdict
from pathlib import Path

from transport_sweep import node_command, percentile, ros_env, stop

from ppad_core.runtime.benchmark import process_memory_kb  # noqa: E402  (benchmarks/ is this script's sys.path[0])

REPO = Path(__file__).resolve().parent.parent
TOPICS = ("detections", "drivable_area/mask", "lane_lines/mask", "perception")
NS = "/soak"


def proc_memory(pid: int) -> dict[str, int]:
    return process_memory_kb(pid, ("VmRSS", "RssAnon", "RssFile", "RssShmem"))


def environment(args) -> dict[str, str]:
    """Every ROS process's environment: the shell's Fast DDS profile unless `--profile` names one (or 'none')."""
    if args.profile is None:
        profile = os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE")
    else:
        profile = None if args.profile == "none" else args.profile
    return ros_env(args.domain, profile, args.env)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring.")
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--rate", type=float, default=15.0, help="frames per second")
    parser.add_argument("--size", default="1280x720", help="WIDTHxHEIGHT of the bgr8 frames")
    parser.add_argument(
        "--camera-qos",
        choices=("sensor_data", "reliable"),
        help="QoS of this process's camera publisher (default: reliable with --reliable, else sensor_data)",
    )
    parser.add_argument(
        "--reliable", action="store_true", help="make the node's camera subscription reliable (qos_overrides)"
    )
    parser.add_argument("--profile", help="Fast DDS XML profile for every process; 'none' unsets it")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every ROS process (KEY= unsets)")
    parser.add_argument("--param", action="append", default=[], help="extra node parameter NAME:=VALUE")
    parser.add_argument("--output-depth", type=int, default=50, help="depth of this process's reliable output readers")
    parser.add_argument(
        "--topics",
        default=",".join(TOPICS),
        help="output topics to record (drop perception with publish_combined:=false)",
    )
    parser.add_argument("--domain", type=int, default=231, help="ROS_DOMAIN_ID of every process started")
    parser.add_argument("--settle-s", type=float, default=3.0, help="wait for the last outputs")
    parser.add_argument("--json", type=Path, help="also write the result here")
    parser.add_argument("--log", type=Path, default=Path("/tmp/transport_soak_node.log"))
    args = parser.parse_args()
    topics = tuple(t for t in args.topics.split(",") if t)

    args.camera_qos = args.camera_qos or ("reliable" if args.reliable else "sensor_data")
    env = environment(args)
    os.environ.clear()
    os.environ.update(env)  # this process's participant must use the same configuration
    import numpy as np
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
    from sensor_msgs.msg import Image
    from vision_msgs.msg import Detection2DArray

    from ppad_ros.background_spin import BackgroundSpinner
    from ppad_ros.image_conversion import fill_image
    from ppad_ros.msg import PerceptionResult

    width, height = (int(v) for v in args.size.lower().split("x"))
    reliable = [f"qos_overrides.{NS}/image.subscription.reliability:=reliable"] if args.reliable else []
    cmd = node_command(NS, *reliable, *args.param)
    node_proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=open(args.log, "w"), stderr=subprocess.STDOUT)

    rclpy.init()
    node = rclpy.create_node("soak_probe")
    lock = threading.Lock()
    arrivals: dict[str, list] = defaultdict(list)  # topic -> [(stamp_ns, monotonic)]
    diag: dict[str, str] = {}

    def recorder(topic):
        def record(msg) -> None:
            now = time.monotonic()
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            with lock:
                arrivals[topic].append((stamp, now))

        return record

    def on_diag(msg) -> None:
        for status in msg.status:
            if status.name.endswith(f"{NS}/perception"):
                with lock:
                    diag.clear()
                    diag.update({kv.key: kv.value for kv in status.values} | {"_message": status.message})

    types = {
        "detections": Detection2DArray,
        "drivable_area/mask": Image,
        "lane_lines/mask": Image,
        "perception": PerceptionResult,
    }
    reader = QoSProfile(depth=args.output_depth, reliability=ReliabilityPolicy.RELIABLE)
    for topic in topics:
        node.create_subscription(types[topic], f"{NS}/{topic}", recorder(topic), reader)
    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    camera_qos = (
        qos_profile_sensor_data
        if args.camera_qos == "sensor_data"
        else QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    )
    pub = node.create_publisher(Image, f"{NS}/image", camera_qos)
    spinner = BackgroundSpinner(node)

    def wait(cond, timeout, what):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if node_proc.poll() is not None:
                raise SystemExit(f"node exited ({node_proc.returncode}); log: {args.log}")
            if cond():
                return
            time.sleep(0.05)
        raise SystemExit(f"timed out: {what}; log: {args.log}")

    frames = []
    try:
        import cv2

        from ppad_core.data.synth import render_scene

        for i in range(4):
            image = render_scene(seed=31, split="val", index=i).image
            frames.append(cv2.resize(image, (width, height)) if image.shape[:2] != (height, width) else image)
    except Exception:  # noqa: BLE001 - any image will do for transport
        frames = [np.random.default_rng(i).integers(0, 255, (height, width, 3), np.uint8) for i in range(4)]
    messages = [fill_image(Image(), f, "bgr8") for f in frames]
    tiny = fill_image(Image(), np.zeros((48, 64, 3), np.uint8), "bgr8")
    try:
        wait(
            lambda: diag.get("_message", "").startswith("ready") and pub.get_subscription_count() > 0, 180, "node ready"
        )
        tiny.header.stamp.nanosec = 1

        # prime until the node's first output comes back (data endpoints matched both ways)
        def primed():
            pub.publish(tiny)
            time.sleep(0.2)
            with lock:
                return all(any(s == 1 for s, _ in arrivals[t]) for t in topics)

        wait(primed, 60, "priming frames answered on every output")
        time.sleep(1.5)
        with lock:
            base = dict(diag)
            arrivals.clear()
        mem_start = proc_memory(node_proc.pid)
        sent_at: dict[int, float] = {}
        period = 1.0 / args.rate
        start = time.monotonic()
        late = 0
        for i in range(args.frames):
            target = start + i * period
            now = time.monotonic()
            if now < target:
                time.sleep(target - now)
            elif now - target > period:
                late += 1
            msg = messages[i % len(messages)]
            wall = time.time_ns()
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(wall, 1_000_000_000)
            msg.header.frame_id = "camera"
            sent_at[wall] = time.monotonic()
            pub.publish(msg)
        elapsed = time.monotonic() - start
        time.sleep(args.settle_s + float(base.get("diagnostics_period_s", 1.0)))
        mem_end = proc_memory(node_proc.pid)
        with lock:
            final = dict(diag)
            got = {t: list(v) for t, v in arrivals.items()}
    finally:
        spinner.stop()
        rclpy.shutdown()
        stop(node_proc)

    def counter(key):
        return int(final.get(key, 0)) - int(base.get(key, 0)) if key in final else None

    sent = args.frames
    received = counter("frames_received")
    lost = counter("frames_lost_transport")
    result = {
        "config": {
            "frames": args.frames,
            "rate_hz": args.rate,
            "size": args.size,
            "camera_qos": args.camera_qos,
            "node_reliable": args.reliable,
            "profile": env.get("FASTDDS_DEFAULT_PROFILES_FILE", ""),
            "builtin_transports": env.get("FASTDDS_BUILTIN_TRANSPORTS", ""),
            "discovery_range": env["ROS_AUTOMATIC_DISCOVERY_RANGE"],
            "domain": args.domain,
        },
        "sent": sent,
        "send_s": round(elapsed, 1),
        "send_late": late,
        "frames_received": received,
        "frames_lost_transport": lost if lost is not None else sent - received,
        "lost_source": "node frames_lost_transport" if lost is not None else "sent - frames_received",
        "frames_processed": counter("frames_processed"),
        "frames_dropped": counter("frames_dropped"),
        "frames_stale": counter("frames_stale"),
        "frames_rejected": counter("frames_rejected"),
        "node_rss_kB": {"start": mem_start, "end": mem_end},
        "outputs": {},
    }
    for topic in topics:
        samples = got.get(topic, [])
        lat = [(t - sent_at[s]) * 1e3 for s, t in samples if s in sent_at]
        times = sorted(t for _, t in samples)
        gaps = [(b - a) * 1e3 for a, b in zip(times, times[1:])]
        result["outputs"][topic] = {
            "messages": len(samples),
            "lat_p50_ms": round(percentile(lat, 50), 1),
            "lat_p95_ms": round(percentile(lat, 95), 1),
            "lat_max_ms": round(max(lat), 1) if lat else None,
            "max_gap_ms": round(max(gaps), 1) if gaps else None,
        }
    print_report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


def print_report(r: dict) -> None:
    c = r["config"]
    print(
        f"{c['frames']} frames {c['size']} bgr8 at {c['rate_hz']} Hz (sent in {r['send_s']} s, {r['send_late']} late),"
        f" camera {c['camera_qos']} -> node {'reliable' if c['node_reliable'] else 'SensorData'};"
        f" profile {c['profile'] or '-'}; FASTDDS_BUILTIN_TRANSPORTS={c['builtin_transports'] or '-'};"
        f" range {c['discovery_range']}"
    )
    print(
        f"sent {r['sent']} | lost in transport {r['frames_lost_transport']} ({r['lost_source']}) |"
        f" received {r['frames_received']} | processed {r['frames_processed']} | dropped {r['frames_dropped']}"
        f" | stale {r['frames_stale']} | rejected {r['frames_rejected']}"
    )
    s, e = r["node_rss_kB"]["start"], r["node_rss_kB"]["end"]
    print(
        f"node VmRSS {s.get('VmRSS', 0) / 1024:.0f} MiB -> {e.get('VmRSS', 0) / 1024:.0f} MiB"
        f" (RssShmem {s.get('RssShmem', 0) / 1024:.0f} -> {e.get('RssShmem', 0) / 1024:.0f} MiB)"
    )
    print(f"{'output topic':22} | {'messages':8} | {'p50 ms':8} | {'p95 ms':8} | {'max ms':8} | {'max gap ms':10}")
    for topic, o in r["outputs"].items():
        print(
            f"{topic:22} | {o['messages']:<8} | {o['lat_p50_ms']:<8} | {o['lat_p95_ms']:<8} | "
            f"{str(o['lat_max_ms']):8} | {str(o['max_gap_ms']):10}"
        )


if __name__ == "__main__":
    raise SystemExit(main())
