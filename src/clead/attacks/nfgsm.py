"""N-FGSM (de Jorge et al., "Make Some Noise: Reliable and Efficient Single-Step Adversarial Training",
NeurIPS 2022): a training attack, not an evaluation preset.

Start from ``x + eta``, ``eta ~ U(-k*eps, k*eps)`` per pixel (Linf; for L2 a uniform radius in the
``k*eps``-ball along a random direction), take one gradient step of ``alpha`` (default ``eps``) and do
**not** project back onto the eps-ball, only into [0, 1]. The training perturbation may therefore reach
``(k + 1) * eps`` in the attack's norm: the noise and the larger effective step are what keep single-step
training from catastrophic overfitting without the clipping of FGSM-RS. This is the one attack that
leaves the eps-ball (the contract in `clead.attacks.base`), by design; its bound is `radius`.
"""

from __future__ import annotations

import torch

from .base import Objective, ce_objective
from .pgd import PGD


class NFGSM(PGD):
    """One step of ``alpha`` from a noise start of radius ``noise * eps``, projected onto [0, 1] only."""

    def __init__(self, eps: float, noise: float = 2.0, alpha: float | None = None, norm: str = "linf",
                 objective: Objective = ce_objective) -> None:  # fmt: skip
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        super().__init__(eps, steps=1, alpha=eps if alpha is None else alpha, norm=norm, objective=objective,
                         keep_best=False)  # fmt: skip
        self.noise = float(noise)

    @property
    def radius(self) -> float:
        """The largest perturbation it can return: noise plus one step."""
        return self.noise * self.eps + self.alpha

    def init_delta(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        # PGD's uniform start in the noise ball, kept inside [0, 1]
        return PGD(self.noise * self.eps, steps=1, norm=self.norm).init_delta(x, generator)

    def project(self, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
        return (x + delta).clamp(0.0, 1.0) - x

    def __repr__(self) -> str:
        return f"NFGSM(eps={self.eps:g}, norm={self.norm}, noise={self.noise:g}, alpha={self.alpha:g})"
