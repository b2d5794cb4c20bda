"""CIFAR and image-folder loaders on tiny data written here, the download against a server on 127.0.0.1,
batch augmentation, and the large models' contract at a small width."""

import hashlib
import http.server
import io
import pickle
import tarfile
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from clead.data import cifar, load_dataset
from clead.data.augment import random_crop_flip
from clead.errors import CleadError


def cifar_tree(root: Path, name: str = "cifar10", per_batch: int = 6) -> Path:
    folder, train_files, test_files, label_key, meta_file, names_key = cifar.LAYOUT[name]
    d = root / folder
    d.mkdir(parents=True)
    rng = np.random.default_rng(0)
    n_classes = 10 if name == "cifar10" else 100
    for f in train_files + test_files:
        batch = {
            b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
            label_key.encode(): list(rng.integers(0, n_classes, per_batch).tolist()),
        }
        (d / f).write_bytes(pickle.dumps(batch))
    (d / meta_file).write_bytes(pickle.dumps({names_key.encode(): [f"c{i}".encode() for i in range(n_classes)]}))
    return d


def test_cifar10_and_100_layouts(tmp_path):
    cifar_tree(tmp_path)
    data = load_dataset("cifar10", str(tmp_path))
    assert data.train_x.shape == (30, 3, 32, 32) and data.test_x.shape == (6, 3, 32, 32)
    assert data.train_x.dtype == torch.uint8 and data.num_classes == 10 and data.augment
    cifar_tree(tmp_path, "cifar100")
    assert load_dataset("cifar100", str(tmp_path)).num_classes == 100


def test_cifar_errors(tmp_path):
    with pytest.raises(CleadError, match="does not exist.*--download"):
        load_dataset("cifar10", str(tmp_path))
    d = cifar_tree(tmp_path)
    (d / "data_batch_3").unlink()
    with pytest.raises(CleadError, match="missing CIFAR file.*data_batch_3"):
        load_dataset("cifar10", str(tmp_path))


def test_cifar_pickles_cannot_run_code(tmp_path):
    d = cifar_tree(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("owned",))

    (d / "test_batch").write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(CleadError, match="refusing to load builtins.print"):
        load_dataset("cifar10", str(tmp_path))


@pytest.fixture
def served(tmp_path):
    """A tiny CIFAR-10 archive served over HTTP on 127.0.0.1; yields (base_url, archive_bytes, md5)."""
    src = tmp_path / "src"
    cifar_tree(src)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(src / "cifar-10-batches-py", arcname="cifar-10-batches-py")
    files = {"/cifar-10-python.tar.gz": buf.getvalue()}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body else 404)
            self.end_headers()
            if body:
                self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}", files, hashlib.md5(buf.getvalue()).hexdigest()
    server.shutdown()


def test_download_verifies_md5_and_unpacks(served, tmp_path, monkeypatch):
    url, files, md5 = served
    monkeypatch.setenv("CLEAD_CIFAR_MIRROR", url)
    monkeypatch.setitem(cifar.ARCHIVES, "cifar10", ("unused", "cifar-10-python.tar.gz", md5))
    data = load_dataset("cifar10", str(tmp_path / "dl"), download=True)
    assert data.train_x.shape == (30, 3, 32, 32)
    # a corrupted archive is refused and leaves nothing behind
    files["/cifar-10-python.tar.gz"] = files["/cifar-10-python.tar.gz"][:-10] + b"0123456789"
    with pytest.raises(CleadError, match="checksum mismatch"):
        load_dataset("cifar10", str(tmp_path / "dl2"), download=True)
    assert not list((tmp_path / "dl2").glob("*.tar.gz*"))


def test_random_crop_flip_is_a_shifted_and_flipped_copy():
    x = torch.arange(2 * 1 * 6 * 6, dtype=torch.float32).view(2, 1, 6, 6) + 1
    g = torch.Generator().manual_seed(0)
    out = random_crop_flip(x, padding=2, generator=g)
    assert out.shape == x.shape
    for i in range(2):
        # every output is some crop of the padded (and possibly flipped) image
        found = False
        for img in (x[i], x[i].flip(2)):
            padded = torch.nn.functional.pad(img, (2, 2, 2, 2))
            for dy in range(5):
                for dx in range(5):
                    found |= torch.equal(padded[:, dy : dy + 6, dx : dx + 6], out[i])
        assert found
    again = random_crop_flip(x, padding=2, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    assert torch.equal(random_crop_flip(x, padding=0, flip=False), x)


ROOT = Path(__file__).resolve().parent.parent


def test_gpu_benchmark_script_runs_tiny_on_cpu():
    import subprocess

    proc = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--tiny"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| train pgd-at | fp32 |" in proc.stdout and "| train clead | fp32 |" in proc.stdout
    assert "| PGD-10 attack | fp32 |" in proc.stdout


def _tiny_cfg(idx_dir, **kw):
    from clead.training.config import from_dict

    return from_dict(
        {
            "data_dir": str(idx_dir),
            "train_size": 32,
            "val_size": 100,
            "val_n": 16,
            "epochs": 1,
            "batch_size": 16,
            "attack_steps": 1,
            "val_attack_steps": 1,
            **kw,
        }
    )


def test_fp16_on_cpu_trains_in_fp32_with_a_warning(idx_dir, tmp_path, caplog):
    from clead.training.trainer import train

    train(_tiny_cfg(idx_dir, amp="fp16", device="cpu"), tmp_path / "r", progress=False)
    assert "needs CUDA" in caplog.text
    assert "amp: none" in (tmp_path / "r" / "config.yaml").read_text()
    # it trained, in fp32: the weights moved from their seeded start and every epoch says fp32
    from clead import run as runmod

    state = runmod.load_checkpoint(tmp_path / "r" / "best.pt")
    torch.manual_seed(0)  # the run's seed: the same initial weights as the trainer's
    start, _ = runmod.build(runmod.read_config(tmp_path / "r"), state["meta"])
    assert not torch.equal(start.state_dict()["head.weight"], state["model"]["head.weight"])
    assert all(m["amp"] == "none" for m in runmod.read_metrics(tmp_path / "r"))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_trains_on_cuda(idx_dir, tmp_path, amp):
    from clead.training.trainer import train

    train(_tiny_cfg(idx_dir, amp=amp, device="cuda", channels_last=True), tmp_path / amp, progress=False)
    assert (tmp_path / amp / "best.pt").is_file()


def test_throughput_benchmark_runs_every_setting():
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "throughput.py"),
            "--rounds",
            "1",
            "--steps",
            "1",
            "--methods",
            "pgd-at,clead",
            "--batch-size",
            "32",
            "--matmul-n",
            "256",  # the 2048 default takes minutes in bf16 on a CPU without bf16 units
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    for setting in ("fp32", "bf16+cl", "bf16+cl x2"):
        assert f"| pgd-at | {setting} |" in proc.stdout and f"| clead | {setting} |" in proc.stdout
    assert "matmul peak" in proc.stdout and "PGD-AT at K=1" in proc.stdout
