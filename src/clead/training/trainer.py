"""The training loop. It knows models, data and optimisers; the loss comes from the method.

Reproducible: the data order of epoch ``e`` comes from a generator seeded with ``(seed, e)``, and the
global RNG (attack starts, dropout, augmentation) is re-seeded from ``(seed, e, rank)`` at the start of
every epoch, so ``--resume`` after an interruption finishes with the same weights as an uninterrupted
run, also with another number of processes for the per-sample-mean losses.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import distributed, precision, rundir
from .. import run as runmod
from ..attacks import PGD
from ..attacks.autoattack import AutoAttackPreset
from ..attacks.base import attack_counts
from ..data import load_dataset, split, to_float
from ..data.augment import random_crop_flip
from ..errors import CleadError, TrainingDiverged
from ..io import save_torch, write_yaml
from ..methods import Method
from ..models.base import eval_mode
from . import awp, collapse, offline_views
from .config import TrainConfig
from .ema import WeightAverage

log = logging.getLogger("clead")

# Off a terminal (a log file, a background job) there is no bar: a line at most this often says how far the
# epoch is, as the evaluation's per-chunk lines do (an epoch can take half an hour on one CPU core).
PROGRESS_LINE_SECONDS = 60.0


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Learning rate at ``progress`` = epochs done (fractional) / total epochs, in [0, 1]."""
    if cfg.schedule == "cosine":
        return cfg.lr * 0.5 * (1 + math.cos(math.pi * progress))
    if cfg.schedule == "cyclic":
        peak = cfg.cyclic_peak
        return cfg.lr * (progress / peak if progress < peak else (1 - progress) / (1 - peak))
    if cfg.schedule == "piecewise":
        return cfg.lr * 0.1 ** sum(progress >= m for m in cfg.milestones)
    return cfg.lr


def make_optimizer(cfg: TrainConfig, params: list[torch.nn.Parameter]) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class TrainStep(nn.Module):
    """Model + method as one module, so DistributedDataParallel sees one forward per training step
    (the inner attack's many forwards stay outside its bookkeeping)."""

    def __init__(self, model: nn.Module, method: Method) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, x: torch.Tensor, y: torch.Tensor, epoch: int, adv: dict | None = None):
        if adv is None:
            return self.method.loss(self.model, x, y, epoch)
        return self.method.objective(self.model, x, y, adv, epoch)


@precision.fp32
def validate(
    model: nn.Module,
    cfg: TrainConfig,
    x: torch.Tensor,
    y: torch.Tensor,
    device: torch.device,
    dist: distributed.Dist = distributed.Dist(),
    batch_size: int = 128,
) -> tuple[float, float]:
    """Clean and robust accuracy (under ``cfg.val_attack``) on the validation images, split across ranks with
    summed counts."""
    if cfg.val_attack == "apgd-ce":
        attack = AutoAttackPreset(cfg.eps, cfg.norm, "apgd-ce", seed=cfg.seed, batch_size=batch_size)
    else:
        attack = PGD(cfg.eps, steps=cfg.val_attack_steps, norm=cfg.norm)
    with eval_mode(model):
        clean, robust = attack_counts(model, attack, dist.shard(x), dist.shard(y), batch_size, None, device)
    return dist.sum(float(clean)) / len(y), dist.sum(float(robust)) / len(y)


def train(
    cfg: TrainConfig,
    out: str | Path,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> Path:
    """Train ``cfg`` into run directory ``out``; returns ``out``.

    ``stop_after`` ends the call after that many epochs of this invocation (used to test resuming).
    Under ``torchrun`` every rank calls this; rank 0 writes the run directory.
    """
    out = Path(out)
    cfg.validate()
    device = runmod.resolve_device(cfg.device)
    dist = distributed.setup(device)
    if dist.enabled and device.type == "cuda":
        device = torch.device("cuda", dist.local_rank)
        torch.cuda.set_device(device)
    try:
        # the run directory is locked before anything is checked or loaded: a second process refuses at once
        with rundir.locked(out, "training") if dist.main else contextlib.nullcontext():
            return _train(cfg, out, resume, overwrite, progress and dist.main, stop_after, device, dist)
    finally:
        distributed.teardown(dist)


@dataclass
class _Run:
    """What one training run holds between its steps (set up once, then one epoch after another)."""

    cfg: TrainConfig
    out: Path
    device: torch.device
    dist: Any
    progress: bool
    meta: dict[str, Any]
    splits: Any
    val_x: torch.Tensor
    val_y: torch.Tensor
    augment: bool
    fixed: list[torch.Tensor] | None  # views made once (--views-from), else None
    model: nn.Module
    method: Method
    optimizer: torch.optim.Optimizer
    scaler: Any
    step_module: nn.Module
    ema: WeightAverage | None = None  # the averaged weights (--ema-decay), which are validated and exported
    start_epoch: int = 0
    best_score: float = -1.0
    history: list = dataclasses.field(default_factory=list)  # each epoch's validation accuracies (collapse guard)

    def exported(self) -> nn.Module:
        """The model the run validates and writes to best.pt: the weight average when on, else the model."""
        return self.model if self.ema is None else self.ema.average


def _train(cfg, out, resume, overwrite, progress, stop_after, device, dist) -> Path:
    run = _setup(cfg, out, resume, overwrite, progress, device, dist)
    for epoch in range(run.start_epoch, run.cfg.epochs):
        if stop_after is not None and epoch - run.start_epoch >= stop_after:
            break
        t0 = time.perf_counter()
        sums, seen = _one_epoch(run, epoch)
        _validate_select_and_write(run, epoch, sums, seen, train_s=time.perf_counter() - t0, t0=t0)
        dist.barrier()
    return out


def _setup(cfg, out, resume, overwrite, progress, device, dist) -> _Run:
    """Resolve the config, prepare the run directory, load the data, build (or resume) model, method and
    optimiser."""
    if device.type == "cpu":
        # denormal floats (|x| < 1e-38) appear in the gradients of some losses and slow CPU arithmetic
        # many times over; flushing them to zero changes no result that matters
        torch.set_flush_denormal(True)
    # ``auto`` is resolved here, once, so config.yaml records the precision actually used
    auto = cfg.amp == "auto"
    cfg = dataclasses.replace(cfg, amp=precision.resolve_amp(cfg.amp, device))
    if dist.main:
        runmod.prepare_out(out, cfg, resume, overwrite, amp_auto=auto)
    dist.barrier()
    if cfg.batch_size % dist.world:
        raise CleadError(f"batch_size {cfg.batch_size} must be divisible by the number of processes {dist.world}")

    data = load_dataset(cfg.dataset, cfg.data_dir, **cfg.data_options())
    meta = runmod.dataset_meta(data)
    splits = split(data, cfg.val_size, cfg.train_size)
    augment = data.augment if cfg.augment is None else cfg.augment
    fixed = None
    if cfg.views_from:
        if augment:
            raise CleadError(
                "--views-from trains on views made once from the stored images; turn augmentation off "
                "(--no-augment) so that views and images match"
            )
        fixed = offline_views.fixed_views(cfg, splits.train_x, splits.train_y, meta, device)

    torch.manual_seed(cfg.seed)
    model, method = runmod.build(cfg, meta)
    if cfg.init and not resume:
        src_epoch = runmod.init_from(model, cfg, meta)
        if dist.main:
            log.info("initialised from %s/%s.pt (its epoch %d)", cfg.init, cfg.init_checkpoint, src_epoch + 1)
    model.to(device)
    method.to(device)
    if cfg.channels_last:
        precision.to_channels_last(model)
    if cfg.freeze_features:  # a linear probe: only the final layer learns
        model.requires_grad_(False)
        model.head.requires_grad_(True)
    optimizer = make_optimizer(cfg, [*(p for p in model.parameters() if p.requires_grad), *method.parameters()])
    scaler = torch.amp.GradScaler("cuda", enabled=cfg.amp == "fp16" and device.type == "cuda")
    start_epoch, best_score, history = 0, -1.0, []
    ema = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay else None

    if resume:
        state = runmod.load_checkpoint(rundir.checkpoint(out, "last"))
        runmod.check_meta(state["meta"], meta, f"{out}/last.pt (--resume)")
        try:
            # with weight averaging, "model" is the average (what the run exports) and "train_model" the weights
            model.load_state_dict(state["train_model" if ema else "model"])
            if ema:
                ema.average.load_state_dict(state["model"])
                ema.updates = int(state["ema_updates"])
            method.load_state_dict(state["method"])
            optimizer.load_state_dict(state["optimizer"])
        except (KeyError, RuntimeError, ValueError) as e:
            raise CleadError(f"cannot resume from {out / 'last.pt'}: {type(e).__name__}: {e}") from None
        history = list(state.get("history", []))  # absent in runs from before the collapse guard
        start_epoch = int(state["epoch"]) + 1
        # runs from before ``select`` stored the best validation robust accuracy as best_val_robust
        old = state.get("best_val_robust", -1.0) if cfg.selection() == "robust" else -1.0
        best_score = float(state.get("best_score", old))
        if dist.main:
            _truncate_metrics(rundir.metrics_jsonl(out), start_epoch)
            log.info("resuming %s at epoch %d/%d", out, start_epoch + 1, cfg.epochs)
    elif dist.main:
        out.mkdir(parents=True, exist_ok=True)
        write_yaml(rundir.config_yaml(out), cfg.to_dict())

    step_module: nn.Module = TrainStep(model, method)
    if cfg.compile:
        model.compile()
    if dist.enabled:
        step_module = nn.parallel.DistributedDataParallel(
            step_module,
            device_ids=[device.index] if device.type == "cuda" else None,
            find_unused_parameters=not method.uses_all_parameters(),
        )
    return _Run(cfg, out, device, dist, progress, meta, splits, splits.val_x[: cfg.val_n], splits.val_y[: cfg.val_n],
                augment, fixed, model, method, optimizer, scaler, step_module, ema, start_epoch, best_score,
                history)  # fmt: skip


def _one_epoch(run: _Run, epoch: int) -> tuple[dict[str, float], int]:
    """One pass over the training images in this epoch's seeded order; the per-image sums of the loss
    parts and the number of images, over all processes."""
    cfg, dist, model, method, splits = run.cfg, run.dist, run.model, run.method, run.splits
    n_train = len(splits.train_y)
    steps = -(-n_train // cfg.batch_size)
    model.train(not cfg.freeze_features)  # frozen features: batch norm statistics and dropout fixed too
    method.train()
    torch.manual_seed((cfg.seed * 1_000_003 + epoch) * 1009 + dist.rank)
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch))
    aug_gen = torch.Generator().manual_seed((cfg.seed * 7919 + epoch) * 1009 + dist.rank)
    sums: dict[str, float] = {}
    t0 = time.perf_counter()
    bar = tqdm(
        range(steps),
        desc=f"epoch {epoch + 1}/{cfg.epochs}",
        disable=None if run.progress else True,
        leave=False,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    seen, last_line = 0, time.monotonic()
    for i in bar:
        idx = dist.shard(order[i * cfg.batch_size : (i + 1) * cfg.batch_size])
        xb = to_float(splits.train_x[idx])
        if run.augment:
            xb = random_crop_flip(xb, generator=aug_gen)
        xb, yb = xb.to(run.device, non_blocking=True), splits.train_y[idx].to(run.device, non_blocking=True)
        for g in run.optimizer.param_groups:
            g["lr"] = lr_at(cfg, (epoch + i / steps) / cfg.epochs)
        loss, parts = _step(run, epoch, i, idx, xb, yb)
        seen += len(yb)
        for k, v in {"loss": loss.detach(), **parts}.items():
            sums[k] = sums.get(k, 0.0) + float(v) * len(yb)
        if run.progress:
            rate = seen * dist.world / (time.perf_counter() - t0)
            bar.set_postfix({k: f"{v / seen:.3f}" for k, v in sums.items()} | {"img/s": f"{rate:.0f}"})
            if bar.disable and dist.main and i + 1 < steps and time.monotonic() - last_line >= PROGRESS_LINE_SECONDS:
                last_line = time.monotonic()
                left = (steps - i - 1) * cfg.batch_size / rate / 60
                log.info(
                    "%s: epoch %d/%d step %d/%d (%.0f%%)  loss %.4f  %.0f img/s, about %.0f min left in this epoch",
                    run.out.name, epoch + 1, cfg.epochs, i + 1, steps, 100 * (i + 1) / steps, sums["loss"] / seen,
                    rate, left,
                )  # fmt: skip
    bar.close()
    return {k: dist.sum(v) for k, v in sums.items()}, dist.sum(seen)


def _step(run: _Run, epoch: int, i: int, idx: torch.Tensor, xb: torch.Tensor, yb: torch.Tensor):
    """One optimisation step on batch ``i``: the method's loss (with AWP around it when on), then the update."""
    cfg, model, method = run.cfg, run.model, run.method
    awp_on = cfg.awp_gamma > 0 and epoch >= cfg.awp_warmup
    # fixed views (--views-from) replace the method's own attack; None: the method perturbs
    adv = None if run.fixed is None else {"views": [to_float(view[idx]).to(run.device) for view in run.fixed]}
    with precision.autocast(cfg.amp, run.device):
        if awp_on:  # the one hook between the method's two phases (clead.awp)
            if adv is None:
                adv = method.perturb(model, xb, yb, epoch)
                adv.pop("cache", None)  # computed at the unperturbed weights
            w_delta = awp.weight_perturbation(
                model, lambda: method.objective(model, xb, yb, adv, epoch)[0], cfg.awp_gamma
            )
            awp.add(model, w_delta)
        loss, parts = run.step_module(xb, yb, epoch, adv)
    if not torch.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {float(loss.detach())} at epoch {epoch + 1}, step {i + 1}; training stopped, "
            + (
                f"the last good checkpoint {run.out / 'last.pt'} (epoch {epoch}) is kept; "
                if epoch
                else "no epoch had finished; "
            )
            + "try a lower --lr"
        )
    run.optimizer.zero_grad(set_to_none=True)
    run.scaler.scale(loss.float()).backward()
    run.scaler.step(run.optimizer)
    run.scaler.update()
    if awp_on:
        awp.add(model, w_delta, -1.0)  # the update was taken at w + w_delta, which is not kept
    if run.ema is not None:
        run.ema.update(model)
    return loss, parts


def _validate_select_and_write(run: _Run, epoch: int, sums: dict[str, float], seen: int, train_s: float,
                               t0: float) -> None:  # fmt: skip
    """Validation, checkpoint selection (best.pt by ``select``, never a collapsed epoch), last.pt and the epoch's
    metrics line."""
    cfg, dist, out = run.cfg, run.dist, run.out
    val_clean, val_robust = validate(run.exported(), cfg, run.val_x, run.val_y, run.device, dist)
    # the collapse guard watches adversarial training only (a standard model's robust accuracy just falls)
    fell = run.method.adversarial and collapse.collapsed(run.history, val_clean, val_robust)
    first_fall = fell and not any(h.get("collapsed") for h in run.history)
    before = collapse.best_robust(run.history)
    run.history.append({"epoch": epoch + 1, "val_clean": val_clean, "val_pgd": val_robust, "collapsed": fell})
    record = {
        "epoch": epoch + 1,
        **{k: round(v / max(seen, 1), 6) for k, v in sums.items()},
        "lr": lr_at(cfg, (epoch + 1) / cfg.epochs),
        "amp": cfg.amp,
        "device": distributed.device_name(run.device),
        "val_clean": val_clean,
        "val_pgd": val_robust,  # robust validation accuracy under val_attack (the name predates apgd-ce)
        "val_attack": cfg.val_attack,
        "collapsed": fell,
        **({"weights": "ema"} if run.ema else {}),
        "train_seconds": round(train_s, 2),
        "images_per_second": round(seen / train_s, 1),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    record["peak_rss_mb"] = round(_peak_rss_mb(), 1)
    if torch.cuda.is_available() and run.device.type == "cuda":
        record["peak_memory_mb"] = round(torch.cuda.max_memory_allocated(run.device) / 2**20, 1)
    score = {"robust": val_robust, "clean": val_clean, "last": float(epoch)}[cfg.selection()]
    is_best = score > run.best_score and not fell
    if not fell:
        run.best_score = max(run.best_score, score)
    if not dist.main:
        return
    weights = {"model": run.exported().state_dict(), "meta": run.meta, "epoch": epoch, "val_clean": val_clean,
               "val_pgd": val_robust}  # fmt: skip
    if is_best:
        dtype = getattr(torch, cfg.best_dtype)
        model = {k: v.to(dtype) if v.is_floating_point() else v for k, v in weights["model"].items()}
        save_torch(rundir.checkpoint(out, "best"), {**weights, "model": model})
    state = {**weights, "method": run.method.state_dict(), "optimizer": run.optimizer.state_dict(),
             "best_score": run.best_score, "history": run.history}  # fmt: skip
    if run.ema is not None:
        state |= {"train_model": run.model.state_dict(), "ema_updates": run.ema.updates}
    save_torch(rundir.checkpoint(out, "last"), state)
    rundir.append_jsonl(rundir.metrics_jsonl(out), record)
    log.info(
        "%s: epoch %d/%d  loss %.4f  val clean %.3f  val %s %.3f%s  %.0f img/s",
        out.name,
        epoch + 1,
        cfg.epochs,
        record["loss"],
        val_clean,
        f"pgd-{cfg.val_attack_steps}" if cfg.val_attack == "pgd" else cfg.val_attack,
        val_robust,
        "  (best)" if is_best else "",
        record["images_per_second"],
    )
    if first_fall:
        log.warning(
            "%s: catastrophic overfitting at epoch %d: validation %s accuracy %.3f is below half of its best %.3f "
            "(epoch %d) while clean accuracy %.3f held; best.pt keeps no collapsed epoch",
            out.name, epoch + 1, cfg.val_attack, val_robust, before["val_pgd"], before["epoch"], val_clean,
        )  # fmt: skip


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports KiB, macOS bytes)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _truncate_metrics(path: Path, epochs_done: int) -> None:
    """Drop metric lines of epochs after the checkpoint (written before an interruption)."""
    if path.is_file():
        rundir.write_jsonl(path, [r for r in rundir.read_jsonl(path) if r.get("epoch", 0) <= epochs_done])
