"""Fast gradient sign method (Goodfellow et al. 2015); for L2, one normalised-gradient step."""

from __future__ import annotations

from .base import ATTACKS
from .pgd import PGD


class FGSM(PGD):
    """One step of size eps from the clean point; the clean point is kept if the step does not help."""

    def __init__(self, eps: float, norm: str = "linf") -> None:
        super().__init__(eps, steps=1, alpha=eps, norm=norm, init="zero", restarts=1)

    def __repr__(self) -> str:
        return f"FGSM(eps={self.eps:g}, norm={self.norm})"


@ATTACKS.register("fgsm")
def fgsm(eps: float, norm: str = "linf", restarts: int = 1) -> FGSM:
    return FGSM(eps, norm=norm)
