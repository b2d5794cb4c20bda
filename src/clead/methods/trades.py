"""TRADES (Zhang et al., "Theoretically Principled Trade-off between Robustness and Accuracy", ICML 2019).

L = CE(f(x), y) + beta * KL(p(x) || p(x_adv)),  x_adv = argmax_{||d|| <= eps} KL(p(x) || p(x + d)),
the inner max started at x + 0.001 * N(0, 1) and run with the clean distribution from eval mode, as in
the authors' code (KL summed over classes, averaged over the batch).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from ..models.base import eval_mode
from ..precision import fp32_loss
from .base import METHODS, Method


@fp32_loss
def kl_per_sample(logits_clean: torch.Tensor, logits_adv: torch.Tensor) -> torch.Tensor:
    """KL(softmax(clean) || softmax(adv)) per sample."""
    log_p = F.log_softmax(logits_clean, 1)
    return (log_p.exp() * (log_p - F.log_softmax(logits_adv, 1))).sum(1)


@dataclass
class TradesParams:
    beta: float = field(default=6.0, metadata={"help": "TRADES/MART: weight of the robustness regulariser"})


@METHODS.register("trades")
class TRADES(Method):
    Params = TradesParams

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int):
        with torch.no_grad(), eval_mode(model):
            clean_logits = model(x)

        def objective(m: nn.Module, xa: torch.Tensor, ya: torch.Tensor):
            logits = m(xa)
            return kl_per_sample(clean_logits, logits), logits

        return {"x_adv": self.budget.attack(objective, init="normal")(model, x, y)}

    def objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, adv, epoch: int):
        logits_clean, logits_adv = model(x), model(adv["x_adv"])
        ce = F.cross_entropy(logits_clean, y)
        kl = kl_per_sample(logits_clean, logits_adv).mean()
        loss = ce + self.params.beta * kl
        return loss, {"ce": ce.detach(), "kl": kl.detach()}
