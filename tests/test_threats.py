"""The threat matrix evaluates the checkpoint asked for and records it; flags it cannot honour are refused."""

import json

import pytest
from test_trainer import tiny

from clead.cli import main
from clead.io import sha256_file
from clead.training.trainer import train


@pytest.fixture
def run(idx_dir, tmp_path):
    return train(tiny(idx_dir, method="pgd-at", epochs=2, select="robust"), tmp_path / "r", progress=False)


def test_threat_matrix_evaluates_and_records_the_checkpoint_asked_for(run, monkeypatch):
    import clead.run

    asked = []
    real = clead.run.load_model
    monkeypatch.setattr(
        clead.run, "load_model", lambda d, checkpoint="best": asked.append(checkpoint) or real(d, checkpoint)
    )
    rc = main(["eval", str(run), "--threats", "linf", "--threat-attack", "apgd", "-n", "8", "--checkpoint", "last",
               "--quiet"])  # fmt: skip
    assert rc == 0 and asked == ["last"]
    matrix = json.loads((run / "eval-threats.json").read_text())
    assert matrix["checkpoint"] == "last" and matrix["checkpoint_sha256"] == sha256_file(run / "last.pt")


@pytest.mark.parametrize("flag", [["--eps", "0.2"], ["--norm", "l2"], ["--attacks", "pgd20"]])
def test_threat_matrix_refuses_flags_it_would_ignore(run, flag, capsys):
    assert main(["eval", str(run), "--threats", "linf", "-n", "8", *flag, "--quiet"]) == 2
    assert f"{flag[0]} do not apply to a threat matrix" in capsys.readouterr().err
    assert not (run / "eval-threats.json").exists()


def test_a_tagged_evaluation_prints_its_own_table_and_keeps_the_untagged_files(run, capsys):
    assert main(["eval", str(run), "-n", "8", "--attacks", "fgsm", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["eval", str(run), "-n", "12", "--attacks", "pgd20", "--tag", "small", "--eps", "0.02", "--quiet"]) == 0
    table = capsys.readouterr().out
    assert "pgd20" in table and "| 12 |" in table and "fgsm" not in table
    assert json.loads((run / "eval.json").read_text())["n"] == 8  # untouched


def test_a_tagged_autoattack_evaluation_writes_its_own_robustbench_entry(run):
    """Catches a tagged evaluation (other eps) replacing the untagged robustbench.json."""
    from clead.evaluation.evaluate import evaluate_run

    common = dict(attacks=["autoattack"], n=8, checks=False, progress=False)
    evaluate_run(run, **common)
    untagged = (run / "robustbench.json").read_text()
    evaluate_run(run, tag="small", eps=0.02, **common)
    assert (run / "robustbench.json").read_text() == untagged
    small = json.loads((run / "robustbench-small.json").read_text())
    assert small["eps"] == "0.02" and "tag 'small'" in small["footnote"] and "best.pt" in small["footnote"]
