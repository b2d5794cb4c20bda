"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from their Python-pickle layout, with an optional download.

``--data-dir DIR`` holds ``cifar-10-batches-py/`` or ``cifar-100-python/``. With ``--download`` a missing
folder is fetched as the official archive over HTTP, its published MD5 is checked and it is unpacked. The
pickles are read with an unpickler that only admits the numpy and builtin types these files contain.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import tarfile
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ..errors import CleadError
from .base import DATASETS, ImageData

#: The official archives and their published MD5 sums. ``CLEAD_CIFAR_MIRROR`` replaces the base URL.
ARCHIVES = {
    "cifar10": ("https://www.cs.toronto.edu/~kriz/", "cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),
    "cifar100": ("https://www.cs.toronto.edu/~kriz/", "cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),
}
LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "labels",
        "batches.meta",
        "label_names",
    ),
    "cifar100": ("cifar-100-python", ["train"], ["test"], "fine_labels", "meta", "fine_label_names"),
}
MEAN_STD = {
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
DEFAULT_DIR = "data"


class _SafeUnpickler(pickle.Unpickler):
    """Admit only what CIFAR pickles hold: builtins containers and numpy arrays."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("builtins", "bytes"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR file")


def _load_pickle(path: Path) -> dict:
    if not path.is_file():
        raise CleadError(f"missing CIFAR file {path} (partial dataset?); re-extract it or use --download")
    try:
        with open(path, "rb") as f:
            return _SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as e:
        raise CleadError(f"cannot read {path}: {e}") from None


def md5sum(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def download(name: str, root: Path) -> None:
    """Fetch, verify and unpack the archive of ``name`` into ``root``."""
    base, filename, md5 = ARCHIVES[name]
    url = os.environ.get("CLEAD_CIFAR_MIRROR", base).rstrip("/") + "/" + filename
    root.mkdir(parents=True, exist_ok=True)
    archive = root / filename
    tmp = root / (filename + ".part")
    try:
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as f:
            while block := r.read(1 << 20):
                f.write(block)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise CleadError(f"download of {url} failed: {e}") from None
    got = md5sum(tmp)
    if got != md5:
        tmp.unlink(missing_ok=True)
        raise CleadError(f"{url}: checksum mismatch (MD5 {got}, expected {md5}); the archive is corrupt, try again")
    os.replace(tmp, archive)
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")


def _stack(batches: list[dict], label_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    try:
        data = np.concatenate([b[b"data"] for b in batches])
        labels = np.concatenate([np.asarray(b[label_key.encode()]) for b in batches])
    except KeyError as e:
        raise CleadError(f"CIFAR file lacks the key {e} (wrong layout?)") from None
    if data.ndim != 2 or data.shape[1] != 3072 or len(labels) != len(data):
        raise CleadError(f"CIFAR data has shape {data.shape} with {len(labels)} labels; expected [N, 3072]")
    x = torch.from_numpy(data.reshape(-1, 3, 32, 32).astype(np.uint8))
    return x, torch.from_numpy(labels.astype(np.int64))


def load_cifar(name: str, data_dir: str | None, fetch: bool) -> ImageData:
    root = Path(data_dir or DEFAULT_DIR)
    folder, train_files, test_files, label_key, meta_file, names_key = LAYOUT[name]
    if not (root / folder).is_dir():
        if not fetch:
            raise CleadError(f"{root / folder} does not exist; put the {name} Python version there or add --download")
        download(name, root)
    train_x, train_y = _stack([_load_pickle(root / folder / f) for f in train_files], label_key)
    test_x, test_y = _stack([_load_pickle(root / folder / f) for f in test_files], label_key)
    meta = _load_pickle(root / folder / meta_file)
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get(names_key.encode(), [])]
    mean, std = MEAN_STD[name]
    return ImageData(
        name=name,
        train_x=train_x,
        train_y=train_y,
        test_x=test_x,
        test_y=test_y,
        classes=classes,
        mean=mean,
        std=std,
        augment=True,
    )


@DATASETS.register("cifar10")
def load_cifar10(data_dir: str | None = None, download: bool = False, **_: object) -> ImageData:
    return load_cifar("cifar10", data_dir, download)


@DATASETS.register("cifar100")
def load_cifar100(data_dir: str | None = None, download: bool = False, **_: object) -> ImageData:
    return load_cifar("cifar100", data_dir, download)
