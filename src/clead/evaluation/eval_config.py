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

from ..errors import CleadError

DEFAULT_ATTACKS = ("fgsm", "pgd20", "pgd50", "cw")
DEFAULT_EPS = 0.1  # `clead.evaluate`'s radius when neither the call nor a run gives one
CHECKPOINTS = ("best", "last")


def _f(default: Any, help: str, **flag: Any) -> Any:
    """A field with its ``--help`` text; ``flag`` holds how `clead eval` spells it where not plain (``short``,
    ``choices``, ``nargs_default``: the flag may be given bare, meaning the default list)."""
    meta = {"help": help, **flag}
    if isinstance(default, (list, dict, tuple)):
        return field(default_factory=lambda: type(default)(default) if isinstance(default, dict) else list(default),
                     metadata=meta)  # fmt: skip
    return field(default=default, metadata=meta)


@dataclass
class EvalConfig:
    attacks: list[str] = _f(
        DEFAULT_ATTACKS, "comma-separated attacks; robust = correct under every one (worst case per sample)"
    )
    n: int | None = _f(
        None, "evaluate on the first N test images; write -n N under torchrun (default: all)", short="-n"
    )
    checkpoint: str = _f("best", "which checkpoint of the run", choices=CHECKPOINTS)
    eps: float | str | None = _f(None, "attack radius, e.g. 0.1 or 8/255 (default: the run's training eps)")
    norm: str | None = _f(None, "threat model (default: the run's)", choices=("linf", "l2"))
    batch_size: int = _f(128, "attack batch size (a chunk of the resumable state); 128 is fastest on CPU")
    seed: int = _f(0, "seed of the attacks' random starts")
    restarts: int | None = _f(None, "restarts of pgd50 (default 3)")
    device: str = _f("auto", "auto, cpu or cuda[:i]")
    checks: bool = _f(True, "run the sanity checks")
    check_n: int = _f(200, "correctly classified images attacked by the sanity checks")
    sweep: list | None = _f(
        None,
        "also measure PGD-20 and APGD-CE accuracy at these eps values, comma-separated (given bare: 0 to 3x eps); "
        "writes eps_sweep.png",
        nargs_default=True,
    )
    sweep_n: int = _f(500, "images used by the sweep")
    tag: str = _f("", "write eval-TAG.json (and per_sample-TAG.csv, ...) instead of eval.json")
    channels_last: bool = _f(True, "run the model with channels_last weights (fp32 either way; faster on CPU)")
    autoattack_chunk: int | None = _f(
        None, "images per AutoAttack call; the chunks are what --procs shares out (default 250; raise it on a GPU)"
    )
    progress: bool = _f(True, "progress bars on a terminal (the flag is --quiet)")
    threats: list | None = _f(
        None,
        "a threat matrix instead of the attacks: robust accuracy under each of linf (training eps), linf-2x, "
        "l2, l1 (AutoAttack's own L2/L1 versions), transfer, transfer-pgd3 (the C-LEAD authors' PGD-3; both need "
        "--transfer-from); given bare: the first four; writes eval-threats.json (eval-threats-TAG.json with a tag)",
        nargs_default=True,
    )
    threat_attack: str = _f("autoattack", "the preset run under each threat", choices=("autoattack", "apgd"))
    threat_eps: dict = _f({}, "threat radii instead of the defaults, e.g. l2=1.5,l1=8 (see the README)")
    transfer_from: str | None = _f(
        None,
        "the run whose model the transfer threats attack: PGD-50 (transfer, added when no transfer threat is "
        "listed) or PGD-3 (transfer-pgd3) examples made on it, classified by the run evaluated",
    )

    def validate(self) -> "EvalConfig":
        from ..attacks import ATTACKS
        from ..attacks.base import parse_eps

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
        self._validate_threats()
        return self

    def matrix(self) -> bool:
        """Whether this is a threat matrix (``threats`` or ``transfer_from``) rather than one threat model."""
        return self.threats is not None or self.transfer_from is not None

    def _validate_threats(self) -> None:
        from .threats import DEFAULT_THREATS, PRESETS, TRANSFER, check_threats, parse_threat_eps

        if isinstance(self.threat_eps, str):
            self.threat_eps = parse_threat_eps(self.threat_eps)
        if not self.matrix():
            return
        if isinstance(self.threats, str):
            self.threats = [t.strip() for t in self.threats.split(",") if t.strip()]
        self.threats = list(self.threats or DEFAULT_THREATS)
        if self.transfer_from and not any(t in TRANSFER for t in self.threats):
            self.threats.append("transfer")
        check_threats(self.threats, self.transfer_from)
        if self.threat_attack not in PRESETS:
            raise CleadError(f"unknown threat attack {self.threat_attack!r}; valid: {', '.join(PRESETS)}")
        # a threat matrix makes its own threat models: these would be silently ignored, so they are refused
        ignored = [
            f"--{name}"
            for name, given in (
                ("eps", self.eps is not None),
                ("norm", self.norm is not None),
                ("attacks", self.attacks != list(DEFAULT_ATTACKS)),
                ("restarts", self.restarts is not None),
                ("sweep", self.sweep is not None),
            )
            if given
        ]
        if ignored:
            raise CleadError(
                f"{', '.join(ignored)} do not apply to a threat matrix (--threats): its radii come from the run's "
                "eps and --threat-eps, its attack from --threat-attack"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def field_names() -> list[str]:
    return [f.name for f in dataclasses.fields(EvalConfig)]


def resolve(config: EvalConfig | None, options: dict[str, Any]) -> EvalConfig:
    """``config`` (default: all defaults) with ``options`` overriding its fields, validated; an option that is not
    a field is an error naming the valid ones."""
    unknown = sorted(set(options) - set(field_names()))
    if unknown:
        raise CleadError(f"unknown evaluation option(s) {', '.join(unknown)}; valid: {', '.join(field_names())}")
    return dataclasses.replace(config or EvalConfig(), **options).validate()


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
