"""The training attacks of --train-attack (PGD, FGSM-RS, N-FGSM) against their formulas, and every method
using the one the run names."""

import pytest
import torch
from conftest import ToyNet, synthetic_images
from torch import nn

from clead.attacks import NFGSM, PGD
from clead.errors import CleadError
from clead.methods import METHODS, Budget
from clead.models.base import Classifier

EPS = 0.05


class Linear2(Classifier):
    """logits = [0, w . x]: for label 0 the cross-entropy grows with w . x, so its input gradient has sign(w)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__((0.0,), (1.0,))
        self.w = nn.Parameter(w.clone())
        self.feature_dim = 1

    def features(self, x):
        return (x.flatten(1) * self.w.flatten()).sum(1, keepdim=True)

    def classify(self, f):
        return torch.cat([torch.zeros_like(f), f], 1)


def linear_case(n=4, d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(1, 1, 8, 8, generator=g)
    x = 0.3 + 0.4 * torch.rand(n, 1, 8, 8, generator=g)  # far enough from 0 and 1 that no clipping happens
    return Linear2(w), x, torch.zeros(n, dtype=torch.long), w.sign()


def test_fgsm_rs_is_a_clipped_signed_step_from_a_uniform_start():
    model, x, y, sign = linear_case()
    torch.manual_seed(3)
    start = torch.empty_like(x).uniform_(-EPS, EPS)
    expected = x + (start + 1.25 * EPS * sign).clamp(-EPS, EPS)
    torch.manual_seed(3)
    got = Budget(EPS, kind="fgsm-rs").attack()(model, x, y)
    assert torch.allclose(got, expected, atol=1e-7)


def test_n_fgsm_is_an_unclipped_step_of_eps_from_noise_of_twice_eps():
    model, x, y, sign = linear_case()
    torch.manual_seed(3)
    noise = torch.empty_like(x).uniform_(-2 * EPS, 2 * EPS)
    expected = x + noise + EPS * sign
    torch.manual_seed(3)
    got = Budget(EPS, kind="n-fgsm").attack()(model, x, y)
    assert torch.allclose(got, expected, atol=1e-7)
    assert (got - x).abs().max() > EPS  # it leaves the eps-ball, by design


def test_n_fgsm_noise_is_a_knob():
    model, x, y, sign = linear_case()
    torch.manual_seed(1)
    got = Budget(EPS, kind="n-fgsm", noise=0.0).attack()(model, x, y)
    assert torch.allclose(got, x + EPS * sign, atol=1e-7)  # k = 0: plain FGSM


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("kind, bound", [("pgd", 1.0), ("fgsm-rs", 1.0), ("n-fgsm", 3.0)])
def test_training_attacks_stay_in_their_bounds_and_in_the_unit_box(kind, bound, norm):
    torch.manual_seed(0)
    x, y = synthetic_images(32, seed=2)
    x = x.float().unsqueeze(1) / 255
    eps = 0.1 if norm == "linf" else 1.0
    adv = Budget(eps, norm=norm, steps=3, kind=kind).attack()(ToyNet(), x, y)
    d = (adv - x).flatten(1)
    size = d.abs().amax(1) if norm == "linf" else d.norm(dim=1)
    assert size.max() <= bound * eps + 1e-5
    assert adv.min() >= 0 and adv.max() <= 1
    assert size.max() > 0.5 * eps  # it moved


def test_n_fgsm_reports_its_radius():
    a = NFGSM(0.1, noise=2.0)
    assert a.radius == pytest.approx(0.3) and a.alpha == pytest.approx(0.1)


def test_the_run_step_applies_to_its_own_kind_only():
    b = Budget(EPS, steps=4, alpha=0.01, kind="fgsm-rs")
    assert b.attack().alpha == 0.01 and b.attack().steps == 1
    assert b.attack(kind="pgd").alpha == pytest.approx(2.5 * EPS / 4) and b.attack(kind="pgd").steps == 4
    assert b.attack(kind="n-fgsm").alpha == pytest.approx(EPS)
    assert Budget(EPS, kind="pgd").attack().steps == 10
    with pytest.raises(CleadError, match="unknown training attack 'fgsm'"):
        Budget(EPS, kind="fgsm")


@pytest.mark.parametrize("name", ["pgd-at", "trades", "mart", "ascl", "clead"])
@pytest.mark.parametrize("kind, cls", [("fgsm-rs", PGD), ("n-fgsm", NFGSM)])
def test_every_adversarial_method_trains_on_the_attack_the_run_names(name, kind, cls, monkeypatch):
    """One gradient step per view, by the named attack, on the method's own inner loss."""
    made = []
    real = Budget.attack

    def spy(self, objective=None, init="uniform", kind=None):
        a = real(self, objective, init, kind) if objective else real(self, init=init, kind=kind)
        made.append(a)
        return a

    monkeypatch.setattr(Budget, "attack", spy)
    method = METHODS.get(name)(METHODS.get(name).Params(), Budget(0.1, steps=5, kind=kind), 64, 10)
    model = ToyNet()
    grads = []  # forwards whose input carries a gradient: the attack's steps
    model.features = (lambda f: lambda inp: grads.append(inp.requires_grad) or f(inp))(model.features)
    x, y = synthetic_images(16, seed=3)
    x = x.float().unsqueeze(1) / 255
    torch.manual_seed(0)
    adv = method.perturb(model, x, y, epoch=0)
    assert made and all(type(a) is cls and a.steps == 1 for a in made)
    views = adv.get("views") or [adv["x_adv"]]
    assert sum(grads) == len(views)  # one gradient through the model per view: a single step
    if name == "trades":  # its own inner loss: KL to the clean prediction, not cross-entropy
        assert made[0].objective.__name__ == "objective"
    for v in views:
        assert not torch.equal(v, x)
    loss, _ = method.objective(model, x, y, adv, 0)
    assert torch.isfinite(loss)
