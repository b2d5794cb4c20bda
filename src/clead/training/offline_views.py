"""Adversarial views made once, offline, from a fixed model: the C-LEAD authors' public protocol.

Their code trains a standard model, attacks it once with FGSM, CW and so on, stores the adversarial images
as 8-bit PNG files and trains the contrastive stage on those files; the model being trained is never
attacked. ``--views-from RUN --views-attacks fgsm,cw`` does the same: every training image (after the
validation split and ``--train-size``) is attacked with each listed evaluation attack at the run's eps on
RUN's ``best.pt``, rounded to uint8 (as a PNG would be: at most half a grey level outside the eps-ball), and
the method's ``objective`` gets these views in place of its own attack's.

The views are cached in ``$CLEAD_CACHE`` (as image folders are), keyed by the source checkpoint's SHA-256,
the attacks, eps, norm, seed and a digest of the training images and labels; a cache made from anything else
is rebuilt, never used. Random starts are seeded per (seed, attack, batch).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from .. import rundir
from ..attacks import create_attack
from ..attacks.base import derive_seed
from ..data import to_float
from ..data.image_folder import cache_dir
from ..io import digest_tensors, key_digest, load_keyed_npz, save_keyed_npz, sha256_file

log = logging.getLogger("clead")
FORMAT = 1
BATCH = 256


def attack_names(text: str) -> list[str]:
    return [a.strip() for a in text.split(",") if a.strip()]


def views_key(source: Path, attacks: list[str], eps: float, norm: str, seed: int, x: torch.Tensor, y: torch.Tensor):
    return {
        "format": FORMAT,
        "source": str(source.resolve()),
        "source_sha256": sha256_file(rundir.checkpoint(source, "best")),
        "attacks": attacks,
        "eps": eps,
        "norm": norm,
        "seed": seed,
        "images": digest_tensors((x, y)),
    }


def make_views(
    source_model: torch.nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    attacks: list[str],
    eps: float,
    norm: str,
    seed: int,
    device: torch.device,
) -> list[torch.Tensor]:
    """One uint8 tensor like ``x`` per attack: ``x`` attacked on ``source_model``, rounded to 8 bits."""
    out = []
    for name in attacks:
        attack = create_attack(name, eps, norm)
        views = torch.empty_like(x)
        for b, i in enumerate(range(0, len(x), BATCH)):
            attack.seed = derive_seed(seed, "views", name, b)
            xb, yb = to_float(x[i : i + BATCH]).to(device), y[i : i + BATCH].to(device)
            views[i : i + BATCH] = (attack(source_model, xb, yb).cpu() * 255).round().clamp(0, 255).to(torch.uint8)
        out.append(views)
        log.info("views: %s on %d training images done", name, len(x))
    return out


def fixed_views(cfg, x: torch.Tensor, y: torch.Tensor, meta: dict, device: torch.device) -> list[torch.Tensor]:
    """The views of the training images ``x`` (uint8) for ``cfg.views_from``, from the cache or made now."""
    from .. import run as runmod

    source = Path(cfg.views_from)
    src_state = runmod.load_checkpoint(rundir.checkpoint(source, "best"))
    runmod.check_meta(src_state["meta"], meta, f"--views-from {source}")
    attacks = attack_names(cfg.views_attacks)
    key = views_key(source, attacks, cfg.eps, cfg.norm, cfg.seed, x, y)
    path = cache_dir() / f"views-{key_digest(key, 20)}.npz"
    names = [f"view{k}" for k in range(len(attacks))]
    cached = load_keyed_npz(path, key, names)
    if cached is not None:
        return [torch.from_numpy(cached[k]) for k in names]
    log.info(
        "views: attacking %s with %s on %d training images (once; cached in %s)",
        source,
        ",".join(attacks),
        len(x),
        path.parent,
    )
    model = runmod.load_model(source, "best").to(device)
    views = make_views(model, x, y, attacks, cfg.eps, cfg.norm, cfg.seed, device)
    if not save_keyed_npz(path, key, {k: v.numpy() for k, v in zip(names, views)}):
        log.warning("views: cannot write the cache %s; the views are made again next time", path)
    return views
