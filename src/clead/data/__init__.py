"""Datasets: each one file, registered by name in `DATASETS`."""

from . import cifar, fashion_mnist, image_folder  # noqa: F401  (register themselves)
from .base import DATASETS, ImageData, Splits, batches, split, to_float


def load_dataset(name: str, data_dir: str | None = None, **options: object) -> ImageData:
    """Load a registered dataset; ``options`` (``download``, ``image_size``) go to loaders that use them."""
    return DATASETS.get(name)(data_dir, **options)


__all__ = ["DATASETS", "ImageData", "Splits", "batches", "split", "to_float", "load_dataset"]
