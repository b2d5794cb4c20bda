"""Image folders (ImageNet subsets and the like): ``DIR/train/<class>/*.png|jpg`` and ``DIR/test/<class>/...``
(``val/`` is accepted for ``test/``). Images are read with Pillow, converted to RGB, resized so the shorter
side is ``image_size`` and centre-cropped to ``image_size`` x ``image_size``, then held in memory as uint8."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import CleadError
from .base import DATASETS, ImageData

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}


def _read(path: Path, size: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = size / min(w, h)
            im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
            w, h = im.size
            left, top = (w - size) // 2, (h - size) // 2
            return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as e:
        raise CleadError(f"cannot read image {path}: {e}") from None


def _split(folder: Path, classes: list[str], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for k, c in enumerate(classes):
        files = sorted(p for p in (folder / c).iterdir() if p.suffix.lower() in EXTENSIONS) if (folder / c).is_dir() else []
        images += [_read(p, size) for p in files]
        labels += [k] * len(files)
    if not images:
        raise CleadError(f"{folder} holds no images in class folders ({', '.join(EXTENSIONS)})")
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, torch.tensor(labels, dtype=torch.long)


@DATASETS.register("folder")
def load_folder(data_dir: str | None = None, image_size: int | None = None, **_: object) -> ImageData:
    if not data_dir:
        raise CleadError("dataset 'folder' needs --data-dir DIR with train/ and test/ class folders")
    root = Path(data_dir)
    test_dir = next((root / d for d in ("test", "val") if (root / d).is_dir()), None)
    if not (root / "train").is_dir() or test_dir is None:
        raise CleadError(f"{root} must hold train/ and test/ (or val/) folders with one sub-folder per class")
    classes = sorted(p.name for p in (root / "train").iterdir() if p.is_dir())
    if len(classes) < 2:
        raise CleadError(f"{root / 'train'} must hold at least two class folders")
    size = image_size or 64
    train_x, train_y = _split(root / "train", classes, size)
    test_x, test_y = _split(test_dir, classes, size)
    xf = train_x.float() / 255
    mean = tuple(float(v) for v in xf.mean((0, 2, 3)))
    std = tuple(float(v) for v in xf.std((0, 2, 3)).clamp_min(1e-3))
    return ImageData(name="folder", train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                     classes=classes, mean=mean, std=std, augment=True)  # fmt: skip
