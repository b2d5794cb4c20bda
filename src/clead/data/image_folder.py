"""Image folders (CIFAR-10 as JPEG files, ImageNet subsets and the like): ``DIR/train/<class>/*.jpg|png`` and
``DIR/test/<class>/...`` (``val/`` is accepted for ``test/``), or the same tree inside a ``.tar.gz`` / ``.tar``
archive (one top-level folder above ``train/`` is allowed), read without unpacking.

* **Labels** are the class folders of ``train/`` in sorted order (as torchvision's ImageFolder).
* **Order**: the images of each split are put in a fixed pseudo-random order, sorted by a hash of
  ``ORDER_SEED`` and their ``class/file`` path, so the same on every machine and independent of the order
  the files are listed in. Every "first N" (``--train-size``, the validation split, ``clead eval --n``, the
  sweep and the checks) is therefore a class-balanced sample, never "airplanes only". The order's name is
  recorded in every checkpoint's ``meta`` (``order``).
* **Size**: images are converted to RGB; with ``image_size`` they are resized so the shorter side is
  ``image_size`` and centre-cropped to a square; without it they keep their own size when all share one
  square size (CIFAR-10: 32), else they become 64 x 64.
* **Cache**: the decoded uint8 arrays are cached in ``$CLEAD_CACHE`` (default ``~/.cache/clead``), keyed by
  the source's content (a SHA-256 of an archive's bytes, or of every image file's path and bytes in a folder:
  a file changed in place with its size and mtime kept is seen) and the size option, and stored with a
  checksum of the arrays that is verified on every load. A cache whose key or checksum differs, or that is
  truncated or corrupt, is rebuilt with one log line, never used; writes are atomic; older caches of the same
  source are removed. The first load decodes in parallel threads.
"""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import CleadError
from ..io import key_digest, load_keyed_npz, save_keyed_npz, sha256_file
from .base import DATASETS, ImageData

EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
ORDER_SEED = "clead-folder-order-v1"
CACHE_FORMAT = 2  # 2: keyed by content, arrays checksummed
DEFAULT_SIZE = 64
SPLITS = ("train", "test")


def _decode(data: bytes | Path, name: str) -> "np.ndarray":
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data) if isinstance(data, bytes) else data) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except Image.DecompressionBombError as e:  # a header declaring a huge image: refused before decoding
        raise CleadError(f"image {name} is too large to decode safely: {e}") from None
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise CleadError(f"cannot read image {name}: {e}") from None


def _resize(a: "np.ndarray", size: int) -> "np.ndarray":
    """Shorter side to ``size`` (bilinear), then the centre ``size`` x ``size`` square."""
    from PIL import Image

    h, w = a.shape[:2]
    if (h, w) == (size, size):
        return a
    im = Image.fromarray(a)
    s = size / min(w, h)
    im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.BILINEAR)
    w, h = im.size
    left, top = (w - size) // 2, (h - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)), dtype=np.uint8)


class _Source:
    """The images of a folder tree or an archive: ``entries[split]`` = sorted (class, file, stamp) and a reader."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._entries: dict[str, list[tuple[str, str, str]]] = {}
        if not root.is_file():
            self._list_folder(root)  # the listing is part of a folder's cache key

    @property
    def entries(self) -> dict[str, list[tuple[str, str, str]]]:
        if not self._entries:  # an archive is listed only when it has to be decoded
            self._list_archive(self.root)
        return self._entries

    def _keep(self, name: str) -> bool:
        return Path(name).suffix.lower() in EXTENSIONS

    def _list_folder(self, root: Path) -> None:
        test = next((d for d in ("test", "val") if (root / d).is_dir()), None)
        if not (root / "train").is_dir() or test is None:
            raise CleadError(
                f"{root} must hold train/ and test/ (or val/) folders with one sub-folder per class "
                "(or be a .tar.gz / .tar archive of such a tree)"
            )
        self.dirs = {"train": root / "train", "test": root / test}
        folders = {}
        for split, d in self.dirs.items():
            rows = []
            folders[split] = sorted(p.name for p in d.iterdir() if p.is_dir())
            for c in folders[split]:
                for f in sorted(os.scandir(d / c), key=lambda e: e.name):
                    if f.is_file() and self._keep(f.name):
                        st = f.stat()
                        rows.append((c, f.name, f"{st.st_size}:{st.st_mtime_ns}"))
            self._entries[split] = rows
        _check_classes(root, folders, self._entries, {"train": "train", "test": test})

    def _list_archive(self, path: Path) -> None:
        try:
            with tarfile.open(path, "r:*") as tar:
                every = tar.getmembers()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
            raise CleadError(f"cannot read archive {path} (truncated or corrupt?): {e}") from None
        # regular files and hard links to them (followed as `tar -x` would); symlinks and devices are skipped
        members = [m for m in every if (m.isfile() or m.islnk()) and self._keep(m.name)]
        parts = [Path(m.name).parts for m in members]
        # train/<class>/<file> at depth 0 or under one top-level folder
        depth = next((d for d in (0, 1) if any(len(p) == d + 3 and p[d] == "train" for p in parts)), None)
        if depth is None:
            raise CleadError(f"{path} holds no train/<class>/<image> tree (at the top or under one folder)")
        roots = sorted({p[0] for p in parts if len(p) == depth + 3 and p[depth] == "train"}) if depth else []
        if len(roots) > 1:
            raise CleadError(f"{path} holds {len(roots)} trees ({', '.join(roots)}); keep one train/ and test/ tree")
        test = "test" if any(len(p) == depth + 3 and p[depth] == "test" for p in parts) else "val"
        self.members: dict[tuple[str, str, str], str] = {}
        for m, p in zip(members, parts):
            if len(p) == depth + 3 and p[depth] in ("train", test):
                split = "train" if p[depth] == "train" else "test"
                self.members[(split, p[depth + 1], p[depth + 2])] = m.name
        for split in SPLITS:
            self._entries[split] = sorted((c, f, "") for (s, c, f) in self.members if s == split)
        if not self._entries["test"]:
            raise CleadError(f"{path} holds no test/ (or val/) images")
        folders = {split: set() for split in SPLITS}  # class folders, empty ones included (directory members)
        for m in every:
            p = Path(m.name).parts
            if len(p) >= depth + 2 and p[depth] in ("train", test) and (m.isdir() or len(p) > depth + 2):
                folders["train" if p[depth] == "train" else "test"].add(p[depth + 1])
        _check_classes(
            path, {k: sorted(v) for k, v in folders.items()}, self._entries, {"train": "train", "test": test}
        )

    def key(self, image_size: int | None) -> dict[str, object]:
        """What the decoded arrays depend on."""
        if self.root.is_file():
            listing = "archive-sha256:" + sha256_file(self.root)
        else:
            h = hashlib.sha256()
            for split in SPLITS:
                for c, f, _ in self.entries[split]:
                    h.update(f"{split}/{c}/{f}\0".encode())
                    h.update(hashlib.sha256((self.dirs[split] / c / f).read_bytes()).digest())
            listing = "files-sha256:" + h.hexdigest()
        return {
            "format": CACHE_FORMAT,
            "source": str(self.root.resolve()),
            "listing": listing,
            "image_size": image_size,
            "order": ORDER_SEED,
        }

    def read_all(self, split: str, threads: int) -> list["np.ndarray"]:
        rows = self.entries[split]
        if self.root.is_file():
            wanted = {self.members[(split, c, f)]: i for i, (c, f, _) in enumerate(rows)}
            blobs: list[bytes] = [b""] * len(rows)
            try:
                with tarfile.open(self.root, "r:*") as tar:  # one pass through the stream
                    for m in tar:
                        i = wanted.get(m.name)
                        if i is not None:  # a hard link reads its target's bytes
                            blobs[i] = tar.extractfile(m).read()  # type: ignore[union-attr]
            except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
                raise CleadError(f"cannot read archive {self.root} (truncated or corrupt?): {e}") from None
            jobs: list[Callable[[], np.ndarray]] = [
                (lambda b=b, n=f"{self.root}:{c}/{f}": _decode(b, n)) for b, (c, f, _) in zip(blobs, rows)
            ]
        else:
            d = self.dirs[split]
            jobs = [(lambda p=d / c / f: _decode(p, str(p))) for c, f, _ in rows]
        with ThreadPoolExecutor(max_workers=threads) as pool:
            return list(pool.map(lambda job: job(), jobs, chunksize=256))


def _check_classes(root: Path, folders: dict[str, list[str]], entries: dict, names: dict[str, str]) -> None:
    """The class folders must agree: an empty one would shift every later label by one (the labels are the
    sorted class folders of train/), and a class in one split only cannot be scored in the other."""
    for split in SPLITS:
        has = {c for c, _, _ in entries[split]}
        empty = [c for c in folders[split] if c not in has]
        if empty:
            raise CleadError(
                f"{root}: {names[split]}/{empty[0]} holds no images ({', '.join(sorted(EXTENSIONS))}); every class "
                "folder needs some (an empty one would shift the labels of the classes after it): fill or remove it"
            )
    only = sorted(set(folders["train"]) ^ set(folders["test"]))
    if only:
        c = only[0]
        where, other = ("train", names["test"]) if c in folders["train"] else (names["test"], "train")
        raise CleadError(f"{root}: class {c!r} is in {where}/ but not in {other}/; both splits need the same classes")


def order(rows: list[tuple[str, str, str]]) -> "np.ndarray":
    """The fixed shuffle: indices of ``rows`` sorted by blake2b(ORDER_SEED, class/file)."""
    h = [hashlib.blake2b(f"{ORDER_SEED}/{c}/{f}".encode(), digest_size=8).digest() for c, f, _ in rows]
    return np.array(sorted(range(len(rows)), key=h.__getitem__), dtype=np.int64)


def channel_stats(x: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and std of uint8 NCHW images in [0, 1] units, in chunks (no full float copy)."""
    c = x.shape[1]
    s, s2, count = torch.zeros(c, dtype=torch.float64), torch.zeros(c, dtype=torch.float64), 0
    for i in range(0, len(x), chunk):
        part = x[i : i + chunk].to(torch.float64).div_(255).transpose(0, 1).reshape(c, -1)
        s += part.sum(1)
        s2 += (part * part).sum(1)
        count += part.shape[1]
    mean = s / count
    var = (s2 - count * mean * mean) / max(count - 1, 1)
    return tuple(float(v) for v in mean), tuple(float(v) for v in var.clamp_min(0).sqrt().clamp_min(1e-3))


def cache_dir() -> Path:
    return Path(os.environ.get("CLEAD_CACHE") or Path.home() / ".cache" / "clead")


def _build(src: _Source, image_size: int | None, classes: list[str]) -> dict[str, "np.ndarray"]:
    threads = max(1, min(8, os.cpu_count() or 1))
    out: dict[str, np.ndarray] = {}
    decoded = {s: src.read_all(s, threads) for s in SPLITS}
    if image_size is None:
        shapes = {a.shape for s in SPLITS for a in decoded[s]}
        own = next(iter(shapes))[:2] if len(shapes) == 1 else None
        size = own[0] if own is not None and own[0] == own[1] else DEFAULT_SIZE
    else:
        size = image_size
    label = {c: k for k, c in enumerate(classes)}
    for s in SPLITS:
        rows = src.entries[s]
        unknown = sorted({c for c, _, _ in rows} - set(label))
        if unknown:
            raise CleadError(f"{src.root}: {s}/ has classes that train/ lacks: {', '.join(unknown)}")
        perm = order(rows)
        x = np.stack([_resize(decoded[s][i], size) for i in perm]).transpose(0, 3, 1, 2)
        out[f"{s}_x"] = np.ascontiguousarray(x)
        out[f"{s}_y"] = np.array([label[rows[i][0]] for i in perm], dtype=np.int64)
    return out


CACHED = ("train_x", "train_y", "test_x", "test_y", "classes", "mean", "std")  # the arrays of a folder's cache


@DATASETS.register("folder")
def load_folder(data_dir: str | None = None, image_size: int | None = None, **_: object) -> ImageData:
    if not data_dir:
        raise CleadError("dataset 'folder' needs --data-dir DIR (train/ and test/ class folders) or an archive of it")
    root = Path(data_dir)
    if not root.exists():
        raise CleadError(f"--data-dir {root} does not exist")
    src = _Source(root)
    key = src.key(image_size)
    stem = "folder-" + hashlib.sha256(str(key["source"]).encode()).hexdigest()[:12]
    path = cache_dir() / f"{stem}-{key_digest(key)}.npz"
    arrays = load_keyed_npz(path, key, CACHED)
    if arrays is None:
        arrays = _decode_source(src, image_size)
        if save_keyed_npz(path, key, arrays):
            for old in path.parent.glob(f"{stem}-*.npz"):
                if old != path:
                    old.unlink(missing_ok=True)
    t = {k: torch.from_numpy(np.ascontiguousarray(arrays[k])) for k in ("train_x", "train_y", "test_x", "test_y")}
    return ImageData(
        name="folder",
        train_x=t["train_x"],
        train_y=t["train_y"],
        test_x=t["test_x"],
        test_y=t["test_y"],
        classes=[str(c) for c in arrays["classes"]],
        mean=tuple(arrays["mean"].tolist()),
        std=tuple(arrays["std"].tolist()),
        augment=True,
        order=ORDER_SEED,
    )


def _decode_source(src: _Source, image_size: int | None) -> dict[str, "np.ndarray"]:
    """Decode, order and measure every image of ``src``: the arrays the cache holds."""
    classes = sorted({c for c, _, _ in src.entries["train"]})
    if len(classes) < 2:
        raise CleadError(
            f"{src.root}: train/ must hold at least two class folders with images ({', '.join(sorted(EXTENSIONS))})"
        )
    if not src.entries["test"]:
        raise CleadError(f"{src.root}: the test/ (or val/) folder holds no images")
    arrays = _build(src, image_size, classes)
    mean, std = channel_stats(torch.from_numpy(arrays["train_x"]))
    return {**arrays, "classes": np.array(classes), "mean": np.array(mean), "std": np.array(std)}
