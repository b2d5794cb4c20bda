"""A checkpoint's data meta is checked against the data before any forward pass, wherever a model meets data."""

import pytest
from conftest import synthetic_images, write_idx
from test_trainer import tiny

from clead.cli import main
from clead.errors import CleadError
from clead.evaluation.evaluate import evaluate_run
from clead.training.trainer import train


def reshape_data(root, size):
    """Rewrite the IDX dataset at ``root`` with images of another size (the data changed under a run)."""
    for split, n, seed in (("train", 600, 1), ("t10k", 100, 2)):
        x, y = synthetic_images(n, size=size, seed=seed)
        write_idx(root / f"{split}-images-idx3-ubyte.gz", x)
        write_idx(root / f"{split}-labels-idx1-ubyte.gz", y)


def test_eval_and_resume_refuse_a_checkpoint_made_for_other_data(idx_dir, tmp_path):
    run = train(tiny(idx_dir, method="pgd-at", epochs=2), tmp_path / "r", progress=False, stop_after=1)
    reshape_data(idx_dir, 20)
    with pytest.raises(CleadError, match=r"best.pt was made for data with image shape \[1, 16, 16\].*\[1, 20, 20\]"):
        evaluate_run(run, n=8, attacks=["fgsm"], progress=False)
    with pytest.raises(CleadError, match=r"last.pt \(--resume\) was made for data with image shape"):
        train(tiny(idx_dir, method="pgd-at", epochs=2), run, resume=True, progress=False)


def test_transfer_and_init_refuse_a_model_of_other_data(idx_dir, tmp_path, capsys):
    other_dir = tmp_path / "other-data"
    other_dir.mkdir()
    reshape_data(other_dir, 20)
    a = train(tiny(idx_dir, method="pgd-at", epochs=1), tmp_path / "a", progress=False)
    b = train(tiny(other_dir, method="standard", epochs=1), tmp_path / "b", progress=False)
    assert main(["eval", str(a), "--threats", "transfer", "--transfer-from", str(b), "-n", "8", "--quiet"]) == 2
    assert f"--transfer-from {b} was made for data with image shape [1, 20, 20]" in capsys.readouterr().err
    with pytest.raises(CleadError, match=f"--init {b} was made for data with image shape"):
        train(tiny(idx_dir, method="pgd-at", epochs=1, init=str(b)), tmp_path / "c", progress=False)
