"""One-shot GPU benchmark: PGD-AT and C-LEAD training speed and PGD-10 attack speed on preact-resnet18.

Synthetic CIFAR-shaped data (no download), batch 128, 10 PGD steps, fp32 vs bf16 autocast. Prints one
Markdown table with images/s and the implied seconds per 50,000-image epoch. Meant to finish in well under
8 minutes on one CUDA GPU; ``--tiny`` runs a miniature version on the CPU to test the script.

    python benchmarks/gpu.py            # on a CUDA machine
    python benchmarks/gpu.py --tiny     # smoke test anywhere
"""

from __future__ import annotations

import argparse
import contextlib
import time

import torch

from clead.attacks import PGD
from clead.methods import METHODS, Budget
from clead.models import create_model


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tiny", action="store_true", help="CPU smoke test: narrow model, few steps")
    ap.add_argument("--steps", type=int, default=None, help="timed training steps per setting")
    ap.add_argument("--batch-size", type=int, default=None)
    args = ap.parse_args()

    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    bs = args.batch_size or (8 if args.tiny else 128)
    steps = args.steps or (2 if args.tiny else 30)
    width = 8 if args.tiny else 64
    k = 2 if args.tiny else 10
    precisions = ["fp32", "bf16"] if device.type == "cuda" else ["fp32"]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    torch.backends.cudnn.benchmark = True
    g = torch.Generator().manual_seed(0)
    x = torch.rand(bs, 3, 32, 32, generator=g).to(device)
    y = torch.randint(0, 10, (bs,), generator=g).to(device)

    rows = []
    for prec in precisions:
        ctx = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if prec == "bf16" else contextlib.nullcontext
        for method_name in ("pgd-at", "clead"):
            torch.manual_seed(0)
            model = create_model(
                "preact-resnet18", 10, (3, 32, 32), (0.49, 0.48, 0.45), (0.25, 0.24, 0.26), width=width
            )
            model.to(device).to(memory_format=torch.channels_last)
            cls = METHODS.get(method_name)
            method = cls(cls.Params(), Budget(eps=8 / 255, steps=k, alpha=2 / 255), model.feature_dim, 10).to(device)
            opt = torch.optim.SGD([*model.parameters(), *method.parameters()], lr=0.1, momentum=0.9)
            model.train()

            def step() -> None:
                with ctx():
                    loss, _ = method.loss(model, x, y, epoch=0)
                opt.zero_grad(set_to_none=True)
                loss.float().backward()
                opt.step()

            for _ in range(2):
                step()
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                step()
            sync(device)
            ips = steps * bs / (time.perf_counter() - t0)
            rows.append((f"train {method_name}", prec, ips, 50_000 / ips))
        # attack alone
        model.eval()
        attack = PGD(8 / 255, steps=10, alpha=2 / 255)
        with ctx():
            attack(model, x, y)
            sync(device)
            t0 = time.perf_counter()
            for _ in range(steps):
                attack(model, x, y)
            sync(device)
        ips = steps * bs / (time.perf_counter() - t0)
        rows.append(("PGD-10 attack", prec, ips, 50_000 / ips))

    print(
        f"# clead GPU benchmark: {name}, torch {torch.__version__}, preact-resnet18 (width {width}), batch {bs}, "
        f"PGD-{k} in training, {steps} timed steps per row"
    )
    print("| what | precision | images/s | s per 50k images |")
    print("|---|---|---|---|")
    for what, prec, ips, sec in rows:
        print(f"| {what} | {prec} | {ips:.0f} | {sec:.1f} |")


if __name__ == "__main__":
    main()
