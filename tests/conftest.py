"""Shared fixtures: tiny synthetic data written in the real formats, and a small trained toy model."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import pytest
import torch
from torch import nn

from clead.models.base import Classifier


def write_idx(path: Path, array: torch.Tensor) -> None:
    """Write a uint8 tensor as a gzip IDX file (magic 0x0000 08 ndim, big-endian dims)."""
    a = array.to(torch.uint8).contiguous()
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + a.numpy().tobytes())


def synthetic_images(n: int, size: int = 16, seed: int = 0, classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """Class c is a bright horizontal bar at row c + 3 over weak noise: easy to learn, easy to attack."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.randint(0, 60, (n, size, size), generator=g).to(torch.uint8)
    for c in range(classes):
        x[y == c, c + 3, 2:-2] = 220
    return x, y


@pytest.fixture
def idx_dir(tmp_path: Path) -> Path:
    """A tiny Fashion-MNIST-shaped dataset (16x16) in IDX .gz files."""
    root = tmp_path / "fmnist"
    root.mkdir()
    xtr, ytr = synthetic_images(600, seed=1)
    xte, yte = synthetic_images(100, seed=2)
    write_idx(root / "train-images-idx3-ubyte.gz", xtr)
    write_idx(root / "train-labels-idx1-ubyte.gz", ytr)
    write_idx(root / "t10k-images-idx3-ubyte.gz", xte)
    write_idx(root / "t10k-labels-idx1-ubyte.gz", yte)
    return root


class ToyNet(Classifier):
    """A small MLP following the model contract, for fast attack tests."""

    def __init__(self, size: int = 16, classes: int = 10) -> None:
        super().__init__((0.5,), (0.5,))
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(size * size, 64), nn.ReLU())
        self.head = nn.Linear(64, classes)
        self.feature_dim = 64

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(self.normalize(x))

    def classify(self, f: torch.Tensor) -> torch.Tensor:
        return self.head(f)


@pytest.fixture(scope="session")
def toy_data() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = synthetic_images(400, seed=3)
    return x.float().unsqueeze(1) / 255, y


@pytest.fixture(scope="session")
def trained_toy(toy_data) -> ToyNet:
    """ToyNet trained with plain cross-entropy to (near) 100% clean accuracy."""
    torch.manual_seed(0)
    x, y = toy_data
    model = ToyNet()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    opt.zero_grad(set_to_none=True)
    model.eval()
    assert (model(x).argmax(1) == y).float().mean() > 0.95
    return model
