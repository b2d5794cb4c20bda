"""Robustness evaluation: clean accuracy, each attack's accuracy, the per-sample worst case, sanity checks.

A sample counts as robust only if it is classified correctly clean *and* under every attack run (the
worst case per sample, which can be lower than the smallest per-attack accuracy). Attacks run only on
samples classified correctly clean, in chunks of ``batch_size`` (AutoAttack presets in larger chunks of
``AA_CHUNK`` = 250, since FAB and Square run thousands of iterations per chunk whatever its size);
with a ``state_path`` the finished chunks are saved, so an interrupted evaluation continues where it stopped
and ends with the same numbers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from .. import rundir
from ..attacks import PGD, create_attack
from ..attacks.autoattack import AutoAttackPreset
from ..attacks.base import check_threat_model, derive_seed, parse_eps
from ..data import to_float
from ..distributed import device_name
from ..errors import CleadError
from ..io import digest_tensors, load_torch, save_torch, sha256_file
from ..models.base import eval_mode
from ..precision import fp32, to_channels_last
from . import checks as chk
from .eval_config import DEFAULT_EPS, EvalConfig, resolve

N_EXAMPLES = 8
# Version of the evaluation state and of how attacks are seeded; 2: each (chunk, attack, restart) its own seed.
STATE_FORMAT = 2


# Samples per AutoAttack chunk (the attack's own batch size). 250 rather than pyautoattack's usual 500 so
# that 500 or 1,000 test images make 2 or 4 chunks, which per-core processes (``--procs``) share out; each
# chunk is seeded alike (pyautoattack re-seeds every sub-attack with ``--seed``), so the number of processes
# never changes a result.
AA_CHUNK = 250
log = logging.getLogger("clead")


def _logits(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model(x[i : i + batch_size].to(device)).cpu() for i in range(0, len(x), batch_size)])


def check_inputs(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int | None, device: torch.device
) -> None:
    """Errors for inputs that would give silently wrong numbers."""
    if len(x) == 0:
        raise CleadError("the evaluation set is empty (n = 0)")
    if len(x) != len(y):
        raise CleadError(f"{len(x)} images but {len(y)} labels")
    if float(x.min()) < 0 or float(x.max()) > 1:
        raise CleadError("inputs must be images in [0, 1] (normalisation belongs inside the model)")
    out = _logits(model, x[:64], 64, device)
    if out.ndim != 2:
        raise CleadError(f"the model must return logits of shape [batch, classes], got {tuple(out.shape)}")
    if (out >= 0).all() and (out <= 1).all() and torch.allclose(out.sum(1), torch.ones(len(out)), atol=1e-4):
        raise CleadError(
            "the model seems to return probabilities (rows in [0, 1] summing to 1); attacks need "
            "logits: remove the final softmax"
        )
    if num_classes is not None and out.shape[1] != num_classes:
        raise CleadError(f"the model returns {out.shape[1]} logits but the dataset has {num_classes} classes")
    if int(y.max()) >= out.shape[1] or int(y.min()) < 0:
        raise CleadError(f"labels range {int(y.min())}..{int(y.max())} but the model has {out.shape[1]} classes")


def _attack_chunks(model, attack, x, y, idx, batch_size, seed, device, state, save, progress, name, dist, label=""):
    """Run ``attack`` on the samples ``idx`` chunk by chunk, filling ``state`` and saving after each chunk.
    Under torchrun each rank takes every ``world``-th chunk and the results are summed across ranks.
    Progress: a bar on a terminal; elsewhere (a log file, a background job) a log line at most once a minute
    and after the last chunk."""
    chunks = [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
    last_line, mine = time.monotonic(), []  # this process's chunks (all of them without torchrun)
    here = device_name(device)
    bar = tqdm(
        total=len(chunks),
        initial=state["chunks_done"],
        desc=name,
        leave=False,
        dynamic_ncols=True,
        disable=None if progress else True,
    )  # None: shown on a terminal only
    for c in range(state["chunks_done"], len(chunks)):
        if c % dist.world != dist.rank:
            continue
        j = chunks[c]
        t0 = time.perf_counter()
        torch.manual_seed(derive_seed(seed, c, name))
        xb, yb = x[j].to(device), y[j].to(device)
        if isinstance(attack, AutoAttackPreset):  # seeded with --seed, as pyautoattack seeds every sub-attack
            x_adv, sub = attack.cascade(model, xb, yb)
            state["sub"][j] = sub.cpu()
        else:
            attack.seed = derive_seed(seed, c, name)  # own starts per (seed, chunk, attack, restart)
            x_adv = attack(model, xb, yb)
        with torch.no_grad():
            pred = model(x_adv).argmax(1).cpu()
        d = (x_adv.cpu() - x[j]).flatten(1)
        state["ok"][j] = pred == y[j]
        state["pred"][j] = pred
        state["linf"][j] = d.abs().max(1).values
        state["l2"][j] = d.norm(dim=1)
        for k in (pred != y[j]).nonzero().squeeze(1).tolist():
            if len(state["examples"]) < N_EXAMPLES:
                state["examples"][int(j[k])] = x_adv[k].cpu()
        dt = time.perf_counter() - t0
        state["seconds"] += dt
        by_device = state.setdefault("device_seconds", {})  # states saved before this key lack it
        by_device[here] = by_device.get(here, 0.0) + dt
        if not dist.enabled:
            state["chunks_done"] = c + 1
            save()
        bar.update(1)
        mine.append(j)
        last = c + dist.world >= len(chunks)  # this process's last chunk
        if progress and bar.disable and dist.main and (time.monotonic() - last_line >= 60 or last):
            last_line = time.monotonic()
            _log_chunk(label, name, c + 1, len(chunks), state, torch.cat(mine), dt / dist.world)
    bar.close()
    if dist.enabled:
        _merge_across_ranks(state, len(chunks), dist)


def _log_chunk(label: str, name: str, done: int, total: int, state: dict, attacked: torch.Tensor, dt: float) -> None:
    """``RUN: ATTACK chunk i/n, x% of the attacked images survive so far, s/chunk, about m min left``: the
    attacked images are the clean-correct ones this process has attacked; ``dt`` is the wall time per chunk of
    all processes together."""
    survive = state["ok"][attacked].float().mean().item() if len(attacked) else float("nan")
    left = (total - done) * dt / 60
    log.info(
        "%s%s chunk %d/%d: %.1f%% of the attacked images survive so far; %.0f s/chunk%s",
        f"{label}: " if label else "",
        name,
        done,
        total,
        100 * survive,
        dt,
        f", about {left:.0f} min left" if done < total else "",
    )


def _merge_across_ranks(state: dict[str, Any], n_chunks: int, dist) -> None:
    """Every sample was attacked by exactly one rank: sum the rank-local tensors (zeros elsewhere)."""
    import torch.distributed as tdist

    for key in ("ok", "pred", "linf", "l2", "sub"):
        t = state[key]
        owned = {"ok": t.long(), "pred": t + 1, "linf": t, "l2": t, "sub": t + 1}[key].double()
        tdist.all_reduce(owned)
        state[key] = {"ok": owned.bool(), "pred": owned.long() - 1, "sub": owned.long() - 1}.get(key, owned.float())
    gathered: list[Any] = [None] * dist.world
    tdist.all_gather_object(gathered, state["examples"])
    state["examples"] = {k: v for part in gathered for k, v in part.items()}
    state["seconds"] = dist.sum(state["seconds"])
    tdist.all_gather_object(gathered, state.get("device_seconds", {}))  # a rank without chunks has none
    merged: dict[str, float] = {}
    for part in gathered:
        for k, v in part.items():
            merged[k] = merged.get(k, 0.0) + v
    state["device_seconds"] = merged
    state["chunks_done"] = n_chunks


def _new_state(n: int) -> dict[str, Any]:
    return {
        "ok": torch.zeros(n, dtype=torch.bool),
        "pred": torch.full((n,), -1, dtype=torch.long),
        "linf": torch.zeros(n),
        "l2": torch.zeros(n),
        "sub": torch.full((n,), -1, dtype=torch.long),
        "examples": {},
        "chunks_done": 0,
        "seconds": 0.0,
    }


@fp32
def evaluate(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    config: EvalConfig | None = None,
    *,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    state_path: str | Path | None = None,
    dist: Any = None,
    identity: dict[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate any classifier (input [0, 1] NCHW, output logits) on tensors ``x``, ``y``.

    The settings are an `EvalConfig` (``config``, default all defaults) with any of its fields overridden by
    ``options``, e.g. ``evaluate(model, x, y, attacks=["pgd20", "cw"], eps="8/255")``; without a run to take it
    from, eps defaults to ``DEFAULT_EPS`` and the threat model to linf. The other arguments say where, not how:
    ``num_classes`` (checked against the model's outputs, and AutoAttack's targets), ``device`` (default: the
    model's), ``state_path``, ``dist`` and ``identity`` below.

    Returns the ``eval.json`` structure (``clean_accuracy``, ``robust_accuracy``, ``per_attack``,
    ``threat_model``, ``eps``, ``n``, ``seed``, ``checks``, ...) plus ``per_sample`` tensors and
    ``examples`` for the audit files. ``sweep``: eps values for a PGD-20 / APGD-CE sweep on the first
    ``sweep_n`` samples. ``checks``: run the sanity checks (extra attacks on the first ``check_n`` samples).
    ``dist`` (a `clead.distributed.Dist`, under torchrun): the attacks are split across ranks; the sweep and
    the checks run on rank 0; no resume state is kept. ``autoattack_chunk``: samples per AutoAttack call
    (default ``AA_CHUNK``); chunks are what processes share out.

    Random starts: chunk ``c`` of attack ``name`` draws restart ``r``'s start from
    ``derive_seed(derive_seed(seed, c, name), r)``, so no two attacks share a start and the order of ``attacks`` changes
    nothing; AutoAttack presets are seeded with ``seed`` itself, as pyautoattack does for every sub-attack.

    ``state_path``: finished chunks are saved there and reused only by an evaluation of the same weights
    (a digest of the model's tensors), images, labels and settings, plus ``identity`` (e.g. the checkpoint
    file's SHA-256); a state that differs in any of these is reported in one log line and replaced.
    """
    ec = resolve(config, options)
    attacks, norm, batch_size, seed, restarts = ec.attacks, ec.norm or "linf", ec.batch_size, ec.seed, ec.restarts
    progress, checks, check_n, sweep, sweep_n = ec.progress, ec.checks, ec.check_n, ec.sweep, ec.sweep_n
    autoattack_chunk = ec.autoattack_chunk
    eps = DEFAULT_EPS if ec.eps is None else ec.eps
    from ..distributed import Dist

    dist = dist or Dist()
    if dist.enabled:
        state_path = None
    eps = parse_eps(eps)
    check_threat_model(eps, norm)
    if x.dtype == torch.uint8:
        x = to_float(x)
    x, y = x.cpu(), y.cpu().long()
    device = torch.device(device) if device is not None else next(model.parameters()).device
    with eval_mode(model):
        check_inputs(model, x, y, num_classes, device)
        built = {name: create_attack(name, eps, norm, restarts) for name in attacks}  # unknown names fail early
        for a in built.values():
            if isinstance(a, AutoAttackPreset):
                a.seed, a.num_classes, a.batch_size = seed, num_classes, autoattack_chunk or AA_CHUNK
        n = len(y)
        key = {
            "format": STATE_FORMAT,
            "attacks": list(attacks),
            "eps": eps,
            "norm": norm,
            "n": n,
            "seed": seed,
            "restarts": restarts,
            "batch_size": batch_size,
            "autoattack_chunk": autoattack_chunk or AA_CHUNK,
            "weights": digest_tensors(model.state_dict().values()),
            "images": digest_tensors((x, y)),
            **(identity or {}),
        }
        state: dict[str, Any] = {"key": key, "attacks": {}}
        if state_path is not None and Path(state_path).is_file():
            state = _resumable(state_path, key) or state
        save = (lambda: save_torch(state_path, state)) if state_path is not None else (lambda: None)

        pred_clean = _logits(model, x, batch_size, device).argmax(1)
        correct = pred_clean == y
        idx = correct.nonzero().squeeze(1)
        state["attacked"] = len(idx)  # the points each attack runs on: how far a saved state got (clead bench)
        quiet = not progress or len(built) < 2
        label = Path(state_path).parent.name if state_path is not None else ""  # the run, in progress lines
        for name, attack in tqdm(built.items(), desc="attacks", disable=True if quiet else None, leave=False):
            st = state["attacks"].setdefault(name, _new_state(n))
            chunk = attack.batch_size if isinstance(attack, AutoAttackPreset) else batch_size
            _attack_chunks(model, attack, x, y, idx, chunk, seed, device, st, save, progress, name, dist, label)
        result = _summarise(built, state["attacks"], correct, pred_clean, x, y, eps, norm, seed)
        if any(isinstance(a, AutoAttackPreset) for a in built.values()):
            result["autoattack_chunk"] = key["autoattack_chunk"]
        if not dist.main:
            return result
        if sweep:
            result["sweep"] = eps_sweep(
                model,
                x[:sweep_n],
                y[:sweep_n],
                [parse_eps(e) for e in sweep],
                norm,
                batch_size,
                seed,
                device,
                num_classes,
                progress,
            )
        if checks:
            result["checks"] = run_checks(model, x, y, result, eps, norm, batch_size, seed, device, check_n)
        else:
            result["checks"] = []
    if state_path is not None:
        Path(state_path).unlink(missing_ok=True)
    return result


def _resumable(state_path: str | Path, key: dict[str, Any]) -> dict[str, Any] | None:
    """The saved state if it was made with exactly ``key``; otherwise None, and one log line saying why."""
    try:
        saved = load_torch(state_path)
    except Exception as e:  # a truncated or foreign file: start afresh
        log.warning("%s: unreadable (%s); starting the evaluation afresh", state_path, type(e).__name__)
        return None
    old = saved.get("key", {}) if isinstance(saved, dict) else {}
    if old == key:
        return saved
    differ = [k for k in key if old.get(k) != key[k]] + [k for k in old if k not in key]
    why = (
        "made by an older clead (shared random starts)"
        if old.get("format") != key["format"]
        else "it differs in " + ", ".join(differ)
    )
    log.warning("%s belongs to another evaluation (%s); not reusing it, starting afresh", state_path, why)
    return None


def _summarise(built, states, correct, pred_clean, x, y, eps, norm, seed) -> dict[str, Any]:
    n = len(y)
    robust = correct.clone()
    broken_by = ["" if c else "clean" for c in correct.tolist()]
    linf, l2 = torch.zeros(n), torch.zeros(n)
    pred_adv = pred_clean.clone()
    per_attack, sequences, seconds, devices = {}, {}, {}, {}
    for name, attack in built.items():
        st = states[name]
        ok = st["ok"] & correct
        per_attack[name] = float(ok.float().mean())
        seconds[name] = round(st["seconds"], 2)
        for dev, s in st.get("device_seconds", {}).items():
            devices[dev] = round(devices.get(dev, 0.0) + s, 2)
        newly = robust & ~ok
        sub_names = attack.sequence() if isinstance(attack, AutoAttackPreset) else []
        for i in newly.nonzero().squeeze(1).tolist():
            broken_by[i] = f"{name}/{sub_names[st['sub'][i]]}" if sub_names and st["sub"][i] >= 0 else name
        linf[newly], l2[newly], pred_adv[newly] = st["linf"][newly], st["l2"][newly], st["pred"][newly]
        robust &= ok
        if sub_names:
            sequences[name] = {"clean": float(correct.float().mean())}
            for k, sub in enumerate(sub_names):
                hit = correct & (st["sub"] >= 0) & (st["sub"] <= k)
                sequences[name][sub] = float((correct & ~hit).float().mean())
    examples = []
    for name in built:
        for i, xa in states[name]["examples"].items():
            if len(examples) < N_EXAMPLES and broken_by[i].split("/")[0] == name:
                examples.append(
                    {
                        "index": i,
                        "x": x[i],
                        "x_adv": xa,
                        "y": int(y[i]),
                        "pred": int(pred_clean[i]),
                        "pred_adv": int(states[name]["pred"][i]),
                        "attack": broken_by[i],
                    }
                )
    return {
        "clean_accuracy": float(correct.float().mean()),
        "robust_accuracy": float(robust.float().mean()),
        "per_attack": per_attack,
        "threat_model": norm,
        "eps": eps,
        "n": n,
        "seed": seed,
        "attacks": {name: repr(a) for name, a in built.items()},
        "sequence": sequences,
        "seconds": seconds,
        "devices": devices,  # seconds of attack per machine it ran on (an evaluation can resume elsewhere)
        "per_sample": {
            "label": y,
            "pred_clean": pred_clean,
            "correct": correct,
            "robust": robust,
            "broken_by": broken_by,
            "pred_adv": pred_adv,
            "linf": linf,
            "l2": l2,
        },
        "examples": examples,
    }


@fp32
def eps_sweep(model, x, y, eps_list, norm, batch_size, seed, device, num_classes, progress) -> dict[str, Any]:
    """Robust accuracy of PGD-20 and APGD-CE at each eps (on the given samples)."""
    out: dict[str, Any] = {"eps": list(eps_list), "n": len(y), "pgd20": [], "apgd-ce": []}
    for e in tqdm(eps_list, desc="eps sweep", disable=None if progress else True, leave=False):
        for name, attack in (
            ("pgd20", PGD(e, steps=20, norm=norm)),
            ("apgd-ce", AutoAttackPreset(e, norm, "apgd-ce", seed, num_classes)),
        ):
            out[name].append(chk.attack_accuracy(model, attack, x, y, batch_size, seed, device))
    return out


@fp32
def run_checks(model, x, y, result, eps, norm, batch_size, seed, device, check_n) -> list[dict[str, Any]]:
    """The sanity checks (see `clead.checks`); extra attacks use the first ``check_n`` correctly classified samples."""
    ps = result["per_sample"]
    keep = ps["correct"].nonzero().squeeze(1)[:check_n]
    xc, yc = x[keep].to(device), y[keep].to(device)
    out = [chk.deterministic_eval_mode(model, x[:64].to(device))]  # any images: also when none is classified right
    if len(keep) == 0:
        return out
    out.append(chk.zero_gradients(model, xc, yc))
    out.append(chk.iterative_beats_single_step(result["per_attack"], result["n"]))
    out.append(chk.more_steps_do_not_help(model, xc, yc, eps, norm, batch_size, seed))
    out.append(chk.large_eps_breaks_model(model, xc, yc, batch_size, seed))
    if "sweep" in result:
        sw = result["sweep"]
        out.append(chk.monotone_in_eps(sw["eps"], sw["pgd20"], sw["n"], "pgd20"))
    else:
        eps_list = [eps * f for f in (0.5, 1.0, 1.5, 2.0) if eps * f <= 1 or norm == "l2"]
        accs = [chk.attack_accuracy(model, PGD(e, steps=20, norm=norm), xc, yc, batch_size, seed) for e in eps_list]
        out.append(chk.monotone_in_eps(eps_list, accs, len(keep), "pgd20"))
    seq = next((s for s in result["sequence"].values() if "square" in s), None)
    out.append(chk.black_box_not_stronger(seq))
    return out


def evaluate_run(run_dir: str | Path, config: EvalConfig | None = None, **options: Any) -> dict[str, Any]:
    """Evaluate a run; write ``eval.json`` (or ``eval-TAG.json``) and the audit files.

    ``config`` (an `EvalConfig`, default all defaults) with any of its fields overridden by ``options``, e.g.
    ``evaluate_run("runs/c", attacks=["pgd20", "autoattack"], n=1000)``. With a ``tag`` the files are
    ``eval-TAG.json``, ``per_sample-TAG.csv``, ... so that several evaluations of one run (e.g. all 10,000
    images with PGD, 1,000 with AutoAttack) live side by side.

    The model, dataset and default threat model come from the run's own config. An interrupted
    evaluation resumes from ``RUN/eval_state.pt`` when called again with the same options. The model runs
    in fp32 whatever precision it was trained in; ``channels_last`` changes only its weights' memory layout.
    """
    from .. import distributed
    from .. import run as runmod

    ec = resolve(config, options)
    run_dir = Path(run_dir)
    cfg = runmod.read_config(run_dir)
    dev = runmod.resolve_device(ec.device)
    dist = distributed.setup(dev)
    if dist.enabled and dev.type == "cuda":
        dev = torch.device("cuda", dist.local_rank)
    try:
        # no training or second evaluation may change the run's files meanwhile
        with rundir.locked(run_dir, "evaluation") if dist.main else contextlib.nullcontext():
            if ec.matrix():  # the threat matrix: the same path, several threat models (clead.threats)
                from .threats import threat_matrix

                if dist.enabled:
                    raise CleadError("a threat matrix runs in one process; drop --procs")
                return threat_matrix(run_dir, cfg, dev, ec)
            return _evaluate_run(run_dir, cfg, dev, dist, dataclasses.replace(ec, progress=ec.progress and dist.main))
    finally:
        distributed.teardown(dist)


def _evaluate_run(run_dir: Path, cfg, dev: torch.device, dist, ec: EvalConfig) -> dict[str, Any]:
    from .. import run as runmod
    from ..data import load_dataset
    from ..io import write_json
    from . import audit

    model = runmod.load_model(run_dir, ec.checkpoint).to(dev)
    identity = {
        "checkpoint": ec.checkpoint,
        "checkpoint_sha256": sha256_file(rundir.checkpoint(run_dir, ec.checkpoint)),
    }
    if ec.channels_last:
        to_channels_last(model)
    data = load_dataset(cfg.dataset, cfg.data_dir, **cfg.data_options())
    runmod.check_meta(model.data_meta, runmod.dataset_meta(data), f"{run_dir}/{ec.checkpoint}.pt")
    x, y = data.test_x[: ec.n], data.test_y[: ec.n]
    result = evaluate(
        model,
        x,
        y,
        dataclasses.replace(ec, eps=cfg.eps if ec.eps is None else ec.eps, norm=ec.norm or cfg.norm),
        num_classes=data.num_classes,
        device=dev,
        state_path=rundir.eval_state(run_dir, ec.tag),
        dist=dist,
        identity=identity,
    )
    if not dist.main:
        return {}
    audit.write_per_sample(rundir.per_sample_csv(run_dir, ec.tag), result)
    files = [rundir.per_sample_csv(run_dir, ec.tag).name]
    if audit.plot_examples(rundir.adv_examples_png(run_dir, ec.tag), result["examples"], result["eps"], data.classes):
        files.append(rundir.adv_examples_png(run_dir, ec.tag).name)
    if "sweep" in result:
        audit.plot_sweeps(rundir.eps_sweep_png(run_dir, ec.tag), {cfg.method: result["sweep"]}, result["eps"])
        files.append(rundir.eps_sweep_png(run_dir, ec.tag).name)
    entry = audit.robustbench_entry(result, run_dir.name, cfg.model, cfg.dataset)
    if entry:  # tagged like the evaluation it comes from: a tagged evaluation never replaces the untagged entry
        entry["footnote"] += f" Checkpoint {ec.checkpoint}.pt" + (f", evaluation tag {ec.tag!r}." if ec.tag else ".")
        audit.write_robustbench(rundir.robustbench_json(run_dir, ec.tag), entry)
        files.append(rundir.robustbench_json(run_dir, ec.tag).name)
    out = {k: v for k, v in result.items() if k not in ("per_sample", "examples")}
    out = {
        "run": run_dir.name,
        "method": cfg.method,
        "model": cfg.model,
        "dataset": cfg.dataset,
        "checkpoint": ec.checkpoint,
        "checkpoint_sha256": identity["checkpoint_sha256"],
        "tag": ec.tag,
        **out,
        "files": files,
        "eval_config": ec.to_dict(),
    }
    write_json(rundir.eval_json(run_dir, ec.tag), out)
    return out
