"""The run-directory layer: one process at a time in a run directory (a killed holder never blocks), atomic
metrics, and corrupt artefacts that end in one line naming the file."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from test_trainer import tiny

from clead import rundir
from clead.cli import main
from clead.errors import CleadError
from clead.training.trainer import train

HOLD = """
import sys, time
from clead import rundir
with rundir.locked(sys.argv[1], "training"):
    print("held", flush=True)
    time.sleep(60)
"""


def hold(path):
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "held"
    return p


def test_a_second_process_refuses_a_locked_run_and_a_killed_holder_never_blocks(idx_dir, tmp_path):
    out = tmp_path / "run"
    holder = hold(out)
    try:
        with pytest.raises(CleadError, match=rf"in use \(training by process {holder.pid} since"):
            train(tiny(idx_dir, epochs=1), out, progress=False)
        assert [p.name for p in out.iterdir()] == [rundir.LOCK]  # nothing was written or replaced
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    train(tiny(idx_dir, epochs=1), out, progress=False)  # the kernel released the killed process's lock
    assert len(rundir.read_jsonl(out / "metrics.jsonl")) == 1


def test_two_trainings_into_one_directory_cannot_both_run(idx_dir, tmp_path, capsys):
    """The first holds the lock from before it loads data until it ends; the second exits 2 and changes nothing."""
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, "-m", "clead", "train", "--data-dir", str(idx_dir), "--train-size", "96", "--val-size",
         "100", "--val-n", "40", "--epochs", "200", "--batch-size", "32", "--attack-steps", "2", "--device", "cpu",
         "--out", str(out), "--quiet"],
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for _ in range(1200):  # up to a minute for the first process to import torch and take the lock
            if (out / rundir.LOCK).is_file() and (out / rundir.LOCK).read_text():
                break
            time.sleep(0.05)
        assert (out / rundir.LOCK).read_text().startswith("training by process")
        code = main(["train", "--data-dir", str(idx_dir), "--epochs", "1", "--device", "cpu", "--out", str(out)])
        assert code == 2 and "is in use (training by process" in capsys.readouterr().err
    finally:
        first.kill()
        first.wait()


def test_the_lock_is_reentrant_within_a_process(tmp_path):
    with rundir.locked(tmp_path / "r", "training"):
        with rundir.locked(tmp_path / "r", "evaluation"):
            pass
        assert (tmp_path / "r" / rundir.LOCK).read_text().startswith("training by process")


def test_a_refused_run_leaves_no_directory_it_created(idx_dir, tmp_path, capsys):
    """A training that fails before writing anything removes the directories it made (and only those)."""
    out = tmp_path / "new" / "deeper" / "run"
    assert main(["train", "--resume", "--out", str(out)]) == 2 and "holds no run" in capsys.readouterr().err
    assert not (tmp_path / "new").exists()
    assert main(["train", "--data-dir", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert not (tmp_path / "new").exists()
    mine = tmp_path / "mine"
    mine.mkdir()  # a directory the user made stays, with nothing added
    assert main(["train", "--resume", "--out", str(mine)]) == 2
    assert mine.is_dir() and [p.name for p in mine.iterdir()] == [rundir.LOCK]
    with rundir.locked(tmp_path / "kept", "training"):  # a block that wrote something keeps its directory
        (tmp_path / "kept" / "config.yaml").write_text("x")
    assert sorted(p.name for p in (tmp_path / "kept").iterdir()) == [rundir.LOCK, "config.yaml"]


def test_a_run_directory_under_a_file_is_one_line(idx_dir, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(CleadError, match="cannot create run directory"):
        train(tiny(idx_dir, epochs=1), tmp_path / "file" / "run", progress=False)


def test_corrupt_metrics_and_json_are_one_line_naming_the_file(idx_dir, tmp_path):
    out = train(tiny(idx_dir, epochs=2), tmp_path / "r", progress=False, stop_after=1)
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 2, "lo')  # a write cut short
    with pytest.raises(CleadError, match=r"metrics.jsonl is unreadable \(line 2"):
        train(tiny(idx_dir, epochs=2), out, resume=True, progress=False)
    (tmp_path / "eval.json").write_text('{"n": 10')
    with pytest.raises(CleadError, match=r"eval.json is unreadable .*run the step that writes it again"):
        rundir.read_json(tmp_path / "eval.json")


def test_appends_rewrite_the_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "m.jsonl"
    rundir.append_jsonl(path, {"epoch": 1})
    calls = []
    real = rundir.write_text
    monkeypatch.setattr(rundir, "write_text", lambda p, t: calls.append(t) or real(p, t))
    rundir.append_jsonl(path, {"epoch": 2})
    assert calls == ['{"epoch": 1}\n{"epoch": 2}\n']  # one atomic write of both lines, never an append
    assert [r["epoch"] for r in rundir.read_jsonl(path)] == [1, 2]
    assert json.loads(path.read_text().splitlines()[1]) == {"epoch": 2}


def test_tagged_names():
    assert rundir.eval_json("r", "small").name == "eval-small.json" and rundir.eval_json("r").name == "eval.json"
    assert rundir.robustbench_json("r", "t").name == "robustbench-t.json"
