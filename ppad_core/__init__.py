"""ppad core: the RMT-PPAD multi-task perception model and its life cycle, free of any ROS dependency."""

from ppad_core._version import __version__
from ppad_core.model.checkpoint import load, load_checkpoint, save_checkpoint
from ppad_core.model.config import ModelConfig, load_model_config
from ppad_core.model.rmt_ppad import RMTPPAD, build_model

__all__ = [
    "RMTPPAD",
    "ModelConfig",
    "__version__",
    "build_model",
    "load",
    "load_checkpoint",
    "load_model_config",
    "save_checkpoint",
]
