"""AutoAttack wall time: clead's evaluation path before and after per-core processes and channels_last.

Runs ``clead eval RUN --attacks autoattack -n N --no-checks`` (standard AutoAttack, fp32 always) on copies of
one run's checkpoint, one path after the other:

* ``before``: one process with all cores as threads, contiguous weights, AutoAttack chunks of 500 samples
  (clead's evaluation path before this benchmark's change);
* ``after``: ``--procs 2`` (two processes, one thread each, sharing out the chunks), channels_last weights,
  chunks of 250 (the current defaults);
* ``after, 1 process`` (with ``--same-chunks``): the current chunks and layout in one process, which must give
  exactly the numbers of ``after`` (the number of processes never changes a result).

It prints the seconds, the clean and robust accuracy of each, and the speed-up.

    python benchmarks/eval_speed.py results/quick/clead [--n 500] [--same-chunks]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(label: str, src: Path, tmp: Path, n: int, cmd_head: list[str], extra: list[str], threads: int) -> dict:
    d = tmp / label.replace(" ", "-").replace(",", "")
    d.mkdir()
    for f in ("config.yaml", "best.pt"):
        shutil.copy(src / f, d / f)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    subprocess.run(
        [*cmd_head, "eval", str(d), "--attacks", "autoattack", "-n", str(n), "--no-checks", "--quiet", *extra],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
    )
    seconds = time.perf_counter() - t0
    ev = json.loads((d / "eval.json").read_text())
    return {
        "label": label,
        "seconds": seconds,
        "clean": ev["clean_accuracy"],
        "robust": ev["robust_accuracy"],
        "sequence": ev["sequence"].get("autoattack", {}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run", help="run directory (config.yaml + best.pt)")
    ap.add_argument("--n", type=int, default=500)
    ap.add_argument("--same-chunks", action="store_true", help="also run the current path in one process")
    args = ap.parse_args()
    cores = os.cpu_count() or 1
    src = Path(args.run)
    py = sys.executable
    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        results = [
            run(
                "before",
                src,
                tmp,
                args.n,
                [py, "-m", "clead"],
                ["--no-channels-last", "--autoattack-chunk", "500"],
                cores,
            ),
            run("after", src, tmp, args.n, [py, "-m", "clead"], ["--procs", "2"], max(1, cores // 2)),
        ]
        if args.same_chunks:
            results.append(run("after, 1 process", src, tmp, args.n, [py, "-m", "clead"], [], cores))
    print(f"# Standard AutoAttack (fp32) on the first {args.n} test images of {args.run}, {cores} cores")
    print("| path | seconds | clean % | robust % | cascade |")
    print("|---|---|---|---|---|")
    for r in results:
        seq = " → ".join(f"{k} {100 * v:.1f}" for k, v in r["sequence"].items())
        print(f"| {r['label']} | {r['seconds']:.0f} | {100 * r['clean']:.1f} | {100 * r['robust']:.1f} | {seq} |")
    before, after = results[0], results[1]
    speed = before["seconds"] / after["seconds"]
    print(
        f"\nafter / before speed-up: {speed:.2f}x (target >= 1.3x: {'met' if speed >= 1.3 else 'NOT met'}); "
        f"robust accuracy {'identical' if before['robust'] == after['robust'] else 'DIFFERS'} "
        f"({100 * before['robust']:.1f}% / {100 * after['robust']:.1f}%)"
    )


if __name__ == "__main__":
    main()
