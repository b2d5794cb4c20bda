"""Named benchmark suites: a set of training runs and their evaluations, run resumably in chunks.

``clead bench SUITE`` trains each run that is not finished (continuing an interrupted one), evaluates
each run that has no evaluation yet, and writes ``report.md`` / ``report.html`` for the suite. A run or
evaluation that is complete is skipped, so a long suite can be run over several sessions
(``--max-hours`` stops starting new work after that long).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import config as cfgmod
from . import run as runmod
from . import rundir
from .errors import CleadError
from .registry import Registry

log = logging.getLogger("clead")
SUITES: Registry = Registry("suite")


@dataclass
class EvalSpec:
    tag: str
    attacks: list[str]
    n: int | None
    sweep: bool = False
    # which checkpoint: "last" is what training without a guard or a selection gives; where last.pt holds the
    # very weights of best.pt, the best.pt evaluation with the same attacks and images is shared, not re-run
    checkpoint: str = "best"


@dataclass
class ThreatSpec:
    """A tagged threat matrix (``clead eval RUN --threats T,... --tag TAG``) made once the suite's runs are
    evaluated: ``runs`` and ``transfer_from`` name runs of the suite, or other run directories by path."""

    tag: str
    threats: list[str]
    runs: list[str]
    transfer_from: str | None = None
    n: int | None = 1000
    preset: str = "autoattack"


@dataclass
class Suite:
    name: str
    description: str
    base: dict[str, Any]
    runs: dict[str, dict[str, Any]]
    evals: list[EvalSpec]
    seeds: tuple[int, ...] = ()  # extra seeds for C-LEAD and the best baseline (by AutoAttack), or for seed_runs
    seed_runs: tuple[str, ...] = ()  # the runs that get the extra seeds, when fixed in advance
    # with a margin: seeds for C-LEAD and every baseline whose AutoAttack accuracy at seed 0 is at most this far
    # below C-LEAD's (or above it), instead of the best baseline only
    seed_margin: float | None = None
    # with a reference run (a path, e.g. a reused baseline): seeds for every run of the suite whose AutoAttack
    # accuracy at seed 0 is at most seed_margin below the reference's (or above it)
    seed_reference: str | None = None
    seed_evals: list[EvalSpec] | None = None  # evaluations of the extra seeds [default: evals]
    no_eval: tuple[str, ...] = ()  # runs that are trained only (a stage whose classifier is not the model)
    title: str = ""
    threat_evals: tuple[ThreatSpec, ...] = ()  # tagged threat matrices, after everything else
    # runs of other suites (paths) the report shows beside the suite's own, e.g. a reused baseline
    report_with: tuple[str, ...] = ()
    # the report's verdict and paired tables: (A, B) run names or paths, each A against B; default: C-LEAD
    # against the most robust baseline
    pairs: tuple[tuple[str, str], ...] | None = None

    def run_dir(self, run: str, out: Path) -> Path:
        """A run of the suite (in ``out``), or a run directory named by path (one of another suite)."""
        return out / run if run in self.runs else Path(run)

    def config(self, run: str, out: Path | None = None) -> cfgmod.TrainConfig:
        """The run's config; an ``init`` naming another run of the suite becomes that run's directory in ``out``."""
        d = cfgmod.merge(self.base, self.seed_overrides(run))
        if d.get("init"):
            d["init"] = str(self.run_dir(d["init"], Path(out or Path("results") / self.name)))
        return cfgmod.from_dict(d, source=f"suite {self.name}/{run}")

    def seed_overrides(self, run: str) -> dict[str, Any]:
        if run in self.runs:
            return self.runs[run]
        base_run, _, seed = run.rpartition("-seed")
        return {**self.runs[base_run], "seed": int(seed)}


FMNIST = {
    "dataset": "fashion-mnist",
    "model": "small-cnn",
    "attack_steps": 5,
    "batch_size": 128,
    "optimizer": "adam",
    "lr": 0.001,
    "schedule": "cosine",
    "val_n": 500,
    "seed": 0,
}
# The 3-epoch suites were trained in fp32 with the contiguous layout, before amp/channels_last defaulted to the
# fast path; pinned so that their commands reproduce what results/ holds.
FP32 = {"amp": "none", "channels_last": False}
METHODS5 = {m: {"method": m} for m in ("standard", "pgd-at", "trades", "mart", "clead")}
# C-LEAD's contrastive predecessor and the strongest standard recipe among the baselines (AWP with the
# paper's PGD-AT setting: gamma 0.01 from the first epoch), added to suites that had already run as extra runs
PEERS = {"ascl": {"method": "ascl"}, "pgd-at-awp": {"method": "pgd-at", "awp_gamma": 0.01}}
PEERS_NOTE = "; extra runs: ASCL and PGD-AT with AWP (gamma 0.01)"
# C-LEAD against each of them and against PGD-AT, the baseline with seeds (by default a report compares C-LEAD
# with the single most robust baseline only, which at eps 0.1 ties between ASCL and C-LEAD)
PEER_PAIRS = (("clead", "pgd-at"), ("clead", "ascl"), ("clead", "pgd-at-awp"))
MAIN_EVALS = [
    EvalSpec("", ["fgsm", "pgd20", "pgd50", "cw", "autoattack"], 1000, sweep=True),
    EvalSpec("full", ["fgsm", "pgd20"], None),
]
# Extra seeds: AutoAttack's two gradient attacks (APGD-CE then APGD-T, standard settings) instead of all four.
# FAB-T and Square take most of AutoAttack's time here and, after APGD, changed at most one of 1,000
# predictions of any seed-0 model of fmnist-linf-0.1 (FAB-T one for MART, nothing for the others);
# the report reads seed 0's APGD-CE+T accuracy from its AutoAttack cascade.
SEED_EVALS = [EvalSpec("", ["fgsm", "pgd20", "apgd"], 1000), EvalSpec("full", ["fgsm", "pgd20"], None)]

for eps in (0.1, 0.3):
    SUITES.register(f"fmnist-linf-{eps}")(
        Suite(
            name=f"fmnist-linf-{eps}",
            title=f"Fashion-MNIST, small-cnn, Linf eps = {eps}",
            description=(
                "standard, PGD-AT, TRADES, MART and C-LEAD on the first 20,000 training images, 3 epochs, "
                "PGD-5 (step 2.5*eps/5) in training, Adam 1e-3 cosine, batch 128; AutoAttack, PGD-50x3 and CW "
                "on the first 1,000 test images, FGSM and PGD-20 on all 10,000; seeds 1 and 2 for C-LEAD and "
                "the best baseline (by AutoAttack), evaluated with APGD-CE + APGD-T instead of all of AutoAttack"
                + (PEERS_NOTE if eps == 0.1 else "")
            ),
            base={**FMNIST, **FP32, "eps": eps, "epochs": 3, "train_size": 20000},
            runs={**METHODS5, **PEERS} if eps == 0.1 else METHODS5,
            evals=MAIN_EVALS,
            pairs=PEER_PAIRS if eps == 0.1 else None,
            seeds=(1, 2),
            seed_evals=SEED_EVALS,
        )
    )

# The full-budget suites: all 55,000 training images less the 5,000 held out for validation, on the fast path
# (amp auto, channels_last). Cosine to zero over 20 epochs levels the validation curves off by construction.
for eps, steps, val in ((0.1, 10, {"val_n": 1000}), (0.3, 20, {"val_n": 500, "val_attack": "apgd-ce"})):
    SUITES.register(f"fmnist-full-{eps}")(
        Suite(
            name=f"fmnist-full-{eps}",
            title=f"Fashion-MNIST, small-cnn, Linf eps = {eps}, full budget",
            description=(
                f"standard, PGD-AT, TRADES, MART and C-LEAD on all 50,000 training images (5,000 held out), 20 epochs, "
                f"PGD-{steps} (step 2.5*eps/{steps}) in training, Adam 1e-3 cosine, batch 128, validation on "
                f"{val['val_n']} held-out images with {val.get('val_attack', 'pgd-10').upper()}; AutoAttack, PGD-50x3 "
                f"and CW on the first 1,000 test images, FGSM and PGD-20 on all 10,000"
                + (
                    "; seeds 1 and 2 for C-LEAD and every baseline within 2 points of it under AutoAttack (or "
                    "ahead), evaluated with APGD-CE + APGD-T instead of all of AutoAttack"
                    if eps == 0.1
                    else "; seed 0 only (the calibration against the published table)"
                )
                + (PEERS_NOTE if eps == 0.1 else "")
            ),
            base={**FMNIST, "eps": eps, "epochs": 20, "train_size": None, "attack_steps": steps, **val},
            # C-LEAD early: it is the question; the peers came after the suite had started
            runs={
                **{m: METHODS5[m] for m in ("standard", "pgd-at", "clead", "trades", "mart")},
                **(PEERS if eps == 0.1 else {}),
            },
            evals=MAIN_EVALS,
            pairs=PEER_PAIRS if eps == 0.1 else None,
            seeds=(1, 2) if eps == 0.1 else (),
            seed_margin=0.02,
            seed_evals=SEED_EVALS,
        )
    )

_ABLATION = {
    "default": {},
    "instance": {"mode": "instance"},
    "attack-ce": {"attack_loss": "ce"},
    "attack-contrastive": {"attack_loss": "contrastive"},
    "lam-0.5": {"lam": 0.5},
    "lam-2": {"lam": 2.0},
    "tau-0.05": {"tau": 0.05},
    "tau-0.5": {"tau": 0.5},
    "views-2": {"views": 2},
    "warmup-1": {"warmup_epochs": 1},
    "mixed-views": {"view_attacks": "pgd,fgsm,cw"},
}
# The protocol of the C-LEAD authors' early public snapshot: cross-entropy pretraining, then a contrastive stage
# with the clean image as anchor and views from PGD, FGSM and CW as its positives (NT-Xent, tau 0.1).
_TWO_STAGE = {
    "ce-pretrain": {"method": "standard"},
    "two-stage": {"init": "ce-pretrain", "method_args": {"mode": "instance", "view_attacks": "pgd,fgsm,cw"}},
}
SUITES.register("fmnist-ablation")(
    Suite(
        name="fmnist-ablation",
        title="C-LEAD ablation, Fashion-MNIST, Linf eps = 0.1",
        description=(
            "C-LEAD with one knob changed at a time from the defaults; the first 10,000 training images, "
            "2 epochs, PGD-5 in training; PGD-20 and APGD-CE (AutoAttack's first attack, standard settings) "
            "on the first 1,000 test images. The chosen setting then gets full AutoAttack in fmnist-linf-0.1. "
            "Also: views from PGD, FGSM and CW (mixed-views), and the authors' two-stage protocol (ce-pretrain: "
            "cross-entropy only; two-stage: C-LEAD instance mode with mixed views started from it, 2 more epochs)"
        ),
        base={**FMNIST, **FP32, "eps": 0.1, "epochs": 2, "train_size": 10000, "method": "clead"},
        runs={**{k: {"method_args": v} for k, v in _ABLATION.items()}, **_TWO_STAGE},
        evals=[EvalSpec("", ["pgd20", "apgd-ce"], 1000)],
    )
)


SUITES.register("fmnist-amp")(
    Suite(
        name="fmnist-amp",
        title="bf16 against fp32 training, Fashion-MNIST, C-LEAD, demo budget",
        description=(
            "C-LEAD on the demo budget (configs/demo.yaml: first 12,000 training images, 3 epochs, PGD-5, "
            "Linf eps 0.1) trained in fp32 and in bf16 (autocast on the training step and its inner attack), "
            "seeds 0 and 1 each; all evaluated in fp32: FGSM, PGD-20 and APGD-CE + APGD-T on the first 1,000 "
            "test images, FGSM and PGD-20 on all 10,000. Decides whether amp: auto may pick bf16"
        ),
        base={**FMNIST, "eps": 0.1, "epochs": 3, "train_size": 12000, "method": "clead", "channels_last": True},
        runs={"fp32": {"amp": "none"}, "bf16": {"amp": "bf16"}},
        evals=SEED_EVALS,
        seeds=(1,),
        seed_runs=("fp32", "bf16"),
    )
)


# the fmnist-full-0.1 budget, for the suites that reuse its runs
FULL_01 = {**FMNIST, "eps": 0.1, "epochs": 20, "train_size": None, "attack_steps": 10, "val_n": 1000}

# The C-LEAD authors' public protocol at the fmnist-full-0.1 budget: views made once from that suite's standard
# model (FGSM and CW-Linf here; their code: FGSM and L2-CW with c = 1), a contrastive stage on them alone (their
# SimCLRLoss: mode pairs, no cross-entropy), then a linear probe on the frozen features (their SGD 0.1, momentum
# 0.9, weight decay 5e-4); standard-transfer (seed 1) is the separate model their transfer attack is made on.
SUITES.register("fmnist-paper-protocol")(
    Suite(
        name="fmnist-paper-protocol",
        title="The C-LEAD authors' protocol, Fashion-MNIST, Linf eps = 0.1, full budget",
        description=(
            "the authors' offline protocol on all 50,000 training images: views from results/fmnist-full-0.1/"
            "standard by FGSM and CW (made once), 20 epochs of contrastive training on them (mode pairs, no CE), "
            "then 20 epochs of a linear probe (SGD 0.1); a second standard model (seed 1) for the authors' "
            "transfer attack; AutoAttack, PGD-50x3 and CW on the first 1,000 test images, FGSM and PGD-20 on all "
            "10,000; then the authors' evaluation (threat matrix 'paper': PGD-3 made on standard-transfer) on "
            "the same 1,000 images for the probe and for fmnist-full-0.1's clead, pgd-at and standard"
        ),
        base=FULL_01,
        runs={
            "standard-transfer": {"method": "standard", "seed": 1},
            "contrastive": {
                "method": "clead",
                "views_from": "results/fmnist-full-0.1/standard",
                "views_attacks": "fgsm,cw",
                "select": "last",
                "method_args": {"mode": "pairs", "w_adv": 0.0, "w_clean": 0.0},
            },
            "probe": {
                "method": "standard",
                "init": "contrastive",
                "init_checkpoint": "last",
                "freeze_features": True,
                "select": "last",
                "optimizer": "sgd",
                "lr": 0.1,
                "momentum": 0.9,
                "weight_decay": 5e-4,
            },
        },
        evals=MAIN_EVALS,
        no_eval=("contrastive",),
        # the authors' evaluation of their model, of clead's C-LEAD, PGD-AT and standard model (fmnist-full-0.1,
        # reused), on the same 1,000 test images as AutoAttack
        threat_evals=(
            ThreatSpec(
                "paper",
                ["transfer-pgd3"],
                ["probe", *(f"results/fmnist-full-0.1/{r}" for r in ("clead", "pgd-at", "standard"))],
                transfer_from="standard-transfer",
            ),
        ),
        # the question the suite asks: clead's C-LEAD against the authors' protocol (and against PGD-AT)
        pairs=(
            ("results/fmnist-full-0.1/clead", "probe"),
            ("results/fmnist-full-0.1/clead", "results/fmnist-full-0.1/pgd-at"),
        ),
    )
)

# C-LEAD's best recipes at the fmnist-full-0.1 budget: the two settings that led the short-budget ablation and
# C-LEAD with AWP, compared (paired, same 1,000 test images) with that suite's PGD-AT, which is reused.
SUITES.register("fmnist-full-recipes")(
    Suite(
        name="fmnist-full-recipes",
        title="C-LEAD recipes at full budget, Fashion-MNIST, Linf eps = 0.1",
        description=(
            "C-LEAD at the fmnist-full-0.1 budget (all 50,000 training images, 20 epochs, PGD-10) with: the "
            "two-stage protocol (instance mode, views from PGD, FGSM and CW, started from fmnist-full-0.1's "
            "standard model), mixed views (PGD, FGSM and CW), and AWP (gamma 0.01); AutoAttack, PGD-50x3 and CW "
            "on the first 1,000 test images, FGSM and PGD-20 on all 10,000; then the authors' evaluation (threat "
            "matrix 'paper': PGD-3 made on results/fmnist-paper-protocol/standard-transfer) on the same 1,000; "
            "compare with results/fmnist-full-0.1/pgd-at"
        ),
        # amp auto, as fmnist-full-0.1: bf16 on a CPU with bf16 units, fp32 on one without (10x faster there);
        # a run that spans both machines records each epoch's precision and its report says so
        base={**FULL_01, "method": "clead"},
        runs={
            "two-stage": {
                "init": "results/fmnist-full-0.1/standard",
                "method_args": {"mode": "instance", "view_attacks": "pgd,fgsm,cw"},
            },
            "mixed-views": {"method_args": {"view_attacks": "pgd,fgsm,cw"}},
            "clead-awp": {"awp_gamma": 0.01},
        },
        evals=MAIN_EVALS,
        report_with=("results/fmnist-full-0.1/pgd-at",),
        pairs=tuple((r, "results/fmnist-full-0.1/pgd-at") for r in ("two-stage", "mixed-views", "clead-awp")),
        # each recipe under the authors' transfer attack too, from the separate standard model that
        # fmnist-paper-protocol made it on (its threat matrix holds C-LEAD's, PGD-AT's and the probe's)
        threat_evals=(
            ThreatSpec(
                "paper",
                ["transfer-pgd3"],
                ["two-stage", "mixed-views", "clead-awp"],
                transfer_from="results/fmnist-paper-protocol/standard-transfer",
            ),
        ),
        # a recipe that comes within 1 point of PGD-AT's AutoAttack accuracy (or beats it) gets seeds 1 and 2,
        # compared over seeds with fmnist-full-0.1's pgd-at-seed1 and -seed2
        seeds=(1, 2),
        seed_margin=0.01,
        seed_reference="results/fmnist-full-0.1/pgd-at",
        seed_evals=SEED_EVALS,
    )
)

# C-LEAD's inner-attack anchors (training-mode or eval-mode clean embeddings), on the fmnist-linf-0.1 budget with
# small-cnn (dropout) and on a batch-norm network at a budget this CPU allows
_SMALL = {**FMNIST, **FP32, "eps": 0.1, "epochs": 3, "train_size": 20000, "method": "clead"}
_BN = {
    "model": "preact-resnet18",
    "model_args": {"width": 16},
    "train_size": 10000,
    "amp": "auto",
    "channels_last": True,
}
SUITES.register("fmnist-anchors")(
    Suite(
        name="fmnist-anchors",
        title="C-LEAD's attack anchors: training-mode against eval-mode clean embeddings",
        description=(
            "C-LEAD (default settings) with anchors = train and anchors = eval: small-cnn on the fmnist-linf-0.1 "
            "budget (first 20,000 training images, 3 epochs, PGD-5, Linf 0.1), seeds 0 and 1; and PreAct "
            "ResNet-18 at width 16 (batch norm) on the first 10,000 training images, 3 epochs, seed 0; FGSM, "
            "PGD-20 and APGD-CE on the first 1,000 test images (APGD-T's nine targets would cost the ResNets "
            "about an hour each here)"
        ),
        base=_SMALL,
        runs={
            "train": {"method_args": {"anchors": "train"}},
            "eval": {"method_args": {"anchors": "eval"}},
            "bn-train": {**_BN, "method_args": {"anchors": "train"}},
            "bn-eval": {**_BN, "method_args": {"anchors": "eval"}},
        },
        evals=[EvalSpec("", ["fgsm", "pgd20", "apgd-ce"], 1000)],
        seeds=(1,),
        seed_runs=("train", "eval"),
    )
)


# CIFAR-10 (the JPEG q75 copy in ../shared/data, read straight from its archive) at Linf 8/255, sized for this
# 2-core CPU: PreAct ResNet-18 at width 8 (batch norm, residual), 45,000 training images (5,000 held out),
# 15 epochs of PGD-5, SGD 0.1 cosine. Width 8 rather than 16: standard AutoAttack on 1,000 images of a robust
# model costs about 2.5x less, which is what lets the whole suite fit in about 6 hours (docs/cifar10.md).
CIFAR10_JPEG = "../shared/data/cifar10-jpeg.tar.gz"
# the standard CIFAR-10 adversarial-training recipe (Rice et al. 2020) on PreAct ResNet-18, less the epochs
CIFAR10_RECIPE = {
    "dataset": "folder",
    "data_dir": CIFAR10_JPEG,
    "model": "preact-resnet18",
    "eps": 8 / 255,
    "batch_size": 128,
    "optimizer": "sgd",
    "lr": 0.1,
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "schedule": "cosine",
    "val_n": 500,
    "seed": 0,
}
# the cifar10-cpu budget: width 8, 15 epochs of PGD-5
CIFAR10_W8 = {**CIFAR10_RECIPE, "model_args": {"width": 8}, "attack_steps": 5, "epochs": 15}
SUITES.register("cifar10-cpu")(
    Suite(
        name="cifar10-cpu",
        title="CIFAR-10 (JPEG q75 copy), PreAct ResNet-18 width 8, Linf 8/255",
        description=(
            "standard, PGD-AT, TRADES, ASCL and C-LEAD on CIFAR-10 (the JPEG q75 copy, " + CIFAR10_JPEG + "): "
            "PreAct ResNet-18 at width 8, all 50,000 training images less 5,000 held out, 15 epochs, PGD-5 "
            "(step 2.5*eps/5) in training, SGD 0.1 momentum 0.9, weight decay 5e-4, cosine, batch 128, random "
            "crop and flip; validation PGD-10 on 500 held-out images; standard AutoAttack, PGD-50x3 and CW on "
            "the first 1,000 (class-balanced) test images, FGSM and PGD-20 on all 10,000"
        ),
        base=CIFAR10_W8,
        runs={m: {"method": m} for m in ("standard", "pgd-at", "clead", "trades", "ascl")},
        evals=MAIN_EVALS,
    )
)


# Robustness per unit of compute: single-step training (FGSM-RS, N-FGSM) and PGD-3 beside the PGD-10 runs of
# fmnist-full-0.1 (reused), for PGD-AT and C-LEAD, at that suite's budget; each pair side by side in the order.
_COSTS = {"fgsm-rs": {"train_attack": "fgsm-rs"}, "n-fgsm": {"train_attack": "n-fgsm"}, "pgd3": {"attack_steps": 3}}
SUITES.register("fmnist-frontier")(
    Suite(
        name="fmnist-frontier",
        title="Robustness per unit of compute, Fashion-MNIST, small-cnn, Linf eps = 0.1, full budget",
        description=(
            "PGD-AT and C-LEAD trained with FGSM-RS (step 1.25*eps), N-FGSM (noise 2*eps, step eps) and PGD-3, and "
            "TRADES with FGSM-RS, at the fmnist-full-0.1 budget (all 50,000 training images, 20 epochs, Adam 1e-3 "
            "cosine, batch 128); AutoAttack, PGD-50x3 and CW on the first 1,000 test images, FGSM and PGD-20 on "
            "all 10,000; compared with fmnist-full-0.1's PGD-10 runs"
        ),
        base=FULL_01,
        runs={
            **{f"{m}-{k}": {"method": m, **v} for k, v in _COSTS.items() for m in ("pgd-at", "clead")},
            "trades-fgsm-rs": {"method": "trades", **_COSTS["fgsm-rs"]},
        },
        evals=MAIN_EVALS,
        report_with=("results/fmnist-full-0.1/pgd-at", "results/fmnist-full-0.1/clead"),
        pairs=(
            *((f"clead-{k}", f"pgd-at-{k}") for k in _COSTS),
            ("results/fmnist-full-0.1/clead", "results/fmnist-full-0.1/pgd-at"),
        ),
    )
)


SUITES.register("cifar10-frontier")(
    Suite(
        name="cifar10-frontier",
        title="Single-step training on CIFAR-10 (JPEG q75 copy), PreAct ResNet-18 width 8, Linf 8/255",
        description=(
            "PGD-AT and C-LEAD trained with FGSM-RS (step 1.25*eps) and N-FGSM (noise 2*eps, step eps) at the "
            "cifar10-cpu budget (PreAct ResNet-18 width 8, 15 epochs, SGD 0.1 cosine, crop and flip), evaluated as "
            "that suite is; compared with its PGD-5 runs"
        ),
        base=CIFAR10_W8,
        runs={f"{m}-{k}": {"method": m, **_COSTS[k]} for k in ("fgsm-rs", "n-fgsm") for m in ("pgd-at", "clead")},
        evals=MAIN_EVALS,
        report_with=("results/cifar10-cpu/pgd-at", "results/cifar10-cpu/clead"),
        pairs=(
            *((f"clead-{k}", f"pgd-at-{k}") for k in ("fgsm-rs", "n-fgsm")),
            ("results/cifar10-cpu/clead", "results/cifar10-cpu/pgd-at"),
        ),
    )
)

# Where does single-step PGD-AT collapse at this budget? FGSM-RS at two radii and two step sizes, one seed each,
# trained only: the per-epoch validation PGD-10 is the measurement (docs/overfitting.md).
SUITES.register("cifar10-co-probe")(
    Suite(
        name="cifar10-co-probe",
        title="Catastrophic-overfitting probe: FGSM-RS PGD-AT on CIFAR-10 (JPEG q75 copy), PreAct ResNet-18 width 8",
        description=(
            "PGD-AT with FGSM-RS at the cifar10-cpu budget (width 8, 15 epochs, SGD 0.1 cosine): eps 16/255 with "
            "steps 1.25*eps and 2*eps, eps 8/255 with step 2*eps; trained only, validation PGD-10 on 500 held-out "
            "images after every epoch"
        ),
        base={**CIFAR10_W8, "method": "pgd-at", "train_attack": "fgsm-rs"},
        runs={
            "eps16-step1.25": {"eps": 16 / 255, "attack_alpha": 20 / 255},
            "eps16-step2": {"eps": 16 / 255, "attack_alpha": 32 / 255},
            "eps8-step2": {"eps": 8 / 255, "attack_alpha": 16 / 255},
        },
        evals=[],
        no_eval=("eps16-step1.25", "eps16-step2", "eps8-step2"),
    )
)

# Does C-LEAD's consistency term keep single-step training from collapsing? At the setting where the probe above
# saw PGD-AT's catastrophic overfitting persist to the last epoch (eps 16/255, FGSM-RS step 2*eps: docs/overfitting.md),
# PGD-AT and C-LEAD with FGSM-RS and N-FGSM, C-LEAD also at a stronger consistency weight (lam 2, the level above
# the default in fmnist-ablation's grid), PGD-AT with PGD-5 as the non-collapsing reference; three seeds of every
# single-step arm; best.pt and last.pt both evaluated (no eps sweep: the question is the collapse).
_CO_ATTACKS = ["fgsm", "pgd20", "pgd50", "cw", "autoattack"]
_CO_EVALS = [
    EvalSpec("", _CO_ATTACKS, 1000),
    EvalSpec("full", ["fgsm", "pgd20"], None),
    EvalSpec("last", _CO_ATTACKS, 1000, checkpoint="last"),
]
_CO_ARMS = {
    "pgd-at-fgsm-rs": {"method": "pgd-at", "train_attack": "fgsm-rs"},
    "clead-fgsm-rs": {"method": "clead", "train_attack": "fgsm-rs"},
    "clead-fgsm-rs-lam2": {"method": "clead", "train_attack": "fgsm-rs", "method_args": {"lam": 2.0}},
    "pgd-at-n-fgsm": {"method": "pgd-at", "train_attack": "n-fgsm"},
    "clead-n-fgsm": {"method": "clead", "train_attack": "n-fgsm"},
    "clead-n-fgsm-lam2": {"method": "clead", "train_attack": "n-fgsm", "method_args": {"lam": 2.0}},
}
SUITES.register("cifar10-overfitting")(
    Suite(
        name="cifar10-overfitting",
        title="Catastrophic overfitting, CIFAR-10 (JPEG q75 copy), PreAct ResNet-18 width 8, Linf 16/255",
        description=(
            "PGD-AT and C-LEAD (default and lam 2) trained with FGSM-RS (step 2*eps, where PGD-AT's collapse "
            "persists) and N-FGSM (noise 2*eps, step eps), PGD-AT with PGD-5 as reference, at eps 16/255 and the "
            "cifar10-cpu schedule (width 8, 15 epochs, SGD 0.1 cosine, crop and flip); seeds 0-2 of every "
            "single-step arm; AutoAttack, PGD-50x3 and CW on the first 1,000 test images for best.pt and for "
            "last.pt, FGSM and PGD-20 on all 10,000 for best.pt"
        ),
        base={**CIFAR10_W8, "eps": 16 / 255, "attack_alpha": 32 / 255},
        runs={
            **{k: v if v["train_attack"] == "fgsm-rs" else {**v, "attack_alpha": None} for k, v in _CO_ARMS.items()},
            "pgd-at-pgd5": {"method": "pgd-at", "attack_alpha": None},
        },
        evals=_CO_EVALS,
        seeds=(1, 2),
        seed_runs=tuple(_CO_ARMS),
        pairs=tuple((f"clead-{a}{lam}", f"pgd-at-{a}") for a in ("fgsm-rs", "n-fgsm") for lam in ("", "-lam2")),
    )
)

# The GPU lane (benchmarks/device_suite.sh cifar10-gpu 2 SECONDS with NO_WEIGHTS=1): full-width PreAct ResNet-18,
# PGD-AT and C-LEAD side by side, PGD-10, sized so that training and evaluation end inside one 10-minute call
# (the weights, 45 MB each, cannot come back from the lent machine, so a run cannot resume across calls).
SUITES.register("cifar10-gpu")(
    Suite(
        name="cifar10-gpu",
        title="CIFAR-10 (JPEG q75 copy), PreAct ResNet-18 full width, Linf 8/255, on a lent GPU",
        description=(
            "PGD-AT and C-LEAD on CIFAR-10 (the JPEG q75 copy): PreAct ResNet-18 at full width (64), 45,000 "
            "training images (5,000 held out), 5 epochs of PGD-10 (step 2/255), SGD 0.1 momentum 0.9, weight "
            "decay 5e-4, cosine, batch 128, crop and flip; standard AutoAttack, PGD-50x3 and CW on the first "
            "1,000 test images, FGSM and PGD-20 on all 10,000; sized for one call of a lent GPU"
        ),
        base={**CIFAR10_RECIPE, "attack_steps": 10, "attack_alpha": 2 / 255, "epochs": 5},
        runs={m: {"method": m} for m in ("pgd-at", "clead")},
        evals=MAIN_EVALS,
    )
)


def _clead_and_close_baselines(suite: Suite, out: Path) -> list[str]:
    """C-LEAD and the best baseline by seed-0 AutoAttack accuracy, or, with ``seed_margin``, every baseline
    within that margin of C-LEAD or ahead of it; with ``seed_reference`` (a run of another suite), every run of
    the suite within ``seed_margin`` of that run or ahead of it."""
    from .report import suite_rows

    if suite.seed_reference:
        ref = suite_rows([Path(suite.seed_reference)])[0]["cells"].get("autoattack", (0, 0))[0]
        ours = {r["run"]: r["cells"].get("autoattack", (0, 0))[0] for r in suite_rows([out / r for r in suite.runs])}
        return [r for r in suite.runs if ours[r] >= ref - (suite.seed_margin or 0.0)]
    rows = {r["run"]: r for r in suite_rows([out / r for r in suite.runs])}
    aa = {r: rows[r]["cells"].get("autoattack", (0, 0))[0] for r in suite.runs if r not in ("standard", "clead")}
    if not aa:
        return ["clead"]
    if suite.seed_margin is None or "clead" not in rows:
        return ["clead", max(aa, key=aa.get)]
    floor = rows["clead"]["cells"].get("autoattack", (0, 0))[0] - suite.seed_margin
    return ["clead", *(r for r in aa if aa[r] >= floor)]


def seed_run(run: str, seed: int) -> str:
    """Name of the extra-seed run of ``run`` (``Suite.seed_overrides`` parses it back)."""
    return f"{run}-seed{seed}"


def state_is_current(state_path: Path, run_dir: Path) -> bool:
    """Whether a saved evaluation state was made by this clead's format from the run's current checkpoint
    (the cheap parts of its key; `clead.evaluate` checks all of it before reusing anything)."""
    from .evaluate import STATE_FORMAT
    from .io import load_torch, sha256_file

    try:
        key = load_torch(state_path).get("key", {})
    except Exception:
        return False
    ckpt = run_dir / f"{key.get('checkpoint', 'best')}.pt"
    return key.get("format") == STATE_FORMAT and ckpt.is_file() and key.get("checkpoint_sha256") == sha256_file(ckpt)


def _trained(run_dir: Path, cfg: cfgmod.TrainConfig) -> bool:
    return len(runmod.read_metrics(run_dir)) >= cfg.epochs and rundir.checkpoint(run_dir, "best").is_file()


def _evaluated(run_dir: Path, spec: EvalSpec) -> bool:

    path = rundir.eval_json(run_dir, spec.tag)
    if not path.is_file():
        return False
    ev = rundir.read_json(path)
    return (
        set(ev.get("per_attack", {})) == set(spec.attacks)
        and (spec.n is None or ev.get("n") == spec.n)
        and ev.get("checkpoint", "best") == spec.checkpoint
    )


def _same_weights(run_dir: Path) -> bool:
    """Whether last.pt's model weights are exactly best.pt's (the last epoch was the one selected)."""
    best, last = (runmod.load_checkpoint(rundir.checkpoint(run_dir, c))["model"] for c in ("best", "last"))
    return best.keys() == last.keys() and all(torch.equal(best[k], last[k]) for k in best)


def _share_evaluation(run_dir: Path, spec: EvalSpec, evals: list[EvalSpec]) -> bool:
    """Write ``spec``'s evaluation of last.pt as a copy of a finished best.pt evaluation with the same attacks and
    images, when the two checkpoints hold the same weights (the same numbers, bit for bit, recorded as shared:
    ``same_weights_as``); False when there is no such evaluation or the weights differ."""
    import shutil

    from .io import sha256_file, write_json

    source = next(
        (e for e in evals if e.checkpoint == "best" and e.attacks == spec.attacks and e.n == spec.n
         and _evaluated(run_dir, e)),
        None,
    )  # fmt: skip
    if source is None or spec.checkpoint != "last" or not _same_weights(run_dir):
        return False
    ev = {k: v for k, v in rundir.read_json(rundir.eval_json(run_dir, source.tag)).items() if k != "sweep"}
    ev |= {
        "tag": spec.tag,
        "checkpoint": "last",
        "checkpoint_sha256": sha256_file(rundir.checkpoint(run_dir, "last")),
        "same_weights_as": "best",
        "files": [rundir.per_sample_csv(run_dir, spec.tag).name],
    }
    if "eval_config" in ev:
        ev["eval_config"] = {**ev["eval_config"], "checkpoint": "last", "tag": spec.tag, "sweep": None}
    shutil.copyfile(rundir.per_sample_csv(run_dir, source.tag), rundir.per_sample_csv(run_dir, spec.tag))
    write_json(rundir.eval_json(run_dir, spec.tag), ev)
    return True


def _threats_done(run_dir: Path, spec: ThreatSpec, source: Path | None) -> bool:

    from .threats import TRANSFER, matrix_tag

    path = rundir.eval_json(run_dir, matrix_tag(spec.tag))
    if not path.is_file():
        return False
    rows = {r["threat"]: r for r in rundir.read_json(path)["threats"]}
    return (
        set(rows) == set(spec.threats)
        and all(r["n"] == spec.n or spec.n is None for r in rows.values())
        and all(rows[t]["attack"].endswith(f" on {source}") for t in rows if t in TRANSFER)
    )


def _threat_evals(suite: Suite, out: Path, deadline: float | None, progress: bool, dry_run: bool, steps: list[str]):
    """Make the suite's tagged threat matrices that are missing; False if the deadline stopped it first."""
    from .threats import evaluate_threats

    for spec in suite.threat_evals:
        source = suite.run_dir(spec.transfer_from, out) if spec.transfer_from else None
        for run in spec.runs:
            d = suite.run_dir(run, out)
            if _threats_done(d, spec, source):
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return False
            steps.append(f"threats {spec.tag} {run}")
            if not dry_run:
                log.info("bench %s: threat matrix %r of %s (%s)", suite.name, spec.tag, d, ", ".join(spec.threats))
                evaluate_threats(
                    d, spec.threats, n=spec.n, preset=spec.preset, transfer_from=source, progress=progress, tag=spec.tag
                )
    return True


def write_report(suite: Suite, out: Path, complete: bool = True) -> bool:
    """The suite's report.md and report.html from the runs on disk that are evaluated (its own and the runs of
    other suites it compares with); False, writing nothing, when none is."""
    from .report import write_suite_report

    done = [p.parent for p in sorted(out.glob(f"*/{rundir.METRICS}")) if rundir.eval_json(p.parent).is_file()]
    # the runs of other suites that the threat matrices compare with
    done += [
        suite.run_dir(r, out)
        for r in dict.fromkeys([*(r for spec in suite.threat_evals for r in spec.runs), *suite.report_with])
        if r not in suite.runs and rundir.eval_json(suite.run_dir(r, out)).is_file()
    ]
    pairs = None
    if suite.pairs is not None:  # the report names runs by their directory's name
        pairs = [tuple(suite.run_dir(r, out).name for r in pair) for pair in suite.pairs]
    if done:
        write_suite_report(done, out, suite.title or suite.name, pairs)
        log.info(
            "bench %s: report in %s/report.md and report.html%s",
            suite.name,
            out,
            "" if complete else " (partial: run the same command again to continue)",
        )
    return bool(done)


def run_suite(
    name: str,
    out: str | Path | None = None,
    max_hours: float | None = None,
    only: list[str] | None = None,
    progress: bool = True,
    dry_run: bool = False,
    jobs: int = 1,
    report: bool = True,
) -> list[str]:
    """Bring every run of the suite up to date; returns the steps done (or, with ``dry_run``, to do).

    ``jobs`` > 1 brings that many runs up to date side by side, each in its own process with an equal share
    of the CPU cores as torch threads (a run's numbers do not depend on it: one process per run, as with 1).
    """
    suite: Suite = SUITES.get(name)
    out = Path(out or Path("results") / name)
    deadline = None if max_hours is None else time.monotonic() + max_hours * 3600
    steps: list[str] = []

    def bring_up_all(runs: list[str]) -> bool:
        if jobs <= 1 or dry_run or len(runs) <= 1:
            done = [_bring_up(suite, out, r, deadline, progress, dry_run, steps) for r in runs]
            return all(done)
        return _bring_up_side_by_side(suite, out, runs, deadline, jobs, steps)

    seed_runs = [seed_run(r, s) for r in suite.runs for s in suite.seeds]
    unknown = [r for r in only or [] if r not in suite.runs and r not in seed_runs]
    if unknown:
        raise CleadError(
            f"suite {name} has no run {', '.join(unknown)}; its runs: {', '.join([*suite.runs, *seed_runs])}"
        )
    runs = [r for r in [*suite.runs, *seed_runs] if r in only] if only else list(suite.runs)
    complete = bring_up_all(runs)
    seed0_left = bool(steps)  # with dry_run: whether the seed-0 runs have anything left to do
    # the threat matrices name seed-0 runs (and other suites' runs): they run before the seeds, which take
    # hours more, and a session stopped during the seeds keeps them
    threat_runs = {r for spec in suite.threat_evals for r in spec.runs}
    if threat_runs & set(seed_runs):
        raise CleadError(f"suite {name}: a threat matrix names a seed run ({', '.join(threat_runs & set(seed_runs))})")
    if suite.threat_evals and not only and (complete or dry_run):
        complete = _threat_evals(suite, out, deadline, progress, dry_run, steps) and complete
    if complete and suite.seeds and not only and not dry_run:
        bases = suite.seed_runs or _clead_and_close_baselines(suite, out)
        complete = bring_up_all([seed_run(b, s) for b in bases for s in suite.seeds]) and complete
    if dry_run and suite.seeds and not only:
        who = (
            ", ".join(suite.seed_runs)
            if suite.seed_runs
            else f"every run within {100 * (suite.seed_margin or 0):g} point(s) of {suite.seed_reference} (or ahead) "
            "by seed-0 AutoAttack"
            if suite.seed_reference
            else (
                "clead and "
                + (
                    "every baseline within %g points of it (or ahead) by" % (100 * suite.seed_margin)
                    if suite.seed_margin is not None
                    else "the best baseline by"
                )
                + " seed-0 AutoAttack"
            )
        )
        if seed0_left:
            steps.append(f"then seeds {', '.join(map(str, suite.seeds))} of {who}")
        else:  # the seed-0 runs are evaluated: who gets seeds is known, and what each seed run has left
            bases = suite.seed_runs or _clead_and_close_baselines(suite, out)
            why = "" if suite.seed_runs else f" ({who})"
            steps.append(f"seeds {', '.join(map(str, suite.seeds))} of {', '.join(bases) or 'none'}{why}")
            bring_up_all([seed_run(b, s) for b in bases for s in suite.seeds])
    if report and not dry_run:
        write_report(suite, out, complete)
    return steps


def default_jobs() -> int:
    """Runs side by side by default: one per CPU core (one process per core measured faster than one process
    using all cores, README Speed), and one on a CUDA machine (the runs would share the GPU)."""
    import os

    import torch

    return 1 if torch.cuda.is_available() else max(1, os.cpu_count() or 1)


def _this_machine(amp: str = "auto") -> dict[str, str]:
    """The machine and precision a bench here would train in, as a logged epoch records them (``device``,
    ``amp``): ``amp`` resolved on this machine, because CPUs sold under one name differ (an AMD EPYC with
    AVX512-BF16 trains in bf16 about twice as fast as one without trains in fp32)."""
    from .distributed import device_name
    from .precision import resolve_amp

    device = runmod.resolve_device("auto")
    return {"device": device_name(device), "amp": resolve_amp(amp, device)}


def _likeness(m: dict, machine: dict[str, str]) -> int:
    """How well a logged epoch ``m`` times a run on ``machine``: 2 where it ran there in the same precision, 1 on the
    same device in another, 0 elsewhere (a GPU runs these 30 times faster than one CPU core)."""
    from .report import epoch_where

    if m.get("device") != machine["device"]:
        return 0
    return 2 if epoch_where(m) == epoch_where(machine) else 1


def _time_left(logged: list[dict], epochs: int, machine: dict[str, str], by: str = "") -> str:
    """``; about H h at the S s/epoch logged (DEVICE, PRECISION)``: the estimate for ``epochs`` more epochs from the
    median epoch time in a run's own metrics.jsonl (``by``: in the named sibling's), taken from the epochs most like
    ``machine`` (``_this_machine``): those that ran there in its precision ("logged here"), else on its device in
    another precision, else all of them, naming where they ran; nothing when no epoch logged its time."""
    import statistics

    from .report import epoch_where

    timed = [m for m in logged if isinstance(m.get("seconds"), (int, float))]
    if not timed or epochs <= 0:
        return ""
    best = max(_likeness(m, machine) for m in timed)
    if best:
        timed = [m for m in timed if _likeness(m, machine) == best]
    per = statistics.median(m["seconds"] for m in timed)
    left = epochs * per
    where = sorted({w for w in map(epoch_where, timed) if w})
    span = f"{left / 3600:.1f} h" if left >= 3600 else f"{max(1, round(left / 60))} min"
    return f"; about {span} at the {per:.0f} s/epoch{f' {by}' if by else ''} logged" + (
        f"{' here' if best == 2 else ''} ({'; '.join(where)})" if where else ""
    )


def _sibling_time_left(out: Path, run: str, epochs: int, machine: dict[str, str]) -> str:
    """The time ``run``, not started, would take, from the epochs its seed siblings (``NAME``, ``NAME-seedN``: the
    same settings but the seed) logged: the sibling with the most epochs on ``machine`` in its precision, else on
    its device, else with the most epochs."""
    from .compare import seed_dirs

    base = re.sub(r"-seed\d+$", "", run)
    best: tuple[int, int, int, str, list[dict]] | None = None
    for d in seed_dirs(out / base).values():
        if d.name == run:
            continue
        timed = [m for m in runmod.read_metrics(d) if isinstance(m.get("seconds"), (int, float))]
        like = [_likeness(m, machine) for m in timed]
        key = (like.count(2), len(like) - like.count(0), len(timed), d.name, timed)
        if timed and (best is None or key[:3] > best[:3]):
            best = key
    return _time_left(best[4], epochs, machine, by=best[3]) if best else ""


def _bring_up(
    suite: Suite, out: Path, run: str, deadline: float | None, progress: bool, dry_run: bool, steps: list[str]
) -> bool:
    """Train and evaluate ``run`` as far as needed; False if the deadline stopped it first."""
    from .evaluate import evaluate_run
    from .trainer import train

    def time_left() -> bool:
        return deadline is None or time.monotonic() < deadline

    cfg = suite.config(run, out)
    evals = suite.evals if run in suite.runs else (suite.seed_evals or suite.evals)
    if run in suite.no_eval:
        evals = []
    d = out / run
    training = not _trained(d, cfg)
    if training:
        if not time_left():
            return False
        logged = runmod.read_metrics(d)
        done = len(logged)
        resume = rundir.checkpoint(d, "last").is_file()
        note = ""
        machine = _this_machine(cfg.amp) if dry_run else {}
        if dry_run and done:
            # only last.pt resumes a run: epochs logged without it are trained again from the start
            note = (
                f" (resumes after epoch {done} of {cfg.epochs}{_time_left(logged, cfg.epochs - done, machine)})"
                if resume
                else f" (starts afresh: {done} epoch(s) logged but no last.pt to resume from"
                f"{_time_left(logged, cfg.epochs, machine)})"
            )
        elif dry_run and (guess := _sibling_time_left(out, run, cfg.epochs, machine)):
            note = f" (not started{guess})"
        steps.append(f"train {run}{note}")
        if not dry_run:
            log.info("bench %s: training %s%s", suite.name, run, " (resuming)" if resume else "")
            train(cfg, d, resume=resume, overwrite=not resume and d.exists(), progress=progress)
    for spec in evals:
        if dry_run and training or not _evaluated(d, spec):
            if not time_left():
                return False
            state = rundir.eval_state(d, spec.tag)
            note = ""
            if dry_run and state.is_file():
                note = " (resumes)" if state_is_current(state, d) else " (its saved state is stale: starts afresh)"
            steps.append(f"eval {run} {spec.tag or 'main'}{note}")
            if not dry_run and _share_evaluation(d, spec, evals):
                log.info("bench %s: %s: last.pt holds best.pt's weights; its evaluation is shared", suite.name, run)
            elif not dry_run:
                log.info("bench %s: evaluating %s (%s)", suite.name, run, spec.tag or "main")
                sweep = [round(cfg.eps * f, 6) for f in (0, 0.5, 1, 1.5, 2)] if spec.sweep else None
                evaluate_run(d, attacks=spec.attacks, n=spec.n, sweep=sweep, sweep_n=200, progress=progress,
                             tag=spec.tag, checkpoint=spec.checkpoint)  # fmt: skip
    return True


def _worker_init(threads: int) -> None:
    import logging as _logging

    import torch

    from . import allocator

    allocator.tune()
    torch.set_num_threads(threads)
    _logging.basicConfig(level=_logging.INFO, format="%(message)s")


def _worker(suite: Suite, out: Path, run: str, wall_deadline: float | None) -> tuple[list[str], bool]:
    steps: list[str] = []
    deadline = None if wall_deadline is None else time.monotonic() + (wall_deadline - time.time())
    return steps, _bring_up(suite, out, run, deadline, False, False, steps)


def _bring_up_side_by_side(
    suite: Suite, out: Path, runs: list[str], deadline: float | None, jobs: int, steps: list[str]
) -> bool:
    """`_bring_up` for each run in a pool of ``jobs`` processes (fresh interpreters: no shared torch state)."""
    import multiprocessing as mp
    import os

    jobs = min(jobs, len(runs))
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log.info("bench %s: %d runs, %d side by side with %d thread(s) each", suite.name, len(runs), jobs, threads)
    wall = None if deadline is None else time.time() + (deadline - time.monotonic())
    with mp.get_context("spawn").Pool(jobs, initializer=_worker_init, initargs=(threads,), maxtasksperchild=1) as pool:
        results = pool.starmap(_worker, [(suite, out, r, wall) for r in runs], chunksize=1)
    for done_steps, _ in results:
        steps.extend(done_steps)
    return all(ok for _, ok in results)
