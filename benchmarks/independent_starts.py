"""What independent random starts changed in the headline runs (fmnist-full-0.1, C-LEAD and PGD-AT, seeds 0-2).

Reads, per run, the committed main evaluation (`per_sample.csv`, attacks sharing one random state per chunk)
and its re-run with independent starts (`per_sample-whitebox.csv`: FGSM, PGD-20, PGD-50x3, CW, made by
`clead eval RUN --attacks fgsm,pgd20,pgd50,cw --n 1000 --tag whitebox`), and prints the old and new
white-box numbers and the new worst case including AutoAttack (APGD-CE + APGD-T for seeds 1 and 2).

The combination is exact because in every one of these runs the AutoAttack (or APGD) accuracy alone equals
the old worst case: every image an old white-box attack broke, AutoAttack broke too, so an image is robust
under the new worst case exactly when it was robust before and survives the new white-box attacks. The script
checks that premise and stops if it does not hold.

    python benchmarks/independent_starts.py [results/fmnist-full-0.1]
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

RUNS = ["clead", "clead-seed1", "clead-seed2", "pgd-at", "pgd-at-seed1", "pgd-at-seed2"]


def robust(path: Path) -> list[bool]:
    with open(path) as f:
        return [row["robust"] == "1" for row in csv.DictReader(f)]


def main(root: Path) -> None:
    print(
        "| run | old white-box attacks (shared starts) | their worst case % | new: FGSM, PGD-20, PGD-50x3, CW (own "
        "starts) % | headline robust before % | headline robust now % | images whose outcome changed |"
    )
    print("|---|---|---|---|---|---|---|")
    for run in RUNS:
        d = root / run
        old_ev = json.loads((d / "eval.json").read_text())
        new_ev = json.loads((d / "eval-whitebox.json").read_text())
        aa = "autoattack" if "autoattack" in old_ev["per_attack"] else "apgd"
        if abs(old_ev["per_attack"][aa] - old_ev["robust_accuracy"]) > 1e-9:
            sys.exit(f"{run}: {aa} alone ({old_ev['per_attack'][aa]}) is not the old worst case; combine by hand")
        old, new = robust(d / "per_sample.csv"), robust(d / "per_sample-whitebox.csv")
        assert len(old) == len(new) == old_ev["n"] == new_ev["n"]
        with open(d / "per_sample.csv") as f:
            old_wb = [
                r["correct_clean"] == "1" and (r["broken_by"] == "" or r["broken_by"].startswith(aa))
                for r in csv.DictReader(f)
            ]
        combined = [a and b for a, b in zip(old, new)]
        n = len(old)
        wb = ", ".join(a for a in old_ev["per_attack"] if a != aa).replace("pgd50", "pgd50x3")
        print(
            f"| {run} | {wb} | {100 * sum(old_wb) / n:.1f} | {100 * sum(new) / n:.1f} | {100 * sum(old) / n:.1f} | "
            f"{100 * sum(combined) / n:.1f} | {sum(a != b for a, b in zip(old, combined))} |"
        )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/fmnist-full-0.1"))
