"""Trainer: exact resume, NaN stop keeping the last good checkpoint, run directory safety."""

import json

import pytest
import torch

from clead import load_model
from clead.errors import CleadError, TrainingDiverged
from clead.io import load_torch
from clead.methods.clead import CLEAD
from clead.training.config import from_dict
from clead.training.trainer import lr_at, train


def tiny(idx_dir, **kw):
    base = dict(
        data_dir=str(idx_dir),
        train_size=96,
        val_size=100,
        val_n=40,
        epochs=3,
        batch_size=32,
        attack_steps=2,
        val_attack_steps=2,
        optimizer="sgd",
        lr=0.05,
        device="cpu",
    )
    return from_dict({**base, **kw})


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(idx_dir, tmp_path):
    full = train(tiny(idx_dir), tmp_path / "full", progress=False)
    part = tmp_path / "part"
    train(tiny(idx_dir), part, progress=False, stop_after=1)
    assert len((part / "metrics.jsonl").read_text().splitlines()) == 1
    train(tiny(idx_dir), part, resume=True, progress=False)
    a, b = load_torch(full / "last.pt"), load_torch(part / "last.pt")
    assert a["epoch"] == b["epoch"] == 2
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    for k in a["method"]:
        assert torch.equal(a["method"][k], b["method"][k]), k
    lines = [json.loads(s) for s in (part / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2, 3]
    assert {"loss", "ce_adv", "con", "val_clean", "val_pgd", "seconds"} <= set(lines[0])
    from clead.distributed import device_name

    assert {m["device"] for m in lines} == {
        device_name(torch.device("cpu"))
    }  # where each epoch ran: a resumed run may change machines


def test_load_model_returns_the_classifier_in_eval_mode(idx_dir, tmp_path):
    out = train(tiny(idx_dir, epochs=1, method="clead"), tmp_path / "r", progress=False)
    model = load_model(out)
    assert not model.training
    x = torch.rand(4, 1, 16, 16)
    assert model(x).shape == (4, 10)
    # the projection head is trained and kept for resuming (last.pt), never part of the classifier
    assert any(k.startswith("projector") for k in load_torch(out / "last.pt")["method"])
    assert not any("projector" in k for k in model.state_dict())
    assert not any("projector" in k for k in load_torch(out / "best.pt")["model"])


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(idx_dir, tmp_path, monkeypatch):
    real = CLEAD.loss

    def nan_from_second_epoch(self, model, x, y, epoch):
        loss, parts = real(self, model, x, y, epoch)
        return (loss * float("nan") if epoch >= 1 else loss), parts

    monkeypatch.setattr(CLEAD, "loss", nan_from_second_epoch)
    out = tmp_path / "r"
    with pytest.raises(TrainingDiverged, match="loss became nan at epoch 2, step 1.*last good checkpoint.*epoch 1"):
        train(tiny(idx_dir, epochs=2), out, progress=False)
    state = load_torch(out / "last.pt")
    assert state["epoch"] == 0
    assert all(torch.isfinite(v).all() for v in state["model"].values())
    assert load_model(out, "last")(torch.rand(2, 1, 16, 16)).isfinite().all()


def test_run_directory_is_never_silently_overwritten(idx_dir, tmp_path):
    out = train(tiny(idx_dir, epochs=1), tmp_path / "r", progress=False)
    with pytest.raises(CleadError, match="already holds a run.*--resume.*--overwrite"):
        train(tiny(idx_dir, epochs=1), out, progress=False)
    with pytest.raises(CleadError, match="config differs in seed"):
        train(tiny(idx_dir, epochs=1, seed=3), out, resume=True, progress=False)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(CleadError, match="not a clead run"):
        train(tiny(idx_dir, epochs=1), other, overwrite=True, progress=False)
    assert (other / "thesis.tex").read_text() == "precious"
    train(tiny(idx_dir, epochs=1, seed=3), out, overwrite=True, progress=False)
    assert "seed: 3" in (out / "config.yaml").read_text()


def test_resume_from_missing_or_corrupt_checkpoint_leaves_files_untouched(idx_dir, tmp_path):
    with pytest.raises(CleadError, match="holds no run"):
        train(tiny(idx_dir), tmp_path / "none", resume=True, progress=False)
    out = train(tiny(idx_dir, epochs=1), tmp_path / "r", progress=False)
    (out / "last.pt").write_bytes(b"not a checkpoint")

    def files():  # the run's artefacts; the lock file says who holds the directory now, nothing about the run
        return {p.name: p.read_bytes() for p in out.iterdir() if p.name != ".clead.lock"}

    before = files()
    with pytest.raises(CleadError, match="unreadable.*corrupt"):
        train(tiny(idx_dir, epochs=1), out, resume=True, progress=False)
    assert files() == before


def test_lr_schedules():
    cos = from_dict({"lr": 0.1, "schedule": "cosine"})
    assert lr_at(cos, 0) == pytest.approx(0.1) and lr_at(cos, 0.5) == pytest.approx(0.05) and lr_at(cos, 1) < 1e-12
    pw = from_dict({"lr": 0.1, "schedule": "piecewise", "milestones": [0.5, 0.75]})
    assert [lr_at(pw, p) for p in (0.4, 0.5, 0.8)] == pytest.approx([0.1, 0.01, 0.001])
    cyc = from_dict({"lr": 0.2, "schedule": "cyclic", "cyclic_peak": 0.4})
    expected = [0.0, 0.2 * 0.2 / 0.4, 0.2, 0.2 * 0.3 / 0.6, 0.0]  # linear up to lr at 0.4, linear down to 0
    assert [lr_at(cyc, p) for p in (0, 0.2, 0.4, 0.7, 1.0)] == pytest.approx(expected)
    with pytest.raises(CleadError, match="cyclic_peak"):
        from_dict({"schedule": "cyclic", "cyclic_peak": 1.0})


@pytest.mark.parametrize(
    "method, select, best_epoch",
    [
        ("standard", "auto", 1),
        ("standard", "robust", 0),
        ("pgd-at", "auto", 0),
        ("pgd-at", "clean", 1),
        ("standard", "last", 2),
    ],
)
def test_best_checkpoint_is_the_epoch_the_selection_rule_names(
    idx_dir, tmp_path, monkeypatch, method, select, best_epoch
):
    # validation (clean, robust) per epoch: robust peaks at epoch 0, clean at epoch 1
    scripted = iter([(0.5, 0.3), (0.7, 0.2), (0.6, 0.25)])
    monkeypatch.setattr("clead.training.trainer.validate", lambda *a, **k: next(scripted))
    out = train(tiny(idx_dir, method=method, select=select, epochs=3, attack_steps=1), tmp_path / "r", progress=False)
    assert [json.loads(s)["val_clean"] for s in (out / "metrics.jsonl").read_text().splitlines()] == [0.5, 0.7, 0.6]
    assert load_torch(out / "best.pt")["epoch"] == best_epoch


def test_unknown_selection_rule_is_an_error(idx_dir):
    with pytest.raises(CleadError, match="unknown select 'best'"):
        tiny(idx_dir, select="best")


def test_apgd_ce_validation_attack_is_at_least_as_strong_as_pgd(idx_dir, monkeypatch):
    """--val-attack apgd-ce validates with AutoAttack's APGD-CE; on the same model it leaves no more accuracy
    than PGD-2 (up to one image), and it is recorded in the metrics."""
    from clead import run as runmod
    from clead.data import load_dataset, split
    from clead.training.trainer import validate

    cfg = tiny(idx_dir, method="standard", epochs=1, eps=0.2)
    data = load_dataset(cfg.dataset, cfg.data_dir)
    s = split(data, cfg.val_size, cfg.train_size)
    torch.manual_seed(0)
    model, _ = runmod.build(cfg, runmod.dataset_meta(data))
    x, y = s.val_x[:40], s.val_y[:40]
    clean_p, pgd = validate(model, cfg, x, y, torch.device("cpu"))
    cfg_a = tiny(idx_dir, method="standard", epochs=1, eps=0.2, val_attack="apgd-ce")
    clean_a, apgd = validate(model, cfg_a, x, y, torch.device("cpu"))
    assert clean_a == clean_p
    assert apgd <= pgd + 1 / 40


def test_val_attack_is_recorded_and_unknown_ones_refused(idx_dir, tmp_path):
    out = train(tiny(idx_dir, method="standard", epochs=1, val_attack="apgd-ce"), tmp_path / "r", progress=False)
    assert json.loads((out / "metrics.jsonl").read_text())["val_attack"] == "apgd-ce"
    with pytest.raises(CleadError, match="unknown val_attack 'fab'; valid: pgd, apgd-ce"):
        tiny(idx_dir, val_attack="fab")


def test_init_loads_exactly_the_source_weights(idx_dir, tmp_path):
    from clead import run as runmod
    from clead.data import load_dataset

    src = train(tiny(idx_dir, method="standard", epochs=2), tmp_path / "pre", progress=False)
    cfg = tiny(idx_dir, method="clead", epochs=1, init=str(src), init_checkpoint="last")
    meta = runmod.dataset_meta(load_dataset(cfg.dataset, cfg.data_dir))
    torch.manual_seed(123)
    model, _ = runmod.build(cfg, meta)
    assert runmod.init_from(model, cfg, meta) == 1  # last.pt is the second epoch
    want = load_torch(src / "last.pt")["model"]
    assert set(model.state_dict()) == set(want)
    for k, v in model.state_dict().items():
        assert torch.equal(v, want[k]), k
    # end to end: the second stage trains from there and records where it started
    out = train(cfg, tmp_path / "stage2", progress=False)
    text = (out / "config.yaml").read_text()
    assert f"init: {src}" in text and "init_checkpoint: last" in text


def test_init_refuses_another_architecture(idx_dir, tmp_path):
    src = train(tiny(idx_dir, method="standard", epochs=1), tmp_path / "pre", progress=False)
    with pytest.raises(CleadError, match="architectures must match"):
        train(
            tiny(idx_dir, method="standard", epochs=1, model="preact-resnet18", model_args={"width": 8}, init=str(src)),
            tmp_path / "b",
            progress=False,
        )
    with pytest.raises(CleadError, match="not a clead run|does not exist"):
        train(
            tiny(idx_dir, method="standard", epochs=1, init=str(tmp_path / "missing")), tmp_path / "c", progress=False
        )
    with pytest.raises(CleadError, match="unknown init_checkpoint"):
        tiny(idx_dir, init=str(src), init_checkpoint="final")


def test_linear_probe_trains_the_head_only_and_keeps_batch_norm_statistics(idx_dir, tmp_path):
    """Catches a linear probe whose frozen features still move: weights given to the optimizer, or batch
    norm running statistics updated by training-mode forwards (a network with batch norm is used)."""
    arch = dict(model="preact-resnet18", model_args={"width": 4})
    src = train(tiny(idx_dir, method="standard", epochs=1, **arch), tmp_path / "pre", progress=False)
    cfg = tiny(
        idx_dir, method="standard", epochs=2, init=str(src), init_checkpoint="last", freeze_features=True, **arch
    )
    out = train(cfg, tmp_path / "probe", progress=False)
    before, after = load_torch(src / "last.pt")["model"], load_torch(out / "last.pt")["model"]
    assert any("running_mean" in k for k in before), "the test needs batch norm"
    for k, v in after.items():
        if k.startswith("head."):
            assert not torch.equal(v, before[k]), f"{k} did not learn"
        else:
            assert torch.equal(v, before[k]), f"{k} moved in a linear probe"
    with pytest.raises(CleadError, match="--init"):
        tiny(idx_dir, freeze_features=True)


def test_off_a_terminal_training_logs_how_far_each_epoch_is(idx_dir, tmp_path, monkeypatch, caplog):
    """A background run has no bar: every PROGRESS_LINE_SECONDS a line names the step, the running mean loss
    and the time left in the epoch (here every step but the last, which the epoch's own line follows); none
    with progress off."""
    import logging

    import clead.training.trainer as trainer

    monkeypatch.setattr(trainer, "PROGRESS_LINE_SECONDS", 0.0)
    with caplog.at_level(logging.INFO, logger="clead"):
        train(tiny(idx_dir, epochs=1), tmp_path / "bg", progress=True)  # pytest captures: not a terminal
    lines = [r.getMessage() for r in caplog.records if " step " in r.getMessage()]
    assert [ln.split("  ")[0] for ln in lines] == ["bg: epoch 1/1 step 1/3 (33%)", "bg: epoch 1/1 step 2/3 (67%)"]
    assert all("min left in this epoch" in ln for ln in lines)
    assert all(float(ln.split("loss ")[1].split()[0]) > 0 for ln in lines)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="clead"):
        train(tiny(idx_dir, epochs=1), tmp_path / "quiet", progress=False)
    assert not any(" step " in r.getMessage() for r in caplog.records)


def test_a_run_with_amp_auto_resumes_on_a_machine_of_other_precision(idx_dir, tmp_path, monkeypatch):
    """amp auto resolves per machine (bf16 on a GPU or a CPU with bf16 units, fp32 elsewhere): a suite moved
    between such machines continues in the new machine's precision and records it per epoch, while an explicit
    precision that differs from the run's is still refused."""
    from clead import precision

    out = tmp_path / "r"
    train(tiny(idx_dir, epochs=2, amp="bf16"), out, progress=False, stop_after=1)
    with pytest.raises(CleadError, match="config differs in amp"):
        train(tiny(idx_dir, epochs=2, amp="none"), out, resume=True, progress=False)
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)  # a machine without bf16 units
    train(tiny(idx_dir, epochs=2, amp="auto"), out, resume=True, progress=False)
    lines = [json.loads(s) for s in (out / "metrics.jsonl").read_text().splitlines()]
    assert [(m["epoch"], m["amp"]) for m in lines] == [(1, "bf16"), (2, "none")]
    assert "amp: bf16" in (out / "config.yaml").read_text()  # the precision the run started in


def test_best_checkpoint_in_half_precision_is_what_evaluation_runs_on(idx_dir, tmp_path):
    """best_dtype float16 halves best.pt (a full-width model must come back from a lent machine under 16 MiB a
    file); load_model then gives exactly the rounded weights, in fp32; last.pt keeps full precision."""
    out = train(tiny(idx_dir, method="pgd-at", epochs=1, best_dtype="float16", select="last"), tmp_path / "r",
                progress=False)  # fmt: skip
    best, last = load_torch(out / "best.pt")["model"], load_torch(out / "last.pt")["model"]
    floats = [k for k, v in last.items() if v.is_floating_point()]
    assert floats and all(best[k].dtype == torch.float16 for k in floats)
    assert all(last[k].dtype == torch.float32 for k in floats)
    model = load_model(out)
    for k in floats:
        assert torch.equal(model.state_dict()[k], last[k].half().float()), k
    with pytest.raises(CleadError, match="unknown best_dtype"):
        tiny(idx_dir, best_dtype="bfloat16")
