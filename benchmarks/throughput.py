"""Training and attack throughput, printed as ratios measured in one run.

* images/s of one training step of every method at the same PGD steps K (same model, batch, data);
* C-LEAD / PGD-AT time per step against the target 1.05 * (K + 2) / (K + 1);
* C-LEAD against ``pgd-at+clean``, PGD-AT plus one clean forward/backward (CE on the clean batch added
  to the loss): that is the extra cost the target calls inherent, measured instead of assumed (the
  formula assumes a training forward/backward costs the same as an attack step; with weight gradients
  it costs more);
* PGD-20 attack images/s on a small-cnn at batch 500.

Methods are measured in interleaved rounds (every round runs one step of every method back to back).
Ratios to PGD-AT are taken within each round and their median over rounds is reported with the
interquartile range, so that load from other processes on a shared machine, which drifts over seconds,
cancels out of the ratio instead of landing on whichever method ran during it. The verdict on the
target uses the ratio of each method's fastest round (as ``timeit`` advises: interference from other
processes only ever adds time, so the minimum is the steadiest estimate of the cost itself). The median
ratio in process CPU time is printed too.

    python benchmarks/throughput.py [--steps 10] [--batch-size 128] [--rounds 20] [--run runs/demo]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from clead import allocator, load_model
from clead.data import load_dataset, to_float
from clead.errors import CleadError
from clead.methods import METHODS, Budget
from clead.methods.pgd_at import PGDAT
from clead.models import create_model


def images(n: int, data_dir: str | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    try:
        d = load_dataset("fashion-mnist", data_dir)
        return to_float(d.train_x[:n]), d.train_y[:n], "Fashion-MNIST"
    except CleadError:
        g = torch.Generator().manual_seed(0)
        return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g), "random 28x28"


class PGDATPlusClean(PGDAT):
    """Reference for the cost ratio: PGD-AT plus exactly one clean forward/backward."""

    def loss(self, model, x, y, epoch):
        loss, parts = super().loss(model, x, y, epoch)
        return loss + torch.nn.functional.cross_entropy(model(x), y), parts


EXTRA = {"pgd-at+clean": PGDATPlusClean}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="PGD steps K of the training attack")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--batches", type=int, default=1, help="training steps per method per round")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--methods", default=",".join([*METHODS.names(), *EXTRA]))
    ap.add_argument("--run", default=None, help="run directory whose model the PGD-20 speed is measured on")
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()

    torch.set_flush_denormal(True)  # as the trainer does on CPU
    allocator.tune()  # as the CLI does
    k, bs = args.steps, args.batch_size
    x, y, source = images(max(bs * 8, 500), args.data_dir)
    methods = args.methods.split(",")
    setups = {}
    for name in methods:
        torch.manual_seed(0)
        model = create_model("small-cnn", 10, (1, 28, 28), (0.286,), (0.353,))
        cls = EXTRA[name] if name in EXTRA else METHODS.get(name)
        method = cls(cls.Params(), Budget(eps=0.1, steps=k), model.feature_dim, 10)
        opt = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.01, momentum=0.9)
        setups[name] = (model, method, opt)

    n_batches = len(y) // bs

    def step_time(name: str, r: int = 0) -> tuple[float, float]:
        model, method, opt = setups[name]
        model.train()
        t0, c0 = time.perf_counter(), time.process_time()
        for j in range(args.batches):
            i = (r * args.batches + j) % n_batches
            xb, yb = x[i * bs : (i + 1) * bs], y[i * bs : (i + 1) * bs]
            loss, _ = method.loss(model, xb, yb, epoch=0)
            opt.zero_grad()
            loss.backward()
            opt.step()
        n = args.batches * bs
        return (time.perf_counter() - t0) / n, (time.process_time() - c0) / n  # seconds per image

    for name in methods:  # warm-up
        step_time(name)
    times: dict[str, list[float]] = {name: [] for name in methods}
    cpu: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(args.rounds):
        for name in methods:
            wall, c = step_time(name, r)
            times[name].append(wall)
            cpu[name].append(c)
    med = {name: statistics.median(t) for name, t in times.items()}

    def ratio(name: str, clock: dict[str, list[float]] = times, ref: str = "pgd-at") -> tuple[float, float, float]:
        """Median and quartiles over rounds of this method's time / ``ref``'s time in the same round."""
        if ref not in clock:
            return (float("nan"),) * 3
        r = sorted(a / b for a, b in zip(clock[name], clock[ref]))
        q = statistics.quantiles(r, n=4) if len(r) > 1 else [r[0]] * 3
        return statistics.median(r), q[0], q[2]

    print(f"# Training throughput: small-cnn, {source}, batch {bs}, PGD-{k}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, {args.rounds} interleaved rounds of {args.batches} step(s)")  # fmt: skip

    def fastest(name: str, ref: str = "pgd-at") -> float:
        return min(times[name]) / min(times[ref]) if ref in times else float("nan")

    print("| method | images/s (median) | fastest round / PGD-AT's | time / PGD-AT (median over rounds) "
          "| interquartile range | CPU time / PGD-AT (median) |")
    print("|---|---|---|---|---|---|")
    for name in methods:
        mid, lo, hi = ratio(name)
        print(f"| {name} | {1 / med[name]:.0f} | {fastest(name):.3f} | {mid:.3f} | {lo:.3f} - {hi:.3f} "
              f"| {ratio(name, cpu)[0]:.3f} |")
    if "clead" in med and "pgd-at" in med:
        mid, lo, hi = ratio("clead")
        target = 1.05 * (k + 2) / (k + 1)
        c, f = ratio("clead", cpu)[0], fastest("clead")
        print(f"\nC-LEAD / PGD-AT time per step at K={k}: {f:.3f} fastest rounds (median {mid:.3f}, IQR {lo:.3f} - "
              f"{hi:.3f}; CPU time {c:.3f}); target <= 1.05 * (K+2)/(K+1) = {target:.3f}: "
              f"{'met' if f <= target else 'NOT met'}")  # fmt: skip
    if "clead" in med and "pgd-at+clean" in med:
        f = fastest("clead", "pgd-at+clean")
        r = ratio("clead", ref="pgd-at+clean")[0]
        print(f"C-LEAD / (PGD-AT + one clean forward/backward) at K={k}: {f:.3f} fastest rounds (median {r:.3f}); "
              f"target <= 1.05: {'met' if f <= 1.05 else 'NOT met'}; one clean forward/backward costs "
              f"{fastest('pgd-at+clean') - 1:.3f} of a PGD-AT step, the formula assumes {1 / (k + 1):.3f}")  # fmt: skip

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
