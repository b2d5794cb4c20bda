"""The attack contract.

An attack is called as ``attack(model, x, y) -> x_adv``. It takes the model per call, runs it in eval
mode and restores the model's previous mode afterwards, never accumulates parameter gradients, and
returns points inside the eps-ball around ``x`` (Linf or L2) and inside [0, 1].

An *objective* is what the attack maximises: ``objective(model, x_adv, y) -> (loss_per_sample, logits)``.
Returning per-sample losses lets PGD keep the best iterate of each sample.

Random starts: an attack whose ``seed`` is set draws each restart's start from its own generator, seeded
with ``derive_seed(seed, restart)``, so its result depends on nothing else drawn before it (evaluation
sets it per attack and chunk); with ``seed = None`` (training) starts come from torch's global generator.
"""

from __future__ import annotations

import hashlib
from fractions import Fraction
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import CleadError
from ..models.base import eval_mode
from ..registry import Registry

Objective = Callable[[nn.Module, torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
NORMS = ("linf", "l2", "l1")  # l1: AutoAttack presets only (PGD here steps in linf and l2)

#: Evaluation presets: name -> factory(eps, norm, restarts) -> Attack.
ATTACKS: Registry = Registry("attack")


def ce_objective(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy of the true class (the PGD objective of Madry et al. 2018)."""
    logits = model(x)
    return F.cross_entropy(logits, y, reduction="none"), logits


def derive_seed(*parts: object) -> int:
    """A seed in [0, 2**63) fixed by ``parts`` (ints and strings), on every machine and Python version.

    ``derive_seed(seed, chunk, "pgd20")`` and ``derive_seed(seed, chunk, "cw")`` are unrelated numbers, so
    attacks seeded this way never share a random start, whatever order they run in."""
    text = "\x1f".join(f"{type(p).__name__}:{p}" for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big") >> 1


def check_threat_model(eps: float, norm: str) -> None:
    if norm not in NORMS:
        raise CleadError(f"unknown norm {norm!r}; valid: {', '.join(NORMS)}")
    if not 0.0 <= eps <= 1.0 and norm == "linf":
        raise CleadError(f"eps={eps} is outside [0, 1] (images are in [0, 1]); use e.g. 0.1 or 8/255")
    if eps < 0.0:
        raise CleadError(f"eps={eps} is negative")


class Attack:
    """Base class: handles the model's mode; subclasses implement `perturb`."""

    def __init__(self, eps: float, norm: str = "linf") -> None:
        check_threat_model(eps, norm)
        self.eps = float(eps)
        self.norm = norm
        self.seed: int | None = None  # see the module docstring: own random starts when set

    def generator(self, restart: int = 0) -> torch.Generator | None:
        """The CPU generator of restart ``restart``'s random start, or None (global RNG) without a seed."""
        if self.seed is None:
            return None
        return torch.Generator().manual_seed(derive_seed(self.seed, restart))

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        with eval_mode(model), torch.enable_grad():
            return self.perturb(model, x.detach(), y).detach()

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:  # pragma: no cover
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}(eps={self.eps:g}, norm={self.norm})"


def project(x: torch.Tensor, delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project ``delta`` onto the eps-ball and so that ``x + delta`` stays in [0, 1]."""
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (delta.ndim - 1)))
        delta = delta * (eps / norms).clamp(max=1.0)
    return (x + delta).clamp(0.0, 1.0) - x


def parse_eps(value: Any) -> float:
    """A number or a fraction such as ``8/255``."""
    if isinstance(value, bool):
        raise CleadError(f"eps must be a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(Fraction(str(value).strip()))
    except (ValueError, ZeroDivisionError):
        raise CleadError(f"eps must be a number or a fraction like 8/255, got {value!r}") from None


def format_eps(eps: float) -> str:
    """eps as people write it, for display (the inverse of `parse_eps`): a fraction of 255 where it is one of the
    radii quoted that way (``8/255``, up to 64/255) and has no short decimal form, else 3 significant digits
    (``0.1``, ``0.667``)."""
    k = round(eps * 255)
    if 0 < k <= 64 and abs(eps * 255 - k) < 1e-6 and float(f"{eps:.3g}") != eps:
        return f"{k}/255"
    return f"{eps:.3g}"


def attack_counts(
    model: nn.Module,
    attack: Attack,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    seed: int | None,
    device: torch.device | str | None = None,
) -> tuple[int, int]:
    """Images classified correctly clean and under ``attack``, in batches of ``batch_size`` (uint8 images are
    scaled batch by batch). With a ``seed``, batch ``b`` draws its random starts from
    ``derive_seed(seed, b, repr(attack))``, so two attacks never share a start and the counts depend only on
    the samples, the attack and ``seed``; with None the attack draws them as it is set (training's
    validation: the global RNG). ``attack.seed`` is restored afterwards."""
    from ..data import to_float

    clean = robust = 0
    own = attack.seed
    try:
        for b, i in enumerate(range(0, len(x), batch_size)):
            if seed is not None:
                attack.seed = derive_seed(seed, b, repr(attack))
            xb, yb = x[i : i + batch_size], y[i : i + batch_size]
            xb = to_float(xb) if xb.dtype == torch.uint8 else xb
            if device is not None:
                xb, yb = xb.to(device), yb.to(device)
            with torch.no_grad():
                clean += int((model(xb).argmax(1) == yb).sum())
            x_adv = attack(model, xb, yb) if attack.eps > 0 else xb
            with torch.no_grad():
                robust += int((model(x_adv).argmax(1) == yb).sum())
    finally:
        attack.seed = own
    return clean, robust
