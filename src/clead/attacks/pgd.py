"""Projected gradient descent (Madry et al. 2018) for Linf and L2, with restarts and per-sample best."""

from __future__ import annotations

import torch
from torch import nn

from ..errors import CleadError
from .base import ATTACKS, Attack, Objective, ce_objective, project


def _view(t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return t.view(-1, *([1] * (like.ndim - 1)))


# Noise shaped like ``x``: from the global generator on x's device (training), or from ``g`` on the CPU.
def _randn(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return torch.randn_like(x) if g is None else torch.randn(x.shape, generator=g).to(x)


def _uniform(x: torch.Tensor, low: float, high: float, g: torch.Generator | None) -> torch.Tensor:
    if g is None:
        return torch.empty_like(x).uniform_(low, high)
    return torch.empty(x.shape).uniform_(low, high, generator=g).to(x)


def _radius(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    """One uniform number in [0, 1) per sample."""
    if g is None:
        return torch.rand(x.shape[0], device=x.device, dtype=x.dtype)
    return torch.rand(x.shape[0], generator=g).to(x)


class PGD(Attack):
    """PGD maximising ``objective`` inside the eps-ball.

    Args:
        eps: radius of the threat model.
        steps: gradient steps per restart.
        alpha: step size; default ``2.5 * eps / steps`` (Madry et al.).
        norm: ``linf`` (sign steps) or ``l2`` (normalised gradient steps).
        init: ``uniform`` start in the ball (Linf: uniform per pixel; L2: uniform radius along a random
            direction), ``normal`` (0.001 * N(0, 1), as in the TRADES and MART reference code) or ``zero``.
        restarts: independent runs; with ``keep_best`` the best iterate over all of them is returned.
        objective: what to maximise, see `clead.attacks.base.Objective`.
        keep_best: return, per sample, the iterate that fools the model (or else has the highest
            loss) rather than the last one. Evaluation uses it; training uses the last iterate.
    """

    def __init__(
        self,
        eps: float,
        steps: int = 10,
        alpha: float | None = None,
        norm: str = "linf",
        init: str = "uniform",
        restarts: int = 1,
        objective: Objective = ce_objective,
        keep_best: bool = True,
    ) -> None:
        super().__init__(eps, norm)
        if norm not in ("linf", "l2"):
            raise CleadError(f"PGD steps in linf or l2, not {norm}; use an AutoAttack preset for l1")
        if steps < 1 or restarts < 1:
            raise ValueError("steps and restarts must be >= 1")
        self.steps = steps
        self.alpha = 2.5 * eps / steps if alpha is None else alpha
        if init not in ("uniform", "normal", "zero"):
            raise ValueError(f"init must be uniform, normal or zero, not {init!r}")
        self.init = init
        self.restarts = restarts
        self.objective = objective
        self.keep_best = keep_best

    def init_delta(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """The random start: from ``generator`` when given (drawn on the CPU in float32, so the same start
        on every device), else from the global generator on ``x``'s device, as in training."""
        if self.init == "zero" or self.eps == 0:
            return torch.zeros_like(x)
        if self.init == "normal":
            delta = 0.001 * _randn(x, generator)
        elif self.norm == "linf":
            delta = _uniform(x, -self.eps, self.eps, generator)
        else:
            d = _randn(x, generator)
            d = d / _view(d.flatten(1).norm(dim=1).clamp_min(1e-12), x)
            delta = d * _view(_radius(x, generator), x) * self.eps
        return self.project(x, delta)

    def project(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        """Where a step may go: the eps-ball around ``x``, inside [0, 1]."""
        return project(x, delta, self.eps, self.norm)

    def step(self, delta: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
        if self.norm == "linf":
            return delta + self.alpha * grad.sign()
        g = grad / _view(grad.flatten(1).norm(dim=1).clamp_min(1e-12), grad)
        return delta + self.alpha * g

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        best_x = x.clone()
        best_fooled = torch.zeros(x.shape[0], dtype=torch.bool, device=x.device)
        best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)

        def keep(candidate: torch.Tensor, loss: torch.Tensor, logits: torch.Tensor) -> None:
            fooled = logits.argmax(1) != y
            better = (fooled & ~best_fooled) | ((fooled == best_fooled) & (loss > best_loss))
            best_x[better] = candidate[better]
            best_loss[better] = loss[better]
            best_fooled[better] = fooled[better]

        for r in range(self.restarts):
            delta = self.init_delta(x, self.generator(r))
            for _ in range(self.steps):
                delta.requires_grad_(True)
                loss, logits = self.objective(model, x + delta, y)
                (grad,) = torch.autograd.grad(loss.sum(), delta)
                delta = delta.detach()
                if self.keep_best:
                    keep(x + delta, loss.detach(), logits.detach())
                delta = self.project(x, self.step(delta, grad))
            if not self.keep_best:
                return x + delta
            with torch.no_grad():
                loss, logits = self.objective(model, x + delta, y)
            keep(x + delta, loss, logits)
        return best_x

    def __repr__(self) -> str:
        return (
            f"PGD(eps={self.eps:g}, norm={self.norm}, steps={self.steps}, alpha={self.alpha:g}, "
            f"restarts={self.restarts})"
        )


@ATTACKS.register("pgd20")
def pgd20(eps: float, norm: str = "linf", restarts: int = 1) -> PGD:
    """PGD, 20 steps, one random start."""
    return PGD(eps, steps=20, norm=norm)


@ATTACKS.register("pgd50")
def pgd50(eps: float, norm: str = "linf", restarts: int = 3) -> PGD:
    """PGD, 50 steps, ``restarts`` random starts (default 3), best per sample."""
    return PGD(eps, steps=50, norm=norm, restarts=restarts)
