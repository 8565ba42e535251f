"""The allocator policy (ppad_core/runtime/allocator.py): what glibc does with freed 64 MB blocks, per policy and
per entry point, counted as minor page faults (getrusage) in fresh processes, where the policy is applied."""

from __future__ import annotations

import logging
import os
import resource
import subprocess
import sys
import textwrap

import pytest

from ppad_core.runtime import allocator
from ppad_ros.launch_support import allocator_environment

from conftest import REPO

BLOCK_MB = 64
CYCLES = 20
BLOCK_PAGES = (BLOCK_MB << 20) // resource.getpagesize()

# Allocates, touches and frees a 64 MB torch tensor CYCLES times in the main thread, then in a new thread (the
# node infers in one), after warm-up cycles (glibc's thread cache pins a few freed blocks at first), and prints
# the minor page faults of each. {setup} is what the process does first: an entry point or the policy itself.
PROBE = """
import resource, threading
{setup}
import torch

def cycles(count):
    for _ in range(count):
        block = torch.empty({block_mb} << 18)
        block.fill_(1.0)
        del block

def faults(into):
    cycles(8)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    cycles({cycles})
    into.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

counts = []
faults(counts)
thread = threading.Thread(target=faults, args=(counts,))
thread.start()
thread.join()
print("faults", *counts)
"""
POLICY = "from ppad_core.runtime.allocator import configure_allocator\nconfigure_allocator()"
ENTRY_POINTS = {
    "ppad": "from ppad_core.cli import main\nmain(['--help'])",
    "bag_eval": "from ppad_ros.bag_eval import main\nmain(['--help'])",
    "bag_from_images": "from ppad_ros.bag_from_images import main\nmain(['--help'])",
    # rclpy.init is the node main's first step after the policy: stop there, before DDS starts
    "perception_node": textwrap.dedent("""
        import ppad_ros.perception_node as node
        def stop(args=None):
            raise SystemExit(0)
        node.rclpy.init = stop
        node.main([])
        """),
}


def _start(setup: str, extra_env: dict[str, str]) -> subprocess.Popen:
    env = {key: value for key, value in os.environ.items() if not key.startswith("MALLOC_") and key != "LD_PRELOAD"}
    env.pop(allocator.ENV_VAR, None)  # unset: the entry points' default, tuned
    env |= extra_env
    # `--help` exits through SystemExit: the probe runs after it, in the same process
    wrapped = f"try:\n{textwrap.indent(setup, '    ')}\nexcept SystemExit:\n    pass"
    code = PROBE.format(setup=wrapped, block_mb=BLOCK_MB, cycles=CYCLES)
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _faults(process: subprocess.Popen) -> tuple[int, int]:
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    line = next(line for line in out.splitlines() if line.startswith("faults "))
    main_thread, other_thread = (int(word) for word in line.split()[1:])
    return main_thread, other_thread


@pytest.fixture(scope="module")
def measured() -> dict[str, tuple[int, int]]:
    """(main-thread, other-thread) faults over CYCLES cycles per case, every process started at once."""
    cases = {"default": (POLICY, {"PPAD_ALLOCATOR": "default"}), "tuned": (POLICY, {"PPAD_ALLOCATOR": "tuned"})}
    cases |= {name: (setup, {}) for name, setup in ENTRY_POINTS.items() if name != "perception_node"}
    if _node_importable():
        cases["perception_node"] = (ENTRY_POINTS["perception_node"], {})
        # as perception.launch.py starts it: the environment form of the policy from the first allocation
        cases["launched_node"] = (ENTRY_POINTS["perception_node"], allocator_environment("", environ={}))
    processes = {name: _start(setup, env) for name, (setup, env) in cases.items()}
    return {name: _faults(process) for name, process in processes.items()}


def _node_importable() -> bool:
    if os.environ.get("PPAD_REQUIRE_ROS"):
        return True  # a missing ROS is a failure there
    try:
        import vision_msgs.msg  # noqa: F401

        import ppad_ros.msg  # noqa: F401
    except ImportError:
        return False
    return True


def test_default_policy_leaves_glibc_faulting_every_block_in_again(measured):
    # glibc's own behaviour: each freed 64 MB block is unmapped and the next one faulted in page by page
    main_thread, other_thread = measured["default"]
    assert main_thread >= 0.9 * CYCLES * BLOCK_PAGES
    assert other_thread >= 0.9 * CYCLES * BLOCK_PAGES


def test_tuned_policy_reuses_freed_blocks_in_every_thread(measured):
    default_main, default_thread = measured["default"]
    main_thread, other_thread = measured["tuned"]
    assert main_thread < 0.2 * default_main
    assert other_thread < 0.2 * default_thread  # one arena: a second thread's blocks are kept too


@pytest.mark.parametrize("entry_point", list(ENTRY_POINTS))
def test_every_entry_point_applies_the_policy(measured, entry_point):
    """With PPAD_ALLOCATOR unset, as a user starts them; the main thread (where ppad and the bag tool infer). A
    second thread is covered only if no other thread allocated before main ran, which rclpy's import breaks in the
    node: the launch file's environment covers it (next test)."""
    if entry_point not in measured:
        pytest.skip("ROS 2 (rclpy, vision_msgs, ppad_ros.msg) is not importable here")
    assert measured[entry_point][0] < 0.2 * measured["default"][0]


def test_launched_node_keeps_the_inference_threads_blocks_too(measured):
    if "launched_node" not in measured:
        pytest.skip("ROS 2 (rclpy, vision_msgs, ppad_ros.msg) is not importable here")
    default_main, default_thread = measured["default"]
    main_thread, other_thread = measured["launched_node"]
    assert main_thread < 0.2 * default_main and other_thread < 0.2 * default_thread


def test_launch_allocator_argument_or_the_launching_environment_picks_the_policy():
    tuned = allocator_environment("", environ={})
    assert tuned == {"PPAD_ALLOCATOR": "tuned", **allocator.TUNED_ENVIRONMENT}
    assert allocator_environment("tuned", environ={"PPAD_ALLOCATOR": "default"}) == tuned  # the argument wins
    assert allocator_environment("", environ={"PPAD_ALLOCATOR": "default"}) == {"PPAD_ALLOCATOR": "default"}
    assert allocator_environment("default", environ={}) == {"PPAD_ALLOCATOR": "default"}
    with pytest.raises(ValueError, match="allocator:='fast' is not one of tuned, default"):
        allocator_environment("fast", environ={})
    with pytest.raises(ValueError, match="PPAD_ALLOCATOR='fast' is not one of tuned, default"):
        allocator_environment("", environ={"PPAD_ALLOCATOR": "fast"})


@pytest.fixture
def fresh(monkeypatch):
    """The module as before any configure_allocator call, with a mallopt that records instead of tuning this
    pytest process."""
    calls = []

    def fake_mallopt(parameter: int, value: int) -> int:
        calls.append((parameter, value))
        return 1

    monkeypatch.setattr(allocator, "_current", None)
    monkeypatch.setattr(allocator, "_glibc_mallopt", lambda: (fake_mallopt, ""))
    monkeypatch.delenv("LD_PRELOAD", raising=False)
    return calls


def test_default_calls_nothing_and_tuned_sets_every_parameter_once(fresh):
    setting = allocator.configure_allocator("default")
    assert fresh == [] and not setting.applied
    assert allocator.configure_allocator("tuned") is setting  # the first call decided; nothing changes later
    assert fresh == []


def test_tuned_sets_the_documented_parameters(fresh):
    setting = allocator.configure_allocator("tuned")
    assert setting.applied and fresh == [(number, value) for _, number, value in allocator.TUNED_MALLOPT]
    names = {name for name, _, _ in allocator.TUNED_MALLOPT}
    assert names == {"M_MMAP_MAX", "M_TRIM_THRESHOLD", "M_TOP_PAD", "M_ARENA_MAX"}
    # the environment form names the same settings with the same values
    assert sorted(allocator.TUNED_ENVIRONMENT.values()) == sorted(str(v) for _, _, v in allocator.TUNED_MALLOPT)


def test_other_c_library_or_preloaded_allocator_is_a_logged_no_op(monkeypatch, caplog):
    monkeypatch.setattr(allocator, "_current", None)

    def no_such_name(name):
        raise ValueError("unrecognized configuration name")

    monkeypatch.setattr(os, "confstr", no_such_name)  # what macOS and musl answer
    with caplog.at_level(logging.INFO, logger=allocator.__name__):
        setting = allocator.configure_allocator("tuned")
    assert not setting.applied and "not glibc" in setting.detail
    assert "not glibc" in caplog.text
    monkeypatch.setattr(allocator, "_current", None)
    monkeypatch.setenv("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2")
    setting = allocator.configure_allocator("tuned")
    assert not setting.applied and "jemalloc" in setting.detail


def test_unknown_policy_is_refused_with_the_choices(monkeypatch, capsys):
    with pytest.raises(allocator.AllocatorError, match="PPAD_ALLOCATOR='fast' is not one of tuned, default"):
        allocator.requested_policy({"PPAD_ALLOCATOR": "fast"})
    assert allocator.requested_policy({}) == "tuned" and allocator.requested_policy({"PPAD_ALLOCATOR": ""}) == "tuned"
    assert allocator.requested_policy({"PPAD_ALLOCATOR": " Default "}) == "default"
    # the `ppad` command refuses it at start-up, like any bad option: exit status 2 and the allowed values
    monkeypatch.setattr(allocator, "_current", None)
    monkeypatch.setenv("PPAD_ALLOCATOR", "fast")
    from ppad_core.cli import main

    assert main(["--help"]) == 2
    assert "PPAD_ALLOCATOR='fast' is not one of tuned, default" in capsys.readouterr().err
