"""Attacks: ``attack(model, x, y) -> x_adv``; evaluation presets are registered by name in `ATTACKS`."""

from . import autoattack, cw, fgsm, pgd  # noqa: F401  (register presets)
from .base import ATTACKS, Attack, Objective, ce_objective, project
from .cw import CWLinf, cw_margin_objective
from .fgsm import FGSM
from .nfgsm import NFGSM
from .pgd import PGD


def create_attack(name: str, eps: float, norm: str = "linf", restarts: int | None = None) -> Attack:
    factory = ATTACKS.get(name)
    return factory(eps, norm) if restarts is None else factory(eps, norm, restarts)


__all__ = [
    "ATTACKS",
    "Attack",
    "Objective",
    "ce_objective",
    "project",
    "CWLinf",
    "cw_margin_objective",
    "FGSM",
    "NFGSM",
    "PGD",
    "create_attack",
]
