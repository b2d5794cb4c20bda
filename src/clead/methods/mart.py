"""MART (Wang et al., "Improving Adversarial Robustness Requires Revisiting Misclassified Examples", ICLR 2020).

L = BCE(p(x_adv), y) + beta * KL(p(x) || p(x_adv)) * (1 - p_y(x)),
BCE = CE(x_adv, y) - log(1 - max_{k != y} p_k(x_adv)); x_adv by PGD on CE started at x + 0.001 * N(0, 1),
as in the authors' code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..precision import fp32_loss
from .base import METHODS, Method
from .trades import TradesParams, kl_per_sample


@METHODS.register("mart")
class MART(Method):
    Params = TradesParams

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int):
        return {"x_adv": self.budget.attack(init="normal")(model, x, y)}

    def objective(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, adv, epoch: int):
        bce, kl = mart_terms(model(x), model(adv["x_adv"]), y)
        loss = bce + self.params.beta * kl
        return loss, {"bce": bce.detach(), "kl": kl.detach()}


@fp32_loss
def mart_terms(
    logits_clean: torch.Tensor, logits_adv: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """MART's boosted CE on the adversarial batch and its misclassification-weighted KL, in fp32."""
    p_adv = F.softmax(logits_adv, 1)
    # the most likely wrong class under attack
    top2 = p_adv.topk(2, dim=1).indices
    wrong = torch.where(top2[:, 0] == y, top2[:, 1], top2[:, 0])
    bce = F.cross_entropy(logits_adv, y) + F.nll_loss(torch.log(1.0001 - p_adv + 1e-12), wrong)
    p_true = F.softmax(logits_clean, 1).gather(1, y[:, None]).squeeze(1)
    kl = (kl_per_sample(logits_clean, logits_adv) * (1.0000001 - p_true)).mean()
    return bce, kl
