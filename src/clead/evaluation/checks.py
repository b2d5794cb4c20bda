"""Sanity checks of an evaluation, after Carlini et al., "On Evaluating Adversarial Robustness" (2019),
and the flags of the AutoAttack reference code.

Each check returns ``{"name", "passed" (True / False / None = not run), "numbers", "explanation"}``.
A failed check means the robustness numbers may be inflated by gradient masking or a broken setup.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..attacks import PGD
from ..attacks.base import Attack, attack_counts

#: tolerance for comparing accuracies measured on the same points with different attacks: above float32 rounding
#: of a stored accuracy (about 6e-8 near 1), far below a one-image step (1/n), so equal image counts always get
#: the same verdict (2 of 1,000 images is 0.7540000081 - 0.7519999742 = 0.0020000339 apart)
FLOAT_TOL = 1e-6


def _slack(n: int) -> float:
    """One image, plus the float tolerance."""
    return 1.0 / max(n, 1) + FLOAT_TOL


def _check(name: str, passed: bool | None, numbers: dict[str, Any], explanation: str) -> dict[str, Any]:
    return {"name": name, "passed": passed, "numbers": numbers, "explanation": explanation}


def _acc(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return float((model(x).argmax(1) == y).float().mean())


def attack_accuracy(
    model: nn.Module,
    attack: Attack,
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    seed: int,
    device: torch.device | str | None = None,
) -> float:
    """Accuracy under ``attack`` (:func:`attack_counts` with a seed)."""
    return attack_counts(model, attack, x, y, batch_size, seed, device)[1] / len(x)


def iterative_beats_single_step(per_attack: dict[str, float], n: int) -> dict[str, Any]:
    iterative = {k: v for k, v in per_attack.items() if k.startswith(("pgd", "cw", "autoattack", "apgd"))}
    if "fgsm" not in per_attack or not iterative:
        return _check("iterative_vs_single_step", None, {}, "needs fgsm and an iterative attack among --attacks")
    best = min(iterative, key=iterative.get)
    ok = iterative[best] <= per_attack["fgsm"] + _slack(n)
    return _check(
        "iterative_vs_single_step",
        ok,
        {"fgsm": per_attack["fgsm"], best: iterative[best]},
        "An iterative attack must be at least as strong as one step (FGSM); if not, the loss surface "
        "is masked or the attack is broken.",
    )


MAX_PGD20_GAP = 0.03  # PGD-100 x 2 may lower accuracy by at most this much against PGD-20 (3 points)


def more_steps_do_not_help(
    model, x, y, eps, norm, batch_size, seed, restarts: int = 2, max_drop: float = MAX_PGD20_GAP
) -> dict[str, Any]:
    """PGD-100 x ``restarts`` against PGD-20: higher accuracy means a broken attack; more than ``max_drop``
    lower means PGD-20 has not converged, so PGD-20 numbers overstate robustness (MART at eps 0.3 went from
    52.5% to 24.5%)."""
    a20 = attack_accuracy(model, PGD(eps, steps=20, norm=norm), x, y, batch_size, seed)
    a100 = attack_accuracy(model, PGD(eps, steps=100, norm=norm, restarts=restarts), x, y, batch_size, seed)
    ok = a20 - max_drop - _slack(len(x)) <= a100 <= a20 + _slack(len(x))
    return _check(
        "more_steps_and_restarts",
        ok,
        {"pgd20": a20, f"pgd100x{restarts}": a100, "max_drop": max_drop, "n": len(x)},
        f"PGD with 100 steps and restarts must not leave higher accuracy than PGD-20 (a broken attack), nor "
        f"more than {100 * max_drop:g} points lower (PGD-20 not converged: its numbers overstate robustness).",
    )


def large_eps_breaks_model(model, x, y, batch_size, seed, eps: float = 0.5, limit: float = 0.05) -> dict[str, Any]:
    acc = attack_accuracy(model, PGD(eps, steps=20, norm="linf"), x, y, batch_size, seed)
    return _check(
        "large_eps",
        acc <= limit,
        {"eps": eps, "pgd20": acc, "limit": limit, "n": len(x)},
        f"At Linf eps={eps} any image can be turned into grey, so accuracy must fall to (near) zero; "
        "if it does not, gradients do not lead the attack.",
    )


def monotone_in_eps(eps_list: list[float], accs: list[float], n: int, attack: str) -> dict[str, Any]:
    rises = [(eps_list[i], eps_list[i + 1]) for i in range(len(accs) - 1) if accs[i + 1] > accs[i] + _slack(n)]
    return _check(
        "monotone_in_eps",
        not rises,
        {"eps": eps_list, attack: accs, "rises": rises},
        "A larger eps-ball contains the smaller one, so accuracy must not rise with eps.",
    )


def black_box_not_stronger(sequence_acc: dict[str, float] | None, alpha: float = 0.002) -> dict[str, Any]:
    if not sequence_acc or "square" not in sequence_acc:
        return _check("black_box_not_stronger", None, {}, "needs the Square attack (--attacks autoattack)")
    names = list(sequence_acc)
    before = sequence_acc[names[names.index("square") - 1]] if names.index("square") > 0 else None
    if before is None:
        return _check("black_box_not_stronger", None, {}, "Square ran first")
    drop = before - sequence_acc["square"]
    return _check(
        "black_box_not_stronger",
        drop <= alpha + FLOAT_TOL,
        {"before_square": before, "after_square": sequence_acc["square"], "limit": alpha},
        "The black-box Square attack must not break points that all white-box attacks failed on; "
        "if it does, the gradients are masked (AutoAttack's own flag).",
    )


def zero_gradients(model, x, y, limit: float = 0.01) -> dict[str, Any]:
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y, reduction="sum"), x)
    share = float((grad.flatten(1).abs().sum(1) == 0).float().mean())
    return _check(
        "zero_gradients",
        share <= limit,
        {"share_zero_gradient": share, "limit": limit, "n": len(x)},
        "Points whose input gradient is exactly zero cannot be attacked by gradients; a large share "
        "means masked gradients (e.g. quantised or saturated inputs).",
    )


def deterministic_eval_mode(model, x) -> dict[str, Any]:
    training = [name or type(model).__name__ for name, m in model.named_modules() if m.training]
    with torch.no_grad():
        a, b = model(x), model(x)
    diff = float((a - b).abs().max())
    ok = diff == 0.0 and not training
    return _check(
        "deterministic_eval_mode",
        ok,
        {"max_logit_difference": diff, "modules_in_training_mode": training[:5]},
        "The model must give the same logits twice and be in eval mode; randomness hides gradients "
        "(evaluate randomised defences with EOT instead).",
    )
