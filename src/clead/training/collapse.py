"""Catastrophic overfitting: the collapse single-step adversarial training can suffer (Wong et al. 2020).

Within an epoch or two the model stops resisting multi-step attacks while its clean accuracy holds or rises:
it has learnt to defeat the one-step attack it trains on rather than to be robust. The trainer's per-epoch
validation sees it, and this module says when: an epoch **collapsed** when its validation robust accuracy is
below ``RATIO`` times the best of the earlier epochs while its clean accuracy is no more than ``CLEAN_SLACK``
below that best epoch's (it holds or rises). A fall of both is divergence, not overfitting to the attack.

The trainer marks every such epoch in ``metrics.jsonl`` (``"collapsed": true``), logs the first, and never
keeps one as ``best.pt``.
"""

from __future__ import annotations

from typing import Any, Iterable

RATIO = 0.5
# two points: about the standard error of a clean accuracy near 80% on 500 validation images, doubled
CLEAN_SLACK = 0.02


def best_robust(history: Iterable[dict[str, Any]]) -> dict[str, Any] | None:
    """The earlier epoch with the highest validation robust accuracy (the first of equals), or None."""
    best = None
    for record in history:
        if best is None or record["val_pgd"] > best["val_pgd"]:
            best = record
    return best


def collapsed(history: Iterable[dict[str, Any]], val_clean: float, val_robust: float) -> bool:
    """Whether an epoch with these validation accuracies collapsed, after the epochs of ``history`` (records
    with ``val_clean`` and ``val_pgd``, as in ``metrics.jsonl``)."""
    best = best_robust(history)
    if best is None or best["val_pgd"] <= 0:
        return False
    return val_robust < RATIO * best["val_pgd"] and val_clean >= best["val_clean"] - CLEAN_SLACK


def collapse_epoch(metrics: list[dict[str, Any]]) -> int | None:
    """The first epoch (1-based, as recorded) marked collapsed in a run's metrics, or None."""
    return next((m["epoch"] for m in metrics if m.get("collapsed")), None)


def robust_fall_epoch(metrics: list[dict[str, Any]]) -> int | None:
    """The first epoch whose validation robust accuracy is below ``RATIO`` times the best of the earlier epochs,
    whatever its clean accuracy did, or None: when the robustness went, which can be epochs before the guard's
    first collapsed epoch where clean accuracy fell with it for a while (divergence first, then overfitting)."""
    for i, m in enumerate(metrics):
        best = best_robust(metrics[:i])
        if best is not None and best["val_pgd"] > 0 and m["val_pgd"] < RATIO * best["val_pgd"]:
            return m["epoch"]
    return None
