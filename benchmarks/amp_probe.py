"""Does bf16 pay on this CPU? Forward+backward images/s of small-cnn and PreAct ResNet-18 (width 8) in fp32
and under bf16 autocast, channels_last, one thread, interleaved rounds (load from other processes lands on both
alike); prints the CPU model, whether it has bf16 units (what ``--amp auto`` reads) and the bf16 / fp32 ratio.

    python benchmarks/amp_probe.py [--rounds 5] [--batch-size 128] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch
import torch.nn.functional as F

from clead import precision
from clead.models import create_model

MODELS = {"small-cnn": ({}, (1, 28, 28)), "preact-resnet18 (width 8)": ({"width": 8}, (3, 32, 32))}


def step_seconds(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, amp: str) -> float:
    t = time.perf_counter()
    with precision.autocast(amp, torch.device("cpu")):
        logits = model(x)
    F.cross_entropy(logits.float(), y).backward()
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    native = precision.cpu_has_native_bf16()
    print(
        f"# bf16 against fp32 on {precision.cpu_model() or platform.processor() or 'unknown CPU'}: bf16 units (AMX or AVX512-BF16) {'yes' if native else 'no'}, "
        f"so --amp auto picks {precision.resolve_amp('auto', torch.device('cpu'))}; {args.threads} thread(s), "
        f"batch {args.batch_size}, torch {torch.__version__}\n"
    )
    print("| model | fp32 images/s | bf16 images/s | bf16 / fp32 speed |")
    print("|---|---|---|---|")
    g = torch.Generator().manual_seed(0)
    for name, (model_args, shape) in MODELS.items():
        model = create_model(name.split()[0], 10, shape, [0.5] * shape[0], [0.25] * shape[0], **model_args)
        precision.to_channels_last(model)
        x = torch.rand(args.batch_size, *shape, generator=g)
        y = torch.randint(0, 10, (args.batch_size,), generator=g)
        times: dict[str, list[float]] = {"none": [], "bf16": []}
        for amp in times:  # warm-up: oneDNN primitive caches
            step_seconds(model, x, y, amp)
        for _ in range(args.rounds):
            for amp in times:
                times[amp].append(step_seconds(model, x, y, amp))
        fp32, bf16 = (args.batch_size / statistics.median(times[a]) for a in ("none", "bf16"))
        ratio = statistics.median(a / b for a, b in zip(times["none"], times["bf16"]))
        print(f"| {name} | {fp32:.0f} | {bf16:.0f} | {ratio:.2f}x |")


if __name__ == "__main__":
    main()
