"""Run configuration: one dataclass, defaults in one place, YAML in and out, validated.

Resolution order: the defaults below < ``--config FILE`` < command-line flags. Method knobs live in
each method's ``Params`` dataclass and are stored under ``method_args``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..attacks.base import parse_eps
from ..errors import CleadError
from ..methods.base import TRAIN_ATTACKS
from ..precision import AMP

OPTIMIZERS = ("sgd", "adam")
BEST_DTYPES = ("float32", "float16")
SCHEDULES = ("cosine", "piecewise", "constant", "cyclic")
SELECT = ("auto", "robust", "clean", "last")
VAL_ATTACKS = ("pgd", "apgd-ce")


def _f(default: Any, help: str, **kw: Any) -> Any:
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata={"help": help, **kw})
    return field(default=default, metadata={"help": help, **kw})


@dataclass
class TrainConfig:
    method: str = _f("clead", "training method")
    model: str = _f("small-cnn", "architecture")
    dataset: str = _f("fashion-mnist", "dataset")
    data_dir: str | None = _f(None, "dataset directory (default: the dataset's standard location)")
    download: bool = _f(False, "fetch the dataset archive if it is missing (CIFAR), checking its MD5")
    image_size: int | None = _f(
        None,
        "folder dataset: resize and centre-crop images to this size (default: their own size when all share one square size, else 64)",
    )
    augment: bool | None = _f(
        None, "random crop (pad 4) + horizontal flip in training (default: on for CIFAR and folders)"
    )
    norm: str = _f("linf", "threat model of the training attack: linf or l2")
    eps: float = _f(0.1, "training attack radius, a number or a fraction like 8/255")
    train_attack: str = _f(
        "pgd",
        "the training attack of every method (each on its own inner loss): pgd (attack_steps steps), fgsm-rs "
        "(one step from a uniform start, projected onto the ball; Wong et al. 2020) or n-fgsm (one step of eps "
        "from noise of attack_noise*eps, not projected onto the ball; de Jorge et al. 2022)",
    )
    attack_steps: int = _f(10, "PGD steps of the training attack (train_attack pgd; the others take one)")
    attack_alpha: float | None = _f(
        None, "step size of the training attack (default: pgd 2.5*eps/steps, fgsm-rs 1.25*eps, n-fgsm eps)"
    )
    attack_noise: float = _f(2.0, "n-fgsm: radius of the noise start in multiples of eps (the paper's k = 2)")
    epochs: int = _f(10, "training epochs")
    batch_size: int = _f(128, "batch size")
    optimizer: str = _f(
        "adam",
        "adam or sgd (with momentum); adam because SGD at 0.01-0.05 left PGD-AT stuck at chance on short budgets",
    )
    lr: float = _f(0.001, "peak learning rate")
    momentum: float = _f(0.9, "SGD momentum")
    weight_decay: float = _f(0.0, "weight decay")
    schedule: str = _f(
        "cosine",
        "learning-rate schedule: cosine, piecewise, constant or cyclic (one cycle: linear from 0 up to lr at "
        "cyclic_peak, then down to 0, as the fast adversarial training papers train)",
    )
    milestones: list = _f([0.5, 0.75], "piecewise: fractions of training at which the LR drops by 10x")
    cyclic_peak: float = _f(0.4, "cyclic: the fraction of training at which the LR peaks (Wong et al. 2020: 2/5)")
    ema_decay: float = _f(
        0.0,
        "weight averaging: keep an exponential moving average of the weights (and batch-norm statistics) with "
        "this decay, e.g. 0.999, warmed up as min(decay, (1+t)/(10+t)) over the t steps done; validation, "
        "best.pt and the exported weights are the average; 0 = off",
    )
    seed: int = _f(0, "random seed (weights, data order, attack starts)")
    train_size: int | None = _f(None, "train on the first N training images only (quick runs)")
    val_size: int = _f(5000, "last N training images held out for checkpoint selection")
    val_n: int = _f(1000, "validation images attacked after each epoch")
    val_attack_steps: int = _f(10, "PGD steps of the per-epoch validation attack")
    val_attack: str = _f(
        "pgd",
        "per-epoch validation attack: pgd (val_attack_steps steps) or apgd-ce (AutoAttack's "
        "APGD-CE, 100 steps: about 10x the cost, not misled where PGD-10 overstates robustness, "
        "as at eps 0.3)",
    )
    select: str = _f(
        "auto",
        "which epoch best.pt keeps: highest validation robust (PGD) or clean accuracy, or the last; "
        "auto = clean for method standard (its PGD accuracy only falls), robust otherwise",
    )
    device: str = _f("auto", "auto, cpu or cuda[:i]")
    amp: str = _f(
        "auto",
        "precision of the training step and its inner attack: auto (bf16 where the device computes "
        "bf16 natively: CUDA, or a CPU with AMX / AVX512-BF16; else none), none (fp32), bf16, or "
        "fp16 (CUDA); the resolved value is recorded. Validation and evaluation always run in fp32",
    )
    best_dtype: str = _f(
        "float32",
        "the dtype of best.pt's floating-point weights: float32, or float16 (half the size, e.g. to bring a "
        "full-width model back from a lent machine; evaluation then runs, in fp32, on exactly these rounded "
        "weights); last.pt keeps full precision",
    )
    channels_last: bool = _f(
        True,
        "store convolution weights channels_last (NHWC), faster on CPU (oneDNN) and CUDA; kept off, with a warning, "
        "where oneDNN's NHWC kernels crash on one of the model's layers (precision.channels_last_hazard)",
    )
    compile: bool = _f(False, "torch.compile the model (CUDA)")
    model_args: dict = _f({}, "extra model constructor arguments, e.g. {dropout: 0.0} or {width: 32}")
    awp_gamma: float = _f(
        0.0,
        "adversarial weight perturbation (Wu et al. 2020) with this relative size, any method; "
        "0 = off (the paper: 0.01 for PGD-AT, 0.005 for TRADES on WRN-34-10)",
    )
    awp_warmup: int = _f(0, "epochs before AWP starts (the paper: 0 for PGD-AT, 10 for TRADES)")
    init: str | None = _f(
        None,
        "start from the weights of another run directory (two-stage training, e.g. a standard "
        "run as cross-entropy pretraining); same architecture required",
    )
    init_checkpoint: str = _f("best", "which checkpoint of --init: best or last")
    views_from: str | None = _f(
        None,
        "make the method's adversarial views once, offline, by attacking this run's "
        "best.pt (e.g. a standard run), as the C-LEAD authors' code did; the model "
        "being trained is never attacked (methods with views: clead)",
    )
    views_attacks: str = _f("fgsm,cw", "with --views-from: the evaluation attacks making the views, one view each")
    freeze_features: bool = _f(
        False,
        "linear probe: train only the model's final layer (its head) on the features "
        "--init loaded, which stay frozen and in eval mode (batch norm statistics and "
        "dropout fixed); e.g. --method standard --optimizer sgd --lr 0.1 (the C-LEAD authors)",
    )
    method_args: dict = _f({}, "method knobs (see the method flags)")

    def validate(self) -> "TrainConfig":
        from ..data import DATASETS
        from ..methods import METHODS
        from ..models import MODELS

        self.eps = parse_eps(self.eps)
        if self.attack_alpha is not None:
            self.attack_alpha = parse_eps(self.attack_alpha)
        from ..attacks.base import check_threat_model

        check_threat_model(self.eps, self.norm)
        if self.norm not in ("linf", "l2"):
            raise CleadError(
                f"training attacks are linf or l2, not {self.norm} (l1 is for evaluation: clead eval --threats)"
            )
        for name, registry in (("method", METHODS), ("model", MODELS), ("dataset", DATASETS)):
            registry.get(getattr(self, name))
        for name, valid in (
            ("optimizer", OPTIMIZERS),
            ("amp", AMP),
            ("select", SELECT),
            ("schedule", SCHEDULES),
            ("val_attack", VAL_ATTACKS),
            ("train_attack", TRAIN_ATTACKS),
            ("best_dtype", BEST_DTYPES),
            ("init_checkpoint", ("best", "last")),
        ):
            if getattr(self, name) not in valid:
                raise CleadError(f"unknown {name} {getattr(self, name)!r}; valid: {', '.join(valid)}")
        if not isinstance(self.model_args, dict):
            raise CleadError("model_args must be a mapping, e.g. {dropout: 0.0}")
        for name in ("epochs", "batch_size", "attack_steps", "val_attack_steps"):
            if getattr(self, name) < 1:
                raise CleadError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.awp_gamma < 0 or self.awp_warmup < 0:
            raise CleadError(f"awp_gamma and awp_warmup must be >= 0, got {self.awp_gamma} and {self.awp_warmup}")
        if self.attack_alpha is not None and self.attack_alpha < 0:
            raise CleadError(
                f"attack_alpha must be >= 0 (the attack's step size; 0: its random start alone), got {self.attack_alpha:g}"
            )
        if self.attack_noise < 0:
            raise CleadError(f"attack_noise must be >= 0, got {self.attack_noise}")
        if not 0 < self.cyclic_peak < 1:
            raise CleadError(f"cyclic_peak must be in (0, 1), got {self.cyclic_peak}")
        if not 0 <= self.ema_decay < 1:
            raise CleadError(f"ema_decay must be in [0, 1), e.g. 0.999 (0 = off), got {self.ema_decay}")
        if self.lr <= 0:
            raise CleadError(f"lr must be > 0, got {self.lr}")
        if self.views_from:
            from ..attacks import ATTACKS

            if not getattr(METHODS.get(self.method), "takes_views", False):
                takes = [m for m in METHODS.names() if getattr(METHODS.get(m), "takes_views", False)]
                raise CleadError(
                    f"--views-from gives views to the method's loss; method {self.method!r} takes none "
                    f"(methods with views: {', '.join(takes)})"
                )
            names = [a.strip() for a in self.views_attacks.split(",") if a.strip()]
            if not names:
                raise CleadError("--views-attacks lists no attack")
            for name in names:
                ATTACKS.get(name)
        if self.freeze_features and not self.init:
            raise CleadError("--freeze-features trains a linear probe on another run's features: give --init RUN")
        if self.train_size is not None and self.train_size < 1:
            raise CleadError(f"train_size must be >= 1, got {self.train_size}")
        if self.val_size < 1 or self.val_n < 1:
            raise CleadError("val_size and val_n must be >= 1")
        self.method_args = dataclasses.asdict(self.method_params())
        return self

    def method_params(self) -> Any:
        """The method's ``Params`` built from ``method_args``; unknown keys are an error."""
        from ..methods import METHODS

        cls = METHODS.get(self.method).Params
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = set(self.method_args) - valid
        if unknown:
            raise CleadError(
                f"method {self.method!r} has no option {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(sorted(valid)) or '(none)'}"
            )
        try:
            return cls(**self.method_args)
        except TypeError as e:
            raise CleadError(f"bad method_args for {self.method}: {e}") from None

    def selection(self) -> str:
        """The checkpoint criterion ``select`` resolves to: robust, clean or last."""
        if self.select != "auto":
            return self.select
        return "clean" if self.method == "standard" else "robust"

    def data_options(self) -> dict[str, Any]:
        return {"download": self.download, "image_size": self.image_size}

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(TrainConfig)]


def from_dict(d: dict[str, Any], source: str = "config") -> TrainConfig:
    """Build and validate a config; keys that do not exist are an error naming the valid ones."""
    if not isinstance(d, dict):
        raise CleadError(f"{source}: expected a mapping of option: value")
    unknown = set(d) - set(field_names())
    if unknown:
        raise CleadError(f"{source}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(field_names())}")
    return TrainConfig(**d).validate()


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CleadError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CleadError(f"{path} is not valid YAML: {e}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CleadError(f"{path}: expected a mapping of option: value")
    return data


def merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """``override`` wins; ``method_args`` are merged key by key."""
    out = dict(base)
    for k, v in override.items():
        if k == "method_args" and isinstance(out.get(k), dict) and isinstance(v, dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out
