"""Named benchmark suites: a set of training runs and their evaluations, run resumably in chunks.

``clead bench SUITE`` trains each run that is not finished (continuing an interrupted one), evaluates
each run that has no evaluation yet, and writes ``report.md`` / ``report.html`` for the suite. A run or
evaluation that is complete is skipped, so a long suite can be run over several sessions
(``--max-hours`` stops starting new work after that long).
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config as cfgmod
from . import run as runmod
from .errors import CleadError
from .registry import Registry

log = logging.getLogger("clead")
SUITES: Registry = Registry("suite")


@dataclass
class EvalSpec:
    tag: str
    attacks: list[str]
    n: int | None
    sweep: bool = False


@dataclass
class Suite:
    name: str
    description: str
    base: dict[str, Any]
    runs: dict[str, dict[str, Any]]
    evals: list[EvalSpec]
    seeds: tuple[int, ...] = ()  # extra seeds for C-LEAD and the best baseline (by AutoAttack)
    seed_evals: list[EvalSpec] | None = None  # evaluations of the extra seeds [default: evals]
    title: str = ""

    def config(self, run: str) -> cfgmod.TrainConfig:
        return cfgmod.from_dict(cfgmod.merge(self.base, self.seed_overrides(run)), source=f"suite {self.name}/{run}")

    def seed_overrides(self, run: str) -> dict[str, Any]:
        if run in self.runs:
            return self.runs[run]
        base_run, _, seed = run.rpartition("-seed")
        return {**self.runs[base_run], "seed": int(seed)}


FMNIST = {"dataset": "fashion-mnist", "model": "small-cnn", "attack_steps": 5, "batch_size": 128,
          "optimizer": "adam", "lr": 0.001, "schedule": "cosine", "val_n": 500, "seed": 0}  # fmt: skip
METHODS5 = {m: {"method": m} for m in ("standard", "pgd-at", "trades", "mart", "clead")}
MAIN_EVALS = [
    EvalSpec("", ["fgsm", "pgd20", "pgd50", "cw", "autoattack"], 1000, sweep=True),
    EvalSpec("full", ["fgsm", "pgd20"], None),
]
# Extra seeds: AutoAttack's two gradient attacks (APGD-CE then APGD-T, standard settings) instead of all four.
# FAB-T and Square take most of AutoAttack's time here and, after APGD, changed at most one of 1,000
# predictions of any seed-0 model of fmnist-linf-0.1 (FAB-T one for MART, nothing for the others);
# the report reads seed 0's APGD-CE+T accuracy from its AutoAttack cascade.
SEED_EVALS = [EvalSpec("", ["fgsm", "pgd20", "apgd"], 1000), EvalSpec("full", ["fgsm", "pgd20"], None)]

for eps in (0.1, 0.3):
    SUITES.register(f"fmnist-linf-{eps}")(Suite(
        name=f"fmnist-linf-{eps}",
        title=f"Fashion-MNIST, small-cnn, Linf eps = {eps}",
        description=(f"standard, PGD-AT, TRADES, MART and C-LEAD on the first 20,000 training images, 3 epochs, "
                     f"PGD-5 (step 2.5*eps/5) in training, Adam 1e-3 cosine, batch 128; AutoAttack, PGD-50x3 and CW "
                     f"on the first 1,000 test images, FGSM and PGD-20 on all 10,000; seeds 1 and 2 for C-LEAD and "
                     f"the best baseline (by AutoAttack), evaluated with APGD-CE + APGD-T instead of all of AutoAttack"),
        base={**FMNIST, "eps": eps, "epochs": 3, "train_size": 20000},
        runs=METHODS5,
        evals=MAIN_EVALS,
        seeds=(1, 2),
        seed_evals=SEED_EVALS,
    ))  # fmt: skip

_ABLATION = {
    "default": {},
    "instance": {"mode": "instance"},
    "attack-ce": {"attack_loss": "ce"},
    "attack-contrastive": {"attack_loss": "contrastive"},
    "lam-0.5": {"lam": 0.5},
    "lam-2": {"lam": 2.0},
    "tau-0.05": {"tau": 0.05},
    "tau-0.5": {"tau": 0.5},
    "views-2": {"views": 2},
    "warmup-1": {"warmup_epochs": 1},
}
SUITES.register("fmnist-ablation")(Suite(
    name="fmnist-ablation",
    title="C-LEAD ablation, Fashion-MNIST, Linf eps = 0.1",
    description=("C-LEAD with one knob changed at a time from the defaults; the first 10,000 training images, "
                 "2 epochs, PGD-5 in training; PGD-20 and APGD-CE (AutoAttack's first attack, standard settings) "
                 "on the first 1,000 test images. The chosen setting then gets full AutoAttack in fmnist-linf-0.1"),
    base={**FMNIST, "eps": 0.1, "epochs": 2, "train_size": 10000, "method": "clead"},
    runs={k: {"method_args": v} for k, v in _ABLATION.items()},
    evals=[EvalSpec("", ["pgd20", "apgd-ce"], 1000)],
))  # fmt: skip


def seed_run(run: str, seed: int) -> str:
    """Name of the extra-seed run of ``run`` (``Suite.seed_overrides`` parses it back)."""
    return f"{run}-seed{seed}"


def _trained(run_dir: Path, cfg: cfgmod.TrainConfig) -> bool:
    return len(runmod.read_metrics(run_dir)) >= cfg.epochs and (run_dir / "best.pt").is_file()


def _evaluated(run_dir: Path, spec: EvalSpec) -> bool:
    import json

    path = run_dir / (f"eval-{spec.tag}.json" if spec.tag else "eval.json")
    if not path.is_file():
        return False
    ev = json.loads(path.read_text())
    return set(ev.get("per_attack", {})) == set(spec.attacks) and (spec.n is None or ev.get("n") == spec.n)


def run_suite(name: str, out: str | Path | None = None, max_hours: float | None = None, only: list[str] | None = None,
              progress: bool = True, dry_run: bool = False) -> list[str]:  # fmt: skip
    """Bring every run of the suite up to date; returns the steps done (or, with ``dry_run``, to do)."""
    from .evaluate import evaluate_run
    from .report import suite_rows, write_suite_report
    from .trainer import train

    suite: Suite = SUITES.get(name)
    out = Path(out or Path("results") / name)
    t0 = time.monotonic()
    steps: list[str] = []

    def time_left() -> bool:
        return max_hours is None or (time.monotonic() - t0) < max_hours * 3600

    def bring_up(run: str) -> bool:
        cfg = suite.config(run)
        evals = suite.evals if run in suite.runs else (suite.seed_evals or suite.evals)
        d = out / run
        if not _trained(d, cfg):
            if not time_left():
                return False
            steps.append(f"train {run}")
            if not dry_run:
                resume = (d / "last.pt").is_file()
                log.info("bench %s: training %s%s", name, run, " (resuming)" if resume else "")
                train(cfg, d, resume=resume, overwrite=not resume and d.exists(), progress=progress)
        for spec in evals:
            if dry_run and f"train {run}" in steps or not _evaluated(d, spec):
                if not time_left():
                    return False
                steps.append(f"eval {run} {spec.tag or 'main'}")
                if not dry_run:
                    sweep = [round(cfg.eps * f, 6) for f in (0, 0.5, 1, 1.5, 2)] if spec.sweep else None
                    evaluate_run(d, spec.attacks, n=spec.n, sweep=sweep, sweep_n=200, progress=progress,
                                 tag=spec.tag)  # fmt: skip
        return True

    seed_runs = [seed_run(r, s) for r in suite.runs for s in suite.seeds]
    unknown = [r for r in only or [] if r not in suite.runs and r not in seed_runs]
    if unknown:
        raise CleadError(f"suite {name} has no run {', '.join(unknown)}; its runs: {', '.join([*suite.runs, *seed_runs])}")
    runs = [r for r in [*suite.runs, *seed_runs] if r in only] if only else list(suite.runs)
    complete = all([bring_up(r) for r in runs])
    if complete and suite.seeds and not only and not dry_run:
        rows = {r["run"]: r for r in suite_rows([out / r for r in suite.runs])}
        aa = {r: rows[r]["cells"].get("autoattack", (0, 0))[0] for r in suite.runs if r not in ("standard", "clead")}
        best = max(aa, key=aa.get) if aa else None
        for base_run in [r for r in ("clead", best) if r]:
            for seed in suite.seeds:
                complete = bring_up(seed_run(base_run, seed)) and complete
    if not dry_run:
        done = [p.parent for p in sorted(out.glob("*/metrics.jsonl")) if (p.parent / "eval.json").is_file()]
        if done:
            write_suite_report(done, out, suite.title or name)
            log.info("bench %s: report in %s/report.md and report.html%s", name, out,
                     "" if complete else " (partial: run the same command again to continue)")  # fmt: skip
    return steps
