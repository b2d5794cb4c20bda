"""What `clead.allocator.tune` saves: PGD-5 on a batch of 500 Fashion-MNIST-sized images, small-cnn,
once with glibc's default malloc settings and once tuned, each in a fresh process (the settings are
process-wide). Prints wall, user and system seconds and minor page faults of the attack.

    python benchmarks/allocator.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time, torch
from clead import allocator
from clead.attacks import PGD
from clead.models import create_model
tuned = allocator.tune() if sys.argv[1] == "1" else False
torch.manual_seed(0)
m = create_model("small-cnn", 10, (1, 28, 28), (0.286,), (0.353,)).eval()
x, y = torch.rand(500, 1, 28, 28), torch.randint(0, 10, (500,))
attack = PGD(0.1, steps=5)
attack(m, x[:50], y[:50])
best = None
for _ in range(3):
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    attack(m, x, y)
    r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    run = {"wall": t1 - t0, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime,
           "faults": r1.ru_minflt - r0.ru_minflt}
    best = run if best is None or run["wall"] < best["wall"] else best
print(json.dumps({"tuned": tuned, **best}))
"""


def main() -> None:
    env = {**os.environ, "CLEAD_MALLOC_TUNING": "1"}
    rows = {}
    for label, arg in (("default malloc", "0"), ("clead.allocator.tune()", "1")):
        out = subprocess.run([sys.executable, "-c", CHILD, arg], env=env, capture_output=True, text=True, check=True)
        rows[label] = json.loads(out.stdout.strip().splitlines()[-1])
    print("# PGD-5, small-cnn, batch 500, torch threads from the environment; fastest of 3 runs per setting")
    print("| malloc | wall s | user s | system s | minor page faults |")
    print("|---|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['wall']:.2f} | {r['user']:.2f} | {r['sys']:.2f} | {r['faults']} |")
    a, b = rows["default malloc"], rows["clead.allocator.tune()"]
    print(
        f"\ntuned / default wall time: {b['wall'] / a['wall']:.2f}"
        + ("" if b["tuned"] else " (tuning not applied here)")
    )


if __name__ == "__main__":
    main()
