"""The command line: train -> eval -> report end to end, and every bad input as one line with exit code 2."""

import json
import subprocess
import sys

import pytest
from conftest import synthetic_images, write_idx

from clead.cli import main

TINY = [
    "--train-size",
    "64",
    "--val-size",
    "100",
    "--val-n",
    "32",
    "--epochs",
    "1",
    "--batch-size",
    "32",
    "--attack-steps",
    "2",
    "--val-attack-steps",
    "2",
    "--device",
    "cpu",
    "--quiet",
]


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_train_eval_report_end_to_end(idx_dir, tmp_path, capsys, caplog):
    run = tmp_path / "runs" / "c"
    code, _, err = run_cli(
        capsys,
        "train",
        "--method",
        "clead",
        "--data-dir",
        str(idx_dir),
        "--eps",
        "8/255",
        "--lam",
        "0.5",
        "--out",
        str(run),
        *TINY,
    )
    assert code == 0, err
    assert {"config.yaml", "last.pt", "best.pt", "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    assert "lam: 0.5" in (run / "config.yaml").read_text()
    code, out, err = run_cli(
        capsys,
        "eval",
        str(run),
        "--attacks",
        "fgsm,pgd20,apgd",
        "--n",
        "40",
        "--quiet",
        "--sweep",
        "0,0.05,0.1",
        "--sweep-n",
        "20",
        "--check-n",
        "16",
    )
    assert code == 0, err
    ev = json.loads((run / "eval.json").read_text())
    assert ev["n"] == 40 and ev["eps"] == pytest.approx(8 / 255) and set(ev["per_attack"]) == {"fgsm", "pgd20", "apgd"}
    for key in ("clean_accuracy", "robust_accuracy", "per_attack", "threat_model", "eps", "n", "seed", "checks"):
        assert key in ev
    assert ev["sweep"]["eps"] == [0, 0.05, 0.1] and len(ev["checks"]) == 7
    assert {"per_sample.csv", "eps_sweep.png"} <= {p.name for p in run.iterdir()}
    assert len((run / "per_sample.csv").read_text().splitlines()) == 41
    assert not (run / "eval_state.pt").exists()
    assert ev["robust_accuracy"] <= min(ev["per_attack"].values()) <= ev["clean_accuracy"]
    report = tmp_path / "report.md"
    code, out, _ = run_cli(capsys, "report", str(run), "--out", str(report))
    assert code == 0 and "| clead |" in out and "pgd20 %" in out and report.read_text().count("|") > 10
    # a glob such as results/SUITE/* also names files and non-run folders: skipped with a warning
    (tmp_path / "runs" / "analysis").mkdir()
    code, out, err = run_cli(capsys, "report", *map(str, sorted((tmp_path / "runs").iterdir())), str(report))
    assert code == 0 and out.count("| clead |") == 1
    assert "skipping what is not a run directory" in caplog.text and "analysis" in caplog.text
    one_line_error(capsys, ["report", str(tmp_path / "runs" / "analysis")], "no clead run")


def test_config_file_and_flags(idx_dir, tmp_path, capsys):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("method: trades\nepochs: 5\nmethod_args:\n  beta: 2.0\n")
    run = tmp_path / "r"
    code, _, err = run_cli(
        capsys, "train", "--config", str(cfg), "--data-dir", str(idx_dir), "--beta", "3", "--out", str(run), *TINY
    )
    assert code == 0, err
    text = (run / "config.yaml").read_text()
    assert "method: trades" in text and "beta: 3.0" in text and "epochs: 1" in text


def one_line_error(capsys, argv, match):
    code, out, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert match in lines[0], lines[0]


def test_bad_inputs_give_one_clear_line(idx_dir, tmp_path, capsys):
    out = str(tmp_path / "r")
    one_line_error(
        capsys,
        ["train", "--data-dir", str(tmp_path / "nowhere"), "--out", out, *TINY],
        "apt-get install -y dataset-fashion-mnist",
    )
    one_line_error(capsys, ["train", "--eps", "1.5", "--out", out], "outside [0, 1]")
    one_line_error(capsys, ["train", "--eps", "-0.1", "--out", out], "eps")
    one_line_error(
        capsys, ["train", "--method", "magic", "--out", out], "valid: ascl, clead, mart, pgd-at, standard, trades"
    )
    one_line_error(capsys, ["train", "--model", "vgg", "--out", out], "valid: preact-resnet18, small-cnn, wrn-28-10")
    one_line_error(capsys, ["train", "--method", "pgd-at", "--lam", "2", "--out", out], "has no option lam")
    one_line_error(capsys, ["train", "--method", "ascl", "--tau", "0.5", "--out", out], "has no option tau")
    one_line_error(capsys, ["train", "--method", "ascl", "--ascl-dist", "l3", "--out", out], "unknown ascl_dist")
    one_line_error(capsys, ["train", "--no-such-flag", "--out", out], "unrecognized arguments: --no-such-flag")
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("epochz: 3\n")
    one_line_error(capsys, ["train", "--config", str(bad_cfg), "--out", out], "unknown key(s) epochz")
    one_line_error(capsys, ["train", "--resume", "--out", str(tmp_path / "empty")], "holds no run")
    one_line_error(capsys, ["eval", str(tmp_path / "nope")], "does not exist")
    one_line_error(capsys, ["bench", "cifar10-cpu", "--max-hours", "-1"], "--max-hours must be > 0, got -1")


def test_bench_away_from_the_suites_says_where_it_looked(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLEAD_SUITES", raising=False)
    for argv in (["bench", "cifar10-cpu"], ["bench", "--list"], ["bench"]):
        one_line_error(capsys, argv, f"no suites in suites (under {tmp_path}); run clead bench from the repository")


def test_bad_idx_files(idx_dir, tmp_path, capsys):
    out = str(tmp_path / "r")
    labels = idx_dir / "train-labels-idx1-ubyte.gz"
    original = labels.read_bytes()
    x, _ = synthetic_images(10)
    write_idx(labels, x)  # images where labels belong: wrong shape
    one_line_error(capsys, ["train", "--data-dir", str(idx_dir), "--out", out, *TINY], "do not match")
    import gzip

    labels.write_bytes(gzip.compress(b"\x00\x00\x09\x01" + b"\x00" * 8))
    one_line_error(capsys, ["train", "--data-dir", str(idx_dir), "--out", out, *TINY], "bad magic")
    labels.write_bytes(gzip.compress(gzip.decompress(original)[:-5]))
    one_line_error(capsys, ["train", "--data-dir", str(idx_dir), "--out", out, *TINY], "truncated")


def test_existing_run_and_unknown_attack(idx_dir, tmp_path, capsys):
    run = str(tmp_path / "r")
    assert run_cli(capsys, "train", "--data-dir", str(idx_dir), "--out", run, *TINY)[0] == 0
    one_line_error(capsys, ["train", "--data-dir", str(idx_dir), "--out", run, *TINY], "--overwrite")
    one_line_error(
        capsys,
        ["eval", run, "--attacks", "pgd20,deepfool", "--quiet"],
        "valid: apgd, apgd-ce, autoattack, autoattack-plus, cw, fgsm, pgd20, pgd50",
    )
    one_line_error(capsys, ["eval", run, "--n", "0", "--quiet"], "--n must be >= 1")
    (tmp_path / "r" / "best.pt").write_bytes(b"junk")
    one_line_error(capsys, ["eval", run, "--quiet"], "corrupt")


def test_module_entry_point_exit_code(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "clead", "train", "--eps", "2", "--out", str(tmp_path / "r")],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "eps=2.0" in proc.stderr
    help_ = subprocess.run([sys.executable, "-m", "clead", "train", "--help"], capture_output=True, text=True)
    for flag in (
        "--method",
        "--model",
        "--dataset",
        "--eps",
        "--epochs",
        "--batch-size",
        "--lr",
        "--seed",
        "--config",
        "--out",
        "--resume",
        "--train-size",
        "--lam",
        "--tau",
        "--beta",
        "--attack-loss",
    ):
        assert flag in help_.stdout, flag


def test_every_help_page_is_rendered_without_format_escapes():
    """argparse %-formats argument help but prints descriptions as written: a "%%" there shows up doubled."""
    import argparse

    from clead.cli import build_parser

    parser = build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    pages = [parser.format_help(), *(p.format_help() for p in subs.choices.values())]
    assert len(pages) > 5
    for page in pages:
        assert "%%" not in page and "%(" not in page
