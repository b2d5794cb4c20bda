"""CW-Linf: PGD on the Carlini-Wagner margin loss (Carlini & Wagner 2017; used as "CW-inf" by TRADES/MART)."""

from __future__ import annotations

import torch
from torch import nn

from .base import ATTACKS
from .pgd import PGD


def cw_margin_objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """max_{j != y} z_j - z_y: positive exactly when the sample is misclassified."""
    logits = model(x)
    true = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.masked_fill(torch.nn.functional.one_hot(y, logits.shape[1]).bool(), -float("inf"))
    return other.max(1).values - true, logits


class CWLinf(PGD):
    def __init__(self, eps: float, steps: int = 30, norm: str = "linf", restarts: int = 1) -> None:
        super().__init__(eps, steps=steps, norm=norm, restarts=restarts, objective=cw_margin_objective)

    def __repr__(self) -> str:
        return f"CW(eps={self.eps:g}, norm={self.norm}, steps={self.steps}, restarts={self.restarts})"


@ATTACKS.register("cw")
def cw(eps: float, norm: str = "linf", restarts: int = 1) -> CWLinf:
    """PGD-30 on the CW margin loss."""
    return CWLinf(eps, norm=norm)
