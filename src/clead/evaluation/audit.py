"""The audit trail of an evaluation: per-sample CSV, adversarial-example grid, eps-sweep plot, and a
RobustBench-style JSON entry."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from ..attacks.base import format_eps  # noqa: E402
from ..io import atomic_write, write_json  # noqa: E402


def write_per_sample(path: Path, result: dict[str, Any]) -> None:
    """One row per evaluated sample: label, predictions, and which attack first broke it."""
    ps = result["per_sample"]
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["index", "label", "pred_clean", "correct_clean", "robust", "broken_by", "pred_adv", "linf", "l2"])
    for i in range(len(ps["label"])):
        w.writerow(
            [
                i,
                int(ps["label"][i]),
                int(ps["pred_clean"][i]),
                int(ps["correct"][i]),
                int(ps["robust"][i]),
                ps["broken_by"][i],
                int(ps["pred_adv"][i]),
                f"{float(ps['linf'][i]):.6f}",
                f"{float(ps['l2'][i]):.6f}",
            ]
        )
    atomic_write(path, lambda f: f.write(buf.getvalue()))


def _save_fig(fig, path: Path) -> None:
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"), mode="wb")
    plt.close(fig)


def plot_examples(path: Path, examples: list[dict[str, Any]], eps: float, classes: Sequence[str] | None) -> bool:
    """Clean image, adversarial image and the perturbation magnified to the full grey range, per column."""
    if not examples:
        return False
    name = lambda k: classes[k] if classes and k < len(classes) else str(k)
    fig, axes = plt.subplots(3, len(examples), figsize=(1.7 * len(examples), 5.6), squeeze=False)
    for j, ex in enumerate(examples):
        delta = ex["x_adv"] - ex["x"]
        scale = float(delta.abs().max()) or 1.0
        panels = [
            (ex["x"], f"{name(ex['pred'])}\n(true {name(ex['y'])})"),
            (ex["x_adv"], f"{name(ex['pred_adv'])}\n{ex['attack']}"),
            (delta / (2 * scale) + 0.5, f"x{0.5 / scale:.1f}"),
        ]
        for r, (img, title) in enumerate(panels):
            ax = axes[r][j]
            img = img.detach().cpu()
            ax.imshow(img[0] if img.shape[0] == 1 else img.permute(1, 2, 0), cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=7)
            ax.axis("off")
    for r, label in enumerate(["clean", f"adversarial (eps={format_eps(eps)})", "perturbation (magnified)"]):
        axes[r][0].text(
            -0.15, 0.5, label, transform=axes[r][0].transAxes, rotation=90, va="center", ha="right", fontsize=8
        )
    _save_fig(fig, path)
    return True


def plot_sweeps(path: Path, sweeps: dict[str, dict[str, Any]], trained_eps: float | None = None) -> None:
    """Robust accuracy against eps, one line per (run, attack)."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for label, sw in sweeps.items():
        for attack, style in (("pgd20", "-o"), ("apgd-ce", "--s")):
            if sw.get(attack):
                ax.plot(sw["eps"], [100 * a for a in sw[attack]], style, ms=3, label=f"{label} {attack}")
    if trained_eps is not None:
        ax.axvline(trained_eps, color="grey", lw=0.8, ls=":")
    ax.set_xlabel("eps")
    ax.set_ylabel("robust accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    _save_fig(fig, path)


def robustbench_entry(result: dict[str, Any], name: str, architecture: str, dataset: str) -> dict[str, Any] | None:
    """A RobustBench model-info entry (percentages as strings with two decimals), if AutoAttack was run."""
    aa = next((k for k in ("autoattack", "autoattack-plus") if k in result["per_attack"]), None)
    if aa is None:
        return None
    return {
        "link": "",
        "name": name,
        "authors": "",
        "additional_data": False,
        "number_forward_passes": 1,
        "dataset": dataset,
        "venue": "",
        "architecture": architecture,
        "eps": format_eps(result["eps"]),
        "clean_acc": f"{100 * result['clean_accuracy']:.2f}",
        "reported": f"{100 * result['per_attack'][aa]:.2f}",
        "autoattack_acc": f"{100 * result['per_attack'][aa]:.2f}",
        "footnote": f"clead evaluation on the first {result['n']} test images, threat model {result['threat_model']}"
        f" ({aa}, seed {result['seed']}).",
    }


def write_robustbench(path: Path, entry: dict[str, Any]) -> None:
    write_json(path, entry)
