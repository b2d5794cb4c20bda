"""Training throughput against this machine's limit, printed as ratios measured in one run.

For every method (and ``pgd-at+clean``, PGD-AT plus one clean forward/backward: the cost the C-LEAD target
calls inherent, measured rather than assumed) and every way of running a training step:

* ``fp32``: float32, contiguous weights, one process with all the cores as threads (clead's path before
  ``amp``/``channels_last``: the reference the speed-up is measured against);
* ``fp32+cl``, ``bf16``, ``bf16+cl``: the same with channels_last weights and/or autocast to bfloat16;
* ``fp32+cl x2``, ``bf16+cl x2``: two processes with one thread each, DistributedDataParallel (gloo) over
  halves of the same global batch (what ``clead train --procs 2`` runs);
* ``bf16+cl 2 jobs``: two independent one-thread processes side by side, each training its own model on a
  full batch (what ``clead bench --jobs 2`` runs: two runs at once); images/s counts both.

it prints images/s, the FLOPs of one step per image (``torch.utils.flop_counter.FlopCounterMode``), the
achieved GFLOPS and their fraction of this machine's matmul peak in the same precision (a 2048 x 2048
matmul, measured in this run on the same number of cores). All settings are measured in interleaved
rounds (one step of each per round), so that load from other processes, which drifts over seconds,
lands on every setting alike; images/s is the median over rounds, ratios are taken within a round.

    python benchmarks/throughput.py [--steps 10] [--batch-size 128] [--rounds 8] [--run RUN]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.distributed as tdist
import torch.multiprocessing as mp

from clead import allocator, load_model, precision
from clead.data import load_dataset, to_float
from clead.errors import CleadError
from clead.methods import METHODS, Budget
from clead.methods.pgd_at import PGDAT
from clead.models import create_model
from clead.training.trainer import TrainStep

# name -> (amp, channels_last, processes, DDP over one global batch (else independent jobs))
SETTINGS = {
    "fp32": ("none", False, 1, False),
    "fp32+cl": ("none", True, 1, False),
    "bf16": ("bf16", False, 1, False),
    "bf16+cl": ("bf16", True, 1, False),
    "fp32+cl x2": ("none", True, 2, True),
    "bf16+cl x2": ("bf16", True, 2, True),
    "bf16+cl 2 jobs": ("bf16", True, 2, False),
}
REFERENCE = "fp32"


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


def build(name: str, steps: int, channels_last: bool, ddp: bool):
    torch.manual_seed(0)
    model = create_model("small-cnn", 10, (1, 28, 28), (0.286,), (0.353,))
    if channels_last:
        precision.to_channels_last(model)
    cls = EXTRA[name] if name in EXTRA else METHODS.get(name)
    method = cls(cls.Params(), Budget(eps=0.1, steps=steps), model.feature_dim, 10)
    step = TrainStep(model, method)
    if ddp:
        step = torch.nn.parallel.DistributedDataParallel(step, find_unused_parameters=not method.uses_all_parameters())
    opt = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.01, momentum=0.9)
    return step, opt


def one_step(setup, amp: str, x: torch.Tensor, y: torch.Tensor) -> float:
    step, opt = setup
    t0 = time.perf_counter()
    with precision.autocast(amp, torch.device("cpu")):
        loss, _ = step(x, y, 0)
    opt.zero_grad(set_to_none=True)
    loss.float().backward()
    opt.step()
    return time.perf_counter() - t0


def matmul_gflops(dtype: torch.dtype, n: int = 2048, reps: int = 20) -> float:
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def flops_per_image(name: str, steps: int, x: torch.Tensor, y: torch.Tensor) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    setup = build(name, steps, False, False)
    with FlopCounterMode(display=False) as counter:
        one_step(setup, "none", x, y)
    return counter.get_total_flops() / len(y)


def worker(
    rank: int, port: int, methods: list[str], steps: int, settings: list[str], x, y, inbox, outbox, matmul_n: int
) -> None:
    """One of the two DDP processes: builds every (method, setting) once, then runs steps on command."""
    torch.set_num_threads(1)
    torch.set_flush_denormal(True)
    allocator.tune()
    tdist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    setups = {(m, s): build(m, steps, SETTINGS[s][1], SETTINGS[s][3]) for m in methods for s in settings}
    half = len(y) // 2
    shard = x[rank * half : (rank + 1) * half], y[rank * half : (rank + 1) * half]
    outbox.put(("ready", matmul_gflops(torch.float32, matmul_n), matmul_gflops(torch.bfloat16, matmul_n)))
    while True:
        cmd = inbox.get()
        if cmd is None:
            break
        m, s = cmd
        tdist.barrier()
        xs, ys = shard if SETTINGS[s][3] else (x, y)  # DDP: half the global batch; a job: a batch of its own
        outbox.put(one_step(setups[(m, s)], SETTINGS[s][0], xs, ys))
    tdist.destroy_process_group()


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=10, help="PGD steps K of the training attack")
    ap.add_argument("--batch-size", type=int, default=128, help="global batch (split in two for the x2 settings)")
    ap.add_argument("--rounds", type=int, default=8)
    ap.add_argument("--methods", default=",".join([*METHODS.names(), *EXTRA]))
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--run", default=None, help="run directory whose model the PGD-20 speed is measured on")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument(
        "--matmul-n",
        type=int,
        default=2048,
        help="size of the square matmul that measures the peak (a 2048 bf16 matmul takes about 25 s on a CPU "
        "without bf16 units, where bf16 is emulated; tests pass a small one)",
    )
    args = ap.parse_args()

    torch.set_flush_denormal(True)  # as the trainer does on CPU
    allocator.tune()  # as the CLI does
    cores = os.cpu_count() or 1
    torch.set_num_threads(cores)
    k, bs = args.steps, args.batch_size
    x, y, source = images(bs, args.data_dir)
    methods, settings = args.methods.split(","), args.settings.split(",")
    unknown = [s for s in settings if s not in SETTINGS]
    if unknown:
        raise SystemExit(f"unknown setting(s) {unknown}; valid: {', '.join(SETTINGS)}")
    local = [s for s in settings if SETTINGS[s][2] == 1]
    multi = [s for s in settings if SETTINGS[s][2] == 2]

    peak = {"none": matmul_gflops(torch.float32, args.matmul_n), "bf16": matmul_gflops(torch.bfloat16, args.matmul_n)}
    flops = {m: flops_per_image(m, k, x, y) for m in methods}
    setups = {(m, s): build(m, k, SETTINGS[s][1], False) for m in methods for s in local}

    workers, inboxes, outboxes = [], [], []
    peak2 = {}
    if multi:
        ctx = mp.get_context("spawn")
        port = free_port()
        for rank in range(2):
            inbox, outbox = ctx.Queue(), ctx.Queue()
            p = ctx.Process(
                target=worker, args=(rank, port, methods, k, multi, x, y, inbox, outbox, args.matmul_n), daemon=True
            )
            p.start()
            workers.append(p)
            inboxes.append(inbox)
            outboxes.append(outbox)
        ready = [o.get(timeout=600) for o in outboxes]
        # two one-thread processes side by side: their matmul peaks add up (measured one after the other
        # while the other waits, so this is an upper bound for the pair)
        peak2 = {"none": sum(r[1] for r in ready), "bf16": sum(r[2] for r in ready)}

    def measure(m: str, s: str) -> float:
        if SETTINGS[s][2] == 1:
            return one_step(setups[(m, s)], SETTINGS[s][0], x, y)
        for inbox in inboxes:
            inbox.put((m, s))
        return max(o.get(timeout=600) for o in outboxes)

    for m in methods:  # warm-up (oneDNN primitive caches, allocator)
        for s in settings:
            measure(m, s)
    times: dict[tuple[str, str], list[float]] = {(m, s): [] for m in methods for s in settings}
    for _ in range(args.rounds):
        for m in methods:
            for s in settings:
                times[(m, s)].append(measure(m, s))
    for inbox in inboxes:
        inbox.put(None)
    for p in workers:
        p.join(timeout=60)

    def ratio(a: tuple[str, str], b: tuple[str, str]) -> float:
        """Median over rounds of a's time per image / b's (jobs settings train procs batches per step)."""
        per = {k: [t / (SETTINGS[k[1]][2] if not SETTINGS[k[1]][3] else 1) for t in times[k]] for k in (a, b)}
        return statistics.median(ta / tb for ta, tb in zip(per[a], per[b]))

    print(
        f"# Training throughput: small-cnn, {source}, global batch {bs}, PGD-{k}, torch {torch.__version__}, "
        f"{cores} cores, {args.rounds} interleaved rounds"
    )
    print(
        f"\nmatmul peak ({args.matmul_n} x {args.matmul_n}): fp32 {peak['none']:.0f} GFLOPS, bf16 {peak['bf16']:.0f} GFLOPS with "
        f"{cores} threads"
        + (f"; two 1-thread processes: fp32 {peak2['none']:.0f}, bf16 {peak2['bf16']:.0f}" if peak2 else "")
    )
    print(
        "\n| method | setting | images/s (median) | speed-up over fp32 (median of per-round ratios) | MFLOP / image "
        "| achieved GFLOPS | fraction of matmul peak |"
    )
    print("|---|---|---|---|---|---|---|")
    for m in methods:
        for s in settings:
            amp, _, procs, ddp = SETTINGS[s]
            ips = bs * (procs if not ddp else 1) / statistics.median(times[(m, s)])
            pk = (peak2 if procs == 2 else peak)[amp]
            gf = flops[m] * ips / 1e9
            sp = ratio((m, REFERENCE), (m, s)) if REFERENCE in settings else float("nan")
            print(f"| {m} | {s} | {ips:.0f} | {sp:.2f} | {flops[m] / 1e6:.1f} | {gf:.1f} | {gf / pk:.1%} |")

    print()
    if "pgd-at" in methods and REFERENCE in settings:
        best = max(settings, key=lambda s: ratio(("pgd-at", REFERENCE), ("pgd-at", s)))
        r = ratio(("pgd-at", REFERENCE), ("pgd-at", best))
        print(
            f"PGD-AT at K={k}: fastest setting {best}, {r:.2f}x the fp32 single-process path; target >= 3.5x: "
            f"{'met' if r >= 3.5 else 'NOT met'}"
        )
    if "clead" in methods and "pgd-at" in methods:
        target = 1.05 * (k + 2) / (k + 1)
        for s in settings:
            r = ratio(("clead", s), ("pgd-at", s))
            line = (
                f"C-LEAD / PGD-AT time per step, {s}: {r:.3f} (target <= 1.05 * (K+2)/(K+1) = {target:.3f}: "
                f"{'met' if r <= target else 'NOT met'})"
            )
            if "pgd-at+clean" in methods:
                line += f"; / (PGD-AT + one clean forward/backward): {ratio(('clead', s), ('pgd-at+clean', s)):.3f}"
            print(line)

    # attack throughput (evaluation runs in fp32; channels_last only changes the layout)
    if args.run:
        model, what = load_model(args.run), f"trained model of {args.run}"
    else:
        model, what = create_model("small-cnn", 10, (1, 28, 28), (0.286,), (0.353,)).eval(), "untrained small-cnn"
    from clead.attacks import PGD

    attack = PGD(0.1, steps=20)
    xa, ya = x[:128], y[:128]
    speeds = {}
    for label, cl in (("contiguous", False), ("channels_last", True)):
        if cl:
            precision.to_channels_last(model)
        attack(model, xa[:32], ya[:32])
        runs = []
        for _ in range(3):
            t0 = time.perf_counter()
            attack(model, xa, ya)
            runs.append(time.perf_counter() - t0)
        speeds[label] = len(ya) / min(runs)
    print(
        f"\nPGD-20 (Linf, batch 128, fp32, {cores} threads) on the {what}: "
        + ", ".join(f"{k_} {v:.0f} images/s" for k_, v in speeds.items())
    )


if __name__ == "__main__":
    main()
