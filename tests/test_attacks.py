"""Attack invariants: inside the ball and [0, 1], mode restored, no parameter gradients, stronger than
no attack, monotone in steps, best-so-far per sample."""

import pytest
import torch

from clead.attacks import ATTACKS, FGSM, PGD, create_attack, cw_margin_objective
from clead.errors import CleadError

EPS = {"linf": 0.3, "l2": 2.0}


def accuracy(model, x, y):
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", ATTACKS.names())
def test_every_attack_stays_in_ball_and_box_and_restores_mode(name, norm, trained_toy, toy_data):
    x, y = toy_data[0][:64], toy_data[1][:64]
    eps = EPS[norm]
    trained_toy.train()
    x_adv = create_attack(name, eps, norm)(trained_toy, x, y)
    assert trained_toy.training, "the model's mode must be restored"
    trained_toy.eval()
    assert all(p.grad is None for p in trained_toy.parameters()), "attacks must not touch parameter gradients"
    assert x_adv.shape == x.shape and not x_adv.requires_grad
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    d = (x_adv - x).flatten(1)
    size = d.abs().max(1).values if norm == "linf" else d.norm(dim=1)
    assert (size <= eps + 1e-5).all()
    assert accuracy(trained_toy, x_adv, y) < accuracy(trained_toy, x, y) - 0.3


def test_attacks_break_a_standard_model_at_large_eps(trained_toy, toy_data):
    x, y = toy_data
    for name in ("pgd20", "cw"):
        assert accuracy(trained_toy, create_attack(name, 0.5)(trained_toy, x, y), y) < 0.05


def test_more_steps_never_raise_accuracy(trained_toy, toy_data):
    x, y = toy_data
    accs = []
    for steps in (1, 5, 10, 20, 40):
        torch.manual_seed(0)  # the same start: the longer run's first iterates are the shorter run's
        attack = PGD(0.2, steps=steps, alpha=0.025)
        accs.append(accuracy(trained_toy, attack(trained_toy, x, y), y))
    assert all(a >= b for a, b in zip(accs, accs[1:])), accs
    assert accs[-1] < accs[0]


def test_keep_best_returns_the_fooling_iterate_not_the_last():
    # a model that is fooled only in a narrow band of the input: the last iterate overshoots it
    class Band(torch.nn.Module):
        def forward(self, x):
            s = x.flatten(1).mean(1)
            fooled = ((s > 0.52) & (s < 0.56)).float()
            return torch.stack([s * 0 + 1 - fooled + 0 * s, fooled + s - s.detach()], 1) + s[:, None] * 0.01

    x = torch.full((3, 1, 2, 2), 0.5)
    y = torch.zeros(3, dtype=torch.long)
    # CE of class 0 grows with s, so PGD walks s upward in steps of 0.02 through the band and past it
    last = PGD(0.2, steps=10, alpha=0.02, init="zero", keep_best=False)(Band(), x, y)
    best = PGD(0.2, steps=10, alpha=0.02, init="zero", keep_best=True)(Band(), x, y)
    assert (Band()(last).argmax(1) == 0).all()
    assert (Band()(best).argmax(1) == 1).all()


class Linear2(torch.nn.Module):
    """Two logits, +-(w . x): the cross-entropy gradient of class 0 with respect to x has sign -sign(w)."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = torch.nn.Parameter(w)

    def forward(self, x):
        s = (x.flatten(1) * self.w.flatten()).sum(1)
        return torch.stack([s, -s], 1)


def test_fgsm_is_one_signed_step_of_size_eps():
    """Catches an FGSM that steps a fraction of eps (e.g. eps/2), steps along the gradient's sign the wrong
    way, or forgets to clip to [0, 1]."""
    g = torch.Generator().manual_seed(0)
    w = torch.randn(1, 4, 4, generator=g)
    x = torch.rand(6, 1, 4, 4, generator=g) * 0.6 + 0.2  # away from 0 and 1: no clipping here
    x[0, 0, 0, 0] = 0.03 if w[0, 0, 0] > 0 else 0.97  # this pixel would leave [0, 1]: clipped
    y = torch.zeros(6, dtype=torch.long)
    model = Linear2(w)
    x_adv = FGSM(0.1)(model, x, y)
    expected = (x - 0.1 * torch.sign(w)).clamp(0, 1)
    assert torch.allclose(x_adv, expected, atol=1e-6)
    assert x_adv[0, 0, 0, 0] in (0.0, 1.0)


def test_cw_margin_is_positive_exactly_when_misclassified(trained_toy, toy_data):
    x, y = toy_data
    margin, logits = cw_margin_objective(trained_toy, x, y)
    assert torch.equal(margin > 0, logits.argmax(1) != y)


def test_bad_threat_models_are_errors():
    with pytest.raises(CleadError, match="outside"):
        PGD(1.5)
    with pytest.raises(CleadError, match="negative"):
        PGD(-0.1, norm="l2")
    with pytest.raises(CleadError, match="valid: linf, l2"):
        PGD(0.1, norm="l3")
    with pytest.raises(CleadError, match="valid:"):
        create_attack("deepfool", 0.1)


def test_attack_counts_scale_uint8_batches_and_leave_float_images_alone(trained_toy, toy_data):
    """The one batched loop of checks, sweep and validation: uint8 images give the counts of the same images
    in [0, 1], a float input is not rescaled or modified in place, and the counts are the per-image sums."""
    from clead.attacks.base import attack_counts

    x, y = toy_data
    x8 = (x.clamp(0, 1) * 255).round().to(torch.uint8)
    xf = x8.float() / 255
    kept = xf.clone()
    fgsm = FGSM(0.3)
    counts = attack_counts(trained_toy, fgsm, xf, y, batch_size=7, seed=0)
    assert attack_counts(trained_toy, fgsm, x8, y, batch_size=7, seed=0) == counts
    assert torch.equal(xf, kept)
    with torch.no_grad():
        clean = int((trained_toy(xf).argmax(1) == y).sum())
        robust = int((trained_toy(fgsm(trained_toy, xf, y)).argmax(1) == y).sum())
    assert counts == (clean, robust) and robust < clean
