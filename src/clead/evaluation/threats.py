"""One model under several threat models: the threat matrix of ``clead eval RUN --threats``.

Threats (each on the same first ``n`` test images, in fp32, robust = correct clean *and* under the attack):

* ``linf``: Linf at the run's training eps; ``linf-2x``: Linf at twice that (capped at 1);
* ``l2`` and ``l1``: L2 and L1 balls, attacked with pyautoattack's own L2 / L1 versions of the preset
  (standard AutoAttack supports all three norms; for L1 it uses its L1-APGD with 5 restarts);
* ``transfer`` (with ``--transfer-from RUN``): PGD-50 adversarial examples made on *another* run's model at
  this run's Linf eps, classified by this model (a black-box check: transfer accuracy far below white-box
  accuracy would point at gradient masking); ``transfer-pgd3``: the same with the C-LEAD authors' attack,
  PGD-3 with step 3/8 of eps (their 3/255 at 8/255), made on a separate standard model.

Default L2 and L1 radii keep the proportions of the union-of-threats benchmark for MNIST, Linf 0.3 / L2 2.0
/ L1 10 (Maini, Wong & Kolter, "Adversarial Robustness Against the Union of Multiple Perturbation Models",
ICML 2020), scaled to the run's Linf eps: ``l2 = 2.0 * eps / 0.3``, ``l1 = 10 * eps / 0.3`` (at Fashion-MNIST's
eps 0.1: 0.667 and 3.33; at 0.3 the benchmark's own 2.0 and 10). For 32x32 colour images (CIFAR) their
CIFAR-10 radii are kept as they are (L2 0.5, L1 12). ``--threat-eps l2=1.5,l1=8`` overrides them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from .. import rundir
from ..attacks.base import format_eps
from ..errors import CleadError

THREATS = ("linf", "linf-2x", "l2", "l1", "transfer", "transfer-pgd3")
# transfer threats: PGD steps and step size as a fraction of eps (None: PGD's default 2.5 / steps)
TRANSFER = {"transfer": (50, None), "transfer-pgd3": (3, 3 / 8)}
DEFAULT_THREATS = ("linf", "linf-2x", "l2", "l1")
PRESETS = ("autoattack", "apgd")
MNIST_UNION = {"linf": 0.3, "l2": 2.0, "l1": 10.0}
CIFAR_UNION = {"l2": 0.5, "l1": 12.0}


def matrix_tag(tag: str | None = "") -> str:
    """The evaluation tag of a threat matrix: ``threats`` (``eval-threats.json``, ``per_sample-threats.csv``),
    or ``threats-TAG`` for one made with ``clead eval --threats --tag TAG`` (a second matrix beside the first)."""
    return f"threats-{tag}" if tag else "threats"


def default_eps(threat: str, linf_eps: float, image_shape: Sequence[int]) -> float:
    """The radius of ``threat`` for a run trained at Linf ``linf_eps`` on images of ``image_shape`` (C, H, W)."""
    if threat == "linf":
        return linf_eps
    if threat == "linf-2x":
        return min(1.0, 2 * linf_eps)
    if tuple(image_shape)[0] == 3:
        return CIFAR_UNION[threat]
    return MNIST_UNION[threat] * linf_eps / MNIST_UNION["linf"]


def parse_threat_eps(text: str | None) -> dict[str, float]:
    """``"l2=1.5,l1=8"`` -> ``{"l2": 1.5, "l1": 8.0}``."""
    from ..attacks.base import parse_eps

    out: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, sep, value = part.partition("=")
        if not sep or name.strip() not in ("linf", "linf-2x", "l2", "l1"):
            raise CleadError(f"--threat-eps: expected NAME=EPS with NAME one of linf, linf-2x, l2, l1, got {part!r}")
        out[name.strip()] = parse_eps(value.strip())
    return out


def check_threats(threats: Sequence[str], transfer_from: str | None) -> None:
    unknown = [t for t in threats if t not in THREATS]
    if unknown:
        raise CleadError(f"unknown threat(s) {', '.join(unknown)}; valid: {', '.join(THREATS)}")
    if any(t in TRANSFER for t in threats) and not transfer_from:
        raise CleadError("the transfer threats need --transfer-from RUN (the model the attack is made on)")


def evaluate_threats(
    run_dir: str | Path,
    threats: Sequence[str] = DEFAULT_THREATS,
    n: int | None = 1000,
    preset: str = "autoattack",
    transfer_from: str | Path | None = None,
    eps_overrides: dict[str, float] | None = None,
    tag: str | None = "",
    **options: Any,
) -> dict[str, Any]:
    """The threat matrix of a run: `clead.evaluate_run` with ``threats`` set (one evaluation path: the same
    lock, checkpoint, records and options, e.g. ``checkpoint="last"``, ``seed``, ``batch_size``); writes
    ``RUN/eval-threats.json`` (with ``tag``: ``eval-threats-TAG.json``, leaving the untagged matrix as it is)
    and returns it."""
    from .evaluate import evaluate_run

    return evaluate_run(
        run_dir,
        threats=list(threats),
        n=n,
        threat_attack=preset,
        transfer_from=str(transfer_from) if transfer_from else None,
        threat_eps=dict(eps_overrides or {}),
        tag=tag or "",
        **options,
    )


def threat_matrix(run_dir: Path, cfg: Any, dev: torch.device, ec: Any) -> dict[str, Any]:
    """`evaluate_run`'s threat-matrix branch (``ec.threats`` set), inside its lock: ``ec.checkpoint`` of the run
    under each threat on its first ``ec.n`` test images; writes and returns ``eval-threats[-TAG].json``."""
    from .. import run as runmod
    from ..attacks import PGD
    from ..data import load_dataset, to_float
    from ..io import sha256_file, write_json
    from ..precision import to_channels_last
    from .evaluate import _logits, evaluate

    threats, n, preset, transfer_from, tag, checkpoint = (ec.threats, ec.n, ec.threat_attack, ec.transfer_from,
                                                          ec.tag, ec.checkpoint)  # fmt: skip
    batch_size, seed, progress = ec.batch_size, ec.seed, ec.progress
    model = to_channels_last(runmod.load_model(run_dir, checkpoint).to(dev))
    data = load_dataset(cfg.dataset, cfg.data_dir, **cfg.data_options())
    runmod.check_meta(model.data_meta, runmod.dataset_meta(data), f"{run_dir}/{checkpoint}.pt")
    x, y = data.test_x[:n], data.test_y[:n]
    overrides = ec.threat_eps or {}
    rows = []
    per_sample: dict[str, torch.Tensor] = {}  # threat -> robust per image (correct clean and under the attack)
    clean_ok = None
    for threat in threats:
        if threat in TRANSFER:
            source = runmod.load_model(transfer_from)
            runmod.check_meta(source.data_meta, runmod.dataset_meta(data), f"--transfer-from {transfer_from}")
            source = to_channels_last(source.to(dev))
            xf = to_float(x) if x.dtype == torch.uint8 else x
            torch.manual_seed(seed)
            steps, step = TRANSFER[threat]
            attack = PGD(
                cfg.eps, steps=steps, alpha=None if step is None else step * cfg.eps, norm="linf", keep_best=False
            )
            x_adv = torch.cat(
                [
                    attack(source, xf[i : i + batch_size].to(dev), y[i : i + batch_size].to(dev)).cpu()
                    for i in range(0, len(y), batch_size)
                ]
            )
            clean = _logits(model, xf, batch_size, dev).argmax(1) == y
            robust = clean & (_logits(model, x_adv, batch_size, dev).argmax(1) == y)
            per_sample[threat], clean_ok = robust, clean
            rows.append(
                {
                    "threat": threat,
                    "norm": "linf",
                    "eps": cfg.eps,
                    "attack": f"PGD-{steps} on {transfer_from}",
                    "clean": float(clean.float().mean()),
                    "robust": float(robust.float().mean()),
                    "n": len(y),
                }
            )
            continue
        norm = "linf" if threat.startswith("linf") else threat
        eps = overrides.get(threat, default_eps(threat, cfg.eps, data.image_shape))
        res = evaluate(
            model,
            x,
            y,
            attacks=[preset],
            eps=eps,
            norm=norm,
            batch_size=batch_size,
            seed=seed,
            progress=progress,
            checks=False,
            num_classes=data.num_classes,
            state_path=rundir.eval_state(run_dir, f"{matrix_tag(tag)}-{threat}"),
        )
        per_sample[threat], clean_ok = res["per_sample"]["robust"], res["per_sample"]["correct"]
        rows.append(
            {
                "threat": threat,
                "norm": norm,
                "eps": eps,
                "attack": res["attacks"][preset],
                "clean": res["clean_accuracy"],
                "robust": res["robust_accuracy"],
                "n": res["n"],
            }
        )
    out = {
        "run": run_dir.name,
        "method": cfg.method,
        "checkpoint": checkpoint,
        "checkpoint_sha256": sha256_file(rundir.checkpoint(run_dir, checkpoint)),
        "preset": preset,
        "seed": seed,
        "threats": rows,
        "eval_config": ec.to_dict(),
    }
    if tag:
        out["tag"] = tag
    write_per_sample(rundir.per_sample_csv(run_dir, matrix_tag(tag)), y, clean_ok, per_sample)
    write_json(rundir.eval_json(run_dir, matrix_tag(tag)), out)
    return out


def write_per_sample(path: Path, labels: torch.Tensor, clean: torch.Tensor, robust: dict[str, torch.Tensor]) -> None:
    """``per_sample-threats.csv``: per image its label, clean correctness and 1/0 robustness under each threat,
    what `clead compare --threat` pairs."""
    from ..io import write_text

    rows = [",".join(["index", "label", "correct_clean", *robust])]
    rows += [
        ",".join([str(i), str(int(labels[i])), str(int(clean[i])), *(str(int(r[i])) for r in robust.values())])
        for i in range(len(labels))
    ]
    write_text(path, "\n".join(rows) + "\n")


def threat_table(run_dirs: Sequence[str | Path], tag: str | None = "") -> str:
    """Runs x threats: robust accuracy in % (with the eps in the header); empty if no run has a threat matrix
    (with ``tag``: the matrices made with that tag)."""

    found = {}
    for d in map(Path, run_dirs):
        p = rundir.eval_json(d, matrix_tag(tag))
        if p.is_file():
            found[str(d)] = {r["threat"]: r for r in rundir.read_json(p)["threats"]}
    if not found:
        return ""
    names = [t for t in THREATS if any(t in rows for rows in found.values())]

    def head(t: str) -> str:
        eps = {format_eps(r[t]["eps"]) for r in found.values() if t in r}
        return f"{t} (PGD-{TRANSFER[t][0]})" if t in TRANSFER else f"{t} (eps {', '.join(sorted(eps))})"

    lines = ["| run | clean % | " + " | ".join(f"{head(t)} %" for t in names) + " |", "|" + "---|" * (len(names) + 2)]
    for run, rows in found.items():
        clean = next(iter(rows.values()))["clean"]
        cells = [f"{100 * rows[t]['robust']:.1f}" if t in rows else "-" for t in names]
        lines.append(f"| {run} | {100 * clean:.1f} | " + " | ".join(cells) + " |")
    n = {r["n"] for rows in found.values() for r in rows.values()}
    return (
        "\n".join(lines)
        + f"\n\nThreat matrix{' ' + repr(tag) if tag else ''}: robust accuracy under each threat model, n = {', '.join(map(str, sorted(n)))}.\n"
    )


def matrix_tags(run_dirs: Sequence[str | Path]) -> list[str]:
    """The tags of the threat matrices the runs hold (``""`` for the untagged one), untagged first."""
    tags = {rundir.matrix_tag_of(p) for d in map(Path, run_dirs) for p in rundir.evaluations(d) if rundir.is_matrix(p)}
    return sorted(tags, key=lambda t: (t != "", t))
