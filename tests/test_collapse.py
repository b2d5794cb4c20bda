"""The catastrophic-overfitting guard: its definition on planted sequences, and best.pt never a collapsed epoch."""

import json

import pytest
from test_trainer import tiny

from clead.io import load_torch
from clead.training.collapse import collapse_epoch, collapsed, robust_fall_epoch
from clead.training.trainer import train


def history(*pairs):
    return [{"epoch": i + 1, "val_clean": c, "val_pgd": r} for i, (c, r) in enumerate(pairs)]


def test_a_robust_fall_with_clean_holding_is_a_collapse():
    h = history((0.37, 0.20), (0.40, 0.226))
    assert collapsed(h, 0.418, 0.05)  # the signature: robust below half its best, clean up
    assert collapsed(h, 0.385, 0.05)  # clean down by less than two points still holds
    assert not collapsed(h, 0.37, 0.05)  # clean fell too: divergence, not overfitting to the attack
    assert not collapsed(h, 0.42, 0.12)  # robust above half its best
    assert not collapsed([], 0.9, 0.0) and not collapsed(history((0.5, 0.0)), 0.6, 0.0)


def test_collapse_epoch_is_the_first_marked():
    assert collapse_epoch([{"epoch": 1}, {"epoch": 2, "collapsed": True}, {"epoch": 3, "collapsed": True}]) == 2
    assert collapse_epoch([{"epoch": 1, "collapsed": False}]) is None


def test_robust_fall_epoch_ignores_clean_accuracy():
    # pgd-at-fgsm-rs-seed1's shape: robust 0 from epoch 4 while clean fell with it, then clean came back (epoch 6)
    h = history((0.30, 0.21), (0.35, 0.22), (0.39, 0.19), (0.20, 0.0), (0.26, 0.0), (0.41, 0.0))
    marked = [{**m, "collapsed": collapsed(h[:i], m["val_clean"], m["val_pgd"])} for i, m in enumerate(h)]
    assert collapse_epoch(marked) == 6 and robust_fall_epoch(h) == 4
    assert robust_fall_epoch(history((0.3, 0.2), (0.4, 0.11), (0.5, 0.25))) is None  # above half of 0.2
    assert robust_fall_epoch(history((0.3, 0.2), (0.4, 0.09), (0.5, 0.25))) == 2  # a dip counts, recovered or not
    assert robust_fall_epoch(history((0.3, 0.0), (0.4, 0.0))) is None and robust_fall_epoch([]) is None


@pytest.mark.parametrize("select, best_epoch", [("robust", 1), ("last", 1), ("clean", 1)])
def test_best_checkpoint_is_never_a_collapsed_epoch(idx_dir, tmp_path, monkeypatch, caplog, select, best_epoch):
    # validation (clean, robust) per epoch: a collapse at epoch 3 that lasts; clean peaks there
    scripted = iter([(0.5, 0.3), (0.55, 0.32), (0.7, 0.05), (0.72, 0.04)])
    monkeypatch.setattr("clead.training.trainer.validate", lambda *a, **k: next(scripted))
    out = train(tiny(idx_dir, method="pgd-at", select=select, epochs=4, attack_steps=1), tmp_path / "r",
                progress=False)  # fmt: skip
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [m["collapsed"] for m in lines] == [False, False, True, True]
    assert load_torch(out / "best.pt")["epoch"] == best_epoch
    assert sum("catastrophic overfitting at epoch 3" in r.message for r in caplog.records) == 1


def test_standard_training_is_not_guarded(idx_dir, tmp_path, monkeypatch):
    scripted = iter([(0.5, 0.3), (0.7, 0.05)])
    monkeypatch.setattr("clead.training.trainer.validate", lambda *a, **k: next(scripted))
    out = train(tiny(idx_dir, method="standard", epochs=2), tmp_path / "r", progress=False)
    assert load_torch(out / "best.pt")["epoch"] == 1  # by clean accuracy, its fall in robustness is expected
