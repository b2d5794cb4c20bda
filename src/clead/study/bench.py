"""Named benchmark suites: a set of training runs and their evaluations, run resumably in chunks.

``clead bench SUITE`` trains each run that is not finished (continuing an interrupted one), evaluates
each run that has no evaluation yet, and writes ``report.md`` / ``report.html`` for the suite. A run or
evaluation that is complete is skipped, so a long suite can be run over several sessions
(``--max-hours`` stops starting new work after that long).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from .. import run as runmod
from .. import rundir
from ..errors import CleadError, RunInUse
from ..training import config as cfgmod

log = logging.getLogger("clead")


@dataclass
class EvalSpec:
    tag: str
    attacks: list[str]
    n: int | None
    sweep: bool = False
    # which checkpoint: "last" is what training without a guard or a selection gives; where last.pt holds the
    # very weights of best.pt, the best.pt evaluation with the same attacks and images is shared, not re-run
    checkpoint: str = "best"


@dataclass
class ThreatSpec:
    """A tagged threat matrix (``clead eval RUN --threats T,... --tag TAG``) made once the suite's runs are
    evaluated: ``runs`` and ``transfer_from`` name runs of the suite, or other run directories by path."""

    tag: str
    threats: list[str]
    runs: list[str]
    transfer_from: str | None = None
    n: int | None = 1000
    preset: str = "autoattack"


@dataclass
class Suite:
    name: str
    description: str
    base: dict[str, Any]
    runs: dict[str, dict[str, Any]]
    evals: list[EvalSpec]
    seeds: tuple[int, ...] = ()  # extra seeds for seed_subject and the best baseline (by AutoAttack), or seed_runs
    seed_runs: tuple[str, ...] = ()  # the runs that get the extra seeds, when fixed in advance
    # the run the default seed policy is about; the baselines are the other runs that train a defence (any
    # method but ``standard``)
    seed_subject: str = "clead"
    # with a margin: seeds for seed_subject and every baseline whose AutoAttack accuracy at seed 0 is at most this
    # far below the subject's (or above it), instead of the best baseline only
    seed_margin: float | None = None
    # with a reference run (a path, e.g. a reused baseline): seeds for every run of the suite whose AutoAttack
    # accuracy at seed 0 is at most seed_margin below the reference's (or above it)
    seed_reference: str | None = None
    # with a margin: seeds for both runs of every pair (``pairs``, runs of this suite) whose seed-0 AutoAttack
    # accuracies are within seed_margin of each other: the comparisons seed 0 cannot settle
    seed_pairs: bool = False
    seed_evals: list[EvalSpec] | None = None  # evaluations of the extra seeds [default: evals]
    no_eval: tuple[str, ...] = ()  # runs that are trained only (a stage whose classifier is not the model)
    title: str = ""
    threat_evals: tuple[ThreatSpec, ...] = ()  # tagged threat matrices, after everything else
    # runs of other suites (paths) the report shows beside the suite's own, e.g. a reused baseline
    report_with: tuple[str, ...] = ()
    # the report's verdict and paired tables: (A, B) run names or paths, each A against B; default: C-LEAD
    # against the most robust baseline
    pairs: tuple[tuple[str, str], ...] | None = None

    def subject(self, where: str = "") -> str:
        """``seed_subject``, checked to be one of the runs (``where``: the file, in the error)."""
        if self.seed_subject not in self.runs:
            raise CleadError(
                f"suite {where or self.name}: seed_subject {self.seed_subject!r} is not one of its runs"
                f" ({', '.join(self.runs)})"
            )
        return self.seed_subject

    def run_dir(self, run: str, out: Path) -> Path:
        """A run of the suite (in ``out``), or a run directory named by path (one of another suite)."""
        return out / run if run in self.runs else Path(run)

    def evals_of(self, run: str) -> list[EvalSpec]:
        """The evaluations ``run`` gets: none for a training-only run, ``seed_evals`` (if any) for a seed run."""
        if run in self.no_eval:
            return []
        return list(self.evals if run in self.runs else (self.seed_evals or self.evals))

    def config(self, run: str, out: Path | None = None) -> cfgmod.TrainConfig:
        """The run's config; an ``init`` naming another run of the suite becomes that run's directory in ``out``."""
        d = cfgmod.merge(self.base, self.seed_overrides(run))
        if d.get("init"):
            d["init"] = str(self.run_dir(d["init"], Path(out or Path("results") / self.name)))
        return cfgmod.from_dict(d, source=f"suite {self.name}/{run}")

    def seed_overrides(self, run: str) -> dict[str, Any]:
        if run in self.runs:
            return self.runs[run]
        base_run, _, seed = run.rpartition("-seed")
        return {**self.runs[base_run], "seed": int(seed)}


SUITE_DIR = "suites"  # under the working directory, as the results/ paths suites name are


def _spec(cls: type, d: Any, where: str) -> Any:
    """A dataclass (EvalSpec, ThreatSpec) from a mapping; unknown or missing keys are errors naming the file."""
    import dataclasses

    names = [f.name for f in dataclasses.fields(cls)]
    if not isinstance(d, dict) or set(d) - set(names):
        raise CleadError(f"{where}: expected a mapping of {', '.join(names)}, got {d!r}")
    try:
        return cls(**d)
    except TypeError as e:
        raise CleadError(f"{where}: {e}") from None


def load_suite(path: str | Path) -> Suite:
    """A suite from its YAML file (``suites/NAME.yaml``): the fields of `Suite` less ``name`` (the file's stem),
    with ``evals``, ``seed_evals`` and ``threat_evals`` as lists of mappings. Every run's config is built once,
    so a bad option is an error naming the file and the run, before anything trains."""
    import dataclasses

    import yaml

    path = Path(path)
    try:
        d = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as e:
        raise CleadError(f"cannot read suite {path}: {e}") from None
    fields = {f.name for f in dataclasses.fields(Suite)} - {"name"}
    if not isinstance(d, dict) or set(d) - fields or not {"base", "runs", "evals", "description"} <= set(d):
        unknown = sorted(set(d) - fields) if isinstance(d, dict) else []
        raise CleadError(
            f"suite {path}: expected a mapping with description, base, runs, evals"
            + (f"; unknown key(s) {', '.join(unknown)}" if unknown else "")
            + f" (valid: {', '.join(sorted(fields))})"
        )
    for key in ("evals", "seed_evals"):
        if d.get(key) is not None:
            d[key] = [_spec(EvalSpec, e, f"{path}: {key}") for e in d[key]]
    d["threat_evals"] = tuple(_spec(ThreatSpec, t, f"{path}: threat_evals") for t in d.get("threat_evals") or ())
    for key in ("seeds", "seed_runs", "no_eval", "report_with"):
        d[key] = tuple(d.get(key) or ())
    if d.get("pairs") is not None:
        d["pairs"] = tuple(tuple(p) for p in d["pairs"])
    if not isinstance(d["runs"], dict) or not d["runs"]:
        raise CleadError(f"suite {path}: runs must map run names to their options")
    suite = Suite(name=path.stem, **d)
    for run in suite.runs:
        try:
            suite.config(run)
        except CleadError as e:
            raise CleadError(f"suite {path}, run {run}: {e}") from None
    if suite.seeds and not (suite.seed_runs or suite.seed_pairs or suite.seed_reference):
        suite.subject(where=str(path))
    return suite


class SuiteLibrary:
    """The suites, found by name: ``suites/NAME.yaml`` under the working directory (``$CLEAD_SUITES``: other
    directories, colon-separated, searched first), or a YAML file named by its path; suites registered in
    memory (``_items``, e.g. by tests) come first."""

    def __init__(self) -> None:
        self._items: dict[str, Suite] = {}

    def dirs(self) -> list[Path]:
        import os

        extra = [Path(p) for p in os.environ.get("CLEAD_SUITES", "").split(":") if p]
        return [*extra, Path(SUITE_DIR)]

    def names(self) -> list[str]:
        found = {p.stem for d in self.dirs() if d.is_dir() for p in d.glob("*.yaml")}
        return sorted(found | set(self._items))

    def get(self, name: str) -> Suite:
        if name in self._items:
            return self._items[name]
        if name.endswith((".yaml", ".yml")) and Path(name).is_file():
            return load_suite(name)
        for d in self.dirs():
            if (d / f"{name}.yaml").is_file():
                return load_suite(d / f"{name}.yaml")
        if not self.names():  # e.g. run outside the repository: say where suites are looked for, not "valid: "
            raise CleadError(f"unknown suite {name!r}: {self.none_found()}")
        where = ", ".join(str(d) for d in self.dirs())
        raise CleadError(f"unknown suite {name!r} (no {name}.yaml in {where}); valid: {', '.join(self.names())}")

    def none_found(self) -> str:
        """Why there is no suite to name: where they were looked for, and what to do."""
        where = ", ".join(str(d) for d in self.dirs())
        return (
            f"no suites in {where} (under {Path.cwd()}); run clead bench from the repository root, set "
            "$CLEAD_SUITES to a directory of suite YAML files, or name a YAML file"
        )


SUITES = SuiteLibrary()


def _subject_and_close_baselines(suite: Suite, out: Path) -> list[str]:
    """``seed_subject`` and the best baseline by seed-0 AutoAttack accuracy, or, with ``seed_margin``, every
    baseline within that margin of the subject or ahead of it; with ``seed_reference`` (a run of another suite), every run of
    the suite within ``seed_margin`` of that run or ahead of it."""
    from .report import suite_rows

    if suite.seed_pairs:
        done = [r for r in suite.runs if rundir.eval_json(out / r).is_file()]
        aa = {r["run"]: r["cells"].get("autoattack", (None, 0))[0] for r in suite_rows([out / r for r in done])}
        picked: list[str] = []
        for a, b in suite.pairs or ():
            if aa.get(a) is not None and aa.get(b) is not None and abs(aa[a] - aa[b]) <= (suite.seed_margin or 0.0):
                picked += [r for r in (a, b) if r not in picked]
        return picked
    if suite.seed_reference:
        ref = suite_rows([Path(suite.seed_reference)])[0]["cells"].get("autoattack", (0, 0))[0]
        ours = {r["run"]: r["cells"].get("autoattack", (0, 0))[0] for r in suite_rows([out / r for r in suite.runs])}
        return [r for r in suite.runs if ours[r] >= ref - (suite.seed_margin or 0.0)]
    subject = suite.subject()
    rows = {r["run"]: r for r in suite_rows([out / r for r in suite.runs])}
    baselines = [r for r in suite.runs if r != subject and suite.config(r, out).method != "standard"]
    aa = {r: rows[r]["cells"].get("autoattack", (0, 0))[0] for r in baselines}
    if not aa:
        return [subject]
    if suite.seed_margin is None:
        return [subject, max(aa, key=aa.get)]
    floor = rows[subject]["cells"].get("autoattack", (0, 0))[0] - suite.seed_margin
    return [subject, *(r for r in aa if aa[r] >= floor)]


def seed_run(run: str, seed: int) -> str:
    """Name of the extra-seed run of ``run`` (``Suite.seed_overrides`` parses it back)."""
    return f"{run}-seed{seed}"


def _current_state(state_path: Path, run_dir: Path) -> dict[str, Any] | None:
    """A saved evaluation state made by this clead's format from the run's current checkpoint (the cheap parts
    of its key; `clead.evaluate` checks all of it before reusing anything), or None."""
    from ..evaluation.evaluate import STATE_FORMAT
    from ..io import load_torch, sha256_file

    try:
        state = load_torch(state_path)
        key = state.get("key", {})
    except Exception:
        return None
    ckpt = run_dir / f"{key.get('checkpoint', 'best')}.pt"
    current = key.get("format") == STATE_FORMAT and ckpt.is_file() and key.get("checkpoint_sha256") == sha256_file(ckpt)
    return state if current else None


def state_progress(state: dict[str, Any]) -> str:
    """How far a saved evaluation got, e.g. ``fgsm, pgd20 done; autoattack 2 of 4 chunks; 31 min so far``: the
    attacks run in the key's order on the points classified correctly clean (``attacked``; in a state saved
    before that was kept, the ``pred`` an earlier finished attack set on them), in chunks of the key's batch size
    (AutoAttack presets: its ``autoattack_chunk``). Empty when the state says nothing."""
    from ..attacks.autoattack import VERSIONS

    key, attacks = state.get("key", {}), state.get("attacks", {})
    order = list(key.get("attacks", []))
    present = [a for a in order if a in attacks]
    if not present:
        return ""
    attacked = state.get("attacked")
    if attacked is None and len(present) > 1:  # the first attack finished before the second began
        attacked = int((attacks[present[0]]["pred"] >= 0).sum())

    def total(name: str) -> int | None:
        chunk = key.get("autoattack_chunk") if name in VERSIONS else key.get("batch_size")
        return -(-attacked // chunk) if attacked is not None and chunk else None

    last, chunks = present[-1], attacks[present[-1]].get("chunks_done", 0)
    done = present[:-1] + ([last] if total(last) is not None and chunks >= total(last) else [])
    left = [a for a in order if a not in done]
    if not left:
        under_way = "the sweep and checks left"
    elif left[0] == last:
        under_way = f"{last} {chunks}{f' of {total(last)}' if total(last) else ''} chunks"
    else:
        under_way = f"{left[0]} next"
    seconds = sum(a.get("seconds", 0.0) for a in attacks.values())
    return "; ".join([*([", ".join(done) + " done"] if done else []), under_way, f"{_span(seconds)} so far"])


def _trained(run_dir: Path, cfg: cfgmod.TrainConfig, evals: Sequence[EvalSpec] = ()) -> bool:
    """Every epoch logged, and best.pt kept or every evaluation made: a finished run whose checkpoints are not
    kept (the repository tracks only the cited ones, so a fresh clone has none) is re-read, not trained again."""
    if len(runmod.read_metrics(run_dir)) < cfg.epochs:
        return False
    return rundir.checkpoint(run_dir, "best").is_file() or bool(evals) and all(_evaluated(run_dir, s) for s in evals)


def _made_as(ev: dict[str, Any], spec: EvalSpec) -> bool:
    """Whether the evaluation ``ev`` (an eval.json) ran ``spec``'s attacks on its images and checkpoint."""
    return (
        set(ev.get("per_attack", {})) == set(spec.attacks)
        and (spec.n is None or ev.get("n") == spec.n)
        and ev.get("checkpoint", "best") == spec.checkpoint
    )


def _evaluated(run_dir: Path, spec: EvalSpec) -> bool:
    path = rundir.eval_json(run_dir, spec.tag)
    return path.is_file() and _made_as(rundir.read_json(path), spec)


def progress(suite: Suite, out: Path) -> str:
    """How far the suite is on disk, e.g. ``5 of 8 runs done, 1 seed run``: its runs with every epoch logged
    and every evaluation made (a training-only run: trained), and the extra-seed runs so far (how many a
    suite gets depends on its seed-0 results)."""
    from .compare import seed_dirs

    def done(run: str) -> bool:
        d = out / run
        try:
            trained = len(runmod.read_metrics(d)) >= suite.config(run, out).epochs
            return trained and all(_evaluated(d, spec) for spec in suite.evals_of(run))
        except CleadError:
            return False

    finished = sum(map(done, suite.runs))
    seeds = [d.name for r in suite.runs for s, d in seed_dirs(out / r).items() if s and done(d.name)]
    extra = f", {len(seeds)} seed run{'s' if len(seeds) != 1 else ''}" if seeds else ""
    return f"{finished} of {len(suite.runs)} runs done{extra}"


def _same_weights(run_dir: Path) -> bool:
    """Whether last.pt's model weights are exactly best.pt's (the last epoch was the one selected)."""
    best, last = (runmod.load_checkpoint(rundir.checkpoint(run_dir, c))["model"] for c in ("best", "last"))
    return best.keys() == last.keys() and all(torch.equal(best[k], last[k]) for k in best)


def _share_evaluation(run_dir: Path, spec: EvalSpec, evals: list[EvalSpec]) -> bool:
    """Write ``spec``'s evaluation of last.pt as a copy of a finished best.pt evaluation with the same attacks and
    images, when the two checkpoints hold the same weights (the same numbers, bit for bit, recorded as shared:
    ``same_weights_as``); False when there is no such evaluation or the weights differ."""
    import shutil

    from ..io import sha256_file, write_json

    source = next(
        (e for e in evals if e.checkpoint == "best" and e.attacks == spec.attacks and e.n == spec.n
         and _evaluated(run_dir, e)),
        None,
    )  # fmt: skip
    if source is None or spec.checkpoint != "last" or not _same_weights(run_dir):
        return False
    ev = {k: v for k, v in rundir.read_json(rundir.eval_json(run_dir, source.tag)).items() if k != "sweep"}
    ev |= {
        "tag": spec.tag,
        "checkpoint": "last",
        "checkpoint_sha256": sha256_file(rundir.checkpoint(run_dir, "last")),
        "same_weights_as": "best",
        "files": [rundir.per_sample_csv(run_dir, spec.tag).name],
    }
    if "eval_config" in ev:
        ev["eval_config"] = {**ev["eval_config"], "checkpoint": "last", "tag": spec.tag, "sweep": None}
    shutil.copyfile(rundir.per_sample_csv(run_dir, source.tag), rundir.per_sample_csv(run_dir, spec.tag))
    write_json(rundir.eval_json(run_dir, spec.tag), ev)
    return True


def _threats_done(run_dir: Path, spec: ThreatSpec, source: Path | None) -> bool:

    from ..evaluation.threats import TRANSFER, matrix_tag

    path = rundir.eval_json(run_dir, matrix_tag(spec.tag))
    if not path.is_file():
        return False
    rows = {r["threat"]: r for r in rundir.read_json(path)["threats"]}
    return (
        set(rows) == set(spec.threats)
        and all(r["n"] == spec.n or spec.n is None for r in rows.values())
        and all(rows[t]["attack"].endswith(f" on {source}") for t in rows if t in TRANSFER)
    )


def _threat_evals(suite: Suite, out: Path, deadline: float | None, progress: bool, dry_run: bool, steps: list[str]):
    """Make the suite's tagged threat matrices that are missing; False if the deadline stopped it first."""
    from ..evaluation.threats import evaluate_threats

    for spec in suite.threat_evals:
        source = suite.run_dir(spec.transfer_from, out) if spec.transfer_from else None
        for run in spec.runs:
            d = suite.run_dir(run, out)
            if _threats_done(d, spec, source):
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return False
            steps.append(f"threats {spec.tag} {run}")
            if not dry_run:
                log.info("bench %s: threat matrix %r of %s (%s)", suite.name, spec.tag, d, ", ".join(spec.threats))
                evaluate_threats(
                    d, spec.threats, n=spec.n, preset=spec.preset, transfer_from=source, progress=progress, tag=spec.tag
                )
    return True


def write_report(suite: Suite, out: Path, complete: bool = True) -> bool:
    """The suite's report.md and report.html from the runs on disk that are evaluated (its own and the runs of
    other suites it compares with); False, writing nothing, when none is."""
    from .report import write_suite_report

    done = [p.parent for p in sorted(out.glob(f"*/{rundir.METRICS}")) if rundir.eval_json(p.parent).is_file()]
    # the runs of other suites that the threat matrices compare with
    done += [
        suite.run_dir(r, out)
        for r in dict.fromkeys([*(r for spec in suite.threat_evals for r in spec.runs), *suite.report_with])
        if r not in suite.runs and rundir.eval_json(suite.run_dir(r, out)).is_file()
    ]
    pairs = None
    if suite.pairs is not None:  # the report names runs by their directory's name
        pairs = [tuple(suite.run_dir(r, out).name for r in pair) for pair in suite.pairs]
    if done:
        write_suite_report(done, out, suite.title or suite.name, pairs)
        log.info(
            "bench %s: report in %s/report.md and report.html%s",
            suite.name,
            out,
            "" if complete else " (partial: run the same command again to continue)",
        )
    return bool(done)


def run_suite(
    name: str,
    out: str | Path | None = None,
    max_hours: float | None = None,
    only: list[str] | None = None,
    progress: bool = True,
    dry_run: bool = False,
    jobs: int = 1,
    report: bool = True,
) -> list[str]:
    """Bring every run of the suite up to date; returns the steps done (or, with ``dry_run``, to do).

    ``jobs`` > 1 brings that many runs up to date side by side, each in its own process with an equal share
    of the CPU cores as torch threads (a run's numbers do not depend on it: one process per run, as with 1).
    """
    suite: Suite = SUITES.get(name)
    out = Path(out or Path("results") / name)
    deadline = None if max_hours is None else time.monotonic() + max_hours * 3600
    steps: list[str] = []

    busy: set[str] = set()  # the runs with a step (done, to do, or left to another process)

    def bring_up_all(runs: list[str]) -> list[bool | None]:
        if jobs > 1 and not dry_run and len(runs) > 1:
            return _bring_up_side_by_side(suite, out, runs, deadline, jobs, steps)
        outcomes = []
        for r in runs:
            before = len(steps)
            outcomes.append(_bring_up(suite, out, r, deadline, progress, dry_run, steps))
            busy.update([r] if len(steps) > before else [])
        return outcomes

    seed_runs = [seed_run(r, s) for r in suite.runs for s in suite.seeds]
    unknown = [r for r in only or [] if r not in suite.runs and r not in seed_runs]
    if unknown:
        raise CleadError(
            f"suite {name} has no run {', '.join(unknown)}; its runs: {', '.join([*suite.runs, *seed_runs])}"
        )
    runs = [r for r in [*suite.runs, *seed_runs] if r in only] if only else list(suite.runs)
    outcomes = bring_up_all(runs)
    complete = all(outcomes)
    # a run that another process holds is that process's to finish; seeds wait for it only if it decides who
    # gets seeds: named seed runs wait for none, seeds by pairs for the pairs' runs, other choices for every run
    deciding = (
        set() if suite.seed_runs else {r for p in suite.pairs or () for r in p} if suite.seed_pairs else set(runs)
    )
    seeds_may_start = all(o is not False for o in outcomes) and all(o for r, o in zip(runs, outcomes) if r in deciding)
    seed0_left = bool(busy & deciding)  # with dry_run: whether who gets seeds is still open
    # the threat matrices name seed-0 runs (and other suites' runs): they run before the seeds, which take
    # hours more, and a session stopped during the seeds keeps them
    threat_runs = {r for spec in suite.threat_evals for r in spec.runs}
    if threat_runs & set(seed_runs):
        raise CleadError(f"suite {name}: a threat matrix names a seed run ({', '.join(threat_runs & set(seed_runs))})")
    if suite.threat_evals and not only and (complete or dry_run):
        complete = _threat_evals(suite, out, deadline, progress, dry_run, steps) and complete
    if seeds_may_start and suite.seeds and not only and not dry_run:
        bases = suite.seed_runs or _subject_and_close_baselines(suite, out)
        complete = all(bring_up_all([seed_run(b, s) for b in bases for s in suite.seeds])) and complete
    if dry_run and suite.seeds and not only:
        who = (
            ", ".join(suite.seed_runs)
            if suite.seed_runs
            else f"both runs of every pair within {100 * (suite.seed_margin or 0):g} point(s) of each other by "
            "seed-0 AutoAttack"
            if suite.seed_pairs
            else f"every run within {100 * (suite.seed_margin or 0):g} point(s) of {suite.seed_reference} (or ahead) "
            "by seed-0 AutoAttack"
            if suite.seed_reference
            else (
                f"{suite.seed_subject} and "
                + (
                    "every baseline within %g points of it (or ahead) by" % (100 * suite.seed_margin)
                    if suite.seed_margin is not None
                    else "the best baseline by"
                )
                + " seed-0 AutoAttack"
            )
        )
        if seed0_left:
            steps.append(f"then seeds {', '.join(map(str, suite.seeds))} of {who}")
        else:  # the seed-0 runs are evaluated: who gets seeds is known, and what each seed run has left
            bases = suite.seed_runs or _subject_and_close_baselines(suite, out)
            why = "" if suite.seed_runs else f" ({who})"
            steps.append(f"seeds {', '.join(map(str, suite.seeds))} of {', '.join(bases) or 'none'}{why}")
            bring_up_all([seed_run(b, s) for b in bases for s in suite.seeds])
    if report and not dry_run:
        write_report(suite, out, complete)
    return steps


def default_jobs() -> int:
    """Runs side by side by default: one per CPU core (one process per core measured faster than one process
    using all cores, README Speed), and one on a CUDA machine (the runs would share the GPU)."""
    import os

    import torch

    return 1 if torch.cuda.is_available() else max(1, os.cpu_count() or 1)


def _this_machine(amp: str = "auto") -> dict[str, str]:
    """The machine and precision a bench here would train in, as a logged epoch records them (``device``,
    ``amp``): ``amp`` resolved on this machine, because CPUs sold under one name differ (an AMD EPYC with
    AVX512-BF16 trains in bf16 about twice as fast as one without trains in fp32)."""
    from ..distributed import device_name
    from ..precision import resolve_amp

    device = runmod.resolve_device("auto")
    return {"device": device_name(device), "amp": resolve_amp(amp, device)}


def _likeness(m: dict, machine: dict[str, str]) -> int:
    """How well a logged epoch ``m`` times a run on ``machine``: 2 where it ran there in the same precision, 1 on the
    same device in another, 0 elsewhere (a GPU runs these 30 times faster than one CPU core)."""
    from .report import epoch_where

    if m.get("device") != machine["device"]:
        return 0
    return 2 if epoch_where(m) == epoch_where(machine) else 1


def _epoch_seconds(logged: list[dict], machine: dict[str, str]) -> tuple[float, int, list[str]] | None:
    """The median epoch time in ``logged`` over the epochs most like ``machine`` (``_this_machine``): those that
    ran there in its precision (likeness 2), else on its device in another (1), else all of them (0); with that
    likeness and where they ran. None when no epoch logged its time."""
    import statistics

    from .report import epoch_where

    timed = [m for m in logged if isinstance(m.get("seconds"), (int, float))]
    if not timed:
        return None
    best = max(_likeness(m, machine) for m in timed)
    if best:
        timed = [m for m in timed if _likeness(m, machine) == best]
    where = sorted({w for w in map(epoch_where, timed) if w})
    return statistics.median(m["seconds"] for m in timed), best, where


def _span(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{max(1, round(seconds / 60))} min"


_ABOUT = re.compile(r"\babout (\d+(?:\.\d+)?) (min|h)\b")  # what `_span` writes after "about"


def dry_run_total(steps: list[str], jobs: int) -> str:
    """The dry run's last line: the estimated steps' times added up (the first "about T" of each ``train``
    or ``eval`` step, as `_span` wrote it), how many steps have no estimate, and the wall time over ``jobs``
    processes if the work split evenly (it does not quite: a run's steps go one after another)."""
    todo = [s for s in steps if s.startswith(("train ", "eval "))]
    if not todo:
        return ""
    found = [_ABOUT.search(s) for s in todo]
    seconds = sum(float(m[1]) * (3600 if m[2] == "h" else 60) for m in found if m)
    unknown = sum(m is None for m in found)
    line = f"in all: {len(todo)} step(s), about {_span(seconds)} of work" if seconds else f"in all: {len(todo)} step(s)"
    if unknown:
        line += f" ({unknown} without an estimate)" if seconds else ", none with an estimate"
    if seconds and jobs > 1:
        line += f"; about {_span(seconds / jobs)} with {jobs} processes side by side"
    return line


def _time_left(logged: list[dict], epochs: int, machine: dict[str, str], by: str = "") -> str:
    """``; about H h at the S s/epoch logged (DEVICE, PRECISION)``: the estimate for ``epochs`` more epochs from the
    median epoch time in a run's own metrics.jsonl (``by``: in the named sibling's), taken from the epochs most
    like ``machine`` (``_epoch_seconds``), naming where they ran; nothing when no epoch logged its time."""
    timed = _epoch_seconds(logged, machine)
    if timed is None or epochs <= 0:
        return ""
    per, best, where = timed
    return f"; about {_span(epochs * per)} at the {per:.0f} s/epoch{f' {by}' if by else ''} logged" + (
        f"{' here' if best == 2 else ''} ({'; '.join(where)})" if where else ""
    )


def _cost_scaled_time_left(out: Path, run: str, epochs: int, machine: dict[str, str]) -> str:
    """The time ``run``, not started and without a seed sibling, would take: another run of the suite's logged
    epochs times the ratio of the two runs' step costs as ``benchmarks/cost.py`` measured them (``cost.json``);
    the run with the most epochs like ``machine``. Nothing without a cost.json naming both."""
    cost_path = out / "cost.json"
    if not cost_path.is_file():
        return ""
    try:
        ratios = {Path(k).name: v["ratio"] for k, v in rundir.read_json(cost_path)["runs"].items()}
    except (CleadError, KeyError, TypeError):
        return ""
    if not ratios.get(run):
        return ""
    runs = sorted(p.parent for p in out.glob(f"*/{rundir.METRICS}"))
    best = _most_like([d for d in runs if d.name != run and ratios.get(d.name)], machine)
    timed = _epoch_seconds(best[1], machine) if best else None
    if best is None or timed is None or epochs <= 0:
        return ""
    other, (per, like, where) = best[0].name, timed
    scale = ratios[run] / ratios[other]
    places = f" ({'; '.join(where)})" if where else ""
    return (
        f"; about {_span(epochs * per * scale)}: {other}'s {per:.0f} s/epoch logged{' here' if like == 2 else ''}"
        f"{places} x {scale:.2f}, the ratio of their step costs (cost.json)"
    )


def _sibling_time_left(out: Path, run: str, epochs: int, machine: dict[str, str]) -> str:
    """The time ``run``, not started, would take, from the epochs its seed siblings (``NAME``, ``NAME-seedN``: the
    same settings but the seed) logged: the sibling with the most epochs on ``machine`` in its precision, else on
    its device, else with the most epochs."""
    from .compare import seed_dirs

    base = re.sub(r"-seed\d+$", "", run)
    best = _most_like([d for d in seed_dirs(out / base).values() if d.name != run], machine)
    return _time_left(best[1], epochs, machine, by=best[0].name) if best else ""


# what a training epoch's time depends on: two runs equal in these take the same time per epoch on one machine
STEP_KEYS = ("dataset", "data_dir", "train_size", "val_size", "val_n", "val_attack_steps", "model", "model_args",
             "batch_size", "method", "method_args", "train_attack", "attack_steps", "awp_gamma", "views_from")  # fmt: skip


def _runs_alike(out: Path, cfg: cfgmod.TrainConfig, keys: Sequence[str]) -> list[Path]:
    """The run directories of this suite and of the suites beside it (``out``'s parent) whose config equals
    ``cfg`` in ``keys``."""
    want = {k: getattr(cfg, k) for k in keys}
    found = []
    for d in sorted(p.parent for p in out.parent.glob(f"*/*/{rundir.CONFIG}")):
        try:
            other = runmod.read_config(d)
        except CleadError:
            continue
        if all(getattr(other, k) == v for k, v in want.items()):
            found.append(d)
    return found


def _like_elsewhere_time_left(out: Path, run: str, cfg: cfgmod.TrainConfig, machine: dict[str, str]) -> str:
    """The time ``run``, not started, would take, from a run that trains alike (equal in `STEP_KEYS`; its seed,
    eps, step size, schedule or epochs may differ) in this suite or a suite beside it: the one with the most
    epochs like ``machine``, named ``SUITE/RUN``. Nothing when none is found."""
    best = _most_like([d for d in _runs_alike(out, cfg, STEP_KEYS) if d != out / run], machine)
    return _time_left(best[1], cfg.epochs, machine, by=f"{best[0].parent.name}/{best[0].name}") if best else ""


def _most_like(dirs: list[Path], machine: dict[str, str]) -> tuple[Path, list[dict]] | None:
    """Of runs ``dirs``, the one whose logged epochs best time a run on ``machine``: the most epochs there in its
    precision, else on its device, else the most epochs; its directory and timed epochs, or None if none logged
    one."""
    best: tuple[int, int, int, Path, list[dict]] | None = None
    for d in dirs:
        timed = [m for m in runmod.read_metrics(d) if isinstance(m.get("seconds"), (int, float))]
        like = [_likeness(m, machine) for m in timed]
        key = (like.count(2), len(like) - like.count(0), len(timed), d, timed)
        if timed and (best is None or key[:3] > best[:3]):
            best = key
    return (best[3], best[4]) if best else None


def _eval_time(
    out: Path, run: str, spec: EvalSpec, machine: dict[str, str], cfg: cfgmod.TrainConfig | None = None
) -> str:
    """``; about T, as RUN's took here``: the time ``spec`` would take on ``run``, from the suite's other runs'
    finished evaluations with the same attacks, images and checkpoint (their ``devices`` seconds; a shared
    evaluation, copied from another, did not run and is skipped), those made on ``machine``'s device alone when
    there are any, else all of them, naming where; without one in the suite, from the evaluations with the same
    attacks and images (of either checkpoint) of runs of the same model on the same data (``cfg``'s) in the
    suites beside it, named ``SUITE/RUN``; nothing without one. AutoAttack's time depends on how robust the
    model is, so this is a guide, not a promise."""
    import statistics

    def timed(paths: list[Path], named, fits) -> tuple[list, list]:
        here, anywhere = [], []
        for path in paths:
            try:
                ev = rundir.read_json(path)
            except CleadError:
                continue
            devices = ev.get("devices") or {}
            if path.parent == out / run or not fits(ev) or not devices or ev.get("same_weights_as"):
                continue
            anywhere.append((sum(devices.values()), named(path.parent), sorted(devices)))
            if set(devices) == {machine["device"]}:
                here.append(anywhere[-1])
        return here, anywhere

    here, anywhere = timed(sorted(out.glob(f"*/{rundir.eval_json(out, spec.tag).name}")), lambda d: d.name,
                           lambda ev: _made_as(ev, spec))  # fmt: skip
    if not anywhere and cfg is not None:
        same_model = ("dataset", "data_dir", "model", "model_args")
        paths = [p for d in _runs_alike(out, cfg, same_model) if d.parent != out for p in sorted(d.glob("eval*.json"))]
        here, anywhere = timed(paths, lambda d: f"{d.parent.name}/{d.name}",
                               lambda ev: _made_as({**ev, "checkpoint": spec.checkpoint}, spec))  # fmt: skip
    if not anywhere:
        return ""
    took = here or anywhere
    where = "here" if here else "on " + ", ".join(sorted({d for *_, ds in anywhere for d in ds}))
    if len(took) == 1:
        return f"; about {_span(took[0][0])}, as {took[0][1]}'s took {where}"
    others = ", in the suites beside it" if "/" in took[0][1] else ""  # the fallback's names are SUITE/RUN
    return f"; about {_span(statistics.median(t for t, *_ in took))}, the median of {len(took)} like it {where}{others}"


def _bring_up(
    suite: Suite, out: Path, run: str, deadline: float | None, progress: bool, dry_run: bool, steps: list[str]
) -> bool | None:
    """Train and evaluate ``run`` as far as needed, holding its directory's lock throughout (so a second
    ``clead bench`` of the same suite, started beside this one, leaves it alone and takes the next run); True
    when it is done, False if the deadline stopped it first, None when another process holds it (left to that
    one; a dry run says so)."""
    d = out / run
    if not d.exists() and deadline is not None and time.monotonic() >= deadline:
        return False  # not started, and no time to: create nothing
    if dry_run:
        if who := rundir.holder(d):
            steps.append(f"skip {run} (in use: {who}{_how_far(suite, out, run)})")
            return None
        return _bring_up_held(suite, out, run, deadline, progress, dry_run, steps)
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(rundir.locked(d, f"clead bench {suite.name}"))
        except RunInUse as e:
            log.info("bench %s: %s is left to the process that holds it (%s)", suite.name, run, e.holder)
            return None
        return _bring_up_held(suite, out, run, deadline, progress, dry_run, steps)


def _how_far(suite: Suite, out: Path, run: str) -> str:
    """``; epoch 5 of 20 trained`` or ``; eval full: pgd20 done; ...`` (`state_progress`): how far another
    process has brought ``run``, from its files; nothing when they say nothing."""
    d, cfg = out / run, suite.config(run, out)
    logged = len(runmod.read_metrics(d))
    if logged < cfg.epochs:
        return f"; epoch {logged} of {cfg.epochs} trained"
    for spec in suite.evals_of(run):
        state = rundir.eval_state(d, spec.tag)
        if not _evaluated(d, spec) and state.is_file() and (saved := _current_state(state, d)):
            return f"; evaluation {spec.tag or 'main'}: {state_progress(saved) or 'started'}"
    return ""


def _bring_up_held(
    suite: Suite, out: Path, run: str, deadline: float | None, progress: bool, dry_run: bool, steps: list[str]
) -> bool:
    """`_bring_up`'s work, its lock held (or a dry run): False if the deadline stopped it first."""
    from ..evaluation.evaluate import evaluate_run
    from ..training.trainer import train

    def time_left() -> bool:
        return deadline is None or time.monotonic() < deadline

    cfg = suite.config(run, out)
    evals = suite.evals_of(run)
    d = out / run
    training = not _trained(d, cfg, evals)
    machine = _this_machine(cfg.amp) if dry_run else {}
    if training:
        if not time_left():
            return False
        logged = runmod.read_metrics(d)
        done = len(logged)
        resume = rundir.checkpoint(d, "last").is_file()
        note = ""
        if dry_run and done:
            # only last.pt resumes a run: epochs logged without it are trained again from the start
            note = (
                f" (resumes after epoch {done} of {cfg.epochs}{_time_left(logged, cfg.epochs - done, machine)})"
                if resume
                else f" (starts afresh: {done} epoch(s) logged but no last.pt to resume from"
                f"{_time_left(logged, cfg.epochs, machine)})"
            )
        elif dry_run and (
            guess := _sibling_time_left(out, run, cfg.epochs, machine)
            or _cost_scaled_time_left(out, run, cfg.epochs, machine)
            or _like_elsewhere_time_left(out, run, cfg, machine)
        ):
            note = f" (not started{guess})"
        steps.append(f"train {run}{note}")
        if not dry_run:
            log.info("bench %s: training %s%s", suite.name, run, " (resuming)" if resume else "")
            train(cfg, d, resume=resume, overwrite=not resume and d.exists(), progress=progress)
    for spec in evals:
        if dry_run and training or not _evaluated(d, spec):
            if not time_left():
                return False
            state = rundir.eval_state(d, spec.tag)
            note = ""
            if dry_run and state.is_file():
                if saved := _current_state(state, d):
                    how_far = state_progress(saved)
                    note = f" (resumes: {how_far})" if how_far else " (resumes)"
                else:
                    note = " (its saved state is stale: starts afresh)"
            elif dry_run and (guess := _eval_time(out, run, spec, machine, cfg)):
                note = f" ({guess[2:]})"
            steps.append(f"eval {run} {spec.tag or 'main'}{note}")
            if not dry_run and _share_evaluation(d, spec, evals):
                log.info("bench %s: %s: last.pt holds best.pt's weights; its evaluation is shared", suite.name, run)
            elif not dry_run:
                log.info("bench %s: evaluating %s (%s)", suite.name, run, spec.tag or "main")
                sweep = [round(cfg.eps * f, 6) for f in (0, 0.5, 1, 1.5, 2)] if spec.sweep else None
                evaluate_run(d, attacks=spec.attacks, n=spec.n, sweep=sweep, sweep_n=200, progress=progress,
                             tag=spec.tag, checkpoint=spec.checkpoint)  # fmt: skip
    return True


def _worker_init(threads: int) -> None:
    import logging as _logging

    import torch

    from .. import allocator

    allocator.tune()
    torch.set_num_threads(threads)
    _logging.basicConfig(level=_logging.INFO, format="%(message)s")


def _worker(suite: Suite, out: Path, run: str, wall_deadline: float | None) -> tuple[list[str], bool | None]:
    steps: list[str] = []
    deadline = None if wall_deadline is None else time.monotonic() + (wall_deadline - time.time())
    return steps, _bring_up(suite, out, run, deadline, False, False, steps)


def _bring_up_side_by_side(
    suite: Suite, out: Path, runs: list[str], deadline: float | None, jobs: int, steps: list[str]
) -> list[bool | None]:
    """`_bring_up` for each run in a pool of ``jobs`` processes (fresh interpreters: no shared torch state)."""
    import multiprocessing as mp
    import os

    jobs = min(jobs, len(runs))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log.info("bench %s: %d runs, %d side by side with %d thread(s) each", suite.name, len(runs), jobs, threads)
    wall = None if deadline is None else time.time() + (deadline - time.monotonic())
    with mp.get_context("spawn").Pool(jobs, initializer=_worker_init, initargs=(threads,), maxtasksperchild=1) as pool:
        results = pool.starmap(_worker, [(suite, out, r, wall) for r in runs], chunksize=1)
    for done_steps, _ in results:
        steps.extend(done_steps)
    return [outcome for _, outcome in results]
