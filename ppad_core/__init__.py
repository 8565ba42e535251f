"""ppad core: the RMT-PPAD multi-task perception model and its life cycle, free of any ROS dependency."""

__version__ = "0.1.0"

from ppad_core.model.checkpoint import load, load_checkpoint, save_checkpoint  # noqa: E402
from ppad_core.model.config import ModelConfig, load_model_config  # noqa: E402
from ppad_core.model.rmt_ppad import RMTPPAD, build_model  # noqa: E402

__all__ = ["RMTPPAD", "ModelConfig", "build_model", "load", "load_checkpoint", "load_model_config", "save_checkpoint"]
