"""Standard AutoAttack (Croce & Hein, ICML 2020) through the authors' code, the ``pyautoattack`` package.

Presets: ``autoattack`` (version ``standard``: APGD-CE, APGD-T, FAB-T, Square), ``autoattack-plus``
(version ``plus``), ``apgd`` (APGD-CE then APGD-T with the standard settings: a quick check) and
``apgd-ce`` (APGD-CE alone, used by the eps sweep).
The sub-attacks run as a worst-case cascade: each one only on the points that all earlier ones failed on,
exactly as in ``AutoAttack.run_standard_evaluation``. clead calls that function once per sub-attack so
that it can report the accuracy after each one and resume between chunks; the attacks' settings are
the ones the authors' ``version`` sets.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from .base import ATTACKS, Attack, check_threat_model

VERSIONS = {"autoattack": "standard", "autoattack-plus": "plus", "apgd": "standard", "apgd-ce": "standard"}
SUBSETS = {"apgd": ["apgd-ce", "apgd-t"], "apgd-ce": ["apgd-ce"]}
_NORMS = {"linf": "Linf", "l2": "L2", "l1": "L1"}


class _OncePerMessage(logging.Filter):
    """pyautoattack repeats its warnings on every call; show each one once."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if msg in self.seen:
            return False
        self.seen.add(msg)
        return True


_aa_log = logging.getLogger("auto-attack")
_aa_log.addFilter(_OncePerMessage())


class AutoAttackPreset(Attack):
    """``attack(model, x, y) -> x_adv`` running the preset's cascade; ``cascade`` also says which
    sub-attack broke each point."""

    def __init__(
        self,
        eps: float,
        norm: str = "linf",
        preset: str = "autoattack",
        seed: int = 0,
        num_classes: int | None = None,
        batch_size: int = 500,
    ) -> None:
        check_threat_model(eps, norm)
        super().__init__(eps, norm)
        self.preset = preset
        self.seed = seed
        self.num_classes = num_classes
        self.batch_size = batch_size

    def build(self, model: nn.Module, device: torch.device | str, num_classes: int):
        from pyautoattack import AutoAttack

        aa = AutoAttack(
            model, eps=self.eps, norm=_NORMS[self.norm], version=VERSIONS[self.preset], seed=self.seed, device=device
        )
        # the version's target classes (9; 5 for L1-APGD-T), fewer if the dataset has fewer
        aa.apgd_targeted.n_target_classes = max(1, min(aa.apgd_targeted.n_target_classes, num_classes - 1))
        aa.fab.n_target_classes = max(1, min(aa.fab.n_target_classes, num_classes - 1))
        if self.preset in SUBSETS:
            aa.attacks_to_run = list(SUBSETS[self.preset])
        return aa

    def sequence(self) -> list[str]:
        from pyautoattack import AutoAttack

        aa = AutoAttack(nn.Identity(), eps=self.eps, norm=_NORMS[self.norm], version=VERSIONS[self.preset])
        return list(SUBSETS.get(self.preset, aa.attacks_to_run))

    def cascade(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Adversarial points and, per point, the index in `sequence` of the sub-attack that broke it (-1: none)."""
        device = x.device
        with torch.no_grad():
            num_classes = self.num_classes or model(x[:1]).shape[1]
        aa = self.build(model, device, num_classes)
        aa.verbose = False
        sequence = list(aa.attacks_to_run)
        x_adv = x.clone()
        broken_by = torch.full((len(x),), -1, dtype=torch.long, device=device)
        with torch.no_grad():
            robust = model(x).argmax(1) == y
        for k, name in enumerate(sequence):
            idx = robust.nonzero().squeeze(1)
            if len(idx) == 0:
                break
            aa.attacks_to_run = [name]
            adv, _ = aa.run_standard_evaluation(x[idx], y[idx], batch_size=self.batch_size)
            with torch.no_grad():
                fooled = model(adv).argmax(1) != y[idx]
            hit = idx[fooled]
            x_adv[hit] = adv[fooled]
            broken_by[hit] = k
            robust[hit] = False
        return x_adv, broken_by

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.cascade(model, x, y)[0]

    def __repr__(self) -> str:
        return f"AutoAttack({self.preset}: {', '.join(self.sequence())}; eps={self.eps:g}, norm={self.norm}, seed={self.seed})"


def _preset(name: str):
    def factory(eps: float, norm: str = "linf", restarts: int = 1) -> AutoAttackPreset:
        return AutoAttackPreset(eps, norm, preset=name)

    factory.__doc__ = f"AutoAttack preset {name!r} (pyautoattack version {VERSIONS[name]!r})."
    return factory


for _name in VERSIONS:
    ATTACKS.register(_name)(_preset(_name))
