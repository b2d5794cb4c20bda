"""Numeric precision and memory layout of training: ``amp`` and ``channels_last``.

``amp`` covers the training step and its inner attack (the same autocast on CUDA and CPU):

* ``auto`` resolves at the start of training to ``bf16`` where the device computes bf16 natively (CUDA
  with bf16 support; a CPU with AMX or AVX512-BF16 units, read from the CPU flags) and to ``none``
  elsewhere. The resolved value is what ``config.yaml`` and ``metrics.jsonl`` record.
* ``bf16``: autocast to bfloat16 (no loss scaling needed: bf16 has fp32's exponent range). Kept on a CPU
  without bf16 units, with a warning: there it is emulated and several times slower than fp32. A run resumed
  with ``clead train --resume`` takes ``config.yaml``'s resolved precision, so a run started in bf16 on one CPU
  needs ``--amp none`` (or ``--amp auto``) to continue in fp32 on a CPU without them. ``clead bench`` passes
  ``auto`` again, so a suite's run continues in each machine's precision (fp32 on such a CPU, bf16 on a GPU);
  ``config.yaml`` keeps the precision the run started in and each epoch's ``amp`` in ``metrics.jsonl`` says
  which it ran in.
* ``fp16``: autocast to float16 with gradient scaling; CUDA only.
* ``none``: fp32.

Only the network runs in low precision: the loss terms computed from its outputs (softmax, log-softmax,
KL, MART's margin term, contrastive similarities) run in fp32 (``fp32_loss``), as CUDA's autocast does for
softmax and log-softmax but CPU autocast does not. In bf16 a confident class probability rounds to 1,
which breaks the softmax Jacobian (gradients no longer sum to zero over the classes), and MART's
``1 / (1.0001 - p)`` factor amplifies that error (tests/test_precision.py).

Robustness numbers never use it: validation for checkpoint selection, ``clead eval`` and
``clead.evaluate`` run in fp32 whatever the training precision, because low precision can mask
gradients and a robust accuracy must not depend on it.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from pathlib import Path
from typing import Callable, ParamSpec, TypeVar

import torch
from torch import nn

log = logging.getLogger("clead")

AMP = ("auto", "none", "bf16", "fp16")
P = ParamSpec("P")
R = TypeVar("R")


def _cpuinfo(field: str) -> str:
    """The first ``field`` line of /proc/cpuinfo (e.g. ``flags``, ``model name``), or "" where unreadable."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    return next((line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith(field)), "")


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when the CPU has bf16 matrix or vector units (AMX-BF16 or AVX512-BF16), per /proc/cpuinfo."""
    flags = _cpuinfo("flags").split()
    return "amx_bf16" in flags or "avx512_bf16" in flags


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The CPU's model name (e.g. "AMD EPYC", "Intel(R) Xeon(R) Platinum 8488C"), or "" where unknown: the
    machines this project runs on change CPU between sessions, and speed and precision depend on it."""
    return " ".join(_cpuinfo("model name").split())


def native_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_native_bf16()
    return False


def resolve_amp(amp: str, device: torch.device) -> str:
    """The precision ``amp`` stands for on ``device``: ``none``, ``bf16`` or ``fp16``."""
    if amp == "auto":
        return "bf16" if native_bf16(device) else "none"
    if amp == "fp16" and device.type != "cuda":
        log.warning("--amp fp16 needs CUDA (gradient scaling); training on %s in fp32", device)
        return "none"
    if amp == "bf16" and device.type == "cpu" and not cpu_has_native_bf16():
        # kept (an explicit choice, or a run resumed from a machine that had bf16 units), but said: emulated
        # bf16 ran about 10x slower than fp32 on an AMD EPYC without AVX512 (docs/results/speed.md)
        log.warning(
            "--amp bf16 on a CPU without AMX or AVX512-BF16: bf16 is emulated here, several times slower than "
            "fp32; pass --amp none (or auto) to train in fp32, e.g. when resuming a run started on another CPU"
        )
    return amp


def autocast(amp: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast context for a resolved ``amp`` (``none`` gives a no-op context)."""
    if amp == "none":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def channels_last_hazard(model: nn.Module) -> str | None:
    """The layer that makes ``channels_last`` unsafe for ``model`` on this CPU, or None.

    oneDNN's (torch 2.13, oneDNN 3.12) AVX2 kernels corrupt the heap in the weight gradient of a 1x1
    convolution with stride 2 and fewer than 8 input channels in NHWC: glibc aborts ("corrupted size vs.
    prev_size", "double free") or the process hangs, with one thread or two. Measured on an AMD EPYC (AVX2, no
    AVX512): PreAct ResNet-18 at width 4 (its first shortcut is 4 -> 8, stride 2); width 8 and up, 3x3
    convolutions and the contiguous layout are unaffected. Not seen with the AVX512 kernels: the same width-4
    test passed on the Intel Xeon (AVX512, AMX) machines, so the layout is kept there."""
    if torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
        return None
    for name, m in model.named_modules():
        if (
            isinstance(m, nn.Conv2d)
            and m.weight.device.type == "cpu"
            and m.kernel_size == (1, 1)
            and m.stride != (1, 1)
            and m.in_channels < 8
        ):
            return f"{name} ({m.in_channels} -> {m.out_channels}, 1x1, stride {m.stride[0]})"
    return None


def to_channels_last(model: nn.Module) -> nn.Module:
    """Store 4-d weights as NHWC (``channels_last``): oneDNN on CPU and cuDNN run convolutions faster in it.
    Only the layout changes, not the values; inputs need no conversion (convolutions follow the weight).
    Kept contiguous, with a warning, where oneDNN's NHWC kernels crash on one of its layers
    (``channels_last_hazard``)."""
    hazard = channels_last_hazard(model)
    if hazard is not None:
        log.warning(
            "channels_last off: on this CPU (%s kernels) oneDNN corrupts memory in the backward of %s in NHWC; "
            "the model stays contiguous (fp32 results are the same, only slower)",
            torch.backends.cpu.get_cpu_capability(),
            hazard,
        )
        return model
    return model.to(memory_format=torch.channels_last)


def fp32(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator: run ``fn`` with autocast off on CPU and CUDA, even when called inside an autocast region
    (robustness numbers are measured in fp32)."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with torch.autocast("cpu", enabled=False), torch.autocast("cuda", enabled=False):
            return fn(*args, **kwargs)

    return wrapper


def _to_fp32(value):
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float32:
        return value.float()
    return value


def fp32_loss(fn: Callable[P, R]) -> Callable[P, R]:
    """Decorator for loss terms: autocast off and floating-point tensor arguments cast to fp32 (gradients
    flow back through the cast to the low-precision network outputs)."""

    @fp32
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        return fn(*(_to_fp32(a) for a in args), **{k: _to_fp32(v) for k, v in kwargs.items()})

    return wrapper
