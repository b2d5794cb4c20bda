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
    res = clead.evaluate(
        trained_toy, x[:100], y[:100], attacks=["fgsm", "pgd20"], eps=0.3, progress=False, checks=False
    )
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


class MeanThreshold(torch.nn.Module):
    """Two classes by the mean pixel m: logits (k (m - 0.5), -k (m - 0.5)). Every attack's optimum is known
    (move every pixel by eps against the class), one signed step reaches it, and a sample is robust at eps
    exactly when |m - 0.5| > eps (pixels are kept in [0.3, 0.7], so clipping never binds below eps 0.3)."""

    def __init__(self, k: float = 10.0) -> None:
        super().__init__()
        self.k = torch.nn.Parameter(torch.tensor(k))

    def forward(self, x):
        s = self.k * (x.flatten(1).mean(1) - 0.5)
        return torch.stack([s, -s], 1)


def mean_threshold_data(n: int = 64):
    g = torch.Generator().manual_seed(0)
    m = torch.rand(n, generator=g) * 0.4 + 0.3  # mean pixels spread over [0.3, 0.7]
    x = m[:, None, None, None].expand(n, 1, 4, 4).clone()
    return x, (m <= 0.5).long()


def test_sweep_and_checks_pass_for_a_model_whose_attacks_are_exact():
    """Catches checks that fail a sound evaluation (false alarms), and a sweep whose accuracy is not the
    closed-form one: on MeanThreshold, accuracy at eps is the share with |m - 0.5| > eps, for every attack."""
    model = MeanThreshold()
    x, y = mean_threshold_data()
    m = x.flatten(1).mean(1)
    res = clead.evaluate(
        model,
        x,
        y,
        attacks=["fgsm", "pgd20"],
        eps=0.1,
        progress=False,
        check_n=64,
        num_classes=2,
        sweep=[0, 0.05, 0.1, 0.15],
        sweep_n=64,
    )
    exact = [float(((m - 0.5).abs() > e + 1e-6).float().mean()) for e in (0, 0.05, 0.1, 0.15)]
    sw = res["sweep"]
    assert sw["pgd20"] == pytest.approx(exact, abs=1 / 64) and sw["apgd-ce"] == pytest.approx(exact, abs=1 / 64)
    assert res["robust_accuracy"] == pytest.approx(exact[2], abs=1 / 64)
    by_name = {c["name"]: c for c in res["checks"]}
    assert {
        "deterministic_eval_mode",
        "zero_gradients",
        "iterative_vs_single_step",
        "more_steps_and_restarts",
        "large_eps",
        "monotone_in_eps",
        "black_box_not_stronger",
    } == set(by_name)
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
    module = sys.modules["clead.evaluation.evaluate"]  # `clead.evaluate` the attribute is the function
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
    from clead.distributed import device_name

    assert full["devices"].keys() == {device_name(torch.device("cpu"))}  # e.g. "cpu (AMD EPYC)"
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
    from clead.evaluation.audit import robustbench_entry

    res = {
        "eps": 0.1,
        "clean_accuracy": 0.8123,
        "per_attack": {"pgd20": 0.5, "autoattack": 0.4567},
        "n": 1000,
        "threat_model": "linf",
        "seed": 0,
    }
    e = robustbench_entry(res, "r", "small-cnn", "fashion-mnist")
    assert e["clean_acc"] == "81.23" and e["autoattack_acc"] == "45.67" and e["eps"] == "0.1"
    assert robustbench_entry({**res, "per_attack": {"pgd20": 0.5}}, "r", "m", "d") is None


def test_threat_matrix_has_every_cell_and_refuses_unknown_threats(idx_dir, tmp_path, capsys, monkeypatch):
    import json

    from clead.cli import main

    common = [
        "--data-dir",
        str(idx_dir),
        "--train-size",
        "480",
        "--val-size",
        "100",
        "--val-n",
        "20",
        "--epochs",
        "1",
        "--batch-size",
        "32",
        "--attack-steps",
        "2",
        "--val-attack-steps",
        "1",
        "--lr",
        "0.003",
        "--quiet",
    ]
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(["train", *common, "--method", "pgd-at", "--out", str(a)]) == 0
    assert main(["train", *common, "--method", "standard", "--out", str(b)]) == 0
    capsys.readouterr()
    rc = main(
        ["eval", str(a), "--threats", "--threat-attack", "apgd", "-n", "24", "--transfer-from", str(b), "--quiet"]
    )
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
        # robust means correct clean and under the attack: never robust where the clean prediction is wrong
        assert all(p["correct_clean"] == "1" for p in per if p[t] == "1")
    assert sum(p["correct_clean"] == "1" for p in per) / 24 == pytest.approx(rows["linf"]["clean"])
    table = capsys.readouterr().out
    assert (
        "| linf (eps 0.1) % | linf-2x (eps 0.2) % | l2 (eps 0.667) % | l1 (eps 3.33) % | transfer (PGD-50) % |" in table
    )
    assert main(["eval", str(a), "--threats", "linf,l7"]) == 2
    assert main(["eval", str(a), "--threats", "transfer"]) == 2  # needs --transfer-from
    assert main(["eval", str(a), "--threats", "transfer-pgd3"]) == 2
    assert main(["eval", str(a), "--threats", "--threat-eps", "l3=2"]) == 2
    assert main(["report", str(a)]) == 0 and "transfer (PGD-50)" in capsys.readouterr().out
    # the C-LEAD authors' transfer attack: PGD-3 with step 3/8 eps, on the other model
    from clead.attacks import PGD

    made, real_init = [], PGD.__init__
    monkeypatch.setattr(PGD, "__init__", lambda self, *a, **k: made.append(k) or real_init(self, *a, **k))
    paper = ["--threats", "transfer-pgd3", "-n", "24", "--transfer-from", str(b), "--tag", "paper", "--quiet"]
    assert main(["eval", str(a), str(b), *paper]) == 0
    row = json.loads((a / "eval-threats-paper.json").read_text())["threats"][0]
    assert row["threat"] == "transfer-pgd3" and row["attack"] == f"PGD-3 on {b}"
    assert made[0]["steps"] == 3 and made[0]["alpha"] == pytest.approx(0.375 * 0.1)
    # a tagged matrix stands beside the untagged one, which keeps its five threats
    assert [r["threat"] for r in json.loads((a / "eval-threats.json").read_text())["threats"]] == list(rows)
    with open(a / "per_sample-threats-paper.csv", newline="") as f:
        assert list(next(csv.DictReader(f))) == ["index", "label", "correct_clean", "transfer-pgd3"]
    capsys.readouterr()
    assert main(["compare", str(a), str(b), "--threat", "transfer-pgd3", "--tag", "paper"]) == 0
    assert "PGD-3 on" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--threat", "transfer-pgd3"]) == 2  # the untagged matrices lack it
    # the suite report reads eval*.json for its accuracy table: the threat matrices are not among them
    assert main(["report", str(a), "--full", str(tmp_path / "rep")]) == 0
    md = (tmp_path / "rep" / "report.md").read_text()
    assert "## Threat matrix" in md and "transfer (PGD-50)" in md and "transfer-pgd3 (PGD-3)" in md
    assert "threats-paper" not in md.split("## Threat matrix")[0]  # no accuracy row or column of its own
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<h2>Threat matrix</h2>" in page and "<h2>Against the best baseline</h2>" not in page  # no baseline here


def test_pgd_refuses_l1_and_training_refuses_it_too():
    from clead.attacks import PGD
    from clead.training.config import from_dict

    with pytest.raises(CleadError, match="use an AutoAttack preset for l1"):
        PGD(10.0, norm="l1")
    with pytest.raises(CleadError, match="training attacks are linf or l2"):
        from_dict({"norm": "l1", "eps": 10})


def _record_starts(monkeypatch):
    """Wrap PGD.init_delta (PGD, PGD-50 and CW all start there) to record every random start drawn."""
    from clead.attacks import PGD

    starts, real = [], PGD.init_delta

    def recording(self, x, generator=None):
        delta = real(self, x, generator)
        starts.append((repr(self), delta.clone()))
        return delta

    monkeypatch.setattr(PGD, "init_delta", recording)
    return starts


def test_no_two_attacks_or_restarts_share_a_random_start(trained_toy, toy_data, monkeypatch):
    """Catches attacks seeded once per chunk from one shared state (PGD-20, PGD-50's first restart and CW
    then start from the same point, and the worst case has fewer independent starts than it claims)."""
    x, y = toy_data[0][:40], toy_data[1][:40]
    starts = _record_starts(monkeypatch)
    clead.evaluate(
        trained_toy, x, y, attacks=["pgd20", "pgd50", "cw"], eps=0.1, batch_size=20, progress=False, checks=False
    )
    assert {name.split("(")[0] for name, _ in starts} == {"PGD", "CW"}
    assert len(starts) == 2 * (1 + 3 + 1)  # two chunks; PGD-50 has three restarts
    for i, (name_a, a) in enumerate(starts):
        for name_b, b in starts[i + 1 :]:
            assert a.shape != b.shape or not torch.equal(a, b), f"{name_a} and {name_b} share a start"


def test_the_order_of_attacks_changes_no_outcome(trained_toy, toy_data):
    """Catches starts drawn from a generator that earlier attacks have advanced (a result that depends on
    which attacks ran before)."""
    x, y = toy_data[0][:64], toy_data[1][:64]
    kw = dict(eps=0.18, batch_size=32, progress=False, checks=False)
    a = clead.evaluate(trained_toy, x, y, attacks=["fgsm", "pgd20", "cw", "pgd50"], **kw)
    b = clead.evaluate(trained_toy, x, y, attacks=["pgd50", "cw", "pgd20", "fgsm"], **kw)
    assert 0 < a["robust_accuracy"] < a["clean_accuracy"], "eps must leave some samples robust, some not"
    assert a["per_attack"] == b["per_attack"]
    assert torch.equal(a["per_sample"]["robust"], b["per_sample"]["robust"])


def _interrupt_pgd_after(monkeypatch, calls: int):
    from clead.attacks import PGD

    real, seen = PGD.perturb, {"n": 0}

    def flaky(self, *a):
        seen["n"] += 1
        if seen["n"] > calls:
            raise KeyboardInterrupt
        return real(self, *a)

    monkeypatch.setattr(PGD, "perturb", flaky)
    return lambda: monkeypatch.setattr(PGD, "perturb", real)


def test_a_state_made_with_other_weights_is_not_reused(trained_toy, toy_data, tmp_path, monkeypatch, caplog):
    """Catches an evaluation state keyed without the weights: a paused evaluation of one model resumed on
    another would report the first model's chunks as the second's."""
    import copy

    x, y = toy_data[0][:64], toy_data[1][:64]
    other = copy.deepcopy(trained_toy)
    with torch.no_grad():
        other.head.weight.mul_(0.2)  # the same predictions, far less robust-looking margins
    kw = dict(attacks=["pgd20"], eps=0.18, batch_size=16, progress=False, checks=False)
    fresh = clead.evaluate(other, x, y, **kw)
    state = tmp_path / "state.pt"
    restore = _interrupt_pgd_after(monkeypatch, 2)
    with pytest.raises(KeyboardInterrupt):
        clead.evaluate(trained_toy, x, y, state_path=state, **kw)
    restore()
    assert clead.evaluate(trained_toy, x, y, **kw)["per_attack"] != fresh["per_attack"], "reuse must be visible"
    resumed = clead.evaluate(other, x, y, state_path=state, **kw)
    assert resumed["per_attack"] == fresh["per_attack"]
    assert torch.equal(resumed["per_sample"]["robust"], fresh["per_sample"]["robust"])
    assert "belongs to another evaluation" in caplog.text and "weights" in caplog.text


def test_a_paused_evaluation_of_best_is_not_resumed_on_last(idx_dir, tmp_path, monkeypatch, caplog):
    """Catches the state of an interrupted `clead eval RUN` (best.pt) being reused by `--checkpoint last`,
    or by the same command after best.pt changed under it (a resumed training run)."""
    import shutil

    from test_trainer import tiny

    from clead.evaluation.evaluate import evaluate_run
    from clead.io import load_torch, save_torch
    from clead.training.trainer import train

    run = train(
        tiny(idx_dir, method="standard", optimizer="adam", lr=3e-3, train_size=500, epochs=2),
        tmp_path / "r",
        progress=False,
    )
    best = load_torch(run / "best.pt")  # make best and last clearly different models
    g = torch.Generator().manual_seed(0)
    best["model"] = {
        k: v + 0.05 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
        for k, v in best["model"].items()
    }
    save_torch(run / "best.pt", best)
    kw = dict(attacks=["fgsm"], n=32, batch_size=8, progress=False, checks=False, eps=0.2)
    fresh_last = evaluate_run(run, checkpoint="last", **kw)
    fresh_best = evaluate_run(run, checkpoint="best", **kw)
    assert (fresh_best["clean_accuracy"], fresh_best["per_attack"]) != (
        fresh_last["clean_accuracy"],
        fresh_last["per_attack"],
    )
    restore = _interrupt_pgd_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(run, checkpoint="best", **kw)
    restore()
    assert (run / "eval_state.pt").is_file()
    resumed = evaluate_run(run, checkpoint="last", **kw)
    assert "belongs to another evaluation" in caplog.text and "checkpoint" in caplog.text
    assert (resumed["clean_accuracy"], resumed["per_attack"]) == (
        fresh_last["clean_accuracy"],
        fresh_last["per_attack"],
    )
    assert resumed["checkpoint_sha256"] == fresh_last["checkpoint_sha256"]
    # best.pt replaced while an evaluation of it was paused: the old chunks are not the new weights'
    caplog.clear()
    restore = _interrupt_pgd_after(monkeypatch, 1)
    with pytest.raises(KeyboardInterrupt):
        evaluate_run(run, checkpoint="best", **kw)
    restore()
    shutil.copyfile(run / "last.pt", run / "best.pt.new")
    (run / "best.pt.new").replace(run / "best.pt")
    evaluate_run(run, checkpoint="best", **kw)
    assert "belongs to another evaluation" in caplog.text and "checkpoint_sha256" in caplog.text


def test_progress_off_a_terminal_is_a_log_line_per_chunk_with_the_survivors_so_far(
    trained_toy, toy_data, tmp_path, caplog
):
    """A background evaluation (no terminal: no bar) still says how far it is: the last chunk always logs,
    with the share of attacked (clean-correct) images that survive, which equals robust / clean at the end."""
    import logging

    x, y = toy_data[0][:40], toy_data[1][:40]
    kw = dict(attacks=["fgsm"], eps=0.2, batch_size=16, checks=False, state_path=tmp_path / "myrun" / "state.pt")
    with caplog.at_level(logging.INFO, logger="clead"):
        res = clead.evaluate(trained_toy, x, y, progress=True, **kw)
    correct = round(res["clean_accuracy"] * 40)
    chunks = -(-correct // 16)
    survive = 100 * res["per_attack"]["fgsm"] * 40 / correct
    assert f"myrun: fgsm chunk {chunks}/{chunks}: {survive:.1f}% of the attacked images survive so far" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="clead"):
        clead.evaluate(trained_toy, x, y, progress=False, **kw)
    assert "chunk" not in caplog.text
