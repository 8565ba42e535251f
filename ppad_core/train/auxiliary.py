"""Extra loss terms the trainer is given (feature distillation is one, built by `compress`).

The trainer knows only this protocol, so training does not depend on what the term computes: the
caller hands `Trainer` factories, each called once with the student after the EMA copy is made (so
hooks a term registers live on the trained model only, never on the EMA or the saved checkpoint).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import torch
from torch import nn

from ppad_core.model.rmt_ppad import RMTPPAD


class AuxiliaryLoss(Protocol):
    """One term added to the task losses at every step."""

    name: str  # logged as loss_<name> (epoch log, results.csv)
    trainable: nn.Module  # extra weights optimised with the student and kept in the training state; may be empty
    provenance: dict[str, Any]  # merged into the provenance of every checkpoint the run writes

    def loss(self, images: torch.Tensor) -> torch.Tensor:
        """The term's value, called under the step's autocast right after the student's forward on `images`."""
        ...


AuxiliaryLossFactory = Callable[[RMTPPAD], AuxiliaryLoss]
