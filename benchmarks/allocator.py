"""The allocator policy side by side: the same forward in processes started with PPAD_ALLOCATOR=default and tuned.

The policy is a property of a process (ppad_core/runtime/allocator.py), so each arm is its own child process,
started with its environment and applying the policy the way every ppad entry point does. Each child builds a
predictor per model and backend and warms each up; then the children take turns, a round at a time (the arms'
order flips every round), each round a few network forwards (`Predictor.forward` on a synthetic scene) of each
predictor. Per call: wall latency, minor page faults, user and system CPU time (getrusage of the whole child,
every thread). Per child: its peak resident memory (VmHWM), the memory cost of keeping freed blocks.

Arms: default (glibc as it is), tuned (mallopt at start-up, the entry points' default), and optionally env (the
same glibc settings as MALLOC_* environment variables read at process start, allocator untouched by ppad),
jemalloc and tcmalloc (LD_PRELOAD of Debian's libjemalloc2 / libtcmalloc-minimal4, where installed).

Models: demo (models/rmt_ppad_s_demo at its own 256x448), demo-640 (the same weights at the paper's 640x640,
where the full-resolution tensors pass glibc's largest mmap threshold) and paper (config/rmt_ppad_l.yaml at
640x640, random weights with seed 0: latency does not depend on their values). The ONNX exports are cached
under the ONNX cache (~/.cache/ppad/onnx). Backends: torch (fused fp32 channels-last) and onnxruntime (fp32).
--in-thread runs every forward on one long-lived second thread after importing rclpy, as the node's inference
thread: there mallopt alone misses the paper model's 200 MiB decoder tensors and the env arm (what the launch
file sets) does not. The default run (demo and demo-640, both backends, default and tuned) takes about 2 minutes
on a busy 2-core machine; the paper model adds 4-12 s per forward there (0.6-0.8 s on an idle one). From the
repository root:

    python benchmarks/allocator.py [--models demo demo-640 paper] [--arms default tuned env jemalloc tcmalloc]
                                   [--backends torch onnxruntime] [--rounds 3] [--calls 2] [--in-thread] [--json]

Ratios are within one run; the load average printed with the table says how busy the machine was.
"""

from __future__ import annotations

import argparse
import ctypes.util
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# name: (checkpoint directory or architecture config, network input size or None for the checkpoint's own)
MODELS = {
    "demo": ("models/rmt_ppad_s_demo", None),
    "demo-640": ("models/rmt_ppad_s_demo", (640, 640)),
    "paper": ("config/rmt_ppad_l.yaml", (640, 640)),
}
BACKENDS = ("torch", "onnxruntime")
ARMS = ("default", "tuned", "env", "jemalloc", "tcmalloc")
PRELOADS = {"jemalloc": "jemalloc", "tcmalloc": "tcmalloc_minimal"}  # ctypes.util.find_library names
RANDOM_SEED = 0
MARK = "@@allocator-bench "  # prefixes the worker's answers on stdout; anything else there is a library's


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["demo", "demo-640"], choices=list(MODELS))
    parser.add_argument("--backends", nargs="+", default=list(BACKENDS), choices=BACKENDS)
    parser.add_argument("--arms", nargs="+", default=["default", "tuned"], choices=ARMS)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument("--calls", type=int, default=2, help="forwards of each predictor per round (default 2)")
    parser.add_argument("--warmup", type=int, default=2, help="forwards of each predictor before round 1 (default 2)")
    parser.add_argument(
        "--in-thread",
        action="store_true",
        help="forwards on one long-lived thread of each child, as the node's inference thread (after rclpy's import)",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if min(args.rounds, args.calls) < 1 or args.warmup < 0:
        parser.error("--rounds and --calls must be at least 1, --warmup at least 0")
    result = run(args)
    print(json.dumps(result, indent=2) if args.json else table(result))
    return 0


def run(args: argparse.Namespace) -> dict:
    started = time.time()
    load_before = os.getloadavg()
    arms, skipped = available_arms(args.arms)
    jobs = [(model, backend) for model in args.models for backend in args.backends]
    onnx_files = {model: prepare_onnx(model) for model in args.models if "onnxruntime" in args.backends}
    spec = {"jobs": jobs, "warmup": args.warmup, "onnx": onnx_files, "thread": args.in_thread}
    children = {arm: Child(arm, spec, env) for arm, env in arms.items()}
    try:
        ready = {arm: child.receive() for arm, child in children.items()}  # they start together, then idle
        progress(f"{len(children)} children ready after {time.time() - started:.0f} s")
        calls: dict[tuple, list[dict]] = {(*job, arm): [] for job in jobs for arm in arms}
        for index in range(args.rounds):
            progress(f"round {index + 1}/{args.rounds}")
            for job_index, job in enumerate(jobs):
                for arm in list(arms) if index % 2 == 0 else list(reversed(arms)):
                    children[arm].send({"job": job_index, "calls": args.calls})
                    calls[(*job, arm)] += children[arm].receive()["calls"]
        finals = {arm: child.finish() for arm, child in children.items()}
    finally:
        for child in children.values():
            child.kill()
    rows = [summarise(key, ready[key[2]], jobs.index(key[:2]), values) for key, values in calls.items()]
    add_ratios(rows)
    return {
        "rows": rows,
        "peak_rss_mb": {arm: final["memory_kb"].get("VmHWM", 0) / 1024 for arm, final in finals.items()},
        "skipped_arms": skipped,
        "rounds": args.rounds,
        "calls_per_round": args.calls,
        "warmup": args.warmup,
        "in_thread": args.in_thread,
        "cpu_count": os.cpu_count(),
        "load_average_before": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "seconds": round(time.time() - started, 1),
    }


def available_arms(asked: list[str]) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    """Each asked arm's child environment (changes to this one), and the arms skipped with why."""
    from ppad_core.runtime.allocator import TUNED_ENVIRONMENT

    arms, skipped = {}, {}
    for arm in dict.fromkeys(asked):
        if arm in ("default", "tuned"):
            arms[arm] = {"PPAD_ALLOCATOR": arm}
        elif arm == "env":
            arms[arm] = {"PPAD_ALLOCATOR": "default", **TUNED_ENVIRONMENT}
        else:
            library = ctypes.util.find_library(PRELOADS[arm])
            if library is None:
                skipped[arm] = f"lib{PRELOADS[arm]} not installed"
                continue
            arms[arm] = {"PPAD_ALLOCATOR": "tuned", "LD_PRELOAD": library}  # the policy sees the preload, stays off
    return arms, skipped


def prepare_onnx(model: str) -> str:
    """The fp32 ONNX file the onnxruntime children load, exported here (once, cached) so that they do not race."""
    from ppad_core.model.checkpoint import WEIGHTS_FILE
    from ppad_core.runtime.export import export_onnx, resolve_onnx
    from ppad_core.runtime.options import RuntimeOptions

    source, size = MODELS[model]
    options = RuntimeOptions(backend="onnxruntime")
    if size is None:  # a checkpoint at its own size: the ONNX cache every backend uses
        return str(resolve_onnx(REPO / source, options)[0])
    weights = REPO / source / WEIGHTS_FILE
    content = weights.read_bytes() if weights.is_file() else (REPO / source).read_bytes()
    name = f"{model}-{size[0]}x{size[1]}-seed{RANDOM_SEED}-{hashlib.sha256(content).hexdigest()[:16]}"
    path = options.onnx_cache_dir() / "allocator-bench" / name / "model.onnx"
    if not path.is_file():
        progress(f"exporting {model} to {path} (first use)")
        network = build_model(model)
        export_onnx(network, path, config=RuntimeOptions(input_size=size).model_config(network.config))
    return str(path)


def build_model(model: str):
    """The model's network: the checkpoint's weights, or an architecture with seeded random weights."""
    import torch

    from ppad_core.model.checkpoint import load_or_build

    torch.manual_seed(RANDOM_SEED)
    return load_or_build(str(REPO / MODELS[model][0]))[0]


class Child:
    """One worker process: JSON lines in on stdin, answers on stdout behind MARK."""

    def __init__(self, arm: str, spec: dict, env: dict[str, str]) -> None:
        self.arm = arm
        # this shell's allocator settings do not leak into an arm: only the arm's own
        inherited = {key: value for key, value in os.environ.items() if key != "LD_PRELOAD"}
        environment = {key: value for key, value in inherited.items() if not key.startswith("MALLOC_")}
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--worker", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPO,
            env=environment | env,
        )

    def send(self, message: dict) -> None:
        self.process.stdin.write(json.dumps(message) + "\n")
        self.process.stdin.flush()

    def receive(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(MARK):
                return json.loads(line[len(MARK) :])
        raise RuntimeError(f"the {self.arm} child exited with status {self.process.wait()}")

    def finish(self) -> dict:
        self.send({"stop": True})
        answer = self.receive()
        self.process.wait(timeout=60)
        return answer

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def worker(spec: dict) -> int:
    """A child: apply the policy as an entry point does, build the predictors, warm them up, then serve rounds."""
    if spec["thread"]:
        import rclpy  # noqa: F401  (as in the node, whose main runs after this import made its threads' arenas)
    from concurrent.futures import ThreadPoolExecutor

    from ppad_core.runtime.allocator import configure_allocator

    setting = configure_allocator()
    import numpy as np

    from ppad_core.data.synth import render_scene
    from ppad_core.runtime.benchmark import process_memory_kb
    from ppad_core.runtime.options import RuntimeOptions
    from ppad_core.runtime.predictor import Predictor

    image = render_scene(seed=7, split="val", index=0).image
    predictors = []
    for model, backend in spec["jobs"]:
        if backend == "torch":
            size = MODELS[model][1]
            options = RuntimeOptions(backend="torch", channels_last=True, input_size=size or (0, 0))
            predictor = Predictor.from_model(build_model(model), options)
        else:
            predictor = Predictor.from_onnx(spec["onnx"][model], RuntimeOptions(backend="onnxruntime"))
        predictors.append((predictor, np.ascontiguousarray(predictor.preprocess([image])[0])))
    inference = ThreadPoolExecutor(1) if spec["thread"] else None  # one thread serves every call

    def call(job: int) -> dict:
        predictor, batch = predictors[job]
        return inference.submit(one_call, predictor, batch).result() if inference else one_call(predictor, batch)

    warm = [[call(job) for _ in range(spec["warmup"])] for job in range(len(predictors))]
    descriptions = [predictor.backend.description for predictor, _ in predictors]
    answer({"allocator": setting.detail, "descriptions": descriptions, "warmup": warm})
    for line in sys.stdin:
        message = json.loads(line)
        if message.get("stop"):
            answer({"memory_kb": process_memory_kb(keys=("VmRSS", "VmHWM"))})
            return 0
        answer({"calls": [call(message["job"]) for _ in range(message["calls"])]})
    return 0


def one_call(predictor, batch) -> dict:
    before, start = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    predictor.forward(batch)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF)
    return {
        "ms": wall * 1e3,
        "minflt": after.ru_minflt - before.ru_minflt,
        "user_ms": (after.ru_utime - before.ru_utime) * 1e3,
        "sys_ms": (after.ru_stime - before.ru_stime) * 1e3,
    }


def answer(message: dict) -> None:
    sys.stdout.write(MARK + json.dumps(message) + "\n")
    sys.stdout.flush()


def summarise(key: tuple, ready: dict, job: int, calls: list[dict]) -> dict:
    model, backend, arm = key
    latency = [call["ms"] for call in calls]
    return {
        "model": model,
        "backend": backend,
        "arm": arm,
        "allocator": ready["allocator"],
        "description": ready["descriptions"][job],
        "calls": len(calls),
        "ms_median": statistics.median(latency),
        "ms_min": min(latency),
        "ms_max": max(latency),
        "minflt_median": statistics.median(call["minflt"] for call in calls),
        "minflt_warmup": [call["minflt"] for call in ready["warmup"][job]],
        "user_ms_median": statistics.median(call["user_ms"] for call in calls),
        "sys_ms_median": statistics.median(call["sys_ms"] for call in calls),
    }


def add_ratios(rows: list[dict]) -> None:
    """Each row's median latency over its model and backend's default arm."""
    default = {(row["model"], row["backend"]): row["ms_median"] for row in rows if row["arm"] == "default"}
    for row in rows:
        base = default.get((row["model"], row["backend"]))
        row["vs_default"] = row["ms_median"] / base if base else None


def table(result: dict) -> str:
    header = (
        f"{'model':8} {'backend':11} {'allocator':9} {'median ms':>9} {'range ms':>15} {'x default':>9} "
        f"{'faults/call':>11} {'user ms':>8} {'sys ms':>7}"
    )
    lines = [header, "-" * len(header)]
    for row in result["rows"]:
        ratio = f"{row['vs_default']:.2f}" if row["vs_default"] is not None else "-"
        lines.append(
            f"{row['model']:8} {row['backend']:11} {row['arm']:9} {row['ms_median']:9.1f} "
            f"{row['ms_min']:7.1f}-{row['ms_max']:<7.1f} {ratio:>9} {row['minflt_median']:11.0f} "
            f"{row['user_ms_median']:8.1f} {row['sys_ms_median']:7.1f}"
        )
    before, after = result["load_average_before"], result["load_average_after"]
    lines.append(
        f"{result['rounds']} alternating rounds x {result['calls_per_round']} calls of each predictor after "
        f"{result['warmup']} warm-up calls{' on a second thread' if result['in_thread'] else ''}; "
        f"{result['cpu_count']} cores, load average {before[0]} before and "
        f"{after[0]} after ({result['seconds']} s)"
        + (" - the machine was busy: compare rows within this run only" if max(before[0], after[0]) > 1 else "")
    )
    peaks = ", ".join(f"{arm} {mb:.0f} MB" for arm, mb in result["peak_rss_mb"].items())
    lines.append(f"peak resident memory of each child (every model and backend above): {peaks}")
    for arm, why in result["skipped_arms"].items():
        lines.append(f"skipped {arm}: {why}")
    return "\n".join(lines)


def progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
