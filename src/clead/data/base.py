"""Dataset contract and in-memory batching.

Every dataset loads into memory as ``uint8`` NCHW images and ``int64`` labels. Batches are made by
indexing those tensors with a permutation (no per-sample Python work) and scaled to [0, 1] floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch

from ..registry import Registry


@dataclass
class ImageData:
    """Training and test images of one dataset, held in memory."""

    name: str
    train_x: torch.Tensor  # uint8 [N, C, H, W]
    train_y: torch.Tensor  # int64 [N]
    test_x: torch.Tensor
    test_y: torch.Tensor
    classes: list[str]
    mean: tuple[float, ...]  # per-channel, used by the model's internal normalisation
    std: tuple[float, ...]
    augment: bool = False  # whether training uses random crop + flip by default
    order: str = ""  # how the images were put in order, when not the files' own (image folders: a seeded hash)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]


@dataclass
class Splits:
    """Train / validation / test tensors after ``--train-size`` and the validation split."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    image_shape: tuple[int, int, int]


DATASETS: Registry = Registry("dataset")


def to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 images -> float32 in [0, 1]."""
    return x.float().div_(255.0)


def split(data: ImageData, val_size: int, train_size: int | None) -> Splits:
    """Hold out the last ``val_size`` training images for validation; keep the first ``train_size`` of the rest."""
    n = data.train_x.shape[0]
    if val_size >= n:
        from ..errors import CleadError

        raise CleadError(f"val_size={val_size} leaves no training images (dataset has {n})")
    cut = n - val_size
    end = cut if train_size is None else min(train_size, cut)
    return Splits(
        train_x=data.train_x[:end],
        train_y=data.train_y[:end],
        val_x=data.train_x[cut:],
        val_y=data.train_y[cut:],
        test_x=data.test_x,
        test_y=data.test_y,
        num_classes=data.num_classes,
        image_shape=data.image_shape,
    )


def batches(
    x: torch.Tensor,
    y: torch.Tensor,
    batch_size: int,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield float [0,1] image batches and labels; shuffling uses ``generator`` so runs are reproducible."""
    n = x.shape[0]
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last else n
    for i in range(0, stop, batch_size):
        idx = order[i : i + batch_size]
        yield to_float(x[idx]), y[idx]
