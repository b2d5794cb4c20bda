"""The run directory: what a training run writes and what later stages read.

``RUN/config.yaml`` (resolved config), ``RUN/last.pt`` (full training state, every epoch),
``RUN/best.pt`` (weights with the best validation PGD accuracy), ``RUN/metrics.jsonl`` (one line per
epoch), ``RUN/eval.json`` (evaluation). Checkpoints hold only tensors and plain containers and are
loaded with ``weights_only=True``.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from . import rundir
from .data import ImageData
from .errors import CleadError
from .io import load_torch
from .methods import METHODS, Budget, Method
from .models import Classifier, create_model
from .training import config as cfgmod

log = logging.getLogger("clead")

RUN_FILES = (rundir.CONFIG, "last.pt", "best.pt", rundir.METRICS, "eval.json", "train.log")
CHECKPOINTS = ("best", "last")


def is_run(path: Path) -> bool:
    return rundir.config_yaml(path).is_file()


def read_config(run_dir: str | Path) -> cfgmod.TrainConfig:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CleadError(f"run directory {run_dir} does not exist")
    if not is_run(run_dir):
        raise CleadError(f"{run_dir} is not a clead run (no config.yaml)")
    try:
        data = yaml.safe_load(rundir.config_yaml(run_dir).read_text())
    except yaml.YAMLError as e:
        raise CleadError(f"{run_dir}/config.yaml is not valid YAML: {e}") from None
    return cfgmod.from_dict(data, source=f"{run_dir}/config.yaml")


def read_metrics(run_dir: str | Path) -> list[dict[str, Any]]:
    """One record per trained epoch ([] before the first); a corrupt file is one line naming it."""
    return rundir.read_jsonl(rundir.metrics_jsonl(run_dir))


def load_checkpoint(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CleadError(f"checkpoint {path} does not exist")
    try:
        state = load_torch(path)
    except Exception as e:  # corrupt, truncated, or not a weights-only checkpoint
        raise CleadError(f"checkpoint {path} is unreadable ({type(e).__name__}); it may be corrupt") from None
    if not isinstance(state, dict) or "model" not in state:
        raise CleadError(f"checkpoint {path} is not a clead checkpoint")
    return state


def dataset_meta(data: ImageData) -> dict[str, Any]:
    """What a model needs to know of its dataset; stored in every checkpoint."""
    meta = {
        "num_classes": data.num_classes,
        "image_shape": list(data.image_shape),
        "mean": list(data.mean),
        "std": list(data.std),
    }
    if data.order:
        meta["order"] = data.order
    return meta


def check_meta(checkpoint_meta: dict[str, Any], data_meta: dict[str, Any], what: str) -> None:
    """Refuse, before any forward pass, a model whose checkpoint was made for data of another image shape or
    class count than the data it is about to see (a changed archive, a model of another dataset); one line
    naming both. ``what`` names the checkpoint and how it was given, e.g. ``--transfer-from RUN``."""
    for key, name in (("image_shape", "image shape"), ("num_classes", "number of classes")):
        if list(np.atleast_1d(checkpoint_meta.get(key))) != list(np.atleast_1d(data_meta.get(key))):
            raise CleadError(
                f"{what} was made for data with {name} {checkpoint_meta.get(key)}, but the data here has "
                f"{data_meta.get(key)}; it cannot be used on these images"
            )


def build(cfg: cfgmod.TrainConfig, meta: dict[str, Any]) -> tuple[Classifier, Method]:
    """Model and method for a config; ``meta`` as stored in checkpoints (see `dataset_meta`)."""
    model = create_model(
        cfg.model, meta["num_classes"], tuple(meta["image_shape"]), meta["mean"], meta["std"], **cfg.model_args
    )
    budget = Budget(eps=cfg.eps, norm=cfg.norm, steps=cfg.attack_steps, alpha=cfg.attack_alpha,
                    kind=cfg.train_attack, noise=cfg.attack_noise)  # fmt: skip
    method = METHODS.get(cfg.method)(cfg.method_params(), budget, model.feature_dim, meta["num_classes"])
    return model, method


def load_model(run_dir: str | Path, checkpoint: str = "best") -> Classifier:
    """The trained classifier of a run, in eval mode: input [0, 1] NCHW, output logits.

    The projection head and other training-only parts are not included.
    """
    run_dir = Path(run_dir)
    if checkpoint not in CHECKPOINTS:
        raise CleadError(f"unknown checkpoint {checkpoint!r}; valid: {', '.join(CHECKPOINTS)}")
    cfg = read_config(run_dir)
    state = load_checkpoint(rundir.checkpoint(run_dir, checkpoint))
    model, _ = build(cfg, state["meta"])
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CleadError(f"{run_dir}/{checkpoint}.pt does not fit model {cfg.model!r}: {first}") from None
    model.data_meta = state["meta"]  # what it was trained on: checked against the data it is given (check_meta)
    return model.eval()


def init_from(model: Classifier, cfg: cfgmod.TrainConfig, meta: dict[str, Any]) -> int:
    """Load the weights of run ``cfg.init`` (its ``cfg.init_checkpoint``) into ``model`` (two-stage training,
    e.g. cross-entropy pretraining by a ``standard`` run); returns the source epoch (0-based). The source
    must have the same architecture and dataset shape; a method's own parts (a projection head) start fresh."""
    src = Path(cfg.init)
    src_cfg = read_config(src)
    if src_cfg.model != cfg.model:
        raise CleadError(
            f"--init {src}: its model is {src_cfg.model!r}, this run's is {cfg.model!r}; the architectures must match"
        )
    state = load_checkpoint(src / f"{cfg.init_checkpoint}.pt")
    check_meta(state["meta"], meta, f"--init {src}")
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as e:
        first = str(e).strip().splitlines()[0]
        raise CleadError(
            f"--init {src}: its weights do not fit this run's model (the architectures must match): {first}"
        ) from None
    return int(state["epoch"])


def prepare_out(out: Path, cfg: cfgmod.TrainConfig, resume: bool, overwrite: bool, amp_auto: bool = False) -> None:
    """Refuse to mix runs: an existing run is continued (--resume) or replaced (--overwrite), never both.
    ``amp_auto``: ``cfg.amp`` is what ``auto`` resolved to on this machine, so a run resumed on a machine of
    other precision (fp32 on a CPU without bf16 units, bf16 on a GPU) continues in this machine's precision;
    each epoch's ``amp`` in metrics.jsonl says which it ran in."""
    if resume and overwrite:
        raise CleadError("--resume and --overwrite exclude each other")
    if resume:
        if not is_run(out):
            raise CleadError(f"cannot resume: {out} holds no run (no config.yaml)")
        old = read_config(out)
        if amp_auto and old.amp != cfg.amp:
            log.info("resuming %s in %s (amp auto on this machine); it started in %s", out, cfg.amp, old.amp)
            old = dataclasses.replace(old, amp=cfg.amp)
        if old.to_dict() != cfg.to_dict():
            diff = [k for k in cfgmod.field_names() if getattr(old, k) != getattr(cfg, k)]
            raise CleadError(
                f"cannot resume {out}: its config differs in {', '.join(diff)}; "
                "resume with the same options (or none: `clead train --resume --out RUN`)"
            )
        return
    if out.exists() and any(p.name != rundir.LOCK for p in out.iterdir()):
        if not overwrite:
            what = "a run" if is_run(out) else "other files"
            raise CleadError(f"{out} already holds {what}; use --resume to continue it or --overwrite to replace it")
        if not is_run(out):
            raise CleadError(f"{out} is not a clead run; refusing to delete its files, choose another --out")
        for name in RUN_FILES:
            (out / name).unlink(missing_ok=True)
        for extra in out.iterdir():
            if extra.name == rundir.LOCK:  # held by this process: deleting it would let a second one in
                continue
            if extra.is_dir():
                shutil.rmtree(extra)
            else:
                extra.unlink()


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise CleadError(f"unknown device {name!r}; use auto, cpu or cuda[:i]") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise CleadError("device cuda requested but CUDA is not available")
    return dev
