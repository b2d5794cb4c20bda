"""Fashion-MNIST (Xiao et al. 2017) from its four IDX .gz files."""

from __future__ import annotations

from pathlib import Path

from ..errors import CleadError
from .base import DATASETS, ImageData
from .idx import read_idx

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
INSTALL_HINT = (
    "install it with `apt-get update && apt-get install -y dataset-fashion-mnist` "
    f"(files go to {DEFAULT_DIR}) or pass --data-dir DIR holding the four IDX files"
)


def _find(root: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (root / name).is_file():
            return root / name
    raise CleadError(f"{root} has no {stem}.gz; {INSTALL_HINT}")


@DATASETS.register("fashion-mnist")
def load_fashion_mnist(data_dir: str | None = None, **_: object) -> ImageData:
    root = Path(data_dir or DEFAULT_DIR)
    if not root.is_dir():
        raise CleadError(f"Fashion-MNIST data directory {root} does not exist; {INSTALL_HINT}")
    t = {key: read_idx(_find(root, stem)) for key, stem in FILES.items()}
    for split in ("train", "test"):
        x, y = t[f"{split}_x"], t[f"{split}_y"]
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0]:
            raise CleadError(f"{root}: {split} images {tuple(x.shape)} and labels {tuple(y.shape)} do not match")
        if int(y.max()) >= len(CLASSES):
            raise CleadError(f"{root}: {split} label {int(y.max())} out of range 0..{len(CLASSES) - 1}")
    return ImageData(
        name="fashion-mnist",
        train_x=t["train_x"].unsqueeze(1),
        train_y=t["train_y"].long(),
        test_x=t["test_x"].unsqueeze(1),
        test_y=t["test_y"].long(),
        classes=CLASSES,
        mean=(0.2860,),
        std=(0.3530,),
    )
