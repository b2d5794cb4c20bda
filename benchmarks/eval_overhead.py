"""Overhead of clead's AutoAttack evaluation over calling pyautoattack directly, measured in one run.

Both sides attack the same model and images with the same version, seed and batch size:
  direct: AutoAttack(...).run_standard_evaluation(x, y, batch_size=B)
  clead:  clead.evaluate(model, x, y, attacks=["autoattack"], checks=False, batch_size=B)
They alternate (direct, clead, direct, clead) so that machine load hits both; the ratio of total times
is printed with the robust accuracies, which must agree.

    python benchmarks/eval_overhead.py RUN [--n 100] [--version standard|apgd] [--repeats 2]
"""

from __future__ import annotations

import argparse
import time

import torch

import clead
from clead.data import load_dataset, to_float
from clead.run import read_config


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="a clead run directory")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--version", default="standard", choices=["standard", "apgd"])
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()

    from pyautoattack import AutoAttack

    cfg = read_config(args.run)
    model = clead.load_model(args.run)
    data = load_dataset(cfg.dataset, cfg.data_dir)
    x, y = to_float(data.test_x[: args.n]), data.test_y[: args.n]
    preset = "autoattack" if args.version == "standard" else "apgd"

    def direct() -> float:
        aa = AutoAttack(model, eps=cfg.eps, norm="Linf", version="standard", seed=0, device="cpu")
        if args.version == "apgd":
            aa.attacks_to_run = ["apgd-ce", "apgd-t"]
        x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=args.batch_size)
        with torch.no_grad():
            return float((model(x_adv).argmax(1) == y).float().mean())

    def ours() -> float:
        res = clead.evaluate(
            model,
            x,
            y,
            attacks=[preset],
            eps=cfg.eps,
            batch_size=args.batch_size,
            checks=False,
            progress=False,
            num_classes=data.num_classes,
        )
        return res["robust_accuracy"]

    times = {"direct": 0.0, "clead": 0.0}
    accs: dict[str, float] = {}
    for _ in range(args.repeats):
        for name, fn in (("direct", direct), ("clead", ours)):
            t0 = time.perf_counter()
            accs[name] = fn()
            times[name] += time.perf_counter() - t0
    print(
        f"# AutoAttack ({args.version}) on {args.run}, n={args.n}, batch {args.batch_size}, {args.repeats} alternating repeats"
    )
    print("| path | seconds (total) | robust accuracy |")
    print("|---|---|---|")
    for name in times:
        print(f"| {name} | {times[name]:.1f} | {100 * accs[name]:.2f}% |")
    print(f"\nclead / direct time: {times['clead'] / times['direct']:.3f} (target <= 1.05)")


if __name__ == "__main__":
    main()
