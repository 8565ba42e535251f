"""`ppad train`: a run killed with SIGKILL and resumed ends where an uninterrupted run ends; DDP on gloo."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from ppad_core.data.synth import generate_dataset

from conftest import REPO

TINY = REPO / "test" / "data" / "rmt_ppad_tiny.yaml"


@pytest.fixture(scope="module")
def train_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    data = root / "data"
    generate_dataset(data, {"train": 16, "val": 4}, seed=5, width=320, height=180, workers=1, progress=False)
    config = {
        "model": str(TINY),
        "data": {"root": str(data), "cache": False, "workers": 1},
        "epochs": 3,
        "batch_size": 4,
        "precision": "fp32",
        "optimizer": {"name": "adamw", "lr": 0.001, "momentum": 0.9, "weight_decay": 0.0001, "nominal_batch": 4},
        "schedule": {"warmup_epochs": 1, "min_warmup_iters": 2},
        "ema": {"decay": 0.99, "tau": 5},
        "augment": {"mosaic": 0.5},
        "close_mosaic": 1,
        "val_every": 1,
        "seed": 3,
    }
    path = root / "tiny.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _train(*args, **kwargs):
    command = [sys.executable, "-m", "ppad_core.cli", "train", *args, "--no-progress"]
    return subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600, **kwargs)


def _start_training(config, run_dir) -> subprocess.Popen:
    """`ppad train` in the background, to be killed mid-run."""
    command = [sys.executable, "-m", "ppad_core.cli", "train", str(config), "--run-dir", str(run_dir), "--no-progress"]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _rows(run_dir) -> int:
    path = run_dir / "results.csv"
    return max(len(path.read_text().splitlines()) - 1, 0) if path.is_file() else 0


def test_killed_and_resumed_run_matches_uninterrupted_run(train_config, tmp_path):
    straight = tmp_path / "straight"
    result = _train(str(train_config), "--run-dir", str(straight))
    assert result.returncode == 0, result.stderr
    assert _rows(straight) == 3 and (straight / "best" / "model.safetensors").is_file()

    killed = tmp_path / "killed"
    process = _start_training(train_config, killed)
    deadline = time.time() + 300
    while _rows(killed) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)  # during epoch 3
    process.wait()
    assert _rows(killed) == 2, "the run must die before finishing its last epoch"

    result = _train("--resume", str(killed))
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stderr
    a = torch.load(straight / "last_state.pt", weights_only=True)
    b = torch.load(killed / "last_state.pt", weights_only=True)
    assert a["epoch"] == b["epoch"] == 2
    for part in ("model", "ema"):
        worst = max((a[part][k].double() - b[part][k].double()).abs().max().item() for k in a[part])
        assert worst < 1e-6, part
    assert [r["loss"] for r in a["history"]] == pytest.approx([r["loss"] for r in b["history"]], rel=1e-6)


def test_run_killed_inside_an_epoch_resumes_from_its_last_iteration_save(train_config, tmp_path):
    config = yaml.safe_load(train_config.read_text()) | {"epochs": 1, "save_every_iters": 1, "val_every": 0}
    path = tmp_path / "within.yaml"
    path.write_text(yaml.safe_dump(config))
    straight = tmp_path / "straight"
    assert _train(str(path), "--run-dir", str(straight)).returncode == 0

    killed = tmp_path / "killed"
    process = _start_training(path, killed)
    state_file, deadline = killed / "last_state.pt", time.time() + 300
    while not state_file.is_file() and time.time() < deadline and process.poll() is None:
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)  # inside the only epoch (16 images, 4 iterations, a save after each)
    process.wait()
    saved = torch.load(state_file, weights_only=True)
    assert saved["epoch"] == 0 and 1 <= saved["within"]["iteration"] <= 3 and _rows(killed) == 0

    result = _train("--resume", str(killed))
    assert result.returncode == 0, result.stderr
    assert f"in epoch 1 after iteration {saved['within']['iteration']}" in result.stderr
    a = torch.load(straight / "last_state.pt", weights_only=True)
    b = torch.load(state_file, weights_only=True)
    assert a["within"] is None and b["within"] is None  # the last save of a finished epoch is an epoch's
    for part in ("model", "ema"):
        worst = max((a[part][k].double() - b[part][k].double()).abs().max().item() for k in a[part])
        assert worst < 1e-6, part
    assert a["history"][0]["loss"] == pytest.approx(b["history"][0]["loss"], rel=1e-6)


def test_existing_run_is_not_overwritten_and_bad_config_is_named(train_config, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "last_state.pt").write_bytes(b"")
    result = _train(str(train_config), "--run-dir", str(run))
    assert result.returncode == 2 and "--resume" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"model": str(TINY), "optimizer": {"name": "lion"}}))
    result = _train(str(bad))
    assert result.returncode == 2 and "bad.yaml" in result.stderr and "sgd or adamw" in result.stderr


def test_two_process_ddp_on_gloo(train_config, tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1", "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "ppad_core.cli",
        "train",
        str(train_config),
        "--run-dir",
        str(run),
        "--set",
        "epochs=1",
        "--no-progress",
    ]
    result = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert _rows(run) == 1
    state = torch.load(run / "last_state.pt", weights_only=True)
    assert state["epoch"] == 0 and torch.isfinite(torch.tensor(state["history"][0]["loss"]))
    # Both ranks stepped in lockstep on half the data each: 16 images / (2 ranks x 2 per rank) = 4 steps.
    assert state["optimizer"]["state"][0]["step"].item() == 4
