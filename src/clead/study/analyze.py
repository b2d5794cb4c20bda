"""Representation analysis of trained runs: does training make adversarial features stay with their image
and their class?

For each run, on the first ``n`` test images and their PGD-20 adversarial versions (the run's eps):
* ``cosine_clean_adv``: mean cosine similarity between the penultimate features of an image and of its
  adversarial version;
* ``intra_inter_clean`` / ``intra_inter_adv``: mean distance between features of the same class divided
  by the mean distance between features of different classes (lower = tighter, better separated classes);
* ``probe_clean`` / ``probe_adv``: accuracy of a linear probe (logistic regression) trained on frozen clean
  features of ``probe_train`` training images, on clean test images and under PGD-20 against the
  probe-on-features classifier;
* ``tsne.png``: a 2-D t-SNE of clean (dots) and adversarial (crosses) features, coloured by class, one
  panel per run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from .. import run as runmod
from ..attacks import PGD
from ..data import load_dataset, to_float
from ..io import write_json


def _features(model, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([model.features(x[i : i + batch_size]) for i in range(0, len(x), batch_size)])


def intra_inter_ratio(f: torch.Tensor, y: torch.Tensor) -> float:
    """Mean pairwise distance within classes / mean pairwise distance across classes."""
    d = torch.cdist(f, f)
    same = y[:, None] == y[None, :]
    off = ~torch.eye(len(y), dtype=torch.bool)
    return float(d[same & off].mean() / d[~same].mean())


class _Probe(nn.Module):
    def __init__(self, model: nn.Module, linear: nn.Linear) -> None:
        super().__init__()
        self.model, self.linear = model, linear

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.model.features(x))


def analyze_run(run_dir: str | Path, n: int = 500, probe_train: int = 2000, seed: int = 0) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    run_dir = Path(run_dir)
    cfg = runmod.read_config(run_dir)
    model = runmod.load_model(run_dir)
    data = load_dataset(cfg.dataset, cfg.data_dir, **cfg.data_options())
    x, y = to_float(data.test_x[:n]), data.test_y[:n]
    torch.manual_seed(seed)
    x_adv = PGD(cfg.eps, steps=20, norm=cfg.norm)(model, x, y)
    fc, fa = _features(model, x), _features(model, x_adv)
    xtr, ytr = to_float(data.train_x[:probe_train]), data.train_y[:probe_train]
    clf = LogisticRegression(max_iter=2000).fit(_features(model, xtr).numpy(), ytr.numpy())
    linear = nn.Linear(fc.shape[1], len(clf.classes_))
    with torch.no_grad():
        linear.weight.copy_(torch.as_tensor(clf.coef_, dtype=torch.float32))
        linear.bias.copy_(torch.as_tensor(clf.intercept_, dtype=torch.float32))
    probe = _Probe(model, linear).eval()
    torch.manual_seed(seed)
    x_adv_probe = PGD(cfg.eps, steps=20, norm=cfg.norm)(probe, x, y)
    with torch.no_grad():
        probe_clean = float((probe(x).argmax(1) == y).float().mean())
        probe_adv = float((probe(x_adv_probe).argmax(1) == y).float().mean())
    return {
        "run": run_dir.name,
        "method": cfg.method,
        "n": n,
        "eps": cfg.eps,
        "cosine_clean_adv": float(nn.functional.cosine_similarity(fc, fa, dim=1).mean()),
        "intra_inter_clean": intra_inter_ratio(fc, y),
        "intra_inter_adv": intra_inter_ratio(fa, y),
        "probe_clean": probe_clean,
        "probe_adv": probe_adv,
        "probe_train": probe_train,
        "_tsne": (fc, fa, y),
        "_classes": list(data.classes or range(int(y.max()) + 1)),
    }


def plot_tsne(path: Path, results: list[dict[str, Any]], points: int = 300, seed: int = 0) -> None:
    from sklearn.manifold import TSNE

    from ..evaluation.audit import _save_fig, plt

    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 3.6), squeeze=False)
    for ax, r in zip(axes[0], results):
        fc, fa, y = (t[:points] for t in r["_tsne"])
        emb = TSNE(n_components=2, init="pca", random_state=seed, perplexity=min(30, len(y) - 1)).fit_transform(
            torch.cat([fc, fa]).numpy()
        )
        k = len(y)
        ax.scatter(emb[:k, 0], emb[:k, 1], c=y.numpy(), cmap="tab10", s=6, marker="o", vmin=0, vmax=9)
        ax.scatter(emb[k:, 0], emb[k:, 1], c=y.numpy(), cmap="tab10", s=10, marker="x", vmin=0, vmax=9)
        ax.set_title(f"{r['run']} (o clean, x adv)", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
    from matplotlib.lines import Line2D

    classes = results[0]["_classes"]
    cmap = plt.get_cmap("tab10")
    handles = [
        Line2D([], [], marker="o", linestyle="", color=cmap(i / 9), label=str(c)) for i, c in enumerate(classes[:10])
    ]
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(10, len(handles)),
        fontsize=7,
        frameon=False,
        bbox_to_anchor=(0.5, -0.03),
    )
    _save_fig(fig, path)


def analyze(
    run_dirs: Sequence[str | Path], out: str | Path, n: int = 500, probe_train: int = 2000, seed: int = 0
) -> list[dict[str, Any]]:
    """Analyse runs; write ``OUT/analysis.json``, ``OUT/analysis.md`` and ``OUT/tsne.png``."""
    from ..io import write_text

    out = Path(out)
    results = [analyze_run(d, n, probe_train, seed) for d in run_dirs]
    plot_tsne(out / "tsne.png", results, seed=seed)
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in results]
    write_json(out / "analysis.json", clean)
    head = "| run | method | cos(clean, adv) | intra/inter clean | intra/inter adv | probe clean % | probe adv % |"
    lines = [head, "|---|---|---|---|---|---|---|"]
    lines += [
        f"| {r['run']} | {r['method']} | {r['cosine_clean_adv']:.3f} | {r['intra_inter_clean']:.3f} | "
        f"{r['intra_inter_adv']:.3f} | {100 * r['probe_clean']:.1f} | {100 * r['probe_adv']:.1f} |"
        for r in clean
    ]
    table = (
        "\n".join(lines)
        + f"\n\nn = {n} test images, PGD-20 at each run's eps; probe trained on {probe_train} training images.\n"
    )
    write_text(out / "analysis.md", table)
    return clean
