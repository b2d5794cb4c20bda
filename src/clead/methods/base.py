"""The training-method contract.

A method turns a batch into a loss: ``method.loss(model, x, y, epoch) -> (loss, parts)``, in two phases:
``perturb`` makes the adversarial inputs at the current weights, ``objective`` computes the loss from them
(``loss`` is the one after the other). The split is the trainer's one hook between the two: adversarial
weight perturbation (`clead.awp`) moves the weights after ``perturb`` and before ``objective``. It owns its
inner attack (built from the shared `Budget`, so every method gets the same attack budget) and any
extra trainable module (C-LEAD's projection head): a method is an ``nn.Module`` whose parameters the
trainer optimises with the model's and whose state goes into the checkpoint. The trainer knows
nothing else about methods; adding one is one new file here.

Each method declares its knobs as a ``Params`` dataclass; the defaults there are the only defaults.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ..attacks import PGD, Objective, ce_objective
from ..registry import Registry

METHODS: Registry = Registry("method")


@dataclass(frozen=True)
class Budget:
    """The adversary used inside training: the same for every method."""

    eps: float
    norm: str = "linf"
    steps: int = 10
    alpha: float | None = None  # default 2.5 * eps / steps

    def pgd(self, objective: Objective = ce_objective, init: str = "uniform") -> PGD:
        """The inner attack: last iterate, no restarts (as in adversarial training practice)."""
        return PGD(
            self.eps,
            steps=self.steps,
            alpha=self.alpha,
            norm=self.norm,
            init=init,
            objective=objective,
            keep_best=False,
        )


def projection_head(feature_dim: int, hidden: int, out: int) -> nn.Sequential:
    """The contrastive methods' 2-layer MLP head: Linear, ReLU, Linear (SimCLR / SupCon)."""
    return nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


@dataclass
class NoParams:
    """This method has no knobs."""


class Method(nn.Module):
    Params: ClassVar[type] = NoParams

    def __init__(self, params: Any, budget: Budget, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.params = params
        self.budget = budget

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int) -> dict[str, Any]:
        """The adversarial inputs of batch (x, y), made at the current weights (e.g. ``{"x_adv": ...}``).
        Values under the key ``"cache"`` (activations the attack needed anyway) were computed at these weights:
        ``objective`` may reuse them only while the weights are unchanged, and callers that change the
        weights in between drop them."""
        return {}

    def objective(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, adv: dict[str, Any], epoch: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:  # pragma: no cover - abstract
        """The training loss on batch (x, y) with its adversarial inputs ``adv``, and its named parts (detached)."""
        raise NotImplementedError

    def loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, epoch: int
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The training loss on batch (x, y) at 0-based ``epoch``, and its named parts (detached)."""
        return self.objective(model, x, y, self.perturb(model, x, y, epoch), epoch)

    def uses_all_parameters(self) -> bool:
        """Whether every loss of this run depends on all of the method's own parameters. False makes
        DistributedDataParallel search each step's graph for unused ones (C-LEAD's projection head is
        idle during a warm-up), which costs an extra graph traversal per step."""
        return True
