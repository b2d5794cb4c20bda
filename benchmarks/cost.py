"""The cost axis of a suite, measured: seconds per training step of each of its runs (and of the runs it reuses),
side by side on this machine in one sitting, as ratios to a reference run, with the forward and backward passes
per image that one step makes.

Every run's own training step is timed (the trainer's ``_step``: its method, training attack, AWP and weight
averaging, its precision and layout), on a batch of its own dataset, one thread, in interleaved rounds (one step
of each run per round) so that load from other processes lands on every run alike; s/step is the median over
rounds and ratios are taken within a round. Passes are counted, not assumed: each call of the model's feature
extractor during one step, split into those that build a graph (a forward and, later, a backward) and those
that do not (forward only). Writes ``OUT/cost.json``, which the suite's report plots as its frontier.

    python benchmarks/cost.py SUITE [--rounds 10] [--reference RUN] [--out results/SUITE]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time
from pathlib import Path

import torch

from clead import allocator, precision
from clead import run as runmod
from clead.data import load_dataset, to_float
from clead.io import write_text
from clead.study.bench import SUITES
from clead.training.ema import WeightAverage
from clead.training.trainer import TrainStep, _Run, _step, make_optimizer


def setup(cfg, data_cache: dict) -> tuple[_Run, torch.Tensor, torch.Tensor, list[bool]]:
    key = (cfg.dataset, cfg.data_dir)
    if key not in data_cache:
        data = load_dataset(cfg.dataset, cfg.data_dir, **cfg.data_options())
        data_cache[key] = (data, runmod.dataset_meta(data))
    data, meta = data_cache[key]
    cfg = dataclasses.replace(cfg, amp=precision.resolve_amp(cfg.amp, torch.device("cpu")))
    torch.manual_seed(0)
    model, method = runmod.build(cfg, meta)
    if cfg.channels_last:
        precision.to_channels_last(model)
    calls: list[bool] = []
    real = model.features
    model.features = lambda inp: calls.append(torch.is_grad_enabled()) or real(inp)
    optimizer = make_optimizer(cfg, [*model.parameters(), *method.parameters()])
    scaler = torch.amp.GradScaler("cuda", enabled=False)
    ema = WeightAverage(model, cfg.ema_decay) if cfg.ema_decay else None
    run = _Run(cfg=cfg, out=Path("."), device=torch.device("cpu"), dist=None, progress=False, meta=meta, splits=None,
               val_x=None, val_y=None, augment=False, fixed=None, model=model, method=method, optimizer=optimizer,
               scaler=scaler, step_module=TrainStep(model, method), ema=ema)  # fmt: skip
    n = cfg.batch_size
    return run, to_float(data.train_x[:n]), data.train_y[:n], calls


def one(run: _Run, x: torch.Tensor, y: torch.Tensor, epoch: int) -> float:
    t = time.perf_counter()
    _step(run, epoch, 0, None, x, y)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("suite")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument(
        "--reference", default=None, help="the run the ratios divide by [default: the suite's first reused run]"
    )
    ap.add_argument("--out", default=None)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    allocator.tune()
    suite = SUITES.get(args.suite)
    out = Path(args.out or Path("results") / suite.name)
    names = {**{r: suite.config(r, out) for r in suite.runs}}
    for path in suite.report_with:
        names[path] = runmod.read_config(path)
    reference = args.reference or (suite.report_with[0] if suite.report_with else next(iter(suite.runs)))
    cache: dict = {}
    setups = {name: setup(cfg, cache) for name, cfg in names.items()}
    passes = {}
    for name, (run, x, y, calls) in setups.items():
        epoch = run.cfg.epochs - 1  # past any warm-up: the step as most of training makes it
        for _ in range(2):  # warm-up: allocator, oneDNN kernels
            calls.clear()
            one(run, x, y, epoch)
        passes[name] = {"fwd_bwd_per_image": sum(calls), "fwd_only_per_image": len(calls) - sum(calls)}
    times: dict[str, list[float]] = {name: [] for name in setups}
    for r in range(args.rounds):
        for name, (run, x, y, _) in setups.items():
            times[name].append(one(run, x, y, run.cfg.epochs - 1))
        print(f"round {r + 1}/{args.rounds}", flush=True)
    ratios = {name: statistics.median(t / ref for t, ref in zip(times[name], times[reference])) for name in setups}
    record = {
        "machine": precision.cpu_model() or "unknown CPU",
        "native_bf16": precision.cpu_has_native_bf16(),
        "threads": args.threads,
        "rounds": args.rounds,
        "reference": reference,
        "runs": {
            name: {
                "train_attack": setups[name][0].cfg.train_attack,
                "attack_steps": setups[name][0].cfg.attack_steps,
                "amp": setups[name][0].cfg.amp,
                "seconds_per_step": round(statistics.median(times[name]), 4),
                "batch_size": setups[name][0].cfg.batch_size,
                "ratio": round(ratios[name], 3),
                **passes[name],
            }
            for name in setups
        },
    }
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / "cost.json", json.dumps(record, indent=2) + "\n")
    print(f"{'run':44s} {'s/step':>7s} {'ratio':>6s} {'fwd+bwd':>7s} {'fwd':>4s}")
    for name, r in record["runs"].items():
        print(f"{name:44s} {r['seconds_per_step']:7.3f} {r['ratio']:6.2f} {r['fwd_bwd_per_image']:7d} "
              f"{r['fwd_only_per_image']:4d}")  # fmt: skip
    print(f"{record['machine']} (bf16 units: {record['native_bf16']}), {args.threads} thread(s); wrote {out}/cost.json")


if __name__ == "__main__":
    main()
