"""The ``clead`` command: train, eval, report."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from . import __version__, allocator
from .errors import CleadError
from .evaluation import eval_config
from .evaluation.eval_config import EvalConfig
from .training import config as cfgmod

log = logging.getLogger("clead")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _type_of(f: dataclasses.Field) -> Any:
    t = str(f.type)
    if f.name in ("eps", "attack_alpha"):
        return str  # numbers or fractions like 8/255, parsed by the config
    if "bool" in t:
        return lambda s: s.lower() in ("1", "true", "yes", "on")
    if "int" in t:
        return int
    if "float" in t:
        return float
    return str


def _yaml_mapping(text: str) -> dict:
    import yaml

    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        value = None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a YAML mapping like '{{dropout: 0.0}}', got {text!r}")
    return value


def _add_train_args(p: argparse.ArgumentParser) -> None:
    from .data import DATASETS
    from .methods import METHODS
    from .models import MODELS

    choices = {"method": METHODS.names(), "model": MODELS.names(), "dataset": DATASETS.names()}
    g = p.add_argument_group("run options (default: value in --config, else shown default)")
    for f in dataclasses.fields(cfgmod.TrainConfig):
        if f.name == "method_args":  # one flag per method knob, below
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_ = f.metadata["help"]
        if f.name in choices:
            help_ += f" ({', '.join(choices[f.name])})"
        help_ += f" [default: {default}]"
        if f.name == "milestones":
            g.add_argument(_flag(f.name), type=float, nargs="+", default=None, help=help_)
        elif "bool" in str(f.type):
            g.add_argument(_flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_)
        elif f.name == "model_args":
            g.add_argument(_flag(f.name), type=_yaml_mapping, default=None, metavar="YAML", help=help_)
        else:
            g.add_argument(_flag(f.name), type=_type_of(f), default=None, help=help_, metavar=f.name.upper())
    # method knobs: one flag per field of every method's Params (shared names such as beta share a flag)
    mg = p.add_argument_group("method options (apply to the methods named in the help)")
    seen: dict[str, tuple[dataclasses.Field, list[str]]] = {}
    for name in METHODS.names():
        for f in dataclasses.fields(METHODS.get(name).Params):
            seen.setdefault(f.name, (f, []))[1].append(name)
    for fname, (f, methods) in seen.items():
        mg.add_argument(
            _flag(fname),
            dest=f"method.{fname}",
            type=_type_of(f),
            default=None,
            metavar=fname.upper(),
            help=f"{f.metadata['help']} [default: {f.default}] (methods: {', '.join(methods)})",
        )


def _config_from_args(args: argparse.Namespace) -> cfgmod.TrainConfig:
    from . import run as runmod

    if args.config:
        base = cfgmod.load_yaml(args.config)
    elif args.resume and runmod.is_run(Path(args.out)):
        base = runmod.read_config(args.out).to_dict()
    else:
        base = {}
    flags: dict[str, Any] = {}
    method_flags: dict[str, Any] = {}
    for key, value in vars(args).items():
        if value is None:
            continue
        if key.startswith("method."):
            method_flags[key.split(".", 1)[1]] = value
        elif key in cfgmod.field_names():
            flags[key] = value
    if method_flags:
        flags["method_args"] = method_flags
    merged = cfgmod.merge(base, flags)
    if "method" in flags and base.get("method", flags["method"]) != flags["method"]:
        # switching method from the command line: the file's method knobs belong to the other method
        merged["method_args"] = method_flags
    return cfgmod.from_dict(merged, source=args.config or "options")


def cmd_train(args: argparse.Namespace) -> int:
    from .training.trainer import train

    if args.out is None:
        raise CleadError("--out DIR is required (the run directory)")
    cfg = _config_from_args(args)
    out = train(cfg, args.out, resume=args.resume, overwrite=args.overwrite, progress=not args.quiet)
    if os.environ.get("RANK", "0") == "0":
        log.info("done: %s (evaluate with `clead eval %s`)", out, out)
    return 0


def _add_eval_args(p: argparse.ArgumentParser) -> None:
    """One flag per `EvalConfig` field, as `clead train`'s come from `TrainConfig`'s: its help, its default and
    how it is spelt (``short``, ``choices``, ``nargs_default``) from the field itself."""
    from .attacks import ATTACKS

    for f in dataclasses.fields(EvalConfig):
        if f.name == "progress":  # spelt --quiet
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        help_ = f.metadata["help"]
        if f.name == "attacks":
            help_ += f" (from: {', '.join(ATTACKS.names())})"
        if isinstance(default, list):
            default = ",".join(map(str, default))
        help_ += f" [default: {default}]" if default not in (None, "", {}) else ""
        names = [f.metadata["short"], _flag(f.name)] if "short" in f.metadata else [_flag(f.name)]
        kw: dict[str, Any] = {"default": None, "help": help_}
        if "bool" in str(f.type):
            p.add_argument(*names, action=argparse.BooleanOptionalAction, **kw)
            continue
        if "choices" in f.metadata:
            kw["choices"] = list(f.metadata["choices"])
        if f.metadata.get("nargs_default"):  # given bare: the default list
            kw |= {"nargs": "?", "const": "", "metavar": "A,B,..."}
        elif "int" in str(f.type):
            kw |= {"type": int, "metavar": "N"}
        p.add_argument(*names, **kw)


def eval_config_from_args(args: argparse.Namespace) -> EvalConfig:
    """Defaults < ``--config FILE`` < the flags given."""
    options = eval_config.load(args.config) if args.config else {}
    given = {k: getattr(args, k) for k in eval_config.field_names() if getattr(args, k, None) is not None}
    if given.get("progress") is False or args.quiet:
        given["progress"] = False
    given.pop("sweep", None)  # resolved per run (its default list depends on the run's eps)
    return eval_config.from_dict({**options, **given}, source=args.config or "flags")


def cmd_eval(args: argparse.Namespace) -> int:
    from .evaluation.evaluate import evaluate_run
    from .rundir import eval_json
    from .study.report import markdown_table

    ec = eval_config_from_args(args)
    if ec.matrix():
        if args.sweep is not None:
            raise CleadError("--sweep does not apply to a threat matrix (--threats)")
        return _eval_threats(args.runs, ec)
    for run_dir in args.runs:
        sweep = ec.sweep
        if args.sweep is not None:
            sweep = [v for v in args.sweep.split(",") if v.strip()] or None
            if sweep is None:
                from .run import read_config

                e = read_config(run_dir).eps if ec.eps is None else ec.eps
                sweep = [round(e * f, 6) for f in (0, 0.25, 0.5, 0.75, 1, 1.5, 2, 3)]
        res = evaluate_run(run_dir, ec, sweep=sweep)
        if not res:  # a torchrun rank other than 0
            continue
        log.info(
            "%s: clean %.2f%%, robust %.2f%% (n=%d) -> %s",
            run_dir,
            100 * res["clean_accuracy"],
            100 * res["robust_accuracy"],
            res["n"],
            eval_json(run_dir, ec.tag),
        )
        for c in res["checks"]:
            if c["passed"] is False:
                log.warning("WARNING %s: check %s FAILED: %s %s", run_dir, c["name"], c["explanation"], c["numbers"])
    if os.environ.get("RANK", "0") == "0":
        print(markdown_table(args.runs, tag=ec.tag))
    return 0


def _eval_threats(runs: list[str], ec: EvalConfig) -> int:
    """The threat matrix of each run, through `evaluate_run` like every evaluation, then their table."""
    from .evaluation import threats as th
    from .evaluation.evaluate import evaluate_run
    from .rundir import eval_json

    for run_dir in runs:
        evaluate_run(run_dir, ec)
        log.info("%s: threat matrix -> %s", run_dir, eval_json(run_dir, th.matrix_tag(ec.tag)))
    print(th.threat_table(runs, ec.tag), end="")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .io import write_text
    from .run import is_run
    from .study.report import markdown_table, write_suite_report

    runs = [r for r in args.runs if is_run(Path(r))]
    skipped = [r for r in args.runs if r not in runs]
    if not runs:
        raise CleadError(f"no clead run among {', '.join(args.runs)} (a run directory holds config.yaml)")
    if skipped:
        log.warning("skipping what is not a run directory: %s", ", ".join(skipped))
    from .evaluation.threats import matrix_tags, threat_table

    table = markdown_table(runs)
    threats = "\n".join(threat_table(runs, t) for t in matrix_tags(runs))
    if threats:
        table += "\n" + threats
    print(table)
    if args.out:
        write_text(args.out, "# clead report\n\n" + table)
        log.info("wrote %s", args.out)
    if args.full:
        names = {Path(r).name for r in runs}
        unknown = [n for pair in args.pair or [] for n in pair if n not in names]
        if unknown:
            raise CleadError(f"--pair names {', '.join(unknown)}, not among the runs ({', '.join(sorted(names))})")
        md, html = write_suite_report(runs, args.full, args.title, args.pair)
        log.info("wrote %s and %s", md, html)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .io import write_json, write_text
    from .study.compare import compare, markdown

    results = compare(args.runs, tag=args.tag, seeds=not args.no_seeds, threat=args.threat)
    md = markdown(results)
    print(md, end="")
    if args.out:
        write_text(args.out, md)
        log.info("wrote %s", args.out)
    if args.json:
        write_json(args.json, results)
        log.info("wrote %s", args.json)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from .study.bench import SUITES, run_suite

    if args.list:
        from .study.bench import progress

        if not SUITES.names():
            raise CleadError(SUITES.none_found())
        for name in SUITES.names():
            s = SUITES.get(name)
            print(f"{name} [{progress(s, Path('results') / name)}]: {s.description}; runs: {', '.join(s.runs)}")
        return 0
    if not args.suites:
        raise CleadError(
            f"name a suite: {', '.join(SUITES.names())} (or --list)" if SUITES.names() else SUITES.none_found()
        )
    if len(args.suites) > 1 and (args.out or args.only):
        raise CleadError("--out and --only belong to one suite; give one suite with them, or neither")
    if args.report_only:
        from .study.bench import write_report

        for name in args.suites:
            out = Path(args.out or Path("results") / name)
            if not write_report(SUITES.get(name), out):
                raise CleadError(f"no evaluated run of suite {name} in {out}: nothing to report")
        return 0
    only = [r.strip() for r in args.only.split(",")] if args.only else None
    from .study.bench import default_jobs, dry_run_total

    jobs = default_jobs() if args.jobs is None else args.jobs
    if jobs < 1:
        raise CleadError(f"--jobs must be >= 1, got {jobs}")
    if args.max_hours is not None and args.max_hours <= 0:
        raise CleadError(f"--max-hours must be > 0, got {args.max_hours:g}")
    for name in args.suites:
        SUITES.get(name)  # every name checked before the first suite starts hours of work
    start = time.monotonic()
    for i, name in enumerate(args.suites):
        # one after another: a suite is left as soon as each of its runs is complete or held by another process
        # (which finishes it), so two processes given the same queue keep two cores busy to its end
        left = None if args.max_hours is None else args.max_hours - (time.monotonic() - start) / 3600
        if left is not None and left <= 0:
            log.info("bench: --max-hours reached; not starting %s", ", ".join(args.suites[i:]))
            break
        steps = run_suite(name, args.out, left, only, progress=not args.quiet, dry_run=args.dry_run, jobs=jobs)
        if args.dry_run:
            if len(args.suites) > 1:
                print(f"{name}:")
            print("\n".join(steps) if steps else "nothing to do: the suite is complete")
            if total := dry_run_total(steps, jobs):
                print(total)
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from .study.analyze import analyze

    analyze(args.runs, args.out, n=args.n, probe_train=args.probe_train, seed=args.seed)
    print((Path(args.out) / "analysis.md").read_text())
    log.info("wrote %s/analysis.json, analysis.md and tsne.png", args.out)
    return 0


def _add_procs(p: argparse.ArgumentParser, how: str) -> None:
    p.add_argument(
        "--procs",
        type=int,
        default=1,
        metavar="N",
        help=f"run as N processes on this machine (torchrun, gloo on CPU), each with cores/N threads; "
        f"{how} [default: %(default)s]",
    )


def build_parser() -> argparse.ArgumentParser:

    p = _Parser(prog="clead", description="C-LEAD and baseline adversarial training, evaluation and reports.")
    p.add_argument("--version", action="version", version=f"clead {__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser(
        "train",
        help="train a model into a run directory",
        description="Train a classifier. Options: defaults < --config FILE < flags.",
    )
    t.add_argument("--config", help="YAML file of run options (see configs/)")
    t.add_argument("--out", help="run directory to create (required), e.g. runs/NAME")
    t.add_argument("--resume", action="store_true", help="continue the interrupted run in --out from last.pt")
    t.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    t.add_argument(
        "--quiet", action="store_true", help="no progress bar (nor, off a terminal, the once-a-minute progress lines)"
    )
    _add_procs(t, "the global batch is split across them")
    _add_train_args(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser(
        "eval",
        help="evaluate runs under attack; writes RUN/eval.json",
        description="Evaluate runs on the test set; robust accuracy is the worst case per sample.",
    )
    e.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    e.add_argument(
        "--config",
        default=None,
        metavar="FILE",
        help=f"YAML file of evaluation options ({', '.join(eval_config.field_names())}); flags override it",
    )
    _add_eval_args(e)
    e.add_argument(
        "--quiet", action="store_true", help="no progress bar (nor, off a terminal, the per-chunk progress lines)"
    )
    _add_procs(e, "the attack chunks are split across them; same numbers as one process")
    e.set_defaults(func=cmd_eval)

    r = sub.add_parser("report", help="Markdown table comparing runs")
    r.add_argument(
        "runs",
        nargs="+",
        metavar="RUN",
        help="run directories; other paths (e.g. from results/SUITE/*) are skipped with a warning",
    )
    r.add_argument("--out", default=None, help="also write the table to this Markdown file")
    r.add_argument(
        "--full",
        default=None,
        metavar="DIR",
        help="write DIR/report.md and DIR/report.html (plots linked as PNG files): accuracies with 95%% intervals, "
        "checks, training curves, eps sweeps, adversarial examples",
    )
    r.add_argument("--title", default="clead report", help="title of the --full report")
    r.add_argument(
        "--pair",
        nargs=2,
        action="append",
        metavar=("A", "B"),
        default=None,
        help="in the --full report, the verdict and paired table of run A against run B (names of the run "
        "directories; repeatable) instead of C-LEAD against the most robust baseline",
    )
    r.set_defaults(func=cmd_report)

    c = sub.add_parser(
        "compare",
        help="paired comparison of runs evaluated on the same images (McNemar)",
        description="Compare the first run with each of the others on the same test images: clean and "
        "robust accuracy difference (A minus B) with its 95% interval, the discordant images "
        "and an exact McNemar p-value; over seed groups (NAME, NAME-seed1, ...) also the mean "
        "difference, tested over seeds (Student-t) and over images (each image's difference "
        "averaged over the seeds).",
    )
    c.add_argument("runs", nargs="+", metavar="RUN", help="run directories; the first is A, each other one is B")
    c.add_argument("--tag", default="", help="compare eval-TAG.json / per_sample-TAG.csv instead of eval.json")
    c.add_argument("--no-seeds", action="store_true", help="do not pair the runs' seed groups (NAME-seedN)")
    c.add_argument(
        "--threat",
        metavar="T",
        help="compare robustness under threat T of the runs' threat matrices "
        "(clead eval --threats: linf, linf-2x, l2, l1, transfer, transfer-pgd3) instead of their evaluations; "
        "with --tag TAG, of the matrices made with --tag TAG",
    )
    c.add_argument("--out", default=None, help="also write the Markdown to this file")
    c.add_argument("--json", default=None, help="also write the numbers as JSON to this file")
    c.set_defaults(func=cmd_compare)

    b = sub.add_parser(
        "bench",
        help="run a named benchmark suite resumably and write its report",
        description="Train and evaluate every run of a suite that is not complete yet, then write "
        "OUT/report.md and OUT/report.html. Run it again to continue.",
    )
    b.add_argument(
        "suites",
        nargs="*",
        metavar="SUITE",
        help="suite name or YAML file (see --list); several are a queue, brought up to date one after another, a "
        "process moving on as soon as every run of one is complete or held by another process",
    )
    b.add_argument(
        "--list", action="store_true", help="list the suites, what they run and how far each is in results/SUITE"
    )
    b.add_argument("--out", default=None, help="suite directory [default: results/SUITE]")
    b.add_argument("--max-hours", type=float, default=None, help="start no new training or evaluation after this long")
    b.add_argument(
        "--only",
        default=None,
        help="comma-separated run names of the suite to bring up to date (NAME-seedN for an extra seed)",
    )
    b.add_argument(
        "--jobs",
        type=int,
        default=None,
        metavar="N",
        help="runs brought up to date side by side, each in its own process with cores/N threads "
        "[default: the number of CPU cores, 1 with CUDA]",
    )
    b.add_argument(
        "--dry-run",
        action="store_true",
        help="print what would run: which runs resume and at which epoch, with the time left from the epochs "
        "logged (this machine's where any; a run not started, its seed siblings'), which evaluations resume, "
        "and who gets seeds",
    )
    b.add_argument(
        "--report-only",
        action="store_true",
        help="rewrite OUT/report.md and report.html from the evaluated runs on disk; trains and evaluates nothing "
        "(e.g. while --only processes bring other runs up to date)",
    )
    b.add_argument(
        "--quiet", action="store_true", help="no progress bars (nor, off a terminal, the once-a-minute progress lines)"
    )
    b.set_defaults(func=cmd_bench)

    a = sub.add_parser("analyze", help="representation analysis of runs (feature similarity, probes, t-SNE)")
    a.add_argument("runs", nargs="+", metavar="RUN", help="run directories")
    a.add_argument("--out", required=True, help="directory for analysis.json, analysis.md and tsne.png")
    a.add_argument("-n", "--n", type=int, default=500, help="test images analysed [default: %(default)s]")
    a.add_argument(
        "--probe-train", type=int, default=2000, help="training images for the linear probe [default: %(default)s]"
    )
    a.add_argument("--seed", type=int, default=0, help="[default: %(default)s]")
    a.set_defaults(func=cmd_analyze)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    allocator.tune()
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # --help, --version, usage errors (already printed)
        return int(e.code or 0)
    try:
        procs = getattr(args, "procs", 1)
        if procs < 1:
            raise CleadError(f"--procs must be >= 1, got {procs}")
        if procs > 1 and "RANK" not in os.environ:  # not yet under torchrun: start the workers
            from . import distributed

            return distributed.launch(procs, distributed.strip_procs(argv))
        return args.func(args)
    except CleadError as e:
        print(f"clead {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"clead {args.command}: interrupted", file=sys.stderr)
        return 130
