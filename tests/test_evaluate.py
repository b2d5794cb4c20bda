"""Evaluation: worst case per sample, and the same numbers from Python for any classifier."""
import sys

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
    res = clead.evaluate(trained_toy, x, y, attacks=["breaks-a", "breaks-b"], eps=0.1, progress=False, checks=False)
    assert res["clean_accuracy"] == 1.0
    assert res["per_attack"] == {"breaks-a": 0.75, "breaks-b": 0.75}
    # the minimum over attacks would say 75%; per sample, 4 of 8 are broken by some attack
    assert res["robust_accuracy"] == 0.5
    assert res["per_sample"]["robust"].tolist() == [False] * 4 + [True] * 4
    assert res["per_sample"]["broken_by"] == ["breaks-a"] * 2 + ["breaks-b"] * 2 + [""] * 4


def test_evaluate_standard_model(trained_toy, toy_data):
    x, y = toy_data
    res = clead.evaluate(trained_toy, x[:100], y[:100], attacks=["fgsm", "pgd20"], eps=0.3, progress=False,
                         checks=False)
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


def test_autoattack_drives_a_standard_model_to_zero(trained_toy, toy_data):
    x, y = toy_data[0][:48], toy_data[1][:48]
    res = clead.evaluate(trained_toy, x, y, attacks=["autoattack"], eps=0.3, progress=False, checks=False)
    assert res["clean_accuracy"] > 0.9
    assert res["robust_accuracy"] <= 0.03
    seq = res["sequence"]["autoattack"]
    assert list(seq) == ["clean", "apgd-ce", "apgd-t", "fab-t", "square"]
    assert seq["clean"] >= seq["apgd-ce"] >= seq["square"] == res["robust_accuracy"]
    assert all(b.startswith("autoattack/") or b == "clean" for b in res["per_sample"]["broken_by"])
    assert (res["per_sample"]["linf"] <= 0.3 + 1e-6).all()


def test_sweep_is_monotone_and_checks_pass_for_a_normal_model(trained_toy, toy_data):
    x, y = toy_data[0][:48], toy_data[1][:48]
    # eps 0.15: at 0.2 this toy sits at its breaking point, where PGD-20 has not converged (test below)
    res = clead.evaluate(trained_toy, x, y, attacks=["fgsm", "pgd20"], eps=0.15, progress=False, check_n=48,
                         sweep=[0, 0.1, 0.2, 0.3], sweep_n=48)
    sw = res["sweep"]
    assert sw["eps"] == [0, 0.1, 0.2, 0.3] and sw["pgd20"][0] == res["clean_accuracy"]
    assert all(a >= b for a, b in zip(sw["pgd20"], sw["pgd20"][1:]))
    assert all(a >= b for a, b in zip(sw["apgd-ce"], sw["apgd-ce"][1:]))
    by_name = {c["name"]: c for c in res["checks"]}
    assert {"deterministic_eval_mode", "zero_gradients", "iterative_vs_single_step", "more_steps_and_restarts",
            "large_eps", "monotone_in_eps", "black_box_not_stronger"} == set(by_name)
    assert [n for n, c in by_name.items() if c["passed"] is False] == []
    assert by_name["black_box_not_stronger"]["passed"] is None  # Square was not run
    assert all(c["explanation"] for c in res["checks"])


class Quantised(torch.nn.Module):
    """Planted gradient masking: the input is rounded to {0, 0.5, 1}, so every input gradient is zero."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(torch.round(x * 2) / 2)


def test_planted_gradient_masking_is_caught(trained_toy, toy_data):
    x, y = toy_data[0][:32], toy_data[1][:32]
    masked = Quantised(trained_toy)
    res = clead.evaluate(masked, x, y, attacks=["fgsm", "pgd20", "autoattack"], eps=0.3, progress=False, check_n=32)
    failed = {c["name"] for c in res["checks"] if c["passed"] is False}
    assert {"zero_gradients", "black_box_not_stronger"} <= failed
    zero = next(c for c in res["checks"] if c["name"] == "zero_gradients")
    assert zero["numbers"]["share_zero_gradient"] == 1.0
    # white-box attacks see no gradient; the robust number they give alone is inflated
    assert res["per_attack"]["pgd20"] > res["per_attack"]["autoattack"]


def test_resumed_evaluation_equals_an_uninterrupted_one(trained_toy, toy_data, tmp_path, monkeypatch):
    from clead.attacks import PGD

    x, y = toy_data[0][:60], toy_data[1][:60]
    kw = dict(attacks=["pgd20", "cw"], eps=0.2, batch_size=16, progress=False, checks=False)
    full = clead.evaluate(trained_toy, x, y, **kw)
    state = tmp_path / "state.pt"
    real, calls = PGD.perturb, {"n": 0}

    def flaky(self, *a):
        calls["n"] += 1
        if calls["n"] == 6:  # in the middle of the second attack
            raise KeyboardInterrupt
        return real(self, *a)

    monkeypatch.setattr(PGD, "perturb", flaky)
    module = sys.modules["clead.evaluate"]  # `clead.evaluate` the attribute is the function
    monkeypatch.setattr(module, "device_name", lambda d: "first machine")
    with pytest.raises(KeyboardInterrupt):
        clead.evaluate(trained_toy, x, y, state_path=state, **kw)
    assert state.is_file()
    monkeypatch.setattr(PGD, "perturb", real)
    monkeypatch.setattr(module, "device_name", lambda d: "second machine")
    calls["n"] = 0
    resumed = clead.evaluate(trained_toy, x, y, state_path=state, **kw)
    assert not state.exists()
    for key in ("clean_accuracy", "robust_accuracy", "per_attack"):
        assert resumed[key] == full[key]
    # the record says where the attack time was spent, across the interruption
    assert full["devices"].keys() == {"cpu"}
    assert resumed["devices"].keys() == {"first machine", "second machine"}
    assert sum(resumed["devices"].values()) == pytest.approx(sum(resumed["seconds"].values()), abs=0.05)
    assert resumed["per_sample"]["broken_by"] == full["per_sample"]["broken_by"]
    assert torch.equal(resumed["per_sample"]["linf"], full["per_sample"]["linf"])


def test_models_that_would_give_wrong_numbers_are_refused(trained_toy, toy_data):
    x, y = toy_data[0][:16], toy_data[1][:16]
    probs = torch.nn.Sequential(trained_toy, torch.nn.Softmax(dim=1))
    with pytest.raises(CleadError, match="probabilities"):
        clead.evaluate(probs, x, y, progress=False)
    with pytest.raises(CleadError, match="returns 10 logits but the dataset has 4 classes"):
        clead.evaluate(trained_toy, x, y, num_classes=4, progress=False)


def test_robustbench_entry():
    from clead.audit import robustbench_entry

    res = {"eps": 0.1, "clean_accuracy": 0.8123, "per_attack": {"pgd20": 0.5, "autoattack": 0.4567}, "n": 1000,
           "threat_model": "linf", "seed": 0}
    e = robustbench_entry(res, "r", "small-cnn", "fashion-mnist")
    assert e["clean_acc"] == "81.23" and e["autoattack_acc"] == "45.67" and e["eps"] == "0.1"
    assert robustbench_entry({**res, "per_attack": {"pgd20": 0.5}}, "r", "m", "d") is None


@pytest.mark.parametrize("pgd20, pgd100, passed", [
    (0.60, 0.60, True),    # converged
    (0.60, 0.575, True),   # 2.5 points lower: within the 3-point allowance
    (0.60, 0.50, False),   # 10 points lower: PGD-20 had not converged
    (0.60, 0.65, False),   # higher: the stronger attack is broken
])  # fmt: skip
def test_more_steps_check_flags_unconverged_pgd20(monkeypatch, pgd20, pgd100, passed):
    from clead import checks

    scripted = iter([pgd20, pgd100])
    monkeypatch.setattr(checks, "_batched_attack_acc", lambda *a, **k: next(scripted))
    res = checks.more_steps_do_not_help(None, torch.zeros(1000, 1), None, 0.1, "linf", 128, 0)
    assert res["passed"] is passed
    assert res["numbers"]["max_drop"] == checks.MAX_PGD20_GAP == 0.03


@pytest.mark.parametrize("pgd20, pgd100, passed", [
    (0.78, 0.7449999952316284, True),         # TRADES at eps 0.3: 156 -> 149 of 200 images, as stored
    (0.895, 0.8600000071525574, True),        # C-LEAD at eps 0.3: 179 -> 172 of 200, as stored
    (0.78, 0.7400000095367432, False),        # one image more: 8 of 200 lower
])  # fmt: skip
def test_more_steps_check_judges_equal_image_counts_alike_whatever_the_float_rounding(monkeypatch, pgd20, pgd100,
                                                                                      passed):  # fmt: skip
    # 7 of 200 images lower is 3 points plus the one-image slack; these two real evaluations had that drop and
    # got different verdicts while the slack's tolerance (1e-9) was below float32 rounding
    from clead import checks

    scripted = iter([pgd20, pgd100])
    monkeypatch.setattr(checks, "_batched_attack_acc", lambda *a, **k: next(scripted))
    assert checks.more_steps_do_not_help(None, torch.zeros(200, 1), None, 0.3, "linf", 128, 0)["passed"] is passed


def test_more_steps_check_fails_where_pgd20_has_not_converged_on_a_real_model(trained_toy, toy_data):
    from clead import checks

    x, y = toy_data[0][:48], toy_data[1][:48]
    res = checks.more_steps_do_not_help(trained_toy, x, y, 0.2, "linf", 128, 0)
    assert res["passed"] is False
    assert res["numbers"]["pgd20"] - res["numbers"]["pgd100x2"] > 0.03 + 1 / 48
    assert checks.more_steps_do_not_help(trained_toy, x, y, 0.15, "linf", 128, 0)["passed"] is True


def test_threat_matrix_has_every_cell_and_refuses_unknown_threats(idx_dir, tmp_path, capsys):
    import json

    from clead.cli import main

    common = ["--data-dir", str(idx_dir), "--train-size", "480", "--val-size", "100", "--val-n", "20", "--epochs", "1",
              "--batch-size", "32", "--attack-steps", "2", "--val-attack-steps", "1", "--lr", "0.003", "--quiet"]  # fmt: skip
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", *common, "--method", "pgd-at", "--out", str(a)]) == 0
    assert main(["train", *common, "--method", "standard", "--out", str(b)]) == 0
    capsys.readouterr()
    rc = main(["eval", str(a), "--threats", "--threat-attack", "apgd", "-n", "24", "--transfer-from", str(b), "--quiet"])
    assert rc == 0
    rows = {r["threat"]: r for r in json.loads((a / "eval-threats.json").read_text())["threats"]}
    assert list(rows) == ["linf", "linf-2x", "l2", "l1", "transfer"]
    assert [rows[t]["eps"] for t in ("linf", "linf-2x")] == [0.1, 0.2]
    assert rows["l2"]["eps"] == pytest.approx(2.0 / 3) and rows["l1"]["eps"] == pytest.approx(10 / 3)
    for r in rows.values():
        assert r["n"] == 24 and 0 <= r["robust"] <= r["clean"]
    assert rows["linf-2x"]["robust"] <= rows["linf"]["robust"] + 1 / 24
    # per image, what `clead compare --threat` pairs: the same accuracies as the matrix
    import csv

    with open(a / "per_sample-threats.csv", newline="") as f:
        per = list(csv.DictReader(f))
    assert len(per) == 24 and list(per[0])[3:] == list(rows)
    for t, r in rows.items():
        assert sum(p[t] == "1" for p in per) / 24 == pytest.approx(r["robust"])
    assert sum(p["correct_clean"] == "1" for p in per) / 24 == pytest.approx(rows["linf"]["clean"])
    table = capsys.readouterr().out
    assert "| linf (eps 0.1) % | linf-2x (eps 0.2) % | l2 (eps 0.667) % | l1 (eps 3.33) % | transfer (PGD-50) % |" in table
    assert main(["eval", str(a), "--threats", "linf,l7"]) == 2
    assert main(["eval", str(a), "--threats", "transfer"]) == 2  # needs --transfer-from
    assert main(["eval", str(a), "--threats", "--threat-eps", "l3=2"]) == 2
    assert main(["report", str(a)]) == 0 and "transfer (PGD-50)" in capsys.readouterr().out
    # the suite report reads eval*.json for its accuracy table: the threat matrix is not one of them
    assert main(["report", str(a), "--full", str(tmp_path / "rep")]) == 0
    assert "## Threat matrix" in (tmp_path / "rep" / "report.md").read_text()
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<h2>Threat matrix</h2>" in page and "<h2>Against the best baseline</h2>" not in page  # no baseline here


def test_pgd_refuses_l1_and_training_refuses_it_too():
    from clead.attacks import PGD
    from clead.config import from_dict

    with pytest.raises(CleadError, match="use an AutoAttack preset for l1"):
        PGD(10.0, norm="l1")
    with pytest.raises(CleadError, match="training attacks are linf or l2"):
        from_dict({"norm": "l1", "eps": 10})
