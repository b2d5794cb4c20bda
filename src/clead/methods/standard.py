"""Standard training: cross-entropy on clean images (no defence; the reference point)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import METHODS, Method


@METHODS.register("standard")
class Standard(Method):
    adversarial = False

    def objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, adv, epoch: int):
        loss = F.cross_entropy(model(x), y)
        return loss, {"ce": loss.detach()}
