"""Benchmark suites (resumable, skipping finished work), full reports with confidence intervals, and the
representation analysis, on tiny synthetic data."""

import json
import math
import re
from pathlib import Path

import pytest
import torch

from clead.errors import CleadError
from clead.study import bench
from clead.study.analyze import analyze, intra_inter_ratio
from clead.study.report import wilson


def tiny_base(idx_dir) -> dict:
    """A one-epoch budget on the tiny synthetic data, shared by the test suites below."""
    return {
        "data_dir": str(idx_dir),
        "train_size": 64,
        "val_size": 100,
        "val_n": 20,
        "epochs": 1,
        "batch_size": 32,
        "attack_steps": 1,
        "val_attack_steps": 1,
        "device": "cpu",
        "eps": 0.1,
    }


@pytest.fixture
def tiny_suite(idx_dir, monkeypatch):
    suite = bench.Suite(
        name="tiny",
        title="tiny suite",
        description="test",
        base=tiny_base(idx_dir),
        runs={"standard": {"method": "standard"}, "clead": {"method": "clead"}},
        evals=[bench.EvalSpec("", ["fgsm", "pgd20"], 24, sweep=True), bench.EvalSpec("full", ["fgsm"], None)],
    )
    monkeypatch.setitem(bench.SUITES._items, "tiny", suite)
    return suite


def test_suite_runs_once_then_skips_and_reports(tiny_suite, tmp_path):
    out = tmp_path / "tiny"
    assert bench.run_suite("tiny", out, dry_run=True, progress=False)[:3] == [
        "train standard",
        "eval standard main",
        "eval standard full",
    ]
    steps = bench.run_suite("tiny", out, progress=False)
    assert steps == [
        "train standard",
        "eval standard main",
        "eval standard full",
        "train clead",
        "eval clead main",
        "eval clead full",
    ]
    assert bench.run_suite("tiny", out, progress=False) == []
    md = (out / "report.md").read_text()
    assert "| standard | standard |" in md and "[" in md and "Sanity checks" in md
    assert "clean: n=100" in md and "fgsm: n=100" in md and "pgd20: n=24" in md  # the larger n wins per cell
    html = (out / "report.html").read_text()
    # plots are linked, not embedded, and every link resolves from the report's folder
    srcs = re.findall(r"<img src='([^']+)'", html)
    assert len(srcs) >= 2 and "<table>" in html and "base64" not in html
    assert all((out / s).is_file() and not Path(s).is_absolute() for s in srcs)
    assert all((out / s).is_file() for s in re.findall(r"!\[[^]]*\]\(([^)]+)\)", md))
    metrics = json.loads((out / "clead" / "metrics.jsonl").read_text().splitlines()[0])
    assert metrics["peak_rss_mb"] > 0
    # a finished, evaluated run whose checkpoints are not kept (a fresh clone) is re-read, not trained again;
    # one with an evaluation missing is
    for pt in out.glob("*/*.pt"):
        pt.unlink()
    assert bench.run_suite("tiny", out, progress=False) == []
    assert bench.progress(tiny_suite, out) == "2 of 2 runs done"
    (out / "clead" / "eval-full.json").unlink()
    steps = bench.run_suite("tiny", out, dry_run=True, progress=False)
    assert [s.split(" (")[0] for s in steps] == ["train clead", "eval clead main", "eval clead full"]
    assert bench.progress(tiny_suite, out) == "1 of 2 runs done"  # an evaluation missing: not done
    assert bench.progress(tiny_suite, tmp_path / "nothing") == "0 of 2 runs done"


def test_suite_continues_an_interrupted_training(tiny_suite, tmp_path):
    from clead.training.trainer import train

    out = tmp_path / "tiny"
    cfg = tiny_suite.config("standard")
    cfg.epochs = 2
    tiny_suite.base["epochs"] = 2
    train(cfg, out / "standard", progress=False, stop_after=1)
    steps = bench.run_suite("tiny", out, only=["standard"], progress=False)
    assert steps[0] == "train standard"
    assert len((out / "standard" / "metrics.jsonl").read_text().splitlines()) == 2


def test_wilson_interval_matches_the_formula():
    lo, hi = wilson(0.5, 100)
    z = 1.96
    centre = (0.5 + z * z / 200) / (1 + z * z / 100)
    half = z * math.sqrt(0.25 / 100 + z * z / 40000) / (1 + z * z / 100)
    assert lo == pytest.approx(centre - half) and hi == pytest.approx(centre + half)
    assert wilson(1.0, 10)[1] == 1.0 and wilson(0.0, 10)[0] == 0.0
    assert wilson(0.9, 10000)[1] - wilson(0.9, 10000)[0] < wilson(0.9, 100)[1] - wilson(0.9, 100)[0]


def test_intra_inter_ratio_by_hand():
    import torch

    f = torch.tensor([[0.0, 0.0], [0.0, 1.0], [10.0, 0.0], [10.0, 1.0]])
    y = torch.tensor([0, 0, 1, 1])
    # within class: distance 1; across classes: 10, 10, sqrt(101), sqrt(101) (each pair counted twice)
    assert intra_inter_ratio(f, y) == pytest.approx(1 / ((10 + math.sqrt(101)) / 2))


def test_analyze_writes_metrics_and_tsne(idx_dir, tmp_path):
    from clead.training.config import from_dict
    from clead.training.trainer import train

    run = train(
        from_dict(
            {
                "data_dir": str(idx_dir),
                "train_size": 64,
                "val_size": 100,
                "val_n": 20,
                "epochs": 1,
                "batch_size": 32,
                "attack_steps": 1,
                "method": "pgd-at",
            }
        ),
        tmp_path / "r",
        progress=False,
    )
    res = analyze([run], tmp_path / "an", n=40, probe_train=200)[0]
    # the cosine by hand: the same seeded PGD-20 on the first 40 test images, features of each pair, dot / norms
    from clead import load_model
    from clead.attacks import PGD
    from clead.data import load_dataset, to_float

    model, data = load_model(run), load_dataset("fashion-mnist", str(idx_dir))
    x, y = to_float(data.test_x[:40]), data.test_y[:40]
    torch.manual_seed(0)
    x_adv = PGD(0.1, steps=20)(model, x, y)
    with torch.no_grad():
        a, b = model.features(x).double(), model.features(x_adv).double()
    cos = [float(a[i] @ b[i] / (a[i].norm() * b[i].norm())) for i in range(40)]
    assert res["cosine_clean_adv"] == pytest.approx(sum(cos) / 40, abs=1e-5)
    assert res["cosine_clean_adv"] < 1 - 1e-4  # the attack moved the features
    assert res["intra_inter_clean"] > 0
    assert 0 <= res["probe_adv"] <= res["probe_clean"] + 0.05
    assert (tmp_path / "an" / "tsne.png").stat().st_size > 1000
    assert "| r | pgd-at |" in (tmp_path / "an" / "analysis.md").read_text()


def test_extra_seeds_use_their_own_evaluations_and_get_a_seed_table(tiny_suite, tmp_path):
    tiny_suite.seeds, tiny_suite.seed_evals = (1,), [bench.EvalSpec("", ["fgsm"], 24)]
    out = tmp_path / "tiny"
    steps = bench.run_suite("tiny", out, progress=False)
    assert steps[-2:] == ["train clead-seed1", "eval clead-seed1 main"]  # no baseline but standard: C-LEAD only
    ev = json.loads((out / "clead-seed1" / "eval.json").read_text())
    assert set(ev["per_attack"]) == {"fgsm"} and ev["seed"] is not None
    assert "seed: 1" in (out / "clead-seed1" / "config.yaml").read_text()
    assert "| clead | 0, 1 |" in (out / "report.md").read_text()
    assert bench.progress(tiny_suite, out) == "2 of 2 runs done, 1 seed run"  # judged by the seed evaluations


def test_seed_table_is_mean_and_sample_std_per_group():
    from clead.study.report import seed_table

    def row(run, seed, clean, pgd, seq=None, apgd=None):
        per = {"pgd20": pgd, **({"apgd": apgd} if apgd is not None else {})}
        main = {"per_attack": per, "sequence": {"autoattack": {"apgd-t": seq}} if seq is not None else {}}
        return {"run": run, "seed": seed, "cells": {"clean": (clean, 10), "pgd20": (pgd, 10)}, "main": main}

    rows = [
        row("clead", 0, 0.8, 0.6, seq=0.55),
        row("clead-seed1", 1, 0.7, 0.5, apgd=0.45),
        row("clead-seed2", 2, 0.9, 0.7, apgd=0.65),
        row("pgd-at", 0, 0.5, 0.4, seq=0.3),
    ]
    lines = seed_table(rows)
    clead = next(line for line in lines if line.startswith("| clead |"))
    std = math.sqrt(((0.8 - 0.8) ** 2 + (0.7 - 0.8) ** 2 + (0.9 - 0.8) ** 2) / 2)  # sample std of clean
    assert clead.startswith(f"| clead | 0, 1, 2 | 80.00 ± {100 * std:.2f} | 60.00 ± {100 * std:.2f} | 55.00 ± ")
    assert clead.endswith("| - |")  # seeds 1, 2 have no AutoAttack: no mean over a subset
    assert not any(line.startswith("| pgd-at |") for line in lines)  # one run: nothing to average
    assert seed_table(rows[3:]) == []


def test_only_accepts_seed_runs_and_rejects_unknown_names(tiny_suite, tmp_path):
    tiny_suite.seeds = (1,)
    assert bench.run_suite("tiny", tmp_path / "t", only=["clead-seed1"], dry_run=True, progress=False) == [
        "train clead-seed1",
        "eval clead-seed1 main",
        "eval clead-seed1 full",
    ]
    with pytest.raises(CleadError, match="no run cleed.*clead-seed1"):
        bench.run_suite("tiny", tmp_path / "t", only=["cleed"], dry_run=True, progress=False)


def test_dry_run_says_what_resumes_and_who_gets_seeds(tiny_suite, tmp_path, monkeypatch):
    here = {"device": "cpu (Intel Xeon)", "amp": "bf16"}  # not where the epoch below ran
    monkeypatch.setattr(bench, "_this_machine", lambda amp: here)
    out = tmp_path / "t"
    tiny_suite.base = {**tiny_suite.base, "epochs": 3}
    tiny_suite.seeds, tiny_suite.seed_margin = (1, 2), 0.02
    (out / "clead").mkdir(parents=True)
    (out / "clead" / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n')
    (out / "clead" / "last.pt").write_bytes(b"state")
    (out / "standard").mkdir()  # epochs logged, but no last.pt: training starts again
    (out / "standard" / "metrics.jsonl").write_text(
        '{"epoch": 1, "seconds": 1800, "amp": "none", "device": "cpu (AMD EPYC)"}\n'
    )
    from clead.evaluation.evaluate import STATE_FORMAT
    from clead.io import save_torch, sha256_file

    (out / "clead" / "best.pt").write_bytes(b"weights")
    key = {"format": STATE_FORMAT, "checkpoint": "best", "checkpoint_sha256": sha256_file(out / "clead" / "best.pt")}
    save_torch(out / "clead" / "eval_state-full.pt", {"key": key})
    (out / "clead" / "eval_state.pt").write_bytes(b"")  # unreadable: not resumed
    steps = bench.run_suite("tiny", out, dry_run=True, progress=False)
    assert "train clead (resumes after epoch 2 of 3)" in steps
    # 3 epochs to train again at the 1,800 s the logged one took: 1.5 h
    assert (
        "train standard (starts afresh: 1 epoch(s) logged but no last.pt to resume from; about 1.5 h at the "
        "1800 s/epoch logged (cpu (AMD EPYC), fp32))" in steps
    )
    assert "eval clead full (resumes)" in steps and "eval clead main (its saved state is stale: starts afresh)" in steps
    assert (
        steps[-1] == "then seeds 1, 2 of clead and every baseline within 2 points of it (or ahead) by seed-0 AutoAttack"
    )


def test_state_progress_counts_chunks_of_the_points_attacked():
    """7 points classified correctly clean: fgsm in chunks of 4 (2 chunks), AutoAttack in chunks of 3 (3)."""
    key = {"attacks": ["fgsm", "pgd20", "autoattack"], "batch_size": 4, "autoattack_chunk": 3}
    pred = torch.tensor([1, -1, 0, 2, 2, 1, -1, 0, 3, 1])  # -1: not attacked (wrong clean)

    def st(chunks: int, seconds: float) -> dict:
        return {"pred": pred, "chunks_done": chunks, "seconds": seconds}

    state = {"key": key, "attacks": {"fgsm": st(1, 60.0)}}
    assert bench.state_progress(state) == "fgsm 1 chunks; 1 min so far"  # nothing finished: no total yet
    state["attacked"] = 7
    assert bench.state_progress(state) == "fgsm 1 of 2 chunks; 1 min so far"
    state["attacks"] |= {"fgsm": st(2, 60.0), "pgd20": st(2, 120.0)}
    assert bench.state_progress(state) == "fgsm, pgd20 done; autoattack next; 3 min so far"
    state["attacks"]["autoattack"] = st(2, 1800.0)
    assert bench.state_progress(state) == "fgsm, pgd20 done; autoattack 2 of 3 chunks; 33 min so far"
    del state["attacked"]  # a state saved before clead kept it: counted from fgsm's predictions
    assert bench.state_progress(state) == "fgsm, pgd20 done; autoattack 2 of 3 chunks; 33 min so far"
    state["attacks"]["autoattack"] = st(3, 1800.0)
    assert bench.state_progress(state) == "fgsm, pgd20, autoattack done; the sweep and checks left; 33 min so far"
    assert bench.state_progress({"key": key, "attacks": {}}) == ""


def test_dry_run_times_a_run_not_started_from_its_seed_siblings(tiny_suite, tmp_path, monkeypatch):
    monkeypatch.setattr(bench, "_this_machine", lambda amp: {"device": "cpu (AMD EPYC)", "amp": "none"})
    out = tmp_path / "t"
    tiny_suite.base = {**tiny_suite.base, "epochs": 4}
    tiny_suite.seeds = (1, 2, 3)

    def logged(run, *epochs):
        (out / run).mkdir(parents=True)
        (out / run / "metrics.jsonl").write_text(
            "".join(
                f'{{"epoch": {i + 1}, "seconds": {s}, "amp": "none", "device": "{d}"}}\n'
                for i, (s, d) in enumerate(epochs)
            )
        )

    here, gpu = "cpu (AMD EPYC)", "cuda (NVIDIA H200)"
    logged("clead", (30, gpu), (30, gpu), (30, gpu))  # more epochs, none on this machine
    logged("clead-seed2", (900, here), (600, gpu))  # the sibling with the most epochs here: median of its 900 s
    logged("clead-seedling", (5, here), (5, here))  # not a seed run of clead
    logged("standard", (7, here))  # another run
    steps = bench.run_suite("tiny", out, only=["clead-seed1", "clead-seed3"], dry_run=True, progress=False)
    # 4 epochs at 900 s: 1.0 h
    assert "train clead-seed1 (not started; about 1.0 h at the 900 s/epoch clead-seed2 logged here (" in steps[0]
    assert steps[0].endswith("cpu (AMD EPYC), fp32))")
    assert "clead-seed2 logged here" in next(x for x in steps if x.startswith("train clead-seed3"))
    evals = sum(x.startswith("eval ") for x in steps)  # none timed: no run of the suite was evaluated
    assert bench.dry_run_total(steps, 2) == (
        f"in all: {2 + evals} step(s), about 2.0 h of work ({evals} without an estimate); about 1.0 h with 2 "
        "processes side by side"
    )
    # in bf16 on a CPU of that name no sibling ran "here", but clead-seed2's fp32 epoch on it times the run better
    # than clead's three on the GPU
    monkeypatch.setattr(bench, "_this_machine", lambda amp: {"device": "cpu (AMD EPYC)", "amp": "bf16"})
    steps = bench.run_suite("tiny", out, only=["clead-seed1"], dry_run=True, progress=False)
    assert (
        steps[0]
        == "train clead-seed1 (not started; about 1.0 h at the 900 s/epoch clead-seed2 logged (cpu (AMD EPYC), fp32))"
    )
    monkeypatch.setattr(bench, "_this_machine", lambda amp: {"device": "cpu (AMD EPYC)", "amp": "none"})
    (out / "clead-seed2" / "metrics.jsonl").unlink()  # only the GPU's epochs are left: they estimate, named as such
    steps = bench.run_suite("tiny", out, only=["clead-seed1"], dry_run=True, progress=False)
    assert (
        steps[0]
        == "train clead-seed1 (not started; about 2 min at the 30 s/epoch clead logged (cuda (NVIDIA H200), fp32))"
    )
    (out / "clead" / "metrics.jsonl").unlink()
    assert bench.run_suite("tiny", out, only=["clead-seed1"], dry_run=True, progress=False)[0] == "train clead-seed1"


def test_dry_run_total_adds_the_estimates_by_hand():
    steps = [
        "skip pgd-at (in use: clead bench tiny by process 7 since 2026-12-07 06:04:45; epoch 3 of 15 trained)",
        "train clead (not started; about 58 min: clead-fgsm-rs's 115 s/epoch logged here (cpu) x 2.04, ...)",
        "eval clead main (about 1.5 h, the median of 6 like it here)",
        "eval clead full (about 1 min, as a's took here)",
        "eval clead last",
        "seeds 1, 2 of clead, pgd-at",
    ]
    # 58 + 90 + 1 = 149 min = 2.48 h; over 3 processes 49.7 min
    assert bench.dry_run_total(steps, 1) == "in all: 4 step(s), about 2.5 h of work (1 without an estimate)"
    assert bench.dry_run_total(steps, 3).endswith("(1 without an estimate); about 50 min with 3 processes side by side")
    assert bench.dry_run_total(["eval clead last"], 2) == "in all: 1 step(s), none with an estimate"
    assert bench.dry_run_total(steps[:1], 2) == ""


def test_suite_table_adds_a_column_for_attacks_beyond_the_standard_set():
    from clead.study.report import suite_markdown

    row = {
        "run": "a",
        "method": "clead",
        "cells": {"clean": (0.5, 100), "apgd-ce": (0.25, 100)},
        "worst": (0.25, 100),
        "checks": "-",
        "epoch_s": None,
        "peak_mb": None,
    }
    md = suite_markdown([row], "t")
    assert "| clean | fgsm | pgd20 | pgd50 | cw | apgd-ce | autoattack |" in md
    lo, hi = wilson(0.25, 100)
    assert f"| - | 25.00 [{100 * lo:.1f}, {100 * hi:.1f}] | - |" in md and "apgd-ce: n=100" in md


def test_suite_table_says_where_each_run_trained_and_when_it_changed_machines():
    from clead.study.report import suite_markdown, trained_on

    def m(epoch, device, s):
        return {"epoch": epoch, "device": device, "train_seconds": s}

    moved = [m(1, "GPU", 40), m(2, "GPU", 44), m(3, "cpu", 250)]
    assert trained_on(moved) == "GPU (epochs 1-2, 42 s/epoch), cpu (epoch 3, 250 s/epoch)"
    assert trained_on([m(1, "cpu", 9)]) == "cpu" and trained_on([{"epoch": 1}]) is None
    base = {"method": "clead", "cells": {}, "worst": None, "checks": "-", "epoch_s": None, "peak_mb": None}
    rows = [
        {**base, "run": "a", "metrics": moved},
        {**base, "run": "b", "metrics": [m(1, "cpu", 9)]},
        {**base, "run": "c", "metrics": [m(1, "cpu", 8)]},
        {**base, "run": "old", "metrics": [{"epoch": 1}]},
    ]
    md = suite_markdown(rows, "t")
    assert (
        "Trained on: a: GPU (epochs 1-2, 42 s/epoch), cpu (epoch 3, 250 s/epoch); b, c: cpu; "
        "old: not recorded (older run)." in md
    )
    # the precision is part of where: the same CPU in bf16, then (resumed elsewhere) in fp32 is two spans
    amp = [{**m(1, "cpu (X)", 10), "amp": "bf16"}, {**m(2, "cpu (X)", 30), "amp": "none"}]
    assert trained_on(amp) == "cpu (X), bf16 (epoch 1, 10 s/epoch), cpu (X), fp32 (epoch 2, 30 s/epoch)"
    assert "Main evaluation on" not in md  # no evaluation records its machine
    rows[0]["main"] = {"devices": {"GPU": 720.0, "cpu": 2400.0}}
    rows[1]["main"] = {"devices": {"cpu": 30.0}}
    rows[2]["main"] = {"n": 10}  # evaluated before evaluations named their machine; "old" is not evaluated
    assert "Main evaluation on: a: GPU (12 min), cpu (40 min); b: cpu; c: not recorded (older run)." in suite_markdown(
        rows, "t"
    )


def test_suite_table_times_each_run_on_one_machine_and_keys_machines_when_they_differ():
    from clead.study.report import _main_machine, suite_markdown

    def m(epoch, device, s, amp="none"):
        return {"epoch": epoch, "device": device, "amp": amp, "train_seconds": s}

    # two GPU epochs at 40 s among three CPU epochs at 1,200 s: the CPU's mean, not (80 + 3,600) / 5
    moved = [m(1, "cpu", 1200), m(2, "GPU", 40, "bf16"), m(3, "GPU", 40, "bf16"), m(4, "cpu", 1100), m(5, "cpu", 1300)]
    where, epochs = _main_machine(moved)
    assert where == "cpu, fp32" and sum(e["train_seconds"] for e in epochs) / len(epochs) == 1200
    assert _main_machine(moved[:3])[0] == "GPU, bf16"
    assert _main_machine([m(1, "cpu", 9), m(2, "GPU", 1)])[0] == "GPU, fp32"  # a tie: the later machine
    assert _main_machine([{"epoch": 1, "train_seconds": 5}]) == (None, [{"epoch": 1, "train_seconds": 5}])
    base = {"method": "clead", "cells": {}, "worst": None, "checks": "-", "peak_mb": None}
    rows = [
        {**base, "run": "a", "epoch_s": 1200.0, "epoch_on": "cpu, fp32"},
        {**base, "run": "b", "epoch_s": 25.0, "epoch_on": "GPU, bf16"},
        {**base, "run": "c", "epoch_s": 137.0, "epoch_on": None},
        {**base, "run": "d", "epoch_s": None, "epoch_on": None},
    ]
    md = suite_markdown(rows, "t")
    assert "| 1200 [m1] | - |" in md and "| 25 [m2] | - |" in md and "| 137 [m3] | - |" in md
    assert "m1 = cpu, fp32; m2 = GPU, bf16; m3 = not recorded (older run)." in md
    one = suite_markdown([rows[0], {**rows[1], "epoch_on": "cpu, fp32"}], "t")
    assert "| 25 | - |" in one and "[m1]" not in one and "s/epoch:" not in one  # one machine: no keys


def test_a_run_another_process_holds_is_left_to_it_and_named_seed_runs_do_not_wait(tiny_suite, tmp_path):
    """A second `clead bench` of the same suite: the run the first one holds (its directory's lock taken
    through another open file, as another process would) is skipped, not trained twice nor failed on."""
    import fcntl
    import os

    out = tmp_path / "tiny"
    tiny_suite.evals = [bench.EvalSpec("", ["fgsm"], 24)]
    tiny_suite.seeds, tiny_suite.seed_runs = (1,), ("clead",)
    (out / "standard").mkdir(parents=True)
    fd = os.open(out / "standard" / ".clead.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"training by process 4242")
        steps = bench.run_suite("tiny", out, dry_run=True, progress=False)
        assert steps[0] == "skip standard (in use: training by process 4242; epoch 0 of 1 trained)"
        assert steps[1] == "train clead"
        steps = bench.run_suite("tiny", out, progress=False)
        assert steps == ["train clead", "eval clead main", "train clead-seed1", "eval clead-seed1 main"]
        assert not (out / "standard" / "metrics.jsonl").exists()
        tiny_suite.seed_runs = ()  # seeds chosen by seed-0 AutoAttack need every seed-0 run: they wait
        tiny_suite.seed_subject, tiny_suite.seed_margin = "clead", 0.02
        assert bench.run_suite("tiny", out, progress=False) == []
    finally:
        os.close(fd)
    assert bench.rundir.holder(out / "standard") is None  # released: the next bench takes it
    assert bench.run_suite("tiny", out, progress=False)[:2] == ["train standard", "eval standard main"]


def test_suite_runs_side_by_side_in_worker_processes(tiny_suite, tmp_path):
    out = tmp_path / "tiny"
    steps = bench.run_suite("tiny", out, progress=False, jobs=2)
    assert sorted(steps) == sorted(
        [
            "train standard",
            "eval standard main",
            "eval standard full",
            "train clead",
            "eval clead main",
            "eval clead full",
        ]
    )
    for run in ("standard", "clead"):
        assert (out / run / "eval.json").is_file() and (out / run / "eval-full.json").is_file()
    assert (out / "report.md").is_file()
    assert bench.run_suite("tiny", out, progress=False, jobs=2) == []


def test_default_jobs_is_one_per_core_without_cuda(monkeypatch):
    import os

    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert bench.default_jobs() == (os.cpu_count() or 1)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert bench.default_jobs() == 1


@pytest.mark.parametrize("margin, expected", [(None, ["clead", "trades"]), (0.02, ["clead", "pgd-at", "trades"])])
def test_seeded_runs_are_clead_and_the_close_baselines(monkeypatch, tmp_path, margin, expected):
    from clead.study import report

    aa = {"standard": 0.0, "pgd-at": 0.595, "trades": 0.63, "mart": 0.57, "clead": 0.61}
    monkeypatch.setattr(
        report, "suite_rows", lambda dirs: [{"run": d.name, "cells": {"autoattack": (aa[d.name], 1000)}} for d in dirs]
    )
    suite = bench.Suite(
        name="s",
        description="",
        base={},
        runs={r: {"method": r} for r in aa},
        evals=[],
        seeds=(1, 2),
        seed_margin=margin,
    )
    # margin 0.02: pgd-at (1.5 points behind) and trades (ahead) qualify, mart (4 behind) does not
    assert bench._subject_and_close_baselines(suite, tmp_path) == expected
    # the policy follows seed_subject and the runs' methods, not their names: renamed, it picks the same runs
    names = {"standard": "plain", "pgd-at": "madry", "trades": "zhang", "mart": "wang", "clead": "ours"}
    aa_renamed = {names[r]: v for r, v in aa.items()}
    monkeypatch.setattr(
        report,
        "suite_rows",
        lambda dirs: [{"run": d.name, "cells": {"autoattack": (aa_renamed[d.name], 1000)}} for d in dirs],
    )
    suite.runs, suite.seed_subject = {names[r]: {"method": r} for r in aa}, "ours"
    assert bench._subject_and_close_baselines(suite, tmp_path) == [names[r] for r in expected]
    aa_renamed["plain"] = 0.9  # the no-defence run is never a baseline, however it scores
    assert bench._subject_and_close_baselines(suite, tmp_path) == [names[r] for r in expected]
    suite.seed_subject = "clead"
    with pytest.raises(CleadError, match="seed_subject 'clead' is not one of its runs"):
        bench._subject_and_close_baselines(suite, tmp_path)


def test_a_suite_run_can_start_from_another_runs_weights(idx_dir, tmp_path, monkeypatch):
    suite = bench.Suite(
        name="two",
        title="two-stage",
        description="test",
        base=tiny_base(idx_dir),
        runs={
            "pre": {"method": "standard"},
            "stage2": {
                "method": "clead",
                "init": "pre",
                "method_args": {"mode": "instance", "view_attacks": "pgd,fgsm"},
            },
        },
        evals=[bench.EvalSpec("", ["fgsm"], 24)],
    )
    monkeypatch.setitem(bench.SUITES._items, "two", suite)
    out = tmp_path / "two"
    assert suite.config("stage2", out).init == str(out / "pre")
    bench.run_suite("two", out, progress=False)
    assert f"init: {out / 'pre'}" in (out / "stage2" / "config.yaml").read_text()
    assert (out / "stage2" / "eval.json").is_file()


def test_a_training_only_stage_is_not_evaluated(tiny_suite, tmp_path):
    """Catches no_eval being ignored (a contrastive stage's untrained classifier evaluated as if it were a
    model) or applied to the other runs."""
    tiny_suite.no_eval = ("standard",)
    assert bench.run_suite("tiny", tmp_path / "t", dry_run=True, progress=False) == [
        "train standard",
        "train clead",
        "eval clead main",
        "eval clead full",
    ]


def test_tagged_threat_matrices_come_after_the_runs_and_cover_runs_of_other_suites(tiny_suite, tmp_path):
    """A suite's threat_evals run once its runs are evaluated, on its own runs and on other run directories
    named by path, attacked from the named source run; they are made once, and the report shows them and the
    outside runs; they come before the extra seeds (hours more), and may not name a seed run. Catches the
    spec's source, tag or external runs being ignored, or the matrices waiting for the seeds."""
    import shutil

    out = tmp_path / "tiny"
    bench.run_suite("tiny", out, progress=False)
    other = tmp_path / "elsewhere" / "clead"
    shutil.copytree(out / "clead", other)
    tiny_suite.runs = {"standard": {"method": "standard"}}
    tiny_suite.threat_evals = (
        bench.ThreatSpec("paper", ["transfer-pgd3"], ["standard", str(other)], transfer_from="standard", n=24),
    )
    assert bench.run_suite("tiny", out, dry_run=True, progress=False) == [
        "threats paper standard",
        f"threats paper {other}",
    ]
    assert bench.run_suite("tiny", out, progress=False) == ["threats paper standard", f"threats paper {other}"]
    for d in (out / "standard", other):
        row = json.loads((d / "eval-threats-paper.json").read_text())["threats"][0]
        assert row["attack"] == f"PGD-3 on {out / 'standard'}" and row["n"] == 24
    assert bench.run_suite("tiny", out, progress=False) == []  # made once
    md = (out / "report.md").read_text()
    assert "transfer-pgd3 (PGD-3)" in md and f"| {other} |" in md and "| clead | clead, PGD-1 |" in md
    tiny_suite.seeds, tiny_suite.seed_runs = (1,), ("standard",)
    tiny_suite.seed_evals = [bench.EvalSpec("", ["fgsm"], 24)]
    tiny_suite.threat_evals = (bench.ThreatSpec("again", ["transfer-pgd3"], ["standard"], "standard", n=24),)
    steps = bench.run_suite("tiny", out, dry_run=True, progress=False)
    assert steps[:2] + steps[3:] == ["threats again standard", "seeds 1 of standard", "eval standard-seed1 main"]
    assert steps[2].startswith("train standard-seed1 (not started; about ")  # timed from standard's epochs
    steps = bench.run_suite("tiny", out, progress=False)
    assert steps[0] == "threats again standard" and "train standard-seed1" in steps
    tiny_suite.threat_evals = (bench.ThreatSpec("s", ["transfer-pgd3"], ["standard-seed1"], "standard", n=24),)
    with pytest.raises(CleadError, match="names a seed run"):
        bench.run_suite("tiny", out, dry_run=True, progress=False)


def test_report_shows_the_reused_runs_and_compares_the_named_pairs(tiny_suite, tmp_path, monkeypatch):
    """A suite that compares its runs with a run of another suite: the report holds that run and gets the pairs
    by directory name (fails if report_with or pairs are not passed on)."""
    import clead.study.report

    out, other = tmp_path / "t", tmp_path / "other" / "pgd-at"
    for d in (out / "standard", out / "clead", other):
        d.mkdir(parents=True)
        (d / "metrics.jsonl").write_text('{"epoch": 1}\n')
        (d / "best.pt").write_bytes(b"weights")
        (d / "eval.json").write_text(json.dumps({"per_attack": {"fgsm": 0.5, "pgd20": 0.4}, "n": 24}))
        (d / "eval-full.json").write_text(json.dumps({"per_attack": {"fgsm": 0.5}, "n": 100}))
    tiny_suite.report_with = (str(other),)
    tiny_suite.pairs = (("clead", str(other)), ("standard", "clead"))
    got = {}
    monkeypatch.setattr(clead.study.report, "write_suite_report", lambda dirs, o, t, pairs: got.update(d=dirs, p=pairs))
    assert bench.run_suite("tiny", out, progress=False) == []
    assert sorted(map(str, got["d"])) == sorted(map(str, (out / "clead", out / "standard", other)))
    assert got["p"] == [("clead", "pgd-at"), ("standard", "clead")]


def test_report_only_rewrites_the_report_from_disk_and_runs_nothing(tiny_suite, tmp_path, capsys):
    """``clead bench SUITE --report-only``: the report of the evaluated runs on disk while another process trains
    the rest; fails if it trains or evaluates anything (clead has no metrics.jsonl, standard no best.pt) or
    succeeds with nothing to report."""
    from clead.cli import main
    from clead.io import write_yaml

    out = tmp_path / "t"
    d = out / "standard"
    d.mkdir(parents=True)
    write_yaml(d / "config.yaml", tiny_suite.config("standard", out).to_dict())
    (d / "metrics.jsonl").write_text('{"epoch": 1, "loss": 1.0, "val_clean": 0.5, "val_pgd": 0.25}\n')
    ev = {"per_attack": {"fgsm": 0.5}, "robust_accuracy": 0.5, "n": 24, "clean_accuracy": 0.75}
    (d / "eval.json").write_text(json.dumps(ev))
    assert main(["bench", "tiny", "--out", str(out), "--report-only", "--quiet"]) == 0
    assert "| standard | standard | 75.00" in (out / "report.md").read_text() and (out / "report.html").is_file()
    assert not (out / "clead").exists() and not (d / "best.pt").exists()
    assert main(["bench", "tiny", "--out", str(tmp_path / "empty"), "--report-only"]) == 2
    assert "nothing to report" in capsys.readouterr().err


def test_suite_table_takes_a_cell_from_the_main_evaluation_when_another_has_as_many_images(tiny_suite, tmp_path):
    """A rerun of some attacks (eval-whitebox.json, sorted before eval.json) on the same 1,000 images must not
    replace the main evaluation's cells; a larger n (eval-full.json) still wins."""
    from clead.io import write_yaml
    from clead.study.report import suite_rows

    d = tmp_path / "r"
    d.mkdir()
    write_yaml(d / "config.yaml", tiny_suite.config("standard", tmp_path).to_dict())
    (d / "metrics.jsonl").write_text('{"epoch": 1}\n')
    for tag, n, cw, fgsm in (("", 24, 0.5, 0.75), ("-whitebox", 24, 0.25, 0.25), ("-full", 100, None, 0.7)):
        per = {"fgsm": fgsm, **({"cw": cw} if cw is not None else {})}
        ev = {"per_attack": per, "n": n, "clean_accuracy": 0.9, "robust_accuracy": min(per.values())}
        (d / f"eval{tag}.json").write_text(json.dumps(ev))
    cells = suite_rows([d])[0]["cells"]
    assert cells["cw"] == (0.5, 24) and cells["fgsm"] == (0.7, 100) and cells["clean"] == (0.9, 100)


def test_seeds_go_to_every_run_within_the_margin_of_a_reference_run(tiny_suite, tmp_path, monkeypatch):
    """Runs within seed_margin of an outside reference run (by seed-0 AutoAttack) or ahead of it get the
    seeds; fails if the margin is ignored, taken the other way, or measured against C-LEAD instead."""
    import clead.study.report

    aa = {"ref": 0.50, "standard": 0.489, "clead": 0.491}
    monkeypatch.setattr(
        clead.study.report,
        "suite_rows",
        lambda dirs: [{"run": d.name, "cells": {"autoattack": (aa[d.name], 1000)}} for d in map(Path, dirs)],
    )
    tiny_suite.seeds, tiny_suite.seed_margin, tiny_suite.seed_reference = (1,), 0.01, str(tmp_path / "ref")
    assert bench._subject_and_close_baselines(tiny_suite, tmp_path / "t") == ["clead"]
    aa["standard"] = 0.6  # ahead of the reference
    assert bench._subject_and_close_baselines(tiny_suite, tmp_path / "t") == ["standard", "clead"]
    steps = bench.run_suite("tiny", tmp_path / "t", dry_run=True, progress=False)
    assert (
        steps[-1]
        == f"then seeds 1 of every run within 1 point(s) of {tmp_path / 'ref'} (or ahead) by seed-0 AutoAttack"
    )


def test_this_machine_names_the_precision_amp_resolves_to_here(monkeypatch):
    """Two CPUs sold as "AMD EPYC", one with AVX512-BF16 and one without: what the dry run calls "here" is the device
    and the precision a run's amp resolves to on it, as each logged epoch records them."""
    from clead import precision

    monkeypatch.setattr(bench.runmod, "resolve_device", lambda d: torch.device("cpu"))
    monkeypatch.setattr(precision, "cpu_model", lambda: "AMD EPYC")
    for units, auto in ((True, "bf16"), (False, "none")):
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda units=units: units)
        assert bench._this_machine("auto") == {"device": "cpu (AMD EPYC)", "amp": auto}
        assert bench._this_machine("none") == {"device": "cpu (AMD EPYC)", "amp": "none"}


def test_dry_run_estimates_from_the_epochs_this_machine_ran(tiny_suite, tmp_path, monkeypatch):
    """A run that moved between a CPU and a GPU (30 times faster here): the time left comes from the epochs
    logged on the machine the bench runs on, or from all of them where none ran there."""
    out = tmp_path / "t"
    tiny_suite.base = {**tiny_suite.base, "epochs": 7}
    (out / "clead").mkdir(parents=True)
    logged = [(1200, "cpu (AMD EPYC)", "none")] * 2 + [(40, "NVIDIA H200", "bf16")] * 3
    (out / "clead" / "metrics.jsonl").write_text(
        "".join(
            f'{{"epoch": {i + 1}, "seconds": {s}, "device": "{d}", "amp": "{a}"}}\n'
            for i, (s, d, a) in enumerate(logged)
        )
    )
    (out / "clead" / "last.pt").write_bytes(b"state")

    def plan(machine):
        monkeypatch.setattr(bench, "_this_machine", lambda amp: machine)
        return bench.run_suite("tiny", out, only=["clead"], dry_run=True, progress=False)[0]

    # 2 epochs left
    assert plan({"device": "cpu (AMD EPYC)", "amp": "none"}).endswith(
        "about 40 min at the 1200 s/epoch logged here (cpu (AMD EPYC), fp32))"
    )
    assert plan({"device": "NVIDIA H200", "amp": "bf16"}).endswith(
        "about 1 min at the 40 s/epoch logged here (NVIDIA H200, bf16))"
    )
    assert plan({"device": "cpu (Intel Xeon)", "amp": "bf16"}).endswith(
        "about 1 min at the 40 s/epoch logged (NVIDIA H200, bf16; cpu (AMD EPYC), fp32))"
    )
    # an AMD EPYC with bf16 units shares the name of the one without, but not its speed: its fp32 epochs are not
    # "here", though they time it better than the GPU's
    assert plan({"device": "cpu (AMD EPYC)", "amp": "bf16"}).endswith(
        "about 40 min at the 1200 s/epoch logged (cpu (AMD EPYC), fp32))"
    )


@pytest.mark.parametrize("select, shared", [("last", True), ("robust", False)])
def test_last_checkpoint_evaluation_is_shared_only_when_its_weights_are_best_ones(
    tiny_suite, tmp_path, monkeypatch, select, shared
):
    """Catches last.pt evaluated as best.pt (or not at all), and a shared evaluation where the weights differ."""
    import importlib

    evaluate_module = importlib.import_module(
        "clead.evaluation.evaluate"
    )  # `clead.evaluation.evaluate` is also the function

    scripted = iter([(0.5, 0.4), (0.6, 0.3)])  # robust peaks at epoch 1: best.pt != last.pt with select robust
    monkeypatch.setattr("clead.training.trainer.validate", lambda *a, **k: next(scripted))
    tiny_suite.runs = {"pgd-at": {"method": "pgd-at"}}
    tiny_suite.base = {**tiny_suite.base, "epochs": 2, "select": select}
    tiny_suite.evals = [bench.EvalSpec("", ["fgsm"], 24), bench.EvalSpec("last", ["fgsm"], 24, checkpoint="last")]
    asked = []
    real = evaluate_module.evaluate_run
    monkeypatch.setattr(evaluate_module, "evaluate_run", lambda *a, **k: asked.append(k["checkpoint"]) or real(*a, **k))
    out = tmp_path / "tiny"
    bench.run_suite("tiny", out, progress=False)
    last = json.loads((out / "pgd-at" / "eval-last.json").read_text())
    assert last["checkpoint"] == "last" and (last.get("same_weights_as") == "best") == shared
    assert asked == (["best"] if shared else ["best", "last"])
    from clead.io import sha256_file

    assert last["checkpoint_sha256"] == sha256_file(out / "pgd-at" / "last.pt")
    assert (out / "pgd-at" / "per_sample-last.csv").is_file()
    assert bench.run_suite("tiny", out, progress=False) == []  # both evaluations are complete


def test_a_suite_is_a_yaml_file_found_by_name_or_path_with_errors_naming_file_and_run(idx_dir, tmp_path, monkeypatch):
    """A user adds a suite without touching Python; a bad file or option is one line naming it."""
    mine = tmp_path / "mine"
    mine.mkdir()
    base = {k: v for k, v in tiny_base(idx_dir).items()}
    text = (
        "description: my suite\n"
        f"base: {json.dumps(base)}\n"
        "runs: {a: {method: pgd-at}, b: {method: clead, method_args: {lam: 0.5}}}\n"
        "evals: [{tag: '', attacks: [fgsm], n: 24}]\n"
        "pairs: [[b, a]]\n"
    )
    (mine / "my-suite.yaml").write_text(text)
    monkeypatch.setenv("CLEAD_SUITES", str(mine))
    suite = bench.SUITES.get("my-suite")
    assert "my-suite" in bench.SUITES.names() and suite.pairs == (("b", "a"),)
    assert suite.config("b").method_params().lam == 0.5 and suite.evals[0].attacks == ["fgsm"]
    assert bench.SUITES.get(str(mine / "my-suite.yaml")).runs == suite.runs  # by path
    (mine / "bad-key.yaml").write_text(text + "seedz: [1]\n")
    with pytest.raises(CleadError, match=r"bad-key.yaml: .*unknown key\(s\) seedz"):
        bench.SUITES.get("bad-key")
    (mine / "bad-run.yaml").write_text(text.replace("lam: 0.5", "lamb: 0.5"))
    with pytest.raises(CleadError, match=r"bad-run.yaml, run b: method 'clead' has no option lamb"):
        bench.SUITES.get("bad-run")
    with pytest.raises(CleadError, match="unknown suite 'nope'"):
        bench.SUITES.get("nope")
    (mine / "bad-subject.yaml").write_text(text + "seeds: [1]\n")  # the default subject, clead, is not a run
    with pytest.raises(CleadError, match=r"bad-subject.yaml: seed_subject 'clead' is not one of its runs \(a, b\)"):
        bench.SUITES.get("bad-subject")
    (mine / "subject.yaml").write_text(text + "seeds: [1]\nseed_subject: b\n")
    assert bench.SUITES.get("subject").seed_subject == "b"


def test_the_suite_example_in_the_docs_loads(tmp_path):
    """docs/suites.md's annotated example uses every key; it must stay a valid suite."""
    import dataclasses

    import yaml

    text = (Path(__file__).parents[1] / "docs" / "suites.md").read_text()
    example = re.search(r"### Writing a suite.*?```yaml\n(.*?)```", text, re.S).group(1)
    (tmp_path / "example.yaml").write_text(example)
    suite = bench.load_suite(tmp_path / "example.yaml")
    fields = {f.name for f in dataclasses.fields(bench.Suite)} - {"name"}
    assert set(yaml.safe_load(example)) == fields  # every key, so the docs name them all
    assert suite.seed_subject == "ours" and suite.evals[2].checkpoint == "last"


def test_seed_pairs_seed_both_runs_of_every_close_pair(tiny_suite, tmp_path):
    """Catches a pair policy that seeds only one side, ignores the margin, or seeds a pair not yet evaluated."""
    from test_report import epochs, fake_run

    out = tmp_path / "s"
    aa = {"a": 0.50, "b": 0.505, "c": 0.40, "d": 0.45}  # a-b within 1 point, c-d 5 points apart, e unevaluated
    for run, acc in aa.items():
        fake_run(out / run, {"method": "pgd-at"}, acc, 0.8, epochs((0.5, 0.3, False)))
    tiny_suite.runs = {r: {"method": "pgd-at"} for r in (*aa, "e", "f")}
    tiny_suite.pairs = (("a", "b"), ("c", "d"), ("e", "f"))
    tiny_suite.seed_pairs, tiny_suite.seed_margin = True, 0.01
    assert bench._subject_and_close_baselines(tiny_suite, out) == ["a", "b"]
    tiny_suite.seed_margin = 0.06
    assert bench._subject_and_close_baselines(tiny_suite, out) == ["a", "b", "c", "d"]


def test_seeds_by_pairs_wait_only_for_the_runs_of_the_pairs(tiny_suite, tmp_path, monkeypatch):
    """Who gets seeds by pairs depends only on the pairs' runs: another process holding a run outside every pair
    (a weight-averaging arm) does not keep this one from the seeds; holding a run of a pair does."""
    import fcntl
    import os

    tiny_suite.evals = [bench.EvalSpec("", ["fgsm"], 24)]
    tiny_suite.runs = {"standard": {"method": "standard"}, "clead": {"method": "clead"}, "pgd-at": {"method": "pgd-at"}}
    tiny_suite.pairs = (("clead", "pgd-at"),)
    tiny_suite.seeds, tiny_suite.seed_pairs, tiny_suite.seed_margin = (1,), True, 0.01
    monkeypatch.setattr(bench, "_subject_and_close_baselines", lambda suite, out: ["clead"])

    def bench_beside(held: str, dry_run: bool = False) -> list[str]:
        out = tmp_path / held
        (out / held).mkdir(parents=True, exist_ok=True)
        fd = os.open(out / held / ".clead.lock", os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return bench.run_suite("tiny", out, progress=False, dry_run=dry_run)
        finally:
            os.close(fd)

    who = "both runs of every pair within 1 point(s) of each other by seed-0 AutoAttack"
    assert bench_beside("standard", dry_run=True)[-1] == f"then seeds 1 of {who}"  # the pairs not trained yet
    assert bench_beside("standard")[-2:] == ["train clead-seed1", "eval clead-seed1 main"]
    # the pairs evaluated, only a run outside them held: who gets seeds is known, and the dry run says so
    assert bench_beside("standard", dry_run=True)[1:] == [f"seeds 1 of clead ({who})"]
    assert not any("seed" in step for step in bench_beside("pgd-at"))


def test_dry_run_times_evaluations_and_unseeded_runs_from_the_suites_other_runs(tiny_suite, tmp_path, monkeypatch):
    """An evaluation is timed by the suite's finished evaluations with the same attacks and images (here, not a
    shared copy, not another n); a run with no seed sibling by another run's epochs times the ratio of the two
    step costs in cost.json. Catches the ratio taken upside down, an evaluation of other attacks counted, or
    the run's own evaluation used."""
    here = {"device": "cpu (AMD EPYC)", "amp": "none"}
    monkeypatch.setattr(bench, "_this_machine", lambda amp: here)
    out = tmp_path / "t"
    tiny_suite.base = {**tiny_suite.base, "epochs": 4}
    tiny_suite.runs = {"a": {"method": "standard"}, "b": {"method": "clead"}, "c": {"method": "clead"}}

    def evaluated(run, tag, attacks, n, seconds, **extra):
        (out / run).mkdir(parents=True, exist_ok=True)
        ev = {"per_attack": dict.fromkeys(attacks, 0.5), "n": n, "devices": {here["device"]: seconds}, **extra}
        (out / run / (f"eval-{tag}.json" if tag else "eval.json")).write_text(json.dumps(ev))

    (out / "a").mkdir(parents=True)
    (out / "a" / "metrics.jsonl").write_text(
        "".join(
            f'{{"epoch": {i + 1}, "seconds": 100, "amp": "none", "device": "{here["device"]}"}}\n' for i in range(4)
        )
    )
    evaluated("a", "", ["fgsm", "pgd20"], 24, 600)
    evaluated("c", "", ["fgsm", "pgd20"], 24, 1800)  # median of 600 and 1800: 20 min
    evaluated("c", "full", ["fgsm"], None, 7200, same_weights_as="best")  # a copy: did not run
    evaluated("a", "full", ["fgsm", "pgd20"], None, 9999)  # other attacks than the suite's full evaluation
    cost = {"reference": "a", "runs": {"a": {"ratio": 0.5}, "b": {"ratio": 1.5}}}
    (out / "cost.json").write_text(json.dumps(cost))
    steps = bench.run_suite("tiny", out, only=["b"], dry_run=True, progress=False)
    # 4 epochs x 100 s x 3 = 20 min
    assert steps[0] == (
        "train b (not started; about 20 min: a's 100 s/epoch logged here (cpu (AMD EPYC), fp32) x 3.00, the ratio of"
        " their step costs (cost.json))"
    )
    assert steps[1] == "eval b main (about 20 min, the median of 2 like it here)"
    assert steps[2] == "eval b full"
    evaluated("b", "", ["fgsm", "pgd20"], 24, 60)
    steps = bench.run_suite("tiny", out, only=["c"], dry_run=True, progress=False)
    assert steps[0] == "train c"  # c has no measured cost and no seed sibling: no guess
    # a's 600 s and b's 60 s; c's own 1800 s would make it 10 min
    assert steps[1] == "eval c main (about 6 min, the median of 2 like it here)"


def test_dry_run_times_a_new_suites_run_from_a_run_that_trains_alike_in_a_suite_beside_it(
    tiny_suite, tmp_path, monkeypatch
):
    """A suite not started yet: its run is timed by another suite's run with the same training step (here the
    eps and seed differ, which do not change it), never by one whose method differs."""
    from clead.io import write_yaml

    here = {"device": "cpu (AMD EPYC)", "amp": "none"}
    monkeypatch.setattr(bench, "_this_machine", lambda amp: here)
    tiny_suite.base = {**tiny_suite.base, "epochs": 3}
    tiny_suite.runs = {"mine": {"method": "clead"}}
    results = tmp_path / "results"
    for other, method, seconds in (("alike", "clead", 600), ("unlike", "pgd-at", 6), ("wider", "clead", 6)):
        d = results / "older-suite" / other
        d.mkdir(parents=True)
        cfg = tiny_suite.config("mine")
        cfg.method, cfg.eps, cfg.seed = method, 0.2, 7
        cfg.method_args = cfg.method_args if method == "clead" else {}
        cfg.model_args = {"dropout": 0.3} if other == "wider" else cfg.model_args  # another model: never alike
        write_yaml(d / "config.yaml", cfg.validate().to_dict())
        epoch = {"seconds": seconds, "amp": "none", "device": here["device"]}
        logged = 1 if other == "alike" else 2  # the others have more epochs here: they would win if let in
        (d / "metrics.jsonl").write_text("".join(json.dumps({"epoch": i + 1, **epoch}) + "\n" for i in range(logged)))
    # evaluations of the same attacks and images of runs of the same model and data, either checkpoint
    tiny_suite.evals = [bench.EvalSpec("last", ["fgsm"], 24, checkpoint="last")]
    for other, seconds in (("alike", 600), ("unlike", 1800), ("wider", 99999)):
        ev = {"per_attack": {"fgsm": 0.5}, "n": 24, "checkpoint": "best", "devices": {here["device"]: seconds}}
        (results / "older-suite" / other / "eval.json").write_text(json.dumps(ev))
    (results / "older-suite" / "alike" / "eval-pgd.json").write_text(
        json.dumps({"per_attack": {"pgd20": 0.4}, "n": 24, "devices": {here["device"]: 99999}})  # other attacks
    )
    steps = bench.run_suite("tiny", results / "tiny", dry_run=True, progress=False)
    assert steps[0] == (
        "train mine (not started; about 30 min at the 600 s/epoch older-suite/alike logged here (cpu (AMD EPYC), fp32))"
    )
    assert steps[1] == "eval mine last (about 20 min, the median of 2 like it here, in the suites beside it)"


def test_several_suites_are_a_queue_left_as_soon_as_the_rest_is_held_by_others(tiny_suite, tmp_path, monkeypatch):
    """``clead bench A B``: A's runs that no other process holds, then B's; a run of A that another process holds
    does not keep this one from B (two processes given the queue keep two cores busy to its end). --out and --only
    name one suite's runs, so they refuse a queue; an unknown name fails before any work."""
    import dataclasses
    import fcntl
    import os

    from clead.cli import main

    monkeypatch.chdir(tmp_path)
    tiny_suite.evals = [bench.EvalSpec("", ["fgsm"], 24)]
    second = dataclasses.replace(tiny_suite, name="tiny2", runs={"pgd-at": {"method": "pgd-at"}})
    monkeypatch.setitem(bench.SUITES._items, "tiny2", second)
    held = tmp_path / "results" / "tiny" / "clead"
    held.mkdir(parents=True)
    fd = os.open(held / ".clead.lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.write(fd, b"training by process 4242")
        assert main(["bench", "tiny", "nope", "--quiet"]) == 2  # checked first: nothing trained
        assert not (tmp_path / "results" / "tiny" / "standard").exists()
        assert main(["bench", "tiny", "tiny2", "--out", "x", "--quiet"]) == 2
        assert main(["bench", "tiny", "tiny2", "--quiet"]) == 0
    finally:
        os.close(fd)
    assert (tmp_path / "results" / "tiny" / "standard" / "eval.json").is_file()
    assert not (held / "metrics.jsonl").exists()  # left to its holder
    assert (tmp_path / "results" / "tiny2" / "pgd-at" / "eval.json").is_file()
    steps = bench.run_suite("tiny", tmp_path / "results" / "tiny", dry_run=True, progress=False)
    assert [s.split(" (")[0] for s in steps] == ["train clead", "eval clead main"]  # released: the next bench takes it
