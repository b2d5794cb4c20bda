"""How far C-LEAD's two choices of attack anchors are apart: the mean cosine between the clean embeddings
z = normalize(g(h(x))) of the same training images from a training-mode forward (dropout on, batch norm on
the batch's statistics: `anchors: train`) and from an eval-mode forward (`anchors: eval`), with a run's final
weights and projection head (`last.pt`), in training batches of the run's batch size.

    python benchmarks/anchor_cosine.py results/fmnist-anchors/train results/fmnist-anchors/bn-train
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from clead import run as runmod
from clead.data import batches, load_dataset, split


def mean_cosine(run_dir: Path, n: int = 2048) -> tuple[float, float]:
    cfg = runmod.read_config(run_dir)
    state = runmod.load_checkpoint(run_dir / "last.pt")
    model, method = runmod.build(cfg, state["meta"])
    model.load_state_dict(state["model"])
    method.load_state_dict(state["method"])
    for m in model.modules():  # training-mode forwards here must not move the running statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.momentum = 0.0
    data = load_dataset(cfg.dataset, cfg.data_dir, **cfg.data_options())
    s = split(data, cfg.val_size, cfg.train_size)
    cos = []
    torch.manual_seed(0)
    with torch.no_grad():
        for x, _ in batches(s.train_x[:n], s.train_y[:n], cfg.batch_size):
            model.train()
            z_train = F.normalize(method.projector(model.features(x)), dim=1)
            model.eval()
            z_eval = F.normalize(method.projector(model.features(x)), dim=1)
            cos.append((z_train * z_eval).sum(1))
    c = torch.cat(cos)
    return float(c.mean()), float(c.quantile(0.05))


if __name__ == "__main__":
    print("| run | model | mean cosine (train-mode vs eval-mode clean embedding) | 5th percentile |")
    print("|---|---|---|---|")
    for d in map(Path, sys.argv[1:]):
        m, q = mean_cosine(d)
        print(f"| {d} | {runmod.read_config(d).model} | {m:.4f} | {q:.4f} |")
