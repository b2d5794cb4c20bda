"""Adversarial weight perturbation: the formula, the restore, and a training run with it for every method."""

import pytest
import torch
import torch.nn.functional as F
from conftest import ToyNet, synthetic_images

from clead.methods import METHODS, Budget
from clead.training import awp


def batch(n=32):
    x, y = synthetic_images(n, seed=7)
    return x.float().unsqueeze(1) / 255, y


def test_perturbation_is_gamma_times_the_weight_norm_along_the_gradient():
    torch.manual_seed(0)
    model = ToyNet()
    x, y = batch()
    v = awp.weight_perturbation(model, lambda: F.cross_entropy(model(x), y), gamma=0.01)
    params = awp.perturbed_params(model)
    assert [p.shape for p in params] == [t.shape for t in v] and all(p.dim() == 2 for p in params)  # no biases
    model.zero_grad()
    F.cross_entropy(model(x), y).backward()
    for p, d in zip(params, v):
        assert float(d.norm()) == pytest.approx(0.01 * float(p.detach().norm()), rel=1e-4)
        cos = F.cosine_similarity(d.flatten(), p.grad.flatten(), dim=0)
        assert float(cos) == pytest.approx(1.0, abs=1e-5)  # the direction of the gradient (ascent)


def test_an_awp_step_raises_the_loss_and_restores_the_weights_it_perturbed():
    torch.manual_seed(0)
    model = ToyNet()
    x, y = batch()
    before = {k: t.clone() for k, t in model.state_dict().items()}
    with torch.no_grad():
        loss0 = float(F.cross_entropy(model(x), y))
    v = awp.weight_perturbation(model, lambda: F.cross_entropy(model(x), y), gamma=0.05)
    awp.add(model, v)
    with torch.no_grad():
        assert float(F.cross_entropy(model(x), y)) > loss0
    assert not torch.equal(model.body[1].weight, before["body.1.weight"])
    assert torch.equal(model.body[1].bias, before["body.1.bias"])  # biases are not perturbed
    awp.add(model, v, -1.0)
    for k, t in model.state_dict().items():
        assert torch.allclose(t, before[k], atol=1e-6), k


@pytest.mark.parametrize("name", METHODS.names())
def test_two_phases_give_the_same_loss_as_one(name):
    """loss() = objective(perturb()); with the cache dropped (as AWP does) the objective recomputes it."""
    model = ToyNet()
    cls = METHODS.get(name)
    method = cls(cls.Params(), Budget(eps=0.1, steps=2), model.feature_dim, 10)
    x, y = batch()
    torch.manual_seed(0)
    whole, _ = method.loss(model, x, y, 0)
    torch.manual_seed(0)
    adv = method.perturb(model, x, y, 0)
    adv.pop("cache", None)
    split, _ = method.objective(model, x, y, adv, 0)
    assert torch.allclose(whole, split, atol=1e-5)


@pytest.mark.parametrize("method", ["pgd-at", "trades", "clead"])
def test_training_with_awp_runs_and_records_it(idx_dir, tmp_path, method, monkeypatch):
    """Catches a trainer that never calls AWP, or ignores its warm-up: one perturbation per step after it."""
    from clead.training import awp
    from clead.training.config import from_dict
    from clead.training.trainer import train

    calls = []
    real = awp.weight_perturbation
    monkeypatch.setattr(awp, "weight_perturbation", lambda *a: calls.append(a[2]) or real(*a))

    cfg = from_dict(
        {
            "data_dir": str(idx_dir),
            "train_size": 64,
            "val_size": 100,
            "val_n": 16,
            "epochs": 2,
            "batch_size": 32,
            "attack_steps": 1,
            "val_attack_steps": 1,
            "device": "cpu",
            "method": method,
            "awp_gamma": 0.01,
            "awp_warmup": 1,
        }
    )
    out = train(cfg, tmp_path / method, progress=False)
    assert "awp_gamma: 0.01" in (out / "config.yaml").read_text()
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2
    assert calls == [0.01, 0.01]  # epoch 2 only (warm-up 1), 64 images in batches of 32
