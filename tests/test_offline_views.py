"""Offline views (--views-from): made once from a fixed model, cached by what they were made from, used in place of
the method's attack."""

import pytest
import torch
from test_trainer import tiny

from clead.errors import CleadError
from clead.methods.clead import CLEAD
from clead.training.trainer import train


def test_views_from_a_fixed_model_are_made_once_and_replace_the_methods_attack(idx_dir, tmp_path, monkeypatch):
    """Catches offline views that are not the fixed model's (made on the model being trained, or not made
    at all), a cache that is not reused, and a method attack that still runs."""
    from clead import run as runmod
    from clead.data import load_dataset, split
    from clead.training.offline_views import make_views

    monkeypatch.setenv("CLEAD_CACHE", str(tmp_path / "cache"))
    src = train(tiny(idx_dir, method="standard", epochs=1), tmp_path / "std", progress=False)
    cfg = tiny(idx_dir, method="clead", epochs=1, views_from=str(src), views_attacks="fgsm,pgd20")
    monkeypatch.setattr(CLEAD, "perturb", lambda *a, **k: pytest.fail("the method's own attack ran"))
    train(cfg, tmp_path / "c1", progress=False)
    (cached,) = list((tmp_path / "cache").glob("views-*.npz"))
    import numpy as np

    with np.load(cached) as z:
        stored = [torch.from_numpy(z["view0"]), torch.from_numpy(z["view1"])]
    s = split(load_dataset("fashion-mnist", str(idx_dir)), cfg.val_size, cfg.train_size)
    assert stored[0].dtype == torch.uint8 and stored[0].shape == s.train_x.shape
    # the FGSM view by hand, on the standard model: one signed step of eps on the cross-entropy from the clean
    # image, kept where it fools the model or raises its loss (else the clean image), in [0, 1], rounded to 8 bits
    model = runmod.load_model(src)
    x = s.train_x.float() / 255
    x.requires_grad_(True)
    loss = torch.nn.functional.cross_entropy(model(x), s.train_y, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    with torch.no_grad():
        step = (x + cfg.eps * grad.sign()).clamp(0, 1)
        logits = model(step)
        better = (logits.argmax(1) != s.train_y) | (
            torch.nn.functional.cross_entropy(logits, s.train_y, reduction="none") > loss
        )
        fgsm = torch.where(better.view(-1, 1, 1, 1), step, x.detach())
    by_hand = (fgsm * 255).round().to(torch.uint8)
    assert (stored[0].int() - by_hand.int()).abs().max() <= 1, "the FGSM views are the standard model's"
    assert (stored[0] != by_hand).float().mean() < 0.01  # rounding at a half at most
    again = make_views(model, s.train_x, s.train_y, ["pgd20"], cfg.eps, "linf", cfg.seed, torch.device("cpu"))
    assert torch.equal(stored[1], again[0]), "the PGD-20 views are the standard model's, with their seed"
    assert (
        not torch.equal(stored[0], s.train_x) and (stored[0].float() - s.train_x.float()).abs().max() <= 0.1 * 255 + 0.5
    )
    # a second run reuses the cache: the views are not made again
    from clead.training import offline_views

    monkeypatch.setattr(offline_views, "make_views", lambda *a, **k: pytest.fail("views were made again"))
    train(cfg, tmp_path / "c2", progress=False)
    with pytest.raises(CleadError, match="methods with views: clead"):
        tiny(idx_dir, method="pgd-at", views_from=str(src))
