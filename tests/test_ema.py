"""Weight averaging against its formula, and in a training run: validated, exported, resumed exactly."""

import json

import torch
from test_trainer import tiny
from torch import nn

from clead.io import load_torch
from clead.training.ema import WeightAverage, decay_at
from clead.training.trainer import train


def test_decay_warms_up_then_holds():
    assert decay_at(0.999, 0) == 0.1 and decay_at(0.999, 10) == 11 / 20
    assert decay_at(0.999, 100_000) == 0.999 and decay_at(0.5, 20) == 0.5


def test_average_follows_its_formula_on_a_toy_sequence():
    net = nn.BatchNorm1d(2)
    avg = WeightAverage(net, 0.9)
    expected_w = net.weight.detach().clone()
    expected_mean = net.running_mean.clone()
    for t, value in enumerate([1.0, -2.0, 4.0, 0.5, 3.0]):
        with torch.no_grad():
            net.weight.fill_(value)
            net.running_mean.fill_(2 * value)
            net.num_batches_tracked.fill_(t + 7)
        avg.update(net)
        d = min(0.9, (1 + t) / (10 + t))
        expected_w = d * expected_w + (1 - d) * value
        expected_mean = d * expected_mean + (1 - d) * 2 * value
    assert torch.allclose(avg.average.weight, expected_w)
    assert torch.allclose(avg.average.running_mean, expected_mean)
    assert int(avg.average.num_batches_tracked) == 11  # integer buffers are copied
    assert not avg.average.training and not avg.average.weight.requires_grad
    assert not torch.equal(avg.average.weight, net.weight)


def test_a_run_with_weight_averaging_exports_and_resumes_the_average(idx_dir, tmp_path):
    cfg = dict(ema_decay=0.9, method="pgd-at", epochs=2)
    full = train(tiny(idx_dir, **cfg), tmp_path / "full", progress=False)
    part = tmp_path / "part"
    train(tiny(idx_dir, **cfg), part, progress=False, stop_after=1)
    train(tiny(idx_dir, **cfg), part, resume=True, progress=False)
    a, b = load_torch(full / "last.pt"), load_torch(part / "last.pt")
    for key in ("model", "train_model"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    assert a["ema_updates"] == 2 * 3  # 96 images in batches of 32, two epochs
    # the exported weights are the average, not the trained weights
    assert not torch.equal(a["model"]["head.weight"], a["train_model"]["head.weight"])
    best = load_torch(full / "best.pt")
    assert set(best["model"]) == set(a["model"])
    lines = [json.loads(s) for s in (full / "metrics.jsonl").read_text().splitlines()]
    assert all(m["weights"] == "ema" for m in lines)
    assert (full / "config.yaml").read_text().count("ema_decay: 0.9") == 1
