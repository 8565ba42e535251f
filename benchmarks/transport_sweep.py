"""Transport sweep: how many sensor_msgs/Image samples of each size survive DDS on this machine.

A publisher process sends `--count` frames of each size (bgr8, 1280 wide, as many rows as the size
needs) at `--rate` Hz to a receiver; the table shows sent, received, lost and the arrival latency.
The receiver is either a second probe process (`--target probe`, the default: pure transport) or the
perception node (`--target node`: received = the node's /diagnostics `frames_received`).

Every run is one combination of QoS (`be`: best-effort publisher and SensorData subscriber, depth 5;
`rel`: reliable publisher and reliable subscriber, depth 5; `probe`: reliable publisher, best-effort
subscriber, as test/ros_helpers.Probe does against the node's default) and Fast DDS configuration
(`--config`: `env` = the environment as scripts/ros_env.sh sets it but without any
FASTDDS_DEFAULT_PROFILES_FILE, `xml` = with `FASTDDS_DEFAULT_PROFILES_FILE=config/fastdds_localhost.xml`,
`xml-pub` / `xml-sub` = that profile in the publisher / subscriber process only, or any
`NAME=path/to/profile.xml`).
All ROS processes run with ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST on `--domain` (default 230).

The receiver's UDP sockets (with their kernel drop counters and buffer sizes, from /proc/net/udp and
`ss`) and the Fast DDS shared-memory segments that appeared in /dev/shm are reported per run, so a
table row also says which transport carried the data. From the repository root:

    python benchmarks/transport_sweep.py --sizes 0.1,0.69,2.7,6 --count 20 --rate 5 --qos be,rel --config env,xml
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_PROFILE = REPO / "config" / "fastdds_localhost.xml"
WIDTH = 1280  # a 1280x720 bgr8 frame is 2.76 MB


# ----- roles (run as subprocesses) -------------------------------------------------------------------
def _qos(kind: str, side: str):
    from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data

    reliable = kind == "rel" or (kind == "probe" and side == "pub")
    if side == "sub" and not reliable:
        return qos_profile_sensor_data
    return QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT)


def role_sub(args) -> int:
    """Count frames per size until SIGINT, then print one JSON line."""
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("sweep_sub")
    got: dict[int, list] = {}

    def on_image(msg: Image) -> None:
        now = time.time()
        sent = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        got.setdefault(msg.height, []).append([int(msg.header.frame_id or 0), now - sent])

    node.create_subscription(Image, args.topic, on_image, _qos(args.qos, "sub"))
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    print("ready", flush=True)
    while not stop:
        rclpy.spin_once(node, timeout_sec=0.1)
    print(json.dumps({str(k): v for k, v in got.items()}), flush=True)
    node.destroy_node()
    rclpy.shutdown()
    return 0


def role_pub(args) -> int:
    """Wait for a matched reader, prime, then send `count` frames per size at `rate`."""
    import numpy as np
    import rclpy
    from sensor_msgs.msg import Image

    rclpy.init()
    node = rclpy.create_node("sweep_pub")
    pub = node.create_publisher(Image, args.topic, _qos(args.qos, "pub"))
    deadline = time.monotonic() + 30
    while pub.get_subscription_count() == 0 and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.1)
    if pub.get_subscription_count() == 0:
        print("no subscriber matched", file=sys.stderr)
        return 2
    end = time.monotonic() + args.prime_s  # both ends must have matched the data endpoints
    while time.monotonic() < end:
        pub.publish(_frame(np, Image, 2, 0))  # height 2 = priming, not counted
        rclpy.spin_once(node, timeout_sec=0.1)
    sent = {}
    for size in args.sizes:
        rows = max(4, round(size * 1e6 / (WIDTH * 3)))
        template = _frame(np, Image, rows, 0)
        period = 1.0 / args.rate
        start = time.monotonic()
        for i in range(args.count):
            target = start + i * period
            while time.monotonic() < target:
                time.sleep(min(0.005, max(0.0, target - time.monotonic())))
            now = time.time()
            template.header.stamp.sec, template.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
            template.header.frame_id = str(i)
            pub.publish(template)
        sent[rows] = args.count
        time.sleep(args.settle_s)
    print(json.dumps(sent), flush=True)
    time.sleep(1.0)  # let a reliable writer finish repairs before it disappears
    node.destroy_node()
    rclpy.shutdown()
    return 0


def _frame(np, Image, rows: int, value: int):
    msg = Image(height=rows, width=WIDTH, encoding="bgr8", is_bigendian=0, step=WIDTH * 3)
    msg.data = np.full(rows * WIDTH * 3, value, np.uint8).tobytes()
    return msg


# ----- orchestration ---------------------------------------------------------------------------------
def ros_env(domain: int, profile: str | None, extra: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(domain)
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("FASTDDS_DEFAULT_PROFILES_FILE", None)
    env.pop("FASTRTPS_DEFAULT_PROFILES_FILE", None)
    if profile:
        env["FASTDDS_DEFAULT_PROFILES_FILE"] = str(Path(profile).resolve())
    for item in extra:
        key, _, value = item.partition("=")
        if value:
            env[key] = value
        else:
            env.pop(key, None)
    return env


def node_command(ns: str, *parameters: str) -> list[str]:
    """The perception node with the student profile, no overlay, `parameters` (NAME:=VALUE), in namespace `ns`."""
    cmd = [sys.executable, "-m", "ppad_ros.perception_node", "--ros-args"]
    cmd += ["--params-file", str(REPO / "config" / "student.yaml"), "-p", "publish_overlay:=false"]
    for parameter in parameters:
        cmd += ["-p", parameter]
    return cmd + ["-r", f"__ns:={ns}"]


def shm_segments() -> dict[str, int]:
    """Fast DDS files in /dev/shm (segments, port queues, their locks) -> apparent size in bytes."""
    out = {}
    try:
        names = os.listdir("/dev/shm")
    except OSError:
        return out
    for name in names:
        if "fastdds" in name or "fast_datasharing" in name:
            try:
                out[name] = os.stat(f"/dev/shm/{name}").st_size
            except OSError:
                pass
    return out


def udp_sockets(pid: int) -> list[dict]:
    """The process's UDP sockets: local port, receive queue, kernel drops and receive-buffer size."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").glob("*"):
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    sockets = []
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            if len(f) >= 13 and f[9] in inodes:
                port = int(f[1].split(":")[1], 16)
                rxq = int(f[4].split(":")[1], 16)
                sockets.append({"port": port, "rx_queue": rxq, "drops": int(f[12]), "inode": f[9]})
    rcvbuf = _ss_rcvbuf()
    for s in sockets:
        s["rcvbuf"] = rcvbuf.get(s["port"])
    return sockets


def _ss_rcvbuf() -> dict[int, int]:
    """Local port -> SO_RCVBUF as the kernel holds it (`ss -uamn`, skmem rb)."""
    try:
        text = subprocess.run(["ss", "-uamn"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.TimeoutExpired):
        return {}
    out, port = {}, None
    for line in text.splitlines():
        m = re.search(r"\s(\S+):(\d+)\s+\S+:\S+\s*$", line)
        if m:
            port = int(m.group(2))
            continue
        m = re.search(r"skmem:\(r\d+,rb(\d+)", line)
        if m and port is not None:
            out[port] = int(m.group(1))
            port = None
    return out


def percentile(values: list[float], q: float) -> float:
    """numpy's (linear) percentile; NaN for no values."""
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def run_probe(args, qos: str, config: str, profile: str | None, side: str = "both") -> list[dict]:
    """`side`: which process gets the profile (both, pub, sub) - a camera driver started without it."""
    env = ros_env(args.domain, profile, args.env)
    sub_env = env if side in ("both", "sub") else ros_env(args.domain, None, args.env)
    pub_env = env if side in ("both", "pub") else ros_env(args.domain, None, args.env)
    me = [sys.executable, __file__, "--topic", args.topic, "--qos-one", qos]
    before = shm_segments()
    sub = subprocess.Popen(me + ["--role", "sub"], cwd=REPO, env=sub_env, stdout=subprocess.PIPE, text=True)
    sub.stdout.readline()  # "ready"
    pub_cmd = me + ["--role", "pub", "--count", str(args.count), "--rate", str(args.rate)]
    pub_cmd += ["--sizes", ",".join(map(str, args.sizes)), "--settle-s", str(args.settle_s)]
    pub = subprocess.Popen(pub_cmd, cwd=REPO, env=pub_env, stdout=subprocess.PIPE, text=True)
    time.sleep(2.0)
    during = {k: v for k, v in shm_segments().items() if k not in before}
    pub_out, _ = pub.communicate(timeout=600)
    sockets = udp_sockets(sub.pid)
    sub.send_signal(signal.SIGINT)
    sub_out, _ = sub.communicate(timeout=30)
    sent = {int(k): v for k, v in json.loads(pub_out.strip().splitlines()[-1] or "{}").items()} if pub_out else {}
    got = {int(k): v for k, v in json.loads(sub_out.strip().splitlines()[-1]).items()}
    transport = _transport_note(during, sockets)
    rows = []
    for rows_px, n in sorted(sent.items()):
        samples = got.get(rows_px, [])
        received = len({i for i, _ in samples})
        lat = [d * 1e3 for _, d in samples]
        rows.append(
            {
                "config": config,
                "qos": qos,
                "target": "probe",
                "MB": round(rows_px * WIDTH * 3 / 1e6, 2),
                "sent": n,
                "received": received,
                "lost": n - received,
                "lat_p50_ms": round(percentile(lat, 50), 1),
                "lat_p95_ms": round(percentile(lat, 95), 1),
                "transport": transport,
            }
        )
    return rows


def run_node(args, qos: str, config: str, profile: str | None) -> list[dict]:
    """Per size: a fresh node, frames sent by this process, frames_received from /diagnostics."""
    env = ros_env(args.domain, profile, args.env)
    os.environ.update({k: v for k, v in env.items() if k.startswith(("ROS_", "FASTDDS", "RMW_"))})
    for key in ("FASTDDS_DEFAULT_PROFILES_FILE",):
        if key not in env:
            os.environ.pop(key, None)
    import numpy as np
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from sensor_msgs.msg import Image

    ns = "/sweep"
    cmd = node_command(ns, "warmup_iterations:=1")
    if qos == "rel":
        cmd += ["-p", f"qos_overrides.{ns}/image.subscription.reliability:=reliable"]
    before = shm_segments()
    log = open(args.log_dir / f"sweep_node_{config}_{qos}.log", "w")
    node_proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    rclpy.init()
    node = rclpy.create_node("sweep_probe")
    pub = node.create_publisher(Image, f"{ns}/image", _qos(qos, "pub"))
    diag = {}

    def on_diag(msg) -> None:
        for status in msg.status:
            if status.name.endswith(f"{ns}/perception"):
                diag.update({kv.key: kv.value for kv in status.values} | {"_message": status.message})

    node.create_subscription(DiagnosticArray, "/diagnostics", on_diag, 10)
    rows = []
    try:
        deadline = time.monotonic() + 180
        while not (diag.get("_message", "").startswith("ready") and pub.get_subscription_count()):
            rclpy.spin_once(node, timeout_sec=0.1)
            if time.monotonic() > deadline or node_proc.poll() is not None:
                raise RuntimeError(f"node not ready; see {log.name}")
        end = time.monotonic() + args.prime_s
        while time.monotonic() < end:
            pub.publish(_frame(np, Image, 4, 0))
            rclpy.spin_once(node, timeout_sec=0.1)
        _spin_for(rclpy, node, 1.5)
        during = {k: v for k, v in shm_segments().items() if k not in before}
        sockets = udp_sockets(node_proc.pid)
        for size in args.sizes:
            rows_px = max(4, round(size * 1e6 / (WIDTH * 3)))
            base = int(diag.get("frames_received", 0))
            template = _frame(np, Image, rows_px, 0)
            start = time.monotonic()
            for i in range(args.count):
                while time.monotonic() < start + i / args.rate:
                    rclpy.spin_once(node, timeout_sec=0.002)
                now = time.time()
                template.header.stamp.sec, template.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
                pub.publish(template)
            _spin_for(rclpy, node, args.settle_s + 1.2)
            received = int(diag.get("frames_received", 0)) - base
            rows.append(
                {
                    "config": config,
                    "qos": qos,
                    "target": "node",
                    "MB": round(rows_px * WIDTH * 3 / 1e6, 2),
                    "sent": args.count,
                    "received": received,
                    "lost": args.count - received,
                    "lat_p50_ms": float("nan"),
                    "lat_p95_ms": float("nan"),
                    "transport": _transport_note(during, udp_sockets(node_proc.pid) or sockets),
                }
            )
    finally:
        node.destroy_node()
        rclpy.shutdown()
        stop(node_proc)
    return rows


def stop(process: subprocess.Popen) -> None:
    """SIGINT (the node's clean shutdown), then kill after 15 s."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def _spin_for(rclpy, node, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)


def _transport_note(shm: dict[str, int], sockets: list[dict]) -> str:
    """SHM segments (fastdds_<16 hex>, with their sizes) and the receiver's UDP sockets."""
    segments = sorted(v for k, v in shm.items() if re.fullmatch(r"fastdds_[0-9a-f]{16}", k))
    seg = "/".join(f"{v / 2**20:g}M" for v in sorted(set(segments))) or "-"
    drops = sum(s["drops"] for s in sockets)
    bufs = sorted({s["rcvbuf"] for s in sockets if s.get("rcvbuf")})
    return (
        f"shm={len(segments)}x{seg} udp_socks={len(sockets)} udp_drops={drops} rcvbuf={'/'.join(map(str, bufs)) or '?'}"
    )


def print_table(rows: list[dict]) -> None:
    cols = ["config", "qos", "target", "MB", "sent", "received", "lost", "lat_p50_ms", "lat_p95_ms", "transport"]
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in cols}
    print(" | ".join(c.ljust(widths[c]) for c in cols))
    print("-+-".join("-" * widths[c] for c in cols))
    for r in rows:
        print(" | ".join(str(r[c]).ljust(widths[c]) for c in cols))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], epilog="See the module docstring.")
    parser.add_argument("--sizes", default="0.1,0.3,0.69,1.0,2.7,6.0", help="frame sizes in MB, comma separated")
    parser.add_argument("--count", type=int, default=20, help="frames per size")
    parser.add_argument("--rate", type=float, default=5.0, help="frames per second")
    parser.add_argument("--qos", default="be,rel", help="comma list of be, rel, probe")
    parser.add_argument("--config", default="env,xml", help="comma list: env, xml, or NAME=profile.xml")
    parser.add_argument("--target", default="probe", choices=("probe", "node"))
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every ROS process (KEY= unsets)")
    parser.add_argument("--domain", type=int, default=230, help="ROS_DOMAIN_ID of every process started")
    parser.add_argument("--settle-s", type=float, default=1.0, help="pause after each size")
    parser.add_argument("--prime-s", type=float, default=2.0, help="small frames sent before counting")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    parser.add_argument("--log-dir", type=Path, default=Path("/tmp"))
    parser.add_argument("--topic", default="/sweep/image", help=argparse.SUPPRESS)
    parser.add_argument("--role", choices=("sub", "pub"), help=argparse.SUPPRESS)
    parser.add_argument("--qos-one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.sizes = [float(s) for s in str(args.sizes).split(",") if s]
    if args.role:
        args.qos = args.qos_one
        return role_sub(args) if args.role == "sub" else role_pub(args)
    rows = []
    for config in args.config.split(","):
        side = "both"
        if config == "env":
            profile = None
        elif config in ("xml", "xml-pub", "xml-sub"):
            profile, side = str(DEFAULT_PROFILE), (config.split("-") + ["both"])[1]
        else:
            config, _, profile = config.partition("=")
        for qos in args.qos.split(","):
            if args.target == "probe":
                new = run_probe(args, qos, config, profile, side)
            else:
                new = run_node(args, qos, config, profile)
            rows += new
            print_table(new)
            print(flush=True)
    print("== all runs ==")
    print_table(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
