"""PGD adversarial training (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", ICLR 2018).

min_theta E[ max_{||d|| <= eps} CE(f(x + d), y) ], the inner max by PGD with a uniform random start.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import METHODS, Method


@METHODS.register("pgd-at")
class PGDAT(Method):
    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int):
        return {"x_adv": self.budget.attack()(model, x, y)}

    def objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, adv, epoch: int):
        loss = F.cross_entropy(model(adv["x_adv"]), y)
        return loss, {"ce_adv": loss.detach()}
