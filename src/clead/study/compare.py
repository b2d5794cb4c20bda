"""Paired comparison of runs evaluated on the same test images, from their ``per_sample.csv``.

Two models attacked on the same images are not independent samples: most images are robust (or broken)
under both, and only the *discordant* images, right under one model and wrong under the other, carry
information about which is better. For runs A and B and a per-image outcome (clean correct, or robust:
correct under every attack run), with ``n10`` = images A gets right and B wrong, ``n01`` the reverse:

* difference ``d = (n10 - n01) / n`` (A minus B), exactly the difference of the two accuracies;
* 95% interval: the Wald interval for a paired difference of proportions,
  ``d ± 1.96 · sqrt(n10 + n01 - (n10 - n01)² / n) / n`` (Agresti, *Categorical Data Analysis*, 10.1);
* exact McNemar test: two-sided binomial test of ``n10`` among ``n10 + n01`` discordant images against
  1/2 (``scipy.stats.binomtest``); p = 1 when there is no discordant image.

Seed groups (runs ``NAME``, ``NAME-seed1``, ``NAME-seed2`` ... side by side in one directory) are paired
seed by seed. Over the seeds both have, the mean difference is tested two ways, which answer different
questions:

* **over seeds**: Student-t 95% interval and one-sample t-test of the per-seed differences against 0
  (``scipy.stats.t``, ``k - 1`` degrees of freedom): would another training seed keep the sign? It measures
  training randomness, and with 3 seeds it resolves only differences that are large against their spread.
* **over images**: per image, ``d_i`` = the mean over seeds of (A right) - (B right); a paired z-interval and
  z-test of the mean of ``d_i`` over the ``n`` images (``mean ± 1.96 · sd(d) / sqrt(n)``): are these trained
  models, averaged over seeds, better on this kind of image? It measures test-set sampling, counts each
  image once however many seeds see it (an image hard for one model is hard at every seed), and for one
  seed is the McNemar Wald interval up to ``n / (n - 1)``.
Runs evaluated on different images, eps, threat models or attacks are refused. ``threat``: the same
comparison under one threat of the runs' threat matrices (``eval-threats.json``, ``per_sample-threats.csv``).
"""

from __future__ import annotations

import csv
import math
import re
from pathlib import Path
from typing import Any, Sequence

from .. import rundir
from ..attacks.base import format_eps
from ..errors import CleadError

OUTCOMES = ("clean", "robust")
Z95 = 1.959963984540054
# why compare leaves a seed run out of the seed-by-seed pairing, as its table says
LEFT_OUT = {
    "not evaluated": "on disk, not evaluated yet",
    "no partner": "evaluated, but the other model has no run of that seed",
}


def _read(ev_path: Path, csv_path: Path, hint: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """An evaluation's JSON and its per-sample CSV rows; a missing file is an error saying how to make it."""
    for p in (ev_path, csv_path):
        if not p.is_file():
            raise CleadError(f"{p} does not exist: {hint}")
    ev = rundir.read_json(ev_path)
    try:
        with open(csv_path, newline="") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise CleadError(f"{csv_path} is unreadable ({e}): {hint}") from None
    n = ev.get("n") if isinstance(ev, dict) else None
    # a file cut short loses rows, or ends in a row without all its fields
    complete = sum(None not in r.values() and None not in r for r in rows)
    if complete != len(rows) or n is not None and len(rows) != n:
        raise CleadError(
            f"{csv_path} is truncated or corrupt ({complete} complete rows for n = {n}): evaluate the run again"
        )
    return ev, rows


def _outcomes(run_dir: Path, ev: dict[str, Any], rows: list[dict[str, str]], robust: str) -> dict[str, Any]:
    """What the comparison reads: the evaluation's settings, and per image its label, clean and robust outcome."""
    return {
        "run": str(run_dir),
        "eval": ev,
        "label": [int(r["label"]) for r in rows],
        "clean": [r["correct_clean"] == "1" for r in rows],
        "robust": [r[robust] == "1" for r in rows],
    }


def load_threat(run_dir: str | Path, threat: str, tag: str = "threats") -> dict[str, Any]:
    """One threat of a run's threat matrix (``eval-threats.json``, ``per_sample-threats.csv``; ``tag``
    ``threats-TAG`` for a tagged one) in the shape of :func:`load_eval`: robust = correct under that threat's
    attack."""
    run_dir = Path(run_dir)
    flag = f" --tag {tag[len('threats-') :]}" if tag.startswith("threats-") else ""
    matrix, rows = _read(
        rundir.eval_json(run_dir, tag),
        rundir.per_sample_csv(run_dir, tag),
        f"run the threat matrix first (`clead eval {run_dir} --threats{flag}`; matrices made before "
        "per_sample-threats.csv existed need a rerun)",
    )
    by_threat = {r["threat"]: r for r in matrix["threats"]}
    if threat not in by_threat or (rows and threat not in rows[0]):
        raise CleadError(f"{run_dir} has no {threat!r} threat; it has {', '.join(by_threat)}")
    t = by_threat[threat]
    ev = {
        "n": t["n"],
        "eps": t["eps"],
        "threat_model": t["norm"],
        "per_attack": {t["attack"]: t["robust"]},
        "seed": matrix.get("seed"),
        "checkpoint": matrix.get("checkpoint", "best"),  # matrices from before it was recorded: best.pt
    }
    return _outcomes(run_dir, ev, rows, threat)


def load_eval(run_dir: str | Path, tag: str = "", threat: str | None = None) -> dict[str, Any]:
    """A run's evaluation: ``eval[-TAG].json`` plus its per-sample outcomes (with ``threat``: that threat of
    its threat matrix)."""
    if threat:
        return load_threat(run_dir, threat, tag or "threats")
    run_dir = Path(run_dir)
    ev, rows = _read(
        rundir.eval_json(run_dir, tag),
        rundir.per_sample_csv(run_dir, tag),
        f"evaluate the run first (`clead eval {run_dir}{' --tag ' + tag if tag else ''}`)",
    )
    return _outcomes(run_dir, ev, rows, "robust")


def _settings(e: dict[str, Any]) -> dict[str, Any]:
    """What must agree for two evaluations' per-image outcomes to be comparable: the images, threat model,
    attacks with all their settings (steps, restarts, step size: their recorded descriptions), the attacks'
    seed and which checkpoint was evaluated."""
    ev = e["eval"]
    return {
        "n": ev["n"],
        "eps": ev["eps"],
        "threat model": ev["threat_model"],
        "attacks": sorted(ev["per_attack"]),
        "attack settings": ev.get("attacks"),
        "attack seed": ev.get("seed"),
        "checkpoint": ev.get("checkpoint", "best"),
    }


def check_comparable(a: dict[str, Any], b: dict[str, Any]) -> None:
    sa, sb = _settings(a), _settings(b)
    differ = [key for key in sa if sa[key] != sb[key]]
    if differ:
        detail = "; ".join(f"{key}: {sa[key]} vs {sb[key]}" for key in differ)
        raise CleadError(
            f"{a['run']} and {b['run']} were evaluated differently ({detail}); a paired comparison needs the same "
            "images, threat model, attacks and attack settings, seed and checkpoint: evaluate them alike"
        )
    if a["label"] != b["label"]:
        raise CleadError(f"{a['run']} and {b['run']} were evaluated on different images (labels differ)")


def mcnemar(n10: int, n01: int, n: int) -> dict[str, Any]:
    """Paired difference, its Wald 95% interval and the exact McNemar p-value (see the module docstring)."""
    from scipy.stats import binomtest

    d = (n10 - n01) / n
    half = Z95 * math.sqrt(max(n10 + n01 - (n10 - n01) ** 2 / n, 0.0)) / n
    p = binomtest(n10, n10 + n01, 0.5).pvalue if n10 + n01 else 1.0
    return {"n": n, "n10": n10, "n01": n01, "difference": d, "ci": [d - half, d + half], "p": float(p)}


def paired(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Clean and robust comparison of two loaded evaluations (A minus B)."""
    check_comparable(a, b)
    n = len(a["label"])
    out: dict[str, Any] = {
        "a": a["run"],
        "b": b["run"],
        **{k: _settings(a)[k] for k in ("eps", "threat model", "attacks")},
        # the sanity checks each evaluation failed (clead.evaluation.checks): its robust outcomes may be inflated
        "failed checks": {e["run"]: bad for e in (a, b) if (bad := failed_checks(e["eval"]))},
    }
    for k in OUTCOMES:
        n10 = sum(x and not y for x, y in zip(a[k], b[k]))
        n01 = sum(y and not x for x, y in zip(a[k], b[k]))
        out[k] = {"a": sum(a[k]) / n, "b": sum(b[k]) / n, **mcnemar(n10, n01, n)}
    return out


def failed_checks(ev: dict[str, Any]) -> list[str]:
    """The names of the sanity checks an evaluation failed (none for a threat matrix, which runs none)."""
    return [c["name"] for c in ev.get("checks") or [] if c.get("passed") is False]


def failed_in(result: dict[str, Any]) -> dict[str, list[str]]:
    """``{run: failed check names}`` of every evaluation one comparison read, seed runs included."""
    return {
        run: bad
        for entry in (result, *result.get("per_seed", {}).values())
        for run, bad in entry["failed checks"].items()
    }


def seed_dirs(run_dir: Path) -> dict[int, Path]:
    """``{0: NAME, 1: NAME-seed1, ...}``: ``run_dir`` and its seed runs on disk beside it, evaluated or not."""
    run_dir = Path(run_dir)
    group = {0: run_dir}
    for p in run_dir.parent.glob(f"{run_dir.name}-seed*"):
        m = re.fullmatch(re.escape(run_dir.name) + r"-seed(\d+)", p.name)
        if m and p.is_dir():
            group[int(m.group(1))] = p
    return dict(sorted(group.items()))


def seed_group(run_dir: Path, tag: str = "", on_disk: dict[int, Path] | None = None) -> dict[int, Path]:
    """``{0: NAME, 1: NAME-seed1, ...}`` for the runs of ``run_dir``'s seed group evaluated so far (with ``tag``);
    ``on_disk``: its ``seed_dirs`` when the caller has them."""
    return {
        s: p
        for s, p in (on_disk or seed_dirs(run_dir)).items()
        if s == 0 or rundir.per_sample_csv(p, tag).is_file() and rundir.eval_json(p, tag).is_file()
    }


def _two_sided(mean: float, se: float, sf) -> float:
    """Two-sided p of ``mean / se`` under the survival function ``sf``; a zero spread gives 1 or 0."""
    if se == 0.0:
        return 1.0 if mean == 0.0 else 0.0
    return float(min(1.0, 2.0 * sf(abs(mean) / se)))


def mean_interval(values: Sequence[float]) -> dict[str, Any]:
    """Mean, Student-t 95% interval and one-sample t-test p against 0 (no interval, no p with fewer than 2)."""
    from scipy.stats import t

    k = len(values)
    mean = sum(values) / k
    if k < 2:
        return {"k": k, "mean": mean, "ci": None, "p": None}
    se = math.sqrt(sum((v - mean) ** 2 for v in values) / (k - 1)) / math.sqrt(k)
    half = t.ppf(0.975, k - 1) * se
    return {"k": k, "mean": mean, "ci": [mean - half, mean + half], "p": _two_sided(mean, se, lambda x: t.sf(x, k - 1))}


def image_interval(per_image: Sequence[float]) -> dict[str, Any]:
    """Mean of per-image differences with a z 95% interval and two-sided z-test p (see the module docstring)."""
    from scipy.stats import norm

    n = len(per_image)
    mean = sum(per_image) / n
    se = math.sqrt(sum((d - mean) ** 2 for d in per_image) / (n - 1)) / math.sqrt(n) if n > 1 else 0.0
    return {"n": n, "mean": mean, "ci": [mean - Z95 * se, mean + Z95 * se], "p": _two_sided(mean, se, norm.sf)}


def _over_images(ea: list[dict[str, Any]], eb: list[dict[str, Any]], outcome: str) -> dict[str, Any] | None:
    """Image-level test over seeds; None when the seeds were evaluated on different images."""
    if any(e["label"] != ea[0]["label"] for e in ea + eb):
        return None
    k, n = len(ea), len(ea[0]["label"])
    d = [sum(int(a[outcome][i]) - int(b[outcome][i]) for a, b in zip(ea, eb)) / k for i in range(n)]
    return image_interval(d)


def compare(
    runs: Sequence[str | Path], tag: str = "", seeds: bool = True, threat: str | None = None
) -> list[dict[str, Any]]:
    """Each run after the first against the first; with ``seeds`` also seed by seed over their seed groups;
    with ``threat`` on that threat of the runs' threat matrices instead of their evaluations (with ``tag``:
    of the matrices made with that tag)."""
    if threat:
        from ..evaluation.threats import matrix_tag

        tag = matrix_tag(tag)
    if len(runs) < 2:
        raise CleadError("name at least two runs: the first is compared with each of the others")
    ref = Path(runs[0])
    out = []
    for other in runs[1:]:
        other = Path(other)
        entry = paired(load_eval(ref, tag, threat), load_eval(other, tag, threat))
        if seeds:
            da, db = seed_dirs(ref), seed_dirs(other)
            ga, gb = seed_group(ref, tag, da), seed_group(other, tag, db)
            common = [s for s in ga if s in gb]
            entry["left out"] = {
                "not evaluated": [d[s].name for d, g in ((da, ga), (db, gb)) for s in d if s not in g],
                "no partner": [g[s].name for g, h in ((ga, gb), (gb, ga)) for s in g if s and s not in h],
            }
            if len(common) > 1:
                ea = [load_eval(ga[s], tag, threat) for s in common]
                eb = [load_eval(gb[s], tag, threat) for s in common]
                per_seed = {s: paired(a, b) for s, a, b in zip(common, ea, eb)}
                entry["seeds"] = {
                    "seeds": common,
                    "attacks": {str(s): per_seed[s]["attacks"] for s in common},
                    **{
                        k: {
                            "per_seed": [per_seed[s][k]["difference"] for s in common],
                            **mean_interval([per_seed[s][k]["difference"] for s in common]),
                            "images": _over_images(ea, eb, k),
                        }
                        for k in OUTCOMES
                    },
                }
                entry["per_seed"] = {str(s): per_seed[s] for s in common}
        out.append(entry)
    return out


def same_every_seed(s: dict[str, Any]) -> bool:
    """Whether every seed gave the same non-zero difference (``s``: one outcome over seeds): then the t interval
    over seeds has no width and its p is 0 by construction."""
    return bool(s.get("ci")) and s["ci"][0] == s["ci"][1] and s["mean"] != 0.0


def _pts(x: float) -> str:
    return f"{100 * x:+.1f}"


def _p(p: float) -> str:
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def markdown(results: list[dict[str, Any]]) -> str:
    """Tables of the comparison, differences in percentage points (A minus B)."""
    lines = [
        "| A | B | outcome | A % | B % | A − B (points) | 95% interval | A only | B only | McNemar p |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for k in OUTCOMES:
            c = r[k]
            lines.append(
                f"| {Path(r['a']).name} | {Path(r['b']).name} | {k} | {100 * c['a']:.1f} | {100 * c['b']:.1f} "
                f"| {_pts(c['difference'])} | {_pts(c['ci'][0])} to {_pts(c['ci'][1])} | {c['n10']} | {c['n01']} "
                f"| {_p(c['p'])} |"
            )
    first = results[0]
    lines += [
        "",
        f"n = {first['clean']['n']} images; robust = correct under every attack of the evaluation "
        f"({', '.join(first['attacks'])}; {first['threat model']} eps {format_eps(first['eps'])}). "
        "A only / B only: images right under one model and wrong under the other.",
    ]
    seeded = [r for r in results if "seeds" in r]
    if seeded:
        lines += [
            "",
            "Over seeds (each seed's difference on the same images, then their mean):",
            "",
            "| A | B | outcome | seeds | per-seed A − B (points) | mean | 95% interval over seeds | p over seeds "
            "| 95% interval over images | p over images |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in seeded:
            s = r["seeds"]
            for k in OUTCOMES:
                ci, im = s[k]["ci"], s[k]["images"]
                by_image = (
                    f"{_pts(im['ci'][0])} to {_pts(im['ci'][1])} | {_p(im['p'])}" if im else "different images | -"
                )
                lines.append(
                    f"| {Path(r['a']).name} | {Path(r['b']).name} | {k} | {', '.join(map(str, s['seeds']))} "
                    f"| {', '.join(_pts(v) for v in s[k]['per_seed'])} | {_pts(s[k]['mean'])} "
                    f"| {_pts(ci[0])} to {_pts(ci[1])} | {_p(s[k]['p'])} | {by_image} |"
                )
        lines += [
            "",
            "Over seeds: Student-t interval and t-test of the per-seed differences (would another training "
            "seed keep the sign?). Over images: each image's difference averaged over the seeds, z-interval "
            "and z-test over the images (is the difference more than test-set sampling?).",
        ]
        flat = [
            f"{Path(r['a']).name} − {Path(r['b']).name} {k}"
            for r in seeded
            for k in OUTCOMES
            if same_every_seed(r["seeds"][k])
        ]
        if flat:
            lines += [
                "",
                f"Every seed gave the same difference ({'; '.join(flat)}): with no spread the t-test's interval has no "
                "width and its p is 0 by construction, which says nothing about another seed; read the interval "
                "over images.",
            ]
        notes = {_attack_note(r["seeds"]["attacks"]) for r in seeded} - {""}
        lines += ["", *sorted(notes)] if notes else []
    failed = {run: bad for r in results for run, bad in failed_in(r).items()}
    if failed:
        parts = [f"{Path(run).name} ({', '.join(bad)})" for run, bad in sorted(failed.items())]
        lines += [
            "",
            "**WARNING: evaluations that failed sanity checks: " + "; ".join(parts) + ". Their robust outcomes may "
            "be inflated by gradient masking, and so may every difference they enter (`checks` in their eval JSON).**",
        ]
    left = {why: sorted({n for r in results for n in r.get("left out", {}).get(why, [])}) for why in LEFT_OUT}
    if any(left.values()):
        parts = [f"{', '.join(names)} ({LEFT_OUT[why]})" for why, names in left.items() if names]
        lines += ["", "Seed runs left out: " + "; ".join(parts) + "."]
    return "\n".join(lines) + "\n"


def _attack_note(attacks: dict[str, list[str]]) -> str:
    """Say so when the seeds' robust outcomes come from different attack sets (a suite's seed 0 gets full
    AutoAttack, its extra seeds APGD-CE + APGD-T): each seed's pair is comparable, the mean mixes them."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for seed, names in attacks.items():
        groups.setdefault(tuple(names), []).append(seed)
    if len(groups) < 2:
        return ""
    parts = [f"seed {', '.join(seeds)}: {', '.join(names)}" for names, seeds in groups.items()]
    return "Robust is the worst case over different attacks at different seeds (" + "; ".join(parts) + ")."
