"""Evaluation: worst case per sample, and the same numbers from Python for any classifier."""
import pytest
import torch

import clead
from clead.attacks import ATTACKS
from clead.errors import CleadError


def test_worst_case_is_per_sample(trained_toy, toy_data, monkeypatch):
    x, y = toy_data[0][:8], toy_data[1][:8]
    # for each sample, an image of another class: what the fake attacks swap in
    other = torch.stack([toy_data[0][(toy_data[1] == (c + 1) % 10).nonzero()[0, 0]] for c in y.tolist()])

    class Breaks:
        """A fake attack that breaks a fixed set of samples (by index into the batch)."""

        def __init__(self, broken):
            self.broken = broken

        def __call__(self, model, xb, yb):
            out = xb.clone()
            out[self.broken] = other[self.broken]
            return out

    assert (trained_toy(other).argmax(1) != y).all()
    monkeypatch.setitem(ATTACKS._items, "breaks-a", lambda eps, norm="linf", r=1: Breaks([0, 1]))
    monkeypatch.setitem(ATTACKS._items, "breaks-b", lambda eps, norm="linf", r=1: Breaks([2, 3]))
    res = clead.evaluate(trained_toy, x, y, attacks=["breaks-a", "breaks-b"], eps=0.1, progress=False)
    assert res["clean_accuracy"] == 1.0
    assert res["per_attack"] == {"breaks-a": 0.75, "breaks-b": 0.75}
    # the minimum over attacks would say 75%; per sample, 4 of 8 are broken by some attack
    assert res["robust_accuracy"] == 0.5
    assert res["per_sample"]["robust"].tolist() == [False] * 4 + [True] * 4


def test_evaluate_standard_model(trained_toy, toy_data):
    x, y = toy_data
    res = clead.evaluate(trained_toy, x[:100], y[:100], attacks=["fgsm", "pgd20"], eps=0.3, progress=False)
    assert res["n"] == 100 and res["threat_model"] == "linf" and res["eps"] == 0.3
    assert res["per_attack"]["pgd20"] <= res["per_attack"]["fgsm"] <= res["clean_accuracy"]
    assert res["robust_accuracy"] <= res["per_attack"]["pgd20"] < 0.5
    assert not trained_toy.training


def test_evaluate_bad_input(trained_toy, toy_data):
    x, y = toy_data
    with pytest.raises(CleadError, match="empty"):
        clead.evaluate(trained_toy, x[:0], y[:0], progress=False)
    with pytest.raises(CleadError, match=r"\[0, 1\]"):
        clead.evaluate(trained_toy, x * 255, y, progress=False)
    with pytest.raises(CleadError, match="outside"):
        clead.evaluate(trained_toy, x, y, eps=3, progress=False)
