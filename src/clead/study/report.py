"""Markdown comparison of runs, read from each run's config.yaml, metrics.jsonl and eval.json."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

from .. import run as runmod
from .. import rundir
from ..errors import CleadError
from ..training.collapse import collapse_epoch, robust_fall_epoch


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def _checks(ev: dict[str, Any] | None) -> str:
    """``ok (6/7)``, ``FAILED: a, b`` or ``-`` when no checks ran."""
    checks = (ev or {}).get("checks") or []
    if not checks:
        return "-"
    from .compare import failed_checks

    bad = failed_checks(ev or {})
    if bad:
        return "FAILED: " + ", ".join(bad)
    return f"ok ({sum(c['passed'] is True for c in checks)}/{len(checks)} run)"


def collect(run_dirs: Sequence[str | Path], tag: str | None = "") -> list[dict[str, Any]]:
    """Per run: its config, metrics and evaluation (``eval-TAG.json`` with ``tag``), None where not evaluated."""
    rows = []
    for d in map(Path, run_dirs):
        cfg = runmod.read_config(d)
        metrics = runmod.read_metrics(d)
        ev_path = rundir.eval_json(d, tag)
        ev = rundir.read_json(ev_path) if ev_path.is_file() else None
        rows.append({"run": str(d), "cfg": cfg, "metrics": metrics, "eval": ev})
    return rows


def markdown_table(run_dirs: Sequence[str | Path], tag: str | None = "") -> str:
    """One row per run: method, budget, clean and per-attack accuracy, worst case, samples, train time (of the
    evaluation tagged ``tag``, the untagged one by default)."""
    if not run_dirs:
        raise CleadError("no runs given")
    rows = collect(run_dirs, tag)
    attacks: list[str] = []
    for r in rows:
        for name in (r["eval"] or {}).get("per_attack", {}):
            if name not in attacks:
                attacks.append(name)
    head = [
        "run",
        "method",
        "eps",
        "epochs",
        "clean %",
        *[f"{a} %" for a in attacks],
        "robust (worst case) %",
        "n",
        "checks",
        "train min",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cfg, ev = r["cfg"], r["eval"] or {}
        train_min = sum(m.get("seconds", 0) for m in r["metrics"]) / 60
        cells = [
            r["run"],
            cfg.method,
            f"{ev.get('eps', cfg.eps):g}",
            f"{len(r['metrics'])}/{cfg.epochs}",
            _pct(ev.get("clean_accuracy")),
            *[_pct(ev.get("per_attack", {}).get(a)) for a in attacks],
            _pct(ev.get("robust_accuracy")),
            str(ev.get("n", "-")),
            _checks(ev),
            f"{train_min:.1f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    warn = [
        f"**WARNING: {r['run']} failed the sanity check(s) {_checks(r['eval'])[8:]}**; its robust accuracy may be "
        "inflated by gradient masking (details under `checks` in its eval.json)."
        for r in rows
        if r["eval"] and _checks(r["eval"]).startswith("FAILED")
    ]
    missing = [r["run"] for r in rows if r["eval"] is None]
    note = f"\nNot evaluated yet (run `clead eval`): {', '.join(missing)}\n" if missing else ""
    return "\n".join(lines) + "\n" + "".join(f"\n{w}\n" for w in warn) + note


def wilson(p: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of an accuracy ``p`` measured on ``n`` samples."""
    if n <= 0:
        return (0.0, 1.0)
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _ci(p: float | None, n: int | None) -> str:
    if p is None or not n:
        return "-"
    lo, hi = wilson(p, n)
    return f"{100 * p:.2f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _evals(run_dir: Path) -> dict[str, dict[str, Any]]:
    """A run's evaluations (``eval.json``, ``eval-TAG.json``); threat matrices (``eval-threats[-TAG].json``)
    have their own format and table."""
    return {p.stem: rundir.read_json(p) for p in rundir.evaluations(run_dir) if not rundir.is_matrix(p)}


COLUMNS = ["clean", "fgsm", "pgd20", "pgd50", "cw", "autoattack"]  # always shown; other attacks go before AutoAttack


def suite_rows(run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    """Per run: each accuracy with the largest n it was measured on, the worst case, checks and costs."""
    rows = []
    for d in map(Path, run_dirs):
        cfg = runmod.read_config(d)
        metrics = runmod.read_metrics(d)
        evals = _evals(d)
        # the table is about best.pt; evaluations of last.pt (what training without selection gives) go aside
        last = {k: v for k, v in evals.items() if v.get("checkpoint", "best") == "last"}
        evals = {k: v for k, v in evals.items() if k not in last}
        cells: dict[str, tuple[float, int]] = {}
        # the main evaluation first: it gives a cell that another evaluation measured on as many images too
        for ev in sorted(evals.values(), key=lambda e: e is not evals.get("eval")):
            n = ev["n"]
            if "clean" not in cells or n > cells["clean"][1]:
                cells["clean"] = (ev["clean_accuracy"], n)
            for name, acc in ev["per_attack"].items():
                if name not in cells or n > cells[name][1]:
                    cells[name] = (acc, n)
        main = evals.get("eval") or next(iter(evals.values()), None)
        epoch_on, epochs = _main_machine([m for m in metrics if "train_seconds" in m])
        rows.append(
            {
                "run": d.name,
                "dir": d,
                "method": cfg.method,
                "training": training_label(cfg),
                "collapse": collapse_epoch(metrics),
                "ema": cfg.ema_decay > 0,
                "seed": cfg.seed,
                "cfg": cfg,
                "cells": cells,
                "worst": (main["robust_accuracy"], main["n"]) if main else None,
                "checks": _checks(main),
                "epoch_s": sum(m["train_seconds"] for m in epochs) / len(epochs) if epochs else None,
                "epoch_on": epoch_on,
                "peak_mb": max((m.get("peak_rss_mb") or m.get("peak_memory_mb") or 0) for m in metrics)
                if metrics
                else None,
                "metrics": metrics,
                "sweep": (main or {}).get("sweep"),
                "main": main,
                "last": next(iter(last.values()), None),
            }
        )
    return rows


ATTACK_LABELS = {"fgsm-rs": "FGSM-RS", "n-fgsm": "N-FGSM"}  # the single-step training attacks, as papers name them


def training_label(cfg: Any) -> str:
    """How a run trained, in a few words: its method, training attack and the options on top of them, e.g.
    ``pgd-at, PGD-10`` or ``clead, N-FGSM + EMA``."""
    if cfg.method == "standard":
        attack = ""
    elif cfg.views_from:
        attack = "offline views"
    else:
        attack = f"PGD-{cfg.attack_steps}" if cfg.train_attack == "pgd" else ATTACK_LABELS[cfg.train_attack]
    extras = [name for name, on in (("AWP", cfg.awp_gamma > 0), ("EMA", cfg.ema_decay > 0)) if on]
    return ", ".join(filter(None, [cfg.method, " + ".join(filter(None, [attack, *extras]))]))


def _main_machine(epochs: list[dict[str, Any]]) -> tuple[str | None, list[dict[str, Any]]]:
    """The machine and precision (`epoch_where`) that ran most of a run's timed epochs (the later one on a tie),
    and those epochs: a run moved between a GPU and a CPU gets its s/epoch from one machine, not a mean of both.
    (None, all epochs) when they predate the ``device`` field."""
    counts: dict[str, int] = {}
    for m in epochs:
        if "device" in m:
            where = epoch_where(m)
            counts[where] = counts.pop(where, 0) + 1  # re-inserted: the later machine wins a tie in max()
    if not counts:
        return None, epochs
    top = max(reversed(counts), key=counts.__getitem__)
    return top, [m for m in epochs if "device" in m and epoch_where(m) == top]


def apgd_ct(row: dict[str, Any]) -> float | None:
    """Accuracy after APGD-CE then APGD-T on the main evaluation: the ``apgd`` attack, or the same two attacks
    read from an AutoAttack run's cascade (AutoAttack runs them first, with the same settings)."""
    main = row["main"] or {}
    if "apgd" in main.get("per_attack", {}):
        return main["per_attack"]["apgd"]
    return (main.get("sequence") or {}).get("autoattack", {}).get("apgd-t")


def _cell(name: str) -> Any:
    return lambda row: row["cells"].get(name, (None,))[0]


SEED_COLUMNS = [
    ("clean", _cell("clean")),
    ("PGD-20", _cell("pgd20")),
    ("APGD-CE+T", apgd_ct),
    ("AutoAttack", _cell("autoattack")),
]


def seed_table(rows: list[dict[str, Any]]) -> list[str]:
    """Mean ± sample std over the seeds of each run that has extra seeds (runs ``NAME``, ``NAME-seed1``, ...),
    for each measure that all of them have; n as in the main table."""
    import re
    import statistics

    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(re.sub(r"-seed\d+$", "", r["run"]), []).append(r)
    multi = {m: rs for m, rs in groups.items() if len(rs) > 1}
    if not multi:
        return []
    lines = [
        "",
        "Over seeds (mean ± sample std):",
        "",
        "| run | seeds | " + " | ".join(f"{c} %" for c, _ in SEED_COLUMNS) + " |",
        "|" + "---|" * (2 + len(SEED_COLUMNS)),
    ]
    for m, rs in multi.items():
        cells = []
        for _, get in SEED_COLUMNS:
            v = [get(r) for r in rs]
            cells.append("-" if None in v else f"{100 * statistics.mean(v):.2f} ± {100 * statistics.stdev(v):.2f}")
        lines.append(f"| {m} | {', '.join(str(r['seed']) for r in rs)} | " + " | ".join(cells) + " |")
    return lines


def epoch_where(m: dict[str, Any]) -> str:
    """One logged epoch's machine and precision, e.g. ``cpu (AMD EPYC), fp32`` (AMP "none" is fp32); as much of
    it as the epoch logged."""
    amp = m.get("amp")
    prec = "fp32" if amp == "none" else amp
    return ", ".join(str(x) for x in (m.get("device"), prec) if x)


def trained_on(metrics: list[dict[str, Any]]) -> str | None:
    """Where a run's epochs ran and in which precision, e.g. ``cpu (AMD EPYC), fp32`` or ``NVIDIA H100, bf16
    (epochs 1-14, 43 s/epoch), cpu, bf16 (epochs 15-20, ...)`` for a run resumed on another machine; None when
    its metrics predate the ``device`` field."""
    spans: list[list[Any]] = []  # [device and precision, first epoch, last epoch, seconds]
    for m in metrics:
        if "device" not in m:
            continue
        where = epoch_where(m)
        if spans and spans[-1][0] == where:
            spans[-1][2], spans[-1][3] = m["epoch"], spans[-1][3] + m.get("train_seconds", 0)
        else:
            spans.append([where, m["epoch"], m["epoch"], m.get("train_seconds", 0)])
    if len(spans) <= 1:
        return spans[0][0] if spans else None
    return ", ".join(
        f"{d} (epoch{f' {a}' if a == b else f's {a}-{b}'}, {t / (b - a + 1):.0f} s/epoch)" for d, a, b, t in spans
    )


def evaluated_on(ev: dict[str, Any] | None) -> str | None:
    """Where an evaluation's attacks ran, e.g. ``cpu``, or ``NVIDIA H100 (12 min), cpu (40 min)`` for one
    resumed on another machine; None when it predates the ``devices`` field."""
    devices = (ev or {}).get("devices")
    if not devices:
        return None
    if len(devices) == 1:
        return next(iter(devices))
    return ", ".join(f"{d} ({s / 60:.0f} min)" for d, s in devices.items())


def _by_machine(rows: list[dict[str, Any]], where, has) -> str:
    """``run, run: machine; run: machine`` grouping runs by what ``where(row)`` says; the runs that ``has`` a
    record older than the machine field are named as such at the end, those without one left out; "" when no
    run's record names its machine."""
    groups: dict[str, list[str]] = {}
    older = []
    for r in rows:
        if (dev := where(r)) is not None:
            groups.setdefault(dev, []).append(r["run"])
        elif has(r):
            older.append(r["run"])
    if not groups:
        return ""
    return "; ".join(
        [f"{', '.join(runs)}: {dev}" for dev, runs in groups.items()]
        + ([f"{', '.join(older)}: not recorded (older run)"] if older else [])
    )


def suite_markdown(rows: list[dict[str, Any]], title: str) -> str:
    extra = list(dict.fromkeys(a for r in rows for a in r["cells"] if a not in COLUMNS))  # e.g. apgd-ce, apgd
    columns = [*COLUMNS[:-1], *extra, COLUMNS[-1]]
    head = ["run", "training", *columns, "worst case", "checks", "s/epoch", "peak MB"]
    lines = [
        f"# {title}",
        "",
        "Accuracy in % with its 95% Wilson interval; n per cell below the table.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    # s/epoch compares runs only on one machine: where the table's runs trained on several, each cell names its
    # machine by a key listed under the table
    machines = machine_keys(rows)
    keyed = len(machines) > 1
    for r in rows:
        cells = [_ci(*r["cells"].get(c, (None, None))) for c in columns]
        worst = _ci(*r["worst"]) if r["worst"] else "-"
        secs = epoch_seconds([r], machines)
        lines.append(
            "| "
            + " | ".join(
                [
                    r["run"],
                    r.get("training", r["method"]),
                    *cells,
                    worst,
                    r["checks"],
                    secs,
                    f"{r['peak_mb']:.0f}" if r["peak_mb"] else "-",
                ]
            )
            + " |"
        )
    ns = sorted({f"{c}: n={r['cells'][c][1]}" for r in rows for c in columns if c in r["cells"]})
    lines += ["", "Samples: " + ", ".join(ns) + "; worst case over all attacks of the main evaluation (eval.json)."]
    if keyed:
        keys = [f"m{i + 1} = {m or 'not recorded (older run)'}" for i, m in enumerate(machines)]
        lines += [
            "",
            "s/epoch: mean over the epochs of the machine that ran most of each run's; " + "; ".join(keys) + ".",
        ]
    collapsed = [r for r in rows if r.get("collapse")]
    if collapsed:
        lines += [
            "",
            "Catastrophic overfitting (validation robust accuracy below half its best while clean accuracy held; "
            "best.pt never keeps such an epoch): "
            + "; ".join(f"{r['run']} at epoch {r['collapse']}" for r in collapsed)
            + ".",
        ]
    averaged = [r["run"] for r in rows if r.get("ema")]
    if averaged:
        lines += [
            "",
            f"Weight averaging (EMA): {', '.join(averaged)} validated, selected and evaluated the averaged weights.",
        ]
    trained = _by_machine(rows, lambda r: trained_on(r.get("metrics") or []), lambda r: bool(r.get("metrics")))
    if trained:
        lines += ["", f"Trained on: {trained}."]
    evaluated = _by_machine(rows, lambda r: evaluated_on(r.get("main")), lambda r: bool(r.get("main")))
    if evaluated:
        lines += ["", f"Main evaluation on: {evaluated}."]
    lines += seed_table(rows)
    bad = [r["run"] for r in rows if r["checks"].startswith("FAILED")]
    if bad:
        lines += ["", f"**WARNING: {', '.join(bad)} failed sanity checks; their robust numbers may be inflated.**"]
    return "\n".join(lines) + "\n"


def _epoch_axis(ax) -> None:
    """An x axis of whole epochs."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def plot_curves(path: Path, rows: list[dict[str, Any]]) -> None:
    from ..evaluation.audit import _save_fig, plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for r in rows:
        ep = [m["epoch"] for m in r["metrics"]]
        axes[0].plot(ep, [m["loss"] for m in r["metrics"]], label=r["run"])
        axes[1].plot(ep, [100 * m["val_clean"] for m in r["metrics"]], label=r["run"])
        (line,) = axes[2].plot(ep, [100 * m["val_pgd"] for m in r["metrics"]], label=r["run"])
        fell = [m for m in r["metrics"] if m.get("collapsed")]
        if fell:  # collapsed epochs (clead.collapse) marked on the robust curve
            axes[2].plot([m["epoch"] for m in fell], [100 * m["val_pgd"] for m in fell], "x", color=line.get_color())
    titles = ("training loss", "validation clean %", "validation robust % (val_attack; x: collapsed)")
    for ax, t in zip(axes, titles):
        ax.set_title(t, fontsize=9)
        _epoch_axis(ax)
        ax.grid(alpha=0.3)
    axes[2].legend(fontsize=6)
    _save_fig(fig, path)


def _cost_of(row: dict[str, Any], cost: dict[str, Any]) -> dict[str, Any] | None:
    """A row's entry of a suite's ``cost.json`` (benchmarks/cost.py): by run name, or by path for a reused run."""
    runs = cost.get("runs", {})
    return runs.get(row["run"]) if row["run"] in runs else runs.get(str(row["dir"]))


def cost_table(rows: list[dict[str, Any]], cost: dict[str, Any]) -> str:
    """Each run's measured training cost beside its AutoAttack accuracy, cheapest first."""
    priced = sorted((r for r in rows if _cost_of(r, cost)), key=lambda r: _cost_of(r, cost)["ratio"])
    if not priced:
        return ""
    lines = [
        "",
        "## Cost and robustness",
        "",
        f"Training cost measured by `python benchmarks/cost.py` on {cost['machine']} ({cost['threads']} thread, "
        f"{cost['rounds']} interleaved rounds): seconds per step of each run's own training step, as a ratio to "
        f"{Path(cost['reference']).name if '/' in cost['reference'] else cost['reference']}"
        + (f" ({cost['reference']})" if "/" in cost["reference"] else "")
        + ", and the forward+backward passes per image of one step.",
        "",
        "| run | training | cost (x reference) | s/step | fwd+bwd per image | AutoAttack % | clean % |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in priced:
        c = _cost_of(r, cost)
        aa, clean = r["cells"].get("autoattack"), r["cells"].get("clean")
        lines.append(
            f"| {r['run']} | {r['training']} | {c['ratio']:.2f} | {c['seconds_per_step']:.3f} | "
            f"{c['fwd_bwd_per_image']} | {_ci(*aa) if aa else '-'} | {_ci(*clean) if clean else '-'} |"
        )
    return "\n".join(lines) + "\n"


def cost_unit(rows: list[dict[str, Any]], cost: dict[str, Any]) -> str:
    """What a cost ratio of 1 is: one training step of the reference run, named by how it trained where the
    report holds it (``one pgd-at, PGD-10 step``), else by its directory's name."""
    reference = cost["runs"].get(cost["reference"])
    ref = next((r for r in rows if reference is not None and _cost_of(r, cost) is reference), None)
    return f"one {ref['training']} step" if ref else Path(cost["reference"]).name


def frontier_points(rows: list[dict[str, Any]], cost: dict[str, Any]) -> dict[str, list[tuple]]:
    """The frontier's lines: per method (with its options, e.g. EMA), its runs as (cost ratio, AutoAttack %,
    training attack, low %, high %) sorted by cost, the bounds being the 95% Wilson interval of the accuracy."""
    lines: dict[str, list[tuple]] = {}
    for r in rows:
        c, aa = _cost_of(r, cost), r["cells"].get("autoattack")
        if not c or not aa:
            continue
        words = r["training"].split(", ", 1)
        attack, *extras = (words[1] if len(words) > 1 else "").split(" + ")
        lo, hi = wilson(aa[0], aa[1])
        lines.setdefault(" + ".join([r["method"], *extras]), []).append(
            (c["ratio"], 100 * aa[0], attack, 100 * lo, 100 * hi)
        )
    return {k: sorted(v) for k, v in sorted(lines.items())}


def pareto(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """The (cost, accuracy) points that no other point beats: none at most as costly is at least as accurate
    (and better in one of the two); cheapest first."""
    front: list[tuple[float, float]] = []
    for c, a in sorted(points, key=lambda p: (p[0], -p[1])):
        if not front or a > front[-1][1]:
            front.append((c, a))
    return front


# where a point's label may go, in points from it: right and above, right and below, left and above, left and below
LABEL_PLACES = ((4.0, 4.0, "left"), (4.0, -11.0, "left"), (-4.0, 4.0, "right"), (-4.0, -11.0, "right"))


def label_offsets(
    anchors: list[tuple[float, float]], widths: list[float], height: float = 8.0, marker: float = 4.0
) -> list[tuple[float, float, str]]:
    """Where to put the label of each point at ``anchors[i]`` (display points), ``widths[i]`` wide: the first of
    `LABEL_PLACES` (offset and horizontal alignment) whose box overlaps neither a label placed before it nor the
    marker of another point (a square of half-side ``marker``), else the place that overlaps them least."""

    def overlap(a: tuple, b: tuple) -> float:
        return max(0.0, min(a[2], b[2]) - max(a[0], b[0])) * max(0.0, min(a[3], b[3]) - max(a[1], b[1]))

    placed: list[tuple] = []
    chosen = []
    for i, ((x, y), w) in enumerate(zip(anchors, widths)):
        markers = [(u - marker, v - marker, u + marker, v + marker) for j, (u, v) in enumerate(anchors) if j != i]

        def box(place: tuple) -> tuple:
            dx, dy, ha = place
            left = x + dx if ha == "left" else x + dx - w
            return (left, y + dy, left + w, y + dy + height)

        best = min(LABEL_PLACES, key=lambda p: sum(overlap(box(p), o) for o in placed + markers))  # first of equals
        chosen.append(best)
        placed.append(box(best))
    return chosen


def plot_frontier(path: Path, rows: list[dict[str, Any]], cost: dict[str, Any]) -> bool:
    """AutoAttack accuracy against measured training cost, a line per method, each point named by its training
    attack and drawn with its 95% interval (the n of a 1,000-image evaluation makes it about ±3 points, wider
    than most gaps on the plot), under the baselines' frontier (`pareto` of every point not C-LEAD's, as a
    band): what C-LEAD has to lie above. False, drawing nothing, when no run has both."""
    from ..evaluation.audit import _save_fig, plt

    lines = frontier_points(rows, cost)
    if not lines:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    baselines = pareto([p[:2] for name, pts in lines.items() if not name.startswith("clead") for p in pts])
    if len(baselines) > 1 and len(lines) > 1:  # what C-LEAD has to lie above: the best any baseline gets per cost
        right = max(p[0] for pts in lines.values() for p in pts)  # held to the costliest point on the plot
        steps = baselines + [(right, baselines[-1][1])]
        ax.step([c for c, _ in steps], [a for _, a in steps], where="post", color="grey", alpha=0.25, linewidth=8,
                label="baselines' frontier")  # fmt: skip
    labels = []  # (x, y, training attack, colour) of every point
    for name, pts in lines.items():
        xs, ys = [p[0] for p in pts], [p[1] for p in pts]
        err = [[y - p[3] for y, p in zip(ys, pts)], [p[4] - y for y, p in zip(ys, pts)]]
        line = ax.errorbar(xs, ys, yerr=err, fmt="o-", capsize=3, label=name).lines[0]
        labels += [(x, y, attack, line.get_color()) for x, y, attack, *_ in pts]
    ax.set_xscale("log")
    from matplotlib.ticker import FuncFormatter

    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))  # 0.4, not 4 x 10^-1
    ax.xaxis.set_minor_formatter(FuncFormatter(lambda v, _: f"{v:g}" if round(v * 10) in (2, 3, 4, 5, 6, 8) else ""))
    ax.autoscale_view()
    points = 72 / fig.dpi  # display pixels to the points that annotation offsets are given in
    anchors = [tuple(ax.transData.transform((x, y)) * points) for x, y, *_ in labels]
    size = 7
    offsets = label_offsets(anchors, [0.6 * size * len(attack) for _, _, attack, _ in labels], height=size + 1)
    for (x, y, attack, colour), (dx, dy, ha) in zip(labels, offsets):
        ax.annotate(attack, (x, y), textcoords="offset points", xytext=(dx, dy), ha=ha, fontsize=size, color=colour)
    ax.set_xlabel(f"training cost (x {cost_unit(rows, cost)}, measured)")
    ax.set_ylabel("AutoAttack accuracy % (95% interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save_fig(fig, path)
    return True


def _arm(run: str) -> str:
    """A run's arm: its name without the ``-seedN`` of an extra seed."""
    import re

    return re.sub(r"-seed\d+$", "", run)


def _aa(ev: dict[str, Any] | None) -> tuple[float, bool, bool] | None:
    """AutoAttack accuracy of an evaluation and True, or, where AutoAttack was not run (seeds evaluated with
    APGD-CE + APGD-T only), the worst case of the attacks that were and False; then whether a sanity check of
    that evaluation failed; None without an evaluation."""
    if not ev:
        return None
    from .compare import failed_checks

    failed = bool(failed_checks(ev))
    if "autoattack" in ev["per_attack"]:
        return ev["per_attack"]["autoattack"], True, failed
    return ev["robust_accuracy"], False, failed


def overfitting_table(rows: list[dict[str, Any]]) -> str:
    """Per arm (its seeds together): runs that collapsed (clead.collapse) out of those trained, AutoAttack
    accuracy of last.pt (what training without a guard gives) and of best.pt (what the guard keeps), mean and
    each seed, and training seconds per epoch; empty unless some run has an evaluation of last.pt."""
    if not any(r.get("last") for r in rows):
        return ""
    import statistics

    arms: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        arms.setdefault(_arm(r["run"]), []).append(r)

    partial = False  # some cell holds a worst case without AutoAttack (marked *, said under the table)
    unsound = False  # some evaluation failed a sanity check (marked †, said under the table)

    def cell(values: list[tuple[float, bool, bool] | None]) -> str:
        nonlocal partial, unsound
        known = [v for v in values if v is not None]
        if not known:
            return "-"
        exact = all(aa for _, aa, _ in known)
        partial |= not exact
        unsound |= any(failed for *_, failed in known)

        def one(v: tuple[float, bool, bool] | None) -> str:
            return "-" if v is None else f"{100 * v[0]:.1f}" + ("" if v[1] else "*") + ("†" if v[2] else "")

        mean = f"{100 * statistics.mean(acc for acc, *_ in known):.1f}" + ("" if exact else "*")
        return f"{mean} ({', '.join(map(one, values))})" if len(values) > 1 else one(known[0])

    lines = [
        "",
        "## Catastrophic overfitting",
        "",
        "AutoAttack accuracy % of last.pt (training without a guard) and of best.pt (what the guard keeps), mean "
        "(each seed), on the main evaluation's images; collapsed: runs with a collapsed epoch (validation robust "
        "accuracy below half its best while clean accuracy held) out of the runs of the arm; robustness fell: "
        "the first epoch whose validation robust accuracy was below half the best before it, whatever clean "
        "accuracy did (earlier than the collapse where clean accuracy fell with it for a while); epochs are each "
        "seed's, in seed order; "
        "s/epoch: training "
        "seconds per epoch, the mean over the arm's runs on each machine (keyed [mK] as under the suite table where "
        "the runs trained on several).",
        "",
        "| arm | training | collapsed | first collapsed epoch | robustness fell at epoch | AutoAttack last.pt % | "
        "AutoAttack best.pt % | s/epoch |",
        "|---|---|---|---|---|---|---|---|",
    ]
    machines = machine_keys(rows)
    for arm, rs in arms.items():
        rs = sorted(rs, key=lambda r: r["seed"])
        fell = [r for r in rs if r.get("collapse")]
        lines.append(
            f"| {arm} | {rs[0].get('training', rs[0]['method'])} | {len(fell)}/{len(rs)} | "
            + ", ".join(str(r.get("collapse") or "-") for r in rs)
            + " | "
            + ", ".join(str(robust_fall_epoch(r["metrics"]) or "-") for r in rs)
            + f" | {cell([_aa(r.get('last')) for r in rs])} | {cell([_aa(r.get('main')) for r in rs])} | "
            + epoch_seconds(rs, machines)
            + " |"
        )
    if partial:
        lines += ["", "\\* not all of AutoAttack: the worst case of the attacks that evaluation ran (e.g. APGD-CE + "
                  "APGD-T for extra seeds); a mean marked * mixes the two."]  # fmt: skip
    if unsound:
        lines += ["", "† that evaluation failed a sanity check (its `eval*.json`, `clead eval` prints which): the "
                  "attacks may overstate its robustness."]  # fmt: skip
    return "\n".join(lines + attack_bite_table(rows)) + "\n"


def attack_bite_table(rows: list[dict[str, Any]]) -> list[str]:
    """The lines of a table of each run's ``attack_bite-last.json`` (``benchmarks/attack_bite.py``): accuracy at
    last.pt clean, under the run's own training attack (on its training objective) and under PGD-10; a collapse
    whose training attack leaves more images correct than clean is the large-step mechanism. Empty without one."""
    found = [(r["run"], rundir.read_json(p)) for r in rows if (p := rundir.attack_bite_json(r["dir"])).is_file()]
    if not found:
        return []
    lines = [
        "",
        "Does the training attack still bite at last.pt? (`python benchmarks/attack_bite.py RUN`; accuracy % on "
        "the first n test images)",
        "",
        "| run | n | clean | its training attack | PGD-10 |",
        "|---|---|---|---|---|",
    ]
    for run, bite in found:
        acc = bite["accuracy"]
        own = next((k for k in acc if k.endswith("(training's)")), None) or next(
            k for k in acc if k not in ("clean", "pgd-10 on ce")
        )
        label = own.removesuffix(" (training's)")
        lines.append(
            f"| {run} | {bite['n']} | {100 * acc['clean']:.1f} | {100 * acc[own]:.1f} ({label}) | "
            f"{100 * acc['pgd-10 on ce']:.1f} |"
        )
    return lines


def epoch_seconds(rs: list[dict[str, Any]], machines: list[str]) -> str:
    """Mean training seconds per epoch of runs ``rs`` (an arm's seeds), a mean per machine they trained on,
    keyed ``[mK]`` by its place in ``machines`` (`machine_keys` of the whole table) where that has several:
    seconds from different CPUs are not averaged together."""
    import statistics

    per: dict[str, list[float]] = {}
    for r in rs:
        if r.get("epoch_s"):
            per.setdefault(r.get("epoch_on"), []).append(r["epoch_s"])
    keyed = len(machines) > 1
    return (
        ", ".join(
            f"{statistics.mean(v):.0f}" + (f" [m{machines.index(m) + 1}]" if keyed else "") for m, v in per.items()
        )
        or "-"
    )


def machine_keys(rows: list[dict[str, Any]]) -> list[str]:
    """The machines the runs' timed epochs ran on, in order of first appearance: the keys ``[m1]``, ``[m2]``, ...
    that the suite table lists under it."""
    return list(dict.fromkeys(r.get("epoch_on") for r in rows if r["epoch_s"]))


def overfitting_panels(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The runs of each panel of the per-epoch picture: one panel per single-step training attack, holding the
    runs trained with it and the multi-step runs (the non-collapsing reference, in every panel); one panel of
    all runs when fewer than two single-step attacks were used."""
    single = list(dict.fromkeys(r["cfg"].train_attack for r in rows if r["cfg"].train_attack != "pgd"))
    if len(single) < 2:
        return {"": rows}
    return {a: [r for r in rows if r["cfg"].train_attack in (a, "pgd")] for a in single}


def plot_overfitting(path: Path, rows: list[dict[str, Any]]) -> None:
    """Validation robust accuracy per epoch, a line per run coloured by arm (seeds share a colour, an arm keeps
    its colour in every panel), collapsed epochs marked, a panel per single-step training attack
    (`overfitting_panels`): a collapse is seen at a glance."""
    from ..evaluation.audit import _save_fig, plt

    arms = list(dict.fromkeys(_arm(r["run"]) for r in rows))
    colours = plt.get_cmap("tab10")
    panels = overfitting_panels(rows)
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), sharey=True, squeeze=False)
    for ax, (attack, members) in zip(axes[0], panels.items()):
        named: set[str] = set()
        for r in members:
            arm = _arm(r["run"])
            colour = colours(arms.index(arm) % 10)
            ep = [m["epoch"] for m in r["metrics"]]
            ax.plot(ep, [100 * m["val_pgd"] for m in r["metrics"]], color=colour, alpha=0.8,
                    linestyle="--" if r["cfg"].train_attack == "pgd" else "-",
                    label=None if arm in named else arm)  # fmt: skip
            named.add(arm)
            fell = [m for m in r["metrics"] if m.get("collapsed")]
            ax.plot([m["epoch"] for m in fell], [100 * m["val_pgd"] for m in fell], "x", color=colour)
        if attack:
            ax.set_title(f"trained with {ATTACK_LABELS.get(attack, attack)} (dashed: multi-step reference)", fontsize=9)
        _epoch_axis(ax)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("validation robust accuracy % (x: collapsed)")
    _save_fig(fig, path)


def write_suite_report(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    title: str,
    pairs: Sequence[tuple[str, str]] | None = None,
) -> tuple[Path, Path]:
    """``report.md`` and ``report.html`` for a set of runs, both linking their plots (PNG files beside them or
    in the run directories) by relative path, so the report stays small and a plot is one file to open;
    ``pairs`` (run names A, B) replace the default comparison of C-LEAD with the best baseline (`verdict`)."""
    import html

    from ..evaluation.audit import plot_sweeps
    from ..io import write_text

    out_dir = Path(out_dir)
    rows = suite_rows(run_dirs)
    tables = suite_markdown(rows, title)
    said = verdict(rows, pairs)
    head, rest = tables.split("\n", 1)
    md = f"{head}\n\n{said}{rest}" if said else tables  # the answer above the tables
    plot_curves(out_dir / "curves.png", rows)
    figures = [("Training curves", out_dir / "curves.png")]
    overfit = overfitting_table(rows)
    if overfit:
        plot_overfitting(out_dir / "overfitting.png", rows)
        figures.insert(0, ("Validation robust accuracy per epoch", out_dir / "overfitting.png"))
    cost = rundir.read_json(out_dir / "cost.json") if (out_dir / "cost.json").is_file() else {}
    costs = cost_table(rows, cost) if cost else ""
    if cost and plot_frontier(out_dir / "frontier.png", rows, cost):
        figures.insert(0, ("AutoAttack accuracy against training cost", out_dir / "frontier.png"))
    sweeps = {r["run"]: r["sweep"] for r in rows if r["sweep"]}
    if sweeps:
        plot_sweeps(out_dir / "eps_sweeps.png", sweeps, rows[0]["cfg"].eps)
        figures.append(("Robust accuracy against eps", out_dir / "eps_sweeps.png"))
    figures += [
        (f"Adversarial examples: {r['run']}", rundir.adv_examples_png(r["dir"]))
        for r in rows
        if rundir.adv_examples_png(r["dir"]).is_file()
    ]
    from ..evaluation.threats import matrix_tags, threat_table

    checks = check_matrix(rows)
    against = against_best_baseline(rows, pairs)
    dirs = [r["dir"] for r in rows]
    threats = "\n".join(threat_table(dirs, t) for t in matrix_tags(dirs))
    threats_md = "\n## Threat matrix\n\n" + threats if threats else ""
    md_full = (
        md
        + overfit
        + costs
        + against
        + threats_md
        + checks
        + "\n"
        + "".join(f"![{t}]({_link(p, out_dir)})\n\n" for t, p in figures)
    )
    write_text(out_dir / "report.md", md_full)
    body = [f"<h1>{html.escape(title)}</h1>"]
    if said:
        body += [f"<p>{_inline_html(line)}</p>" for line in said.strip().splitlines()]
    body.append(_md_table_html(tables))
    if overfit:
        body += ["<h2>Catastrophic overfitting</h2>", _md_table_html(overfit)]
    if costs:
        body += ["<h2>Cost and robustness</h2>", _md_table_html(costs)]
    if against:
        body += [f"<h2>{'Against the best baseline' if pairs is None else 'Paired comparisons'}</h2>"]
        body.append(_md_table_html(against))
    if threats:
        body += ["<h2>Threat matrix</h2>", _md_table_html(threats)]
    body += ["<h2>Sanity checks</h2>", _md_table_html(checks)]
    for t, p in figures:
        src = html.escape(_link(p, out_dir), quote=True)
        body.append(f"<h2>{html.escape(t)}</h2><a href='{src}'><img src='{src}' style='max-width:100%'></a>")
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>" + html.escape(title) + "</title><style>"
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;"
        "padding:4px 8px;font-size:13px}</style></head><body>" + "\n".join(body) + "</body></html>"
    )
    write_text(out_dir / "report.html", page)
    return out_dir / "report.md", out_dir / "report.html"


def _link(path: Path, base: Path) -> str:
    """``path`` as a link from a page in ``base``: relative (``../run/adv_examples.png`` too), so a report
    keeps working when the results folder is moved or cloned."""
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


def _rounded(v: Any) -> Any:
    if isinstance(v, float):
        return round(v, 3)
    if isinstance(v, list):
        return [_rounded(x) for x in v]
    if isinstance(v, dict):
        return {k: _rounded(x) for k, x in v.items()}
    return v


def check_matrix(rows: list[dict[str, Any]]) -> str:
    """Runs x sanity checks (pass / FAIL / not run), then each check's numbers, rounded."""
    names = list(dict.fromkeys(c["name"] for r in rows for c in (r["main"] or {}).get("checks", [])))
    lines = ["", "## Sanity checks", ""]
    if not names:
        return "\n".join(lines + ["No sanity checks were run.", ""])
    lines += ["| run | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 1)]
    details = []
    for r in rows:
        got = {c["name"]: c for c in (r["main"] or {}).get("checks", [])}
        marks = [
            {True: "pass", False: "**FAIL**", None: "not run"}[got[n]["passed"]] if n in got else "-" for n in names
        ]
        lines.append(f"| {r['run']} | " + " | ".join(marks) + " |")
        details += [
            f"| {r['run']} | {n} | " + "; ".join(f"{k} {_short(v)}" for k, v in got[n]["numbers"].items()) + " |"
            for n in names
            if n in got and got[n]["numbers"]
        ]
    table = ["| run | check | numbers |", "|---|---|---|", *details] if details else []
    return "\n".join(lines + ["", "Numbers behind each check (accuracies as fractions, rounded):", "", *table, ""])


def _short(v: Any) -> str:
    """A check's number as a reader wants it: floats to 3 digits, lists shortened."""
    v = _rounded(v)
    if isinstance(v, list):
        return "[" + ", ".join(map(str, v[:8])) + (", ..." if len(v) > 8 else "") + "]"
    return str(v)


def _clead_and_best(rows: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The seed-0 C-LEAD run and the seed-0 baseline with the highest worst-case robust accuracy."""
    seed0 = [r for r in rows if r["seed"] == 0 and r["worst"] and not r["run"].count("-seed")]
    clead = next((r for r in seed0 if r["method"] == "clead"), None)
    baselines = [r for r in seed0 if r["method"] not in ("clead", "standard")]
    return clead, (max(baselines, key=lambda r: r["worst"][0]) if baselines else None)


def _pairs(rows: list[dict[str, Any]], pairs: Sequence[tuple[str, str]] | None) -> list[tuple[dict, dict]]:
    """The (A, B) rows a report compares: the named pairs (run names, as in the table) whose runs it holds, or
    C-LEAD (seed 0) against the seed-0 baseline with the highest worst-case robust accuracy."""
    if pairs is None:
        clead, best = _clead_and_best(rows)
        return [] if clead is None or best is None else [(clead, best)]
    by_name = {r["run"]: r for r in rows}
    # a pair whose runs are not in the report yet (a partial suite report) is left out
    return [(by_name[a], by_name[b]) for a, b in pairs if a in by_name and b in by_name]


def _pair_sentence(a: dict[str, Any], b: dict[str, Any], default: bool, tag: str = "") -> str:
    """One sentence: A against B on the main evaluation, or on the evaluation ``tag`` (``last``: of last.pt)
    (difference, interval, p, from `clead compare`; over seeds too where both have seed siblings); empty when
    the two are not comparable there."""
    from .compare import compare, failed_in, same_every_seed

    try:
        (res,) = compare([a["dir"], b["dir"]], tag=tag)
    except CleadError:
        return ""

    def p_is(p: float) -> str:  # as n can resolve it, as `clead compare` prints it
        return "p < 0.001" if p < 0.001 else f"p = {p:.2g}"

    def flat(s: dict[str, Any]) -> bool:  # no interval over seeds, one over images
        return same_every_seed(s) and bool(s.get("images"))

    def said(k: str, what: str) -> str:
        if "seeds" in res:
            s = res["seeds"][k]
            head = f"{what} {100 * s['mean']:+.1f} points over seeds {', '.join(map(str, res['seeds']['seeds']))}"
            if flat(s):  # the interval over seeds says nothing here: the one over images does
                im = s["images"]
                return (f"{head} (the same for every seed, so no interval over seeds; over images 95% interval "
                        f"{100 * im['ci'][0]:+.1f} to {100 * im['ci'][1]:+.1f}, {p_is(im['p'])})")  # fmt: skip
            return f"{head} (95% interval {100 * s['ci'][0]:+.1f} to {100 * s['ci'][1]:+.1f}, {p_is(s['p'])})"
        r = res[k]
        return (f"{what} {100 * r['difference']:+.1f} points (95% interval {100 * r['ci'][0]:+.1f} to "
                f"{100 * r['ci'][1]:+.1f}, McNemar {p_is(r['p'])}, n = {r['n']})")  # fmt: skip

    rob = res["seeds"]["robust"] if "seeds" in res else res["robust"]
    lo, hi = rob["images"]["ci"] if "seeds" in res and flat(rob) else rob["ci"] if rob.get("ci") else (0.0, 0.0)
    word = "more robust than" if lo > 0 else "less robust than" if hi < 0 else "level in robustness with"
    who = "C-LEAD" if default else f"{a['run']} ({a['method']})"
    whom = f"{b['method']} ({b['run']}), the best baseline" if default else f"{b['run']} ({b['method']})"
    at, of = (" at last.pt", "the evaluation of last.pt") if tag == "last" else ("", "the main evaluation")
    failed = failed_in(res)
    warn = (
        " **A sanity check failed for "
        + "; ".join(f"{Path(run).name} ({', '.join(bad)})" for run, bad in sorted(failed.items()))
        + ": its robust outcomes, and this difference, may be inflated by gradient masking.**"
        if failed
        else ""
    )
    return (
        f"**Verdict{at}: {who} is {word} {whom}: {said('robust', 'robust')}; {said('clean', 'clean')}.** "
        f"({'C-LEAD' if default else a['run']} minus {b['run']}, worst case of {of}.){warn}\n"
    )


def verdict(rows: list[dict[str, Any]], pairs: Sequence[tuple[str, str]] | None = None) -> str:
    """The report's answer, one sentence per pair: by default C-LEAD against the best baseline; with
    ``pairs``, each named run A against run B (a suite's own comparison, e.g. each recipe against a reused
    PGD-AT). Empty without a comparable pair."""
    said = []
    for a, b in _pairs(rows, pairs):
        said.append(_pair_sentence(a, b, pairs is None))
        if a.get("last") and b.get("last"):  # what training without a guard gives, beside what the guard keeps
            said.append(_pair_sentence(a, b, pairs is None, tag="last"))
    return "\n".join(filter(None, said))


def against_best_baseline(rows: list[dict[str, Any]], pairs: Sequence[tuple[str, str]] | None = None) -> str:
    """`clead compare` of each pair (default: C-LEAD, seed 0, against the baseline with the highest worst-case
    robust accuracy) on the main evaluation and, where both have it, on the full test set; empty if no pair."""
    from .compare import compare, markdown

    found = _pairs(rows, pairs)
    if not found:
        return ""
    lines = ["", "## Against the best baseline" if pairs is None else "## Paired comparisons", ""]
    for a, b in found:
        lines += [
            (
                f"C-LEAD ({a['run']}) against {b['run']}, the baseline with the highest worst-case robust "
                "accuracy, on the same test images (`clead compare`; A = C-LEAD, differences in points):"
            )
            if pairs is None
            else f"{a['run']} against {b['run']} on the same test images (`clead compare`; differences in points):",
            "",
        ]
        for tag in ("", "full", "last"):
            sfx = f"-{tag}" if tag else ""
            if not all(rundir.per_sample_csv(r["dir"], tag).is_file() for r in (a, b)):
                continue
            what = f"Evaluation `eval{sfx}.json`" + (" (last.pt)" if tag == "last" else "")
            try:
                lines += [f"{what}:", "", markdown(compare([a["dir"], b["dir"]], tag=tag))]
            except CleadError as e:
                lines += [f"{what}: not comparable ({e})", ""]
    return "\n".join(lines) + "\n"


def _inline_html(text: str) -> str:
    """One line of Markdown as HTML: escaped, with its ``**bold**`` and ```code``` spans."""
    import html
    import re

    text = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text, quote=False))
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", text)


def _md_table_html(md: str) -> str:
    """The Markdown tables and plain lines of ``md`` as HTML (headings are skipped)."""
    out: list[str] = []
    table: list[list[str]] = []

    def flush() -> None:
        if table:
            rows = [f"<tr>{''.join(f'<th>{_inline_html(c)}</th>' for c in table[0])}</tr>"]
            rows += [f"<tr>{''.join(f'<td>{_inline_html(c)}</td>' for c in r)}</tr>" for r in table[1:]]
            out.append("<table>" + "".join(rows) + "</table>")
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            if not line.startswith("|---"):
                table.append([c.strip() for c in line.strip().strip("|").split("|")])
            continue
        flush()
        if line.strip() and not line.startswith("#"):
            out.append(f"<p>{_inline_html(line)}</p>")
    flush()
    return "\n".join(out)
