"""Datasets: each one file, registered by name in `DATASETS`."""
from . import fashion_mnist  # noqa: F401  (registers itself)
from .base import DATASETS, ImageData, Splits, batches, num_batches, split, to_float


def load_dataset(name: str, data_dir: str | None = None) -> ImageData:
    return DATASETS.get(name)(data_dir)


__all__ = ["DATASETS", "ImageData", "Splits", "batches", "num_batches", "split", "to_float", "load_dataset"]
