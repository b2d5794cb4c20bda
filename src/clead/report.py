"""Markdown comparison of runs, read from each run's config.yaml, metrics.jsonl and eval.json."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from . import run as runmod
from .errors import CleadError


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}"


def _checks(ev: dict[str, Any] | None) -> str:
    """``ok (6/7)``, ``FAILED: a, b`` or ``-`` when no checks ran."""
    checks = (ev or {}).get("checks") or []
    if not checks:
        return "-"
    bad = [c["name"] for c in checks if c["passed"] is False]
    if bad:
        return "FAILED: " + ", ".join(bad)
    return f"ok ({sum(c['passed'] is True for c in checks)}/{len(checks)} run)"


def collect(run_dirs: Sequence[str | Path]) -> list[dict[str, Any]]:
    rows = []
    for d in map(Path, run_dirs):
        cfg = runmod.read_config(d)
        metrics = runmod.read_metrics(d)
        ev_path = d / "eval.json"
        ev = json.loads(ev_path.read_text()) if ev_path.is_file() else None
        rows.append({"run": str(d), "cfg": cfg, "metrics": metrics, "eval": ev})
    return rows


def markdown_table(run_dirs: Sequence[str | Path]) -> str:
    """One row per run: method, budget, clean and per-attack accuracy, worst case, samples, train time."""
    if not run_dirs:
        raise CleadError("no runs given")
    rows = collect(run_dirs)
    attacks: list[str] = []
    for r in rows:
        for name in (r["eval"] or {}).get("per_attack", {}):
            if name not in attacks:
                attacks.append(name)
    head = ["run", "method", "eps", "epochs", "clean %", *[f"{a} %" for a in attacks], "robust (worst case) %",
            "n", "checks", "train min"]  # fmt: skip
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cfg, ev = r["cfg"], r["eval"] or {}
        train_min = sum(m.get("seconds", 0) for m in r["metrics"]) / 60
        cells = [
            r["run"], cfg.method, f"{ev.get('eps', cfg.eps):g}", f"{len(r['metrics'])}/{cfg.epochs}",
            _pct(ev.get("clean_accuracy")), *[_pct(ev.get("per_attack", {}).get(a)) for a in attacks],
            _pct(ev.get("robust_accuracy")), str(ev.get("n", "-")), _checks(ev), f"{train_min:.1f}",
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    warn = [f"**WARNING: {r['run']} failed the sanity check(s) {_checks(r['eval'])[8:]}**; its robust accuracy may be "
            "inflated by gradient masking (details under `checks` in its eval.json)."
            for r in rows if r["eval"] and _checks(r["eval"]).startswith("FAILED")]  # fmt: skip
    missing = [r["run"] for r in rows if r["eval"] is None]
    note = f"\nNot evaluated yet (run `clead eval`): {', '.join(missing)}\n" if missing else ""
    return "\n".join(lines) + "\n" + "".join(f"\n{w}\n" for w in warn) + note
