"""The settings of one evaluation: the single source of evaluation defaults, as `TrainConfig` is for training.

Built alike from ``clead eval`` flags (over an optional ``--config FILE`` YAML), from keywords of
``clead.evaluate_run(RUN, **options)`` and from a benchmark suite; recorded in ``eval.json`` under
``eval_config``. ``clead.evaluate`` (any model, any tensors) takes the same defaults.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import CleadError

DEFAULT_ATTACKS = ("fgsm", "pgd20", "pgd50", "cw")
CHECKPOINTS = ("best", "last")


def _f(default: Any, help: str) -> Any:
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: list(default), metadata={"help": help})
    return field(default=default, metadata={"help": help})


@dataclass
class EvalConfig:
    attacks: list[str] = _f(DEFAULT_ATTACKS, "attacks run; robust = correct under every one (worst case per sample)")
    n: int | None = _f(None, "the first N test images (all by default)")
    checkpoint: str = _f("best", "which checkpoint of the run: best or last")
    eps: float | str | None = _f(None, "attack radius (default: the run's training eps)")
    norm: str | None = _f(None, "threat model, linf or l2 (default: the run's)")
    batch_size: int = _f(128, "attack batch size (a chunk of the resumable state)")
    seed: int = _f(0, "seed of the attacks' random starts")
    restarts: int | None = _f(None, "restarts of pgd50 (default 3)")
    device: str = _f("auto", "auto, cpu or cuda[:i]")
    checks: bool = _f(True, "run the sanity checks")
    check_n: int = _f(200, "correctly classified images attacked by the sanity checks")
    sweep: list | None = _f(None, "eps values of a PGD-20 / APGD-CE sweep (none by default)")
    sweep_n: int = _f(500, "images used by the sweep")
    tag: str = _f("", "write eval-TAG.json (and per_sample-TAG.csv, ...) instead of eval.json")
    channels_last: bool = _f(True, "run the model with channels_last weights (fp32 either way)")
    autoattack_chunk: int | None = _f(None, "images per AutoAttack call (default 250)")
    progress: bool = _f(True, "progress bars on a terminal")

    def validate(self) -> "EvalConfig":
        from .attacks import ATTACKS
        from .config import parse_eps

        if isinstance(self.attacks, str):
            self.attacks = [a.strip() for a in self.attacks.split(",") if a.strip()]
        self.attacks = list(self.attacks)
        if not self.attacks:
            raise CleadError("no attacks given")
        for name in self.attacks:
            ATTACKS.get(name)  # unknown names fail here, with the valid ones
        if self.checkpoint not in CHECKPOINTS:
            raise CleadError(f"unknown checkpoint {self.checkpoint!r}; valid: {', '.join(CHECKPOINTS)}")
        if self.n is not None and self.n < 1:
            raise CleadError(f"--n must be >= 1, got {self.n}")
        for name in ("batch_size", "check_n", "sweep_n"):
            if getattr(self, name) < 1:
                raise CleadError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eps is not None:
            self.eps = parse_eps(self.eps)
        if self.sweep is not None:
            self.sweep = [parse_eps(e) for e in self.sweep]
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(EvalConfig)]


def from_dict(d: dict[str, Any], source: str = "options") -> EvalConfig:
    unknown = sorted(set(d) - set(field_names()))
    if unknown:
        raise CleadError(
            f"{source}: unknown evaluation option(s) {', '.join(unknown)}; valid: {', '.join(field_names())}"
        )
    return EvalConfig(**d).validate()


def load(path: str | Path) -> dict[str, Any]:
    """The options of an evaluation YAML file (``clead eval --config FILE``)."""
    try:
        d = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as e:
        raise CleadError(f"cannot read evaluation config {path}: {e}") from None
    if not isinstance(d, dict):
        raise CleadError(f"{path} must hold a mapping of evaluation options")
    return d
