"""Does a run's training attack still find adversarial examples on its own checkpoint?

A diagnosis of catastrophic overfitting: a collapsed model is one whose training attack no longer finds the
examples that a multi-step attack on cross-entropy finds. For a run directory and one of its checkpoints this
script measures the model's accuracy on the first ``--n`` test images under

* the run's training attack (``--train-attack``, steps and step size of its config) on its method's own inner
  objective, as training ran it at the checkpoint's epoch (C-LEAD: ``attack_loss`` of its config, the clean
  anchors from an eval-mode forward),
* the same attack on cross-entropy alone, and, for C-LEAD, on each of its other inner objectives,
* PGD-10 on cross-entropy (step 2.5*eps/10, random start), the per-epoch validation attack,

so that "the attack training used lost its bite" (its accuracy high, PGD-10's low) can be told from "the model is
just not robust" (both low). Diagnosis only, on test images: nothing is chosen by it.

    python benchmarks/attack_bite.py RUN [--checkpoint last] [--n 1000]

writes ``RUN/attack_bite-CHECKPOINT.json`` (``--out`` elsewhere), which the suite report lists under its
catastrophic-overfitting table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json

import torch

from clead import run as runmod
from clead import rundir
from clead.attacks import PGD
from clead.data import load_dataset, to_float
from clead.io import sha256_file, write_json
from clead.models.base import eval_mode


def accuracy(model, x: torch.Tensor, y: torch.Tensor) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run", help="a run directory")
    ap.add_argument("--checkpoint", default="last", choices=("best", "last"))
    ap.add_argument("--n", type=int, default=1000, help="first N test images")
    ap.add_argument("--batch-size", type=int, default=250)
    ap.add_argument("--out", help="write the result as JSON here [default: RUN/attack_bite-CHECKPOINT.json]")
    args = ap.parse_args()

    torch.manual_seed(0)
    cfg = runmod.read_config(args.run)
    state = runmod.load_checkpoint(rundir.checkpoint(args.run, args.checkpoint))
    model, method = runmod.build(cfg, state["meta"])
    model.load_state_dict(state["model"])
    if "method" in state:
        method.load_state_dict(state["method"])
    model.eval()
    epoch = int(state.get("epoch", cfg.epochs - 1))  # 0-based, as checkpoints store it
    data = load_dataset(cfg.dataset, cfg.data_dir, **cfg.data_options())
    x_all, y_all = to_float(data.test_x[: args.n]), data.test_y[: args.n]

    objectives = {}
    if hasattr(method, "attack_objective"):  # C-LEAD: each of its inner objectives, its configured one first
        own = method.params.attack_loss
        for loss in dict.fromkeys([own, "ce", "contrastive", "joint"]):
            objectives[f"{cfg.train_attack} on {loss}" + (" (training's)" if loss == own else "")] = loss
    else:
        objectives[f"{cfg.train_attack} on ce"] = None
    pgd10 = PGD(cfg.eps, steps=10, norm=cfg.norm)

    correct = {name: 0 for name in ["clean", *objectives, "pgd-10 on ce"]}
    for i in range(0, len(y_all), args.batch_size):
        x, y = x_all[i : i + args.batch_size], y_all[i : i + args.batch_size]
        correct["clean"] += accuracy(model, x, y) * len(y)
        for name, loss in objectives.items():
            if loss is None:
                attack = method.budget.attack()
            else:
                method.params = dataclasses.replace(method.params, attack_loss=loss)
                with torch.no_grad(), eval_mode(model):
                    z_clean = method.embed(model.features(x))
                attack = method.view_attack("train", method.attack_objective(z_clean, y, epoch))
            correct[name] += accuracy(model, attack(model, x, y), y) * len(y)
        correct["pgd-10 on ce"] += accuracy(model, pgd10(model, x, y), y) * len(y)

    result = {
        "run": str(args.run),
        "checkpoint": args.checkpoint,
        "checkpoint_sha256": sha256_file(rundir.checkpoint(args.run, args.checkpoint)),
        "epoch": epoch + 1,
        "n": len(y_all),
        "accuracy": {k: round(v / len(y_all), 4) for k, v in correct.items()},
    }
    for name, acc in result["accuracy"].items():
        print(f"{name:40s} {acc:.3f}")
    print(json.dumps(result))
    write_json(args.out or rundir.attack_bite_json(args.run, args.checkpoint), result)


if __name__ == "__main__":
    main()
