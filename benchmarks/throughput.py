"""Training and attack throughput, printed as ratios measured in one run.

* images/s of one training step of every method at the same PGD steps K (same model, batch, data);
* C-LEAD / PGD-AT time per step against the target 1.05 * (K + 2) / (K + 1);
* PGD-20 attack images/s on a small-cnn at batch 500.

Methods are measured in interleaved rounds and the median per method is reported, so that load from
other processes on a shared machine hits every method alike.

    python benchmarks/throughput.py [--steps 10] [--batch-size 128] [--rounds 5] [--run runs/demo]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from clead import load_model
from clead.data import load_dataset, to_float
from clead.errors import CleadError
from clead.methods import METHODS, Budget
from clead.models import create_model


def images(n: int, data_dir: str | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        d = load_dataset("fashion-mnist", data_dir)
        return to_float(d.train_x[:n]), d.train_y[:n], "Fashion-MNIST"
    except CleadError:
        g = torch.Generator().manual_seed(0)
        return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), "random 28x28"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="PGD steps K of the training attack")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--batches", type=int, default=3, help="training steps per measurement")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--methods", default=",".join(METHODS.names()))
    ap.add_argument("--run", default=None, help="run directory whose model the PGD-20 speed is measured on")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()

    torch.set_flush_denormal(True)  # as the trainer does on CPU
    k, bs = args.steps, args.batch_size
    x, y, source = images(max(bs * args.batches, 500), args.data_dir)
    methods = args.methods.split(",")
    setups = {}
    for name in methods:
        torch.manual_seed(0)
        model = create_model("small-cnn", 10, (1, 28, 28), (0.286,), (0.353,))
        cls = METHODS.get(name)
        method = cls(cls.Params(), Budget(eps=0.1, steps=k), model.feature_dim, 10)
        opt = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.01, momentum=0.9)
        setups[name] = (model, method, opt)

    def step_time(name: str) -> float:
        model, method, opt = setups[name]
        model.train()
        t0 = time.perf_counter()
        for i in range(args.batches):
            xb, yb = x[i * bs : (i + 1) * bs], y[i * bs : (i + 1) * bs]
            loss, _ = method.loss(model, xb, yb, epoch=0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        return (time.perf_counter() - t0) / (args.batches * bs)  # seconds per image

    for name in methods:  # warm-up
        step_time(name)
    times: dict[str, list[float]] = {name: [] for name in methods}
    for _ in range(args.rounds):
        for name in methods:
            times[name].append(step_time(name))
    med = {name: statistics.median(t) for name, t in times.items()}

    print(f"# Training throughput: small-cnn, {source}, batch {bs}, PGD-{k}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, median of {args.rounds} interleaved rounds")  # fmt: skip
    print("| method | images/s | time / PGD-AT |")
    print("|---|---|---|")
    for name in methods:
        ratio = med[name] / med["pgd-at"] if "pgd-at" in med else float("nan")
        print(f"| {name} | {1 / med[name]:.0f} | {ratio:.3f} |")
    if "clead" in med and "pgd-at" in med:
        ratio = med["clead"] / med["pgd-at"]
        target = 1.05 * (k + 2) / (k + 1)
        print(f"\nC-LEAD / PGD-AT time per image at K={k}: {ratio:.3f} (target <= 1.05 * (K+2)/(K+1) = {target:.3f}: "
              f"{'met' if ratio <= target else 'NOT met'})")  # fmt: skip

    # attack throughput
    if args.run:
        model, what = load_model(args.run), f"trained model of {args.run}"
    else:
        model, what = create_model("small-cnn", 10, (1, 28, 28), (0.286,), (0.353,)).eval(), "untrained small-cnn"
    from clead.attacks import PGD

    xa, ya = x[:500], y[:500]
    attack = PGD(0.1, steps=20)
    attack(model, xa[:50], ya[:50])
    runs = []
    for _ in range(3):
        t0 = time.perf_counter()
        attack(model, xa, ya)
        runs.append(time.perf_counter() - t0)
    print(f"\nPGD-20 (Linf, batch 500) on the {what}: {500 / statistics.median(runs):.0f} images/s")


if __name__ == "__main__":
    main()
