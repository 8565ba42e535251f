"""The process's memory-allocator policy: glibc malloc tuned so that a forward's large tensors are reused, not
returned to the kernel and faulted in again on every call.

Why: a forward allocates and frees full-resolution tensors (segmentation features and logits at the input size,
tens of MB each). With glibc's defaults every block above the mmap threshold (128 KiB, raised dynamically up to
32 MiB) is a fresh mmap() and a munmap() on free, and the top of the heap is trimmed back to the kernel: each call
zero-fills and faults in every page again, hundreds of thousands of minor page faults per 640x640 forward.

The switch, read from the environment when an entry point starts:

    PPAD_ALLOCATOR=tuned     (the default) the settings below
    PPAD_ALLOCATOR=default   glibc left exactly as it is (nothing called)

Every entry point applies it first thing: `ppad` (ppad_core.cli.main), `perception_node`, `bag_eval` and
`bag_from_images`. Library users (`ppad_core.load`, `Predictor` in their own program) get it by calling
`configure_allocator()` once at start-up, before the model is built.

What `tuned` sets, with glibc's mallopt(3) through ctypes, in this process (no re-exec; child processes are not
affected unless they are ppad entry points themselves):

    M_MMAP_MAX        0        no block is served by mmap(): large tensors come from the heap and go back to it
    M_TRIM_THRESHOLD  2 GiB-1  the free top of the heap is kept (the largest value mallopt takes: an int)
    M_TOP_PAD         64 MiB   the heap grows in steps of at least this much (fewer brk calls while warming up)
    M_ARENA_MAX       1        threads allocate from the main heap too: a thread's own arena is made of 64 MiB
                               heaps that glibc unmaps when they empty, and a block above 64 MiB (the paper
                               model's [2, 64, 640, 640] decoder tensors are 200 MiB) is mmap()ed there whatever
                               M_MMAP_MAX says

Setting any of the first three also turns glibc's dynamic mmap threshold off. There is no M_MMAP_THRESHOLD to
tune once mmap is off (and its largest value, 32 MiB, is below a full-resolution tensor anyway).

The node: mallopt's M_ARENA_MAX only binds threads that have not allocated yet, and it cannot take back arenas
that exist: importing rclpy (before any main runs) makes two, and the node's inference thread may be handed one
of them. So perception.launch.py also starts the node with the same settings as environment variables, which
glibc reads before the interpreter runs (`TUNED_ENVIRONMENT`, MALLOC_ARENA_MAX=1 MALLOC_MMAP_MAX_=0 ...; launch
argument `allocator`, ppad_ros.launch_support.allocator_environment). A node started otherwise (`ros2 run`,
`python -m`) gets mallopt alone: its main thread is covered, and its inference thread's blocks below 64 MiB are
reused, but blocks above that are mapped and faulted in on every frame; `MALLOC_ARENA_MAX=1` in its environment
covers them. Elsewhere the environment form is not needed: `ppad` and the bag tool infer on the main thread, and
measured the same as mallopt there (benchmarks/allocator.py, arm `env`).

What it costs: memory freed by a forward stays in the process (resident size is the peak working set, which the
next forward needs again anyway; a few percent more peak in benchmarks/allocator.py); a one-off peak (export,
a large batch) is not returned to the system unless over 2 GiB of heap top is free. The first calls after start-up
still grow the heap: glibc keeps up to 7 small alignment remainders per size in each thread's cache, and each pins
a freed block until that cache is full (a warm-up of two or three forwards covers it).

Limits: it changes allocations made after the call. Memory that ONNX Runtime and OpenVINO keep in their own
arenas is not glibc's to tune (ONNX Runtime's fp32 forward faults no pages after warm-up with either policy).
Where the C library is not glibc (musl, macOS, Windows), or an allocator such as jemalloc or tcmalloc is preloaded
(LD_PRELOAD), `tuned` does nothing and says so in a log line (logging, level INFO).
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass

ENV_VAR = "PPAD_ALLOCATOR"
POLICIES = ("tuned", "default")
DEFAULT_POLICY = "tuned"

_TRIM_THRESHOLD = 2**31 - 1  # mallopt's value is a C int
_TOP_PAD = 64 << 20
# (name, mallopt parameter number from glibc's <malloc.h>, value)
TUNED_MALLOPT = (
    ("M_ARENA_MAX", -8, 1),
    ("M_MMAP_MAX", -4, 0),
    ("M_TRIM_THRESHOLD", -1, _TRIM_THRESHOLD),
    ("M_TOP_PAD", -2, _TOP_PAD),
)
# The same settings as glibc reads them from the environment at process start: what perception.launch.py gives
# the node (ppad_ros.launch_support.allocator_environment).
TUNED_ENVIRONMENT = {
    "MALLOC_ARENA_MAX": "1",
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(_TRIM_THRESHOLD),
    "MALLOC_TOP_PAD_": str(_TOP_PAD),
}
_REPLACEMENT_ALLOCATORS = ("jemalloc", "tcmalloc", "mimalloc")

log = logging.getLogger(__name__)


class AllocatorError(ValueError):
    """PPAD_ALLOCATOR has a value that is not a policy."""


@dataclass(frozen=True)
class AllocatorSetting:
    """What `configure_allocator` did: the policy asked for, whether glibc was changed, and a readable account."""

    policy: str
    applied: bool
    detail: str


_current: AllocatorSetting | None = None


def requested_policy(environ: Mapping[str, str] = os.environ) -> str:
    """The policy PPAD_ALLOCATOR names (tuned when unset or empty); an AllocatorError for any other value."""
    value = environ.get(ENV_VAR, "").strip().lower() or DEFAULT_POLICY
    if value not in POLICIES:
        raise AllocatorError(f"{ENV_VAR}={environ[ENV_VAR]!r} is not one of {', '.join(POLICIES)}")
    return value


def configure_allocator(policy: str | None = None) -> AllocatorSetting:
    """Apply `policy` (default: the one PPAD_ALLOCATOR names) to this process, once: later calls return the first
    call's setting and change nothing (glibc's own defaults cannot be restored). Never raises on a platform it
    cannot tune; raises AllocatorError for an unknown policy."""
    global _current
    if policy is None:
        policy = requested_policy()
    elif policy not in POLICIES:
        raise AllocatorError(f"allocator policy {policy!r} is not one of {', '.join(POLICIES)}")
    if _current is not None:
        if _current.policy != policy:
            log.info("allocator: already %s in this process; %s ignored", _current.policy, policy)
        return _current
    if policy == "default":
        _current = AllocatorSetting(policy, False, "glibc defaults (nothing changed)")
    else:
        _current = _apply_tuned()
    not_tuned = policy == "tuned" and not _current.applied  # another platform: say so, never fail
    log.log(logging.INFO if not_tuned else logging.DEBUG, "allocator %s: %s", policy, _current.detail)
    return _current


def _apply_tuned() -> AllocatorSetting:
    preloaded = [name for name in _REPLACEMENT_ALLOCATORS if name in os.environ.get("LD_PRELOAD", "")]
    if preloaded:
        return AllocatorSetting("tuned", False, f"{preloaded[0]} is preloaded (LD_PRELOAD): glibc malloc not tuned")
    mallopt, reason = _glibc_mallopt()
    if mallopt is None:
        return AllocatorSetting("tuned", False, f"{reason}: allocator left as it is")
    done, failed = [], []
    for name, parameter, value in TUNED_MALLOPT:
        (done if mallopt(parameter, value) == 1 else failed).append(f"{name}={value}")
    if failed:
        log.warning("allocator: glibc refused mallopt %s", ", ".join(failed))
    return AllocatorSetting("tuned", bool(done), "glibc mallopt " + ", ".join(done) if done else "mallopt refused all")


def _glibc_mallopt():
    """glibc's mallopt as a ctypes function and "", or None and why not."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION") or ""
    except (AttributeError, ValueError, OSError):  # no confstr (Windows) or no such name (macOS, musl)
        version = ""
    if not version.startswith("glibc"):
        return None, "the C library is not glibc"
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process already runs on
    except (OSError, AttributeError) as exc:
        return None, f"glibc mallopt not found ({exc})"
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt, ""
