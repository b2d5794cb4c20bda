"""The training loop. It knows models, data and optimisers; the loss comes from the method.

Reproducible: the data order of epoch ``e`` comes from a generator seeded with ``(seed, e)``, and the
global torch RNG (attack starts, dropout) is saved with every checkpoint, so ``--resume`` after an
interruption finishes with the same weights as an uninterrupted run.
"""
from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from . import run as runmod
from .attacks import PGD
from .config import TrainConfig
from .data import batches, load_dataset, num_batches, split
from .errors import CleadError, TrainingDiverged
from .io import save_torch, write_text, write_yaml

log = logging.getLogger("clead")


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Learning rate at ``progress`` = epochs done (fractional) / total epochs, in [0, 1]."""
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.schedule == "piecewise":
        return cfg.lr * 0.1 ** sum(progress >= m for m in cfg.milestones)
    return cfg.lr


def make_optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


@torch.no_grad()
def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return (model(x).argmax(1) == y).float().sum()


def validate(model: torch.nn.Module, cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor, device: torch.device,
             batch_size: int = 128) -> tuple[float, float]:  # fmt: skip
    """Clean and PGD accuracy on the validation images (PGD with the training budget, ``val_attack_steps``)."""
    attack = PGD(cfg.eps, steps=cfg.val_attack_steps, norm=cfg.norm)
    was_training = model.training
    model.eval()
    clean = robust = 0.0
    for xb, yb in batches(x, y, batch_size):
        xb, yb = xb.to(device), yb.to(device)
        clean += float(_accuracy(model, xb, yb))
        robust += float(_accuracy(model, attack(model, xb, yb), yb))
    model.train(was_training)
    return clean / len(y), robust / len(y)


def _rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def train(cfg: TrainConfig, out: str | Path, resume: bool = False, overwrite: bool = False,
          progress: bool = True, stop_after: int | None = None) -> Path:  # fmt: skip
    """Train ``cfg`` into run directory ``out``; returns ``out``.

    ``stop_after`` ends the call after that many epochs of this invocation (used to test resuming).
    """
    out = Path(out)
    cfg.validate()
    runmod.prepare_out(out, cfg, resume, overwrite)
    device = runmod.resolve_device(cfg.device)

    data = load_dataset(cfg.dataset, cfg.data_dir)
    meta = runmod.dataset_meta(data)
    splits = split(data, cfg.val_size, cfg.train_size)
    val_x, val_y = splits.val_x[: cfg.val_n], splits.val_y[: cfg.val_n]

    torch.manual_seed(cfg.seed)
    model, method = runmod.build(cfg, meta)
    model.to(device)
    method.to(device)
    optimizer = make_optimizer(cfg, [*model.parameters(), *method.parameters()])
    start_epoch, best_robust = 0, -1.0

    if resume:
        state = runmod.load_checkpoint(out / "last.pt")
        try:
            model.load_state_dict(state["model"])
            method.load_state_dict(state["method"])
            optimizer.load_state_dict(state["optimizer"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CleadError(f"cannot resume from {out / 'last.pt'}: {type(e).__name__}: {e}") from None
        start_epoch, best_robust = int(state["epoch"]) + 1, float(state["best_val_robust"])
        _set_rng_state(state["rng"])
        _truncate_metrics(out / "metrics.jsonl", start_epoch)
        log.info("resuming %s at epoch %d/%d", out, start_epoch + 1, cfg.epochs)
    else:
        out.mkdir(parents=True, exist_ok=True)
        write_yaml(out / "config.yaml", cfg.to_dict())

    steps = num_batches(len(splits.train_y), cfg.batch_size)
    for epoch in range(start_epoch, cfg.epochs):
        if stop_after is not None and epoch - start_epoch >= stop_after:
            break
        model.train()
        method.train()
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        sums: dict[str, float] = {}
        t0 = time.perf_counter()
        bar = tqdm(batches(splits.train_x, splits.train_y, cfg.batch_size, shuffle=True, generator=gen),
                   total=steps, desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   leave=False, dynamic_ncols=True, mininterval=1.0)  # fmt: skip
        seen = 0
        for i, (xb, yb) in enumerate(bar):
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            for g in optimizer.param_groups:
                g["lr"] = lr_at(cfg, (epoch + i / steps) / cfg.epochs)
            loss, parts = method.loss(model, xb, yb, epoch)
            if not torch.isfinite(loss):
                raise TrainingDiverged(
                    f"loss became {float(loss.detach())} at epoch {epoch + 1}, step {i + 1}; training stopped, "
                    + (f"the last good checkpoint {out / 'last.pt'} (epoch {epoch}) is kept; " if epoch else "no epoch had finished; ")
                    + "try a lower --lr"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            seen += len(yb)
            for k, v in {"loss": loss.detach(), **parts}.items():
                sums[k] = sums.get(k, 0.0) + float(v) * len(yb)
            if progress:
                bar.set_postfix({k: f"{v / seen:.3f}" for k, v in sums.items()}
                                | {"img/s": f"{seen / (time.perf_counter() - t0):.0f}"})  # fmt: skip
        bar.close()
        train_s = time.perf_counter() - t0
        val_clean, val_robust = validate(model, cfg, val_x, val_y, device)
        record = {
            "epoch": epoch + 1,
            **{k: round(v / max(seen, 1), 6) for k, v in sums.items()},
            "lr": lr_at(cfg, (epoch + 1) / cfg.epochs),
            "val_clean": val_clean,
            "val_pgd": val_robust,
            "train_seconds": round(train_s, 2),
            "images_per_second": round(seen / train_s, 1),
            "seconds": round(time.perf_counter() - t0, 2),
        }
        is_best = val_robust > best_robust
        best_robust = max(best_robust, val_robust)
        weights = {"model": model.state_dict(), "meta": meta, "epoch": epoch, "val_clean": val_clean,
                   "val_pgd": val_robust}  # fmt: skip
        if is_best:
            save_torch(out / "best.pt", weights)
        save_torch(out / "last.pt", {**weights, "method": method.state_dict(), "optimizer": optimizer.state_dict(),
                                     "best_val_robust": best_robust, "rng": _rng_state()})  # fmt: skip
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps(record) + "\n")
        log.info(
            "epoch %d/%d  loss %.4f  val clean %.3f  val pgd-%d %.3f%s  %.0f img/s",
            epoch + 1, cfg.epochs, record["loss"], val_clean, cfg.val_attack_steps, val_robust,
            "  (best)" if is_best else "", record["images_per_second"],
        )  # fmt: skip
    return out


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metric lines of epochs after the checkpoint (written before an interruption)."""
    if not path.is_file():
        return
    lines = [ln for ln in path.read_text().splitlines() if ln.strip()]
    kept = [ln for ln in lines if json.loads(ln)["epoch"] <= epochs_done]
    write_text(path, "".join(ln + "\n" for ln in kept))
