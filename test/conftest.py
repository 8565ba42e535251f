"""Shared fixtures: models with well-conditioned random weights."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from ppad_core.model.config import ModelConfig, load_model_config
from ppad_core.model.rmt_ppad import RMTPPAD, build_model

REPO = Path(__file__).resolve().parent.parent
# Every ROS participant these tests start (in this process or a child) stays on loopback.
os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
os.environ.setdefault("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
# the in-process probe writes the camera frames: its participant needs the large shared-memory segment too
os.environ.setdefault("FASTDDS_DEFAULT_PROFILES_FILE", str(REPO / "config" / "fastdds_localhost.xml"))
CONFIGS = REPO / "config"


def run_ppad(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """Run the `ppad` command line in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, "-m", "ppad_core.cli", *args],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=check,
        timeout=600,
    )


def conditioned_model(config: ModelConfig, seed: int = 0, batches: int = 3) -> RMTPPAD:
    """A random model whose BatchNorm statistics are estimated on random images.

    At plain random init the deep ReLU backbone shrinks activations to ~1e-6, so encoder scores tie
    and top-k query selection becomes order-sensitive; recalibrated BN statistics (as after any
    training) keep activations O(1) and make outputs comparable across numerically different paths.
    """
    torch.manual_seed(seed)
    model = build_model(config)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = None  # cumulative average over the calibration batches
            with torch.no_grad():
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    model.train()
    with torch.no_grad():
        for _ in range(batches):
            model(torch.rand(2, 3, *config.input_size))
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.momentum = 0.03
    return model.eval()


@pytest.fixture(scope="session")
def small_config() -> ModelConfig:
    return load_model_config(CONFIGS / "rmt_ppad_s.yaml")


@pytest.fixture(scope="session")
def large_config() -> ModelConfig:
    return load_model_config(CONFIGS / "rmt_ppad_l.yaml")


@pytest.fixture(scope="session")
def small_model(small_config) -> RMTPPAD:
    return conditioned_model(small_config)
