"""Robustness evaluation: clean accuracy, each attack's accuracy, and the per-sample worst case.

A sample counts as robust only if it is classified correctly clean *and* under every attack run
(the worst case per sample, not the minimum of per-attack accuracies, which can only be higher).
Attacks run only on samples still correctly classified clean; the others count as broken anyway.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from . import run as runmod
from .attacks import create_attack
from .attacks.base import check_threat_model
from .config import parse_eps
from .data import load_dataset, to_float
from .errors import CleadError
from .io import write_json

DEFAULT_ATTACKS = ("fgsm", "pgd20", "pgd50", "cw")


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch_size].to(device)).argmax(1).cpu() for i in range(0, len(x), batch_size)])


def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    eps: float | str = 0.1,
    norm: str = "linf",
    batch_size: int = 128,
    seed: int = 0,
    restarts: int | None = None,
    device: str | torch.device | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate any classifier (input [0, 1] NCHW, output logits) on tensors ``x``, ``y``.

    Returns a dict with ``clean_accuracy``, ``robust_accuracy`` (worst case per sample over all attacks),
    ``per_attack`` (name -> accuracy), ``threat_model``, ``eps``, ``n``, ``seed`` and per-sample details.
    """
    eps = parse_eps(eps)
    check_threat_model(eps, norm)
    if len(x) == 0:
        raise CleadError("the evaluation set is empty (n = 0)")
    if x.dtype == torch.uint8:
        x = to_float(x)
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise CleadError("inputs must be images in [0, 1]")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    built = {name: create_attack(name, eps, norm, restarts) for name in attacks}  # unknown names fail early
    was_training = model.training
    model.eval()
    try:
        correct = _predict(model, x, batch_size, device) == y
        per_sample: dict[str, torch.Tensor] = {}
        seconds: dict[str, float] = {}
        for name, attack in built.items():
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            ok = correct.clone()
            idx = correct.nonzero().squeeze(1)
            chunks = range(0, len(idx), batch_size)
            for i in tqdm(chunks, desc=name, disable=not progress, leave=False, dynamic_ncols=True):
                j = idx[i : i + batch_size]
                xb, yb = x[j].to(device), y[j].to(device)
                x_adv = attack(model, xb, yb)
                with torch.no_grad():
                    ok[j] = (model(x_adv).argmax(1) == yb).cpu()
            per_sample[name] = ok
            seconds[name] = round(time.perf_counter() - t0, 2)
    finally:
        model.train(was_training)
    robust = correct.clone()
    for ok in per_sample.values():
        robust &= ok
    n = len(y)
    return {
        "clean_accuracy": float(correct.float().mean()),
        "robust_accuracy": float(robust.float().mean()),
        "per_attack": {name: float(ok.float().mean()) for name, ok in per_sample.items()},
        "threat_model": norm,
        "eps": eps,
        "n": n,
        "seed": seed,
        "attacks": {name: repr(a) for name, a in built.items()},
        "seconds": seconds,
        "per_sample": {"clean": correct, **per_sample, "robust": robust},
    }


def evaluate_run(
    run_dir: str | Path,
    attacks: Sequence[str] = DEFAULT_ATTACKS,
    n: int | None = None,
    checkpoint: str = "best",
    eps: float | str | None = None,
    batch_size: int = 128,
    seed: int = 0,
    restarts: int | None = None,
    device: str = "auto",
    progress: bool = True,
) -> dict[str, Any]:
    """Evaluate a run on the first ``n`` test images (all by default) and write ``RUN/eval.json``.

    The model, dataset and default eps come from the run's own config.
    """
    run_dir = Path(run_dir)
    cfg = runmod.read_config(run_dir)
    model = runmod.load_model(run_dir, checkpoint).to(runmod.resolve_device(device))
    data = load_dataset(cfg.dataset, cfg.data_dir)
    if n is not None and n < 1:
        raise CleadError(f"--n must be >= 1, got {n}")
    x, y = data.test_x[:n], data.test_y[:n]
    result = evaluate(model, x, y, attacks, eps=cfg.eps if eps is None else eps, norm=cfg.norm,
                      batch_size=batch_size, seed=seed, restarts=restarts, progress=progress)  # fmt: skip
    result.pop("per_sample")
    result = {"run": run_dir.name, "method": cfg.method, "model": cfg.model, "dataset": cfg.dataset,
              "checkpoint": checkpoint, **result}  # fmt: skip
    write_json(run_dir / "eval.json", result)
    return result
