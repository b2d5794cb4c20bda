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

from ..attacks import NFGSM, PGD, Objective, ce_objective
from ..errors import CleadError
from ..registry import Registry

METHODS: Registry = Registry("method")


TRAIN_ATTACKS = ("pgd", "fgsm-rs", "n-fgsm")


@dataclass(frozen=True)
class Budget:
    """The adversary used inside training: the same for every method, which gives it its own objective.

    ``kind`` (``--train-attack``) is the algorithm: ``pgd`` (``steps`` steps of ``alpha``, default
    ``2.5 * eps / steps``, Madry et al. 2018), ``fgsm-rs`` (one step of ``alpha``, default ``1.25 * eps``, from
    a uniform start in the ball, projected back onto it: Wong et al. 2020) or ``n-fgsm`` (one step of
    ``alpha``, default ``eps``, from noise of radius ``noise * eps``, not projected onto the ball: de Jorge
    et al. 2022). ``alpha`` is the step of ``kind``; another kind asked for by name (C-LEAD's
    ``view_attacks``) takes its own default step.
    """

    eps: float
    norm: str = "linf"
    steps: int = 10
    alpha: float | None = None
    kind: str = "pgd"
    noise: float = 2.0

    def __post_init__(self) -> None:
        if self.kind not in TRAIN_ATTACKS:
            raise CleadError(f"unknown training attack {self.kind!r}; valid: {', '.join(TRAIN_ATTACKS)}")

    def attack(self, objective: Objective = ce_objective, init: str = "uniform", kind: str | None = None) -> PGD:
        """The inner attack maximising ``objective``: last iterate, no restarts (as in adversarial training
        practice). ``init`` is PGD's start (TRADES and MART start at ``0.001 * N(0, 1)``); the single-step
        attacks need their random start and keep it. ``kind`` defaults to the run's ``--train-attack``."""
        kind = kind or self.kind
        alpha = self.alpha if kind == self.kind else None
        if kind == "n-fgsm":
            return NFGSM(self.eps, noise=self.noise, alpha=alpha, norm=self.norm, objective=objective)
        if kind == "fgsm-rs":
            alpha = 1.25 * self.eps if alpha is None else alpha
            return PGD(self.eps, steps=1, alpha=alpha, norm=self.norm, objective=objective, keep_best=False)
        return PGD(self.eps, steps=self.steps, alpha=alpha, norm=self.norm, init=init, objective=objective,
                   keep_best=False)  # fmt: skip


def projection_head(feature_dim: int, hidden: int, out: int) -> nn.Sequential:
    """The contrastive methods' 2-layer MLP head: Linear, ReLU, Linear (SimCLR / SupCon)."""
    return nn.Sequential(nn.Linear(feature_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, out))


@dataclass
class NoParams:
    """This method has no knobs."""


class Method(nn.Module):
    Params: ClassVar[type] = NoParams
    # trained against an attack: the trainer's collapse guard (clead.collapse) watches its validation
    adversarial: ClassVar[bool] = True

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
