"""IDX reading, splits and batching."""

import pytest
import torch
from conftest import write_idx

from clead.data import batches, load_dataset, split
from clead.data.idx import read_idx
from clead.errors import CleadError


def test_idx_round_trip(tmp_path):
    a = torch.randint(0, 256, (5, 3, 4), dtype=torch.uint8)
    write_idx(tmp_path / "a.gz", a)
    assert torch.equal(read_idx(tmp_path / "a.gz"), a)


def test_fashion_mnist_loader_and_split(idx_dir):
    data = load_dataset("fashion-mnist", str(idx_dir))
    assert data.train_x.shape == (600, 1, 16, 16) and data.train_x.dtype == torch.uint8
    assert data.num_classes == 10 and data.test_y.dtype == torch.int64
    s = split(data, val_size=100, train_size=50)
    assert len(s.train_y) == 50 and len(s.val_y) == 100
    assert torch.equal(s.val_x, data.train_x[500:]) and torch.equal(s.train_x, data.train_x[:50])
    with pytest.raises(CleadError, match="leaves no training images"):
        split(data, val_size=600, train_size=None)


def test_batches_cover_every_sample_once_in_a_seeded_order():
    x = torch.arange(10, dtype=torch.uint8).view(10, 1, 1, 1)
    y = torch.arange(10)
    order = lambda seed: torch.cat(
        [yb for _, yb in batches(x, y, 3, shuffle=True, generator=torch.Generator().manual_seed(seed))]
    )  # noqa: E731
    assert sorted(order(0).tolist()) == list(range(10))
    assert torch.equal(order(0), order(0)) and not torch.equal(order(0), order(1))
    xb, yb = next(batches(x, y, 4))
    assert xb.dtype == torch.float32 and xb.max() <= 1 and torch.equal(xb.view(-1) * 255, yb.float())


def _class_sorted_folder(root, classes=("cat", "dog", "eel", "fox"), per_class=(12, 5), size=(8, 8)):
    """A toy image folder written class after class (the way CIFAR-10's JPEG copy and ImageNet subsets
    come): class k's images are a flat colour of value 40 + 50 k, so every image shows its label."""
    from PIL import Image

    for part, n in zip(("train", "test"), per_class):
        for k, c in enumerate(classes):
            (root / part / c).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.new("RGB", size, (40 + 50 * k,) * 3).save(root / part / c / f"{i:04d}.png")
    return root


@pytest.fixture
def folder_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("CLEAD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_image_folder_order_makes_every_first_n_class_balanced(tmp_path, folder_cache):
    """Catches a loader that keeps the folder's class order: the validation split (the last images), the
    first --train-size images and the first --n test images would then hold only one or two classes."""
    root = _class_sorted_folder(tmp_path / "data")
    data = load_dataset("folder", str(root))
    assert data.classes == ["cat", "dog", "eel", "fox"] and data.train_x.shape == (48, 3, 8, 8)
    # the labels still belong to their images
    assert torch.equal(data.train_x[:, 0, 0, 0].long(), 40 + 50 * data.train_y)
    assert torch.equal(data.test_x[:, 0, 0, 0].long(), 40 + 50 * data.test_y)
    s = split(data, val_size=16, train_size=16)
    for labels in (s.val_y, s.train_y, data.test_y[:12]):
        assert set(labels.tolist()) == {0, 1, 2, 3}, labels.tolist()


def test_image_folder_cache_is_used_and_rebuilt_when_a_file_changes(tmp_path, folder_cache, monkeypatch):
    """Catches a stale cache being trusted: a changed image must change what loads."""
    from PIL import Image

    from clead.data import image_folder

    root = _class_sorted_folder(tmp_path / "data")
    first = load_dataset("folder", str(root))
    assert len(list(folder_cache.glob("*.npz"))) == 1
    decodes = []
    real = image_folder._decode
    monkeypatch.setattr(image_folder, "_decode", lambda *a: decodes.append(a) or real(*a))
    assert torch.equal(load_dataset("folder", str(root)).train_x, first.train_x) and not decodes  # from the cache
    Image.new("RGB", (8, 8), (255, 255, 255)).save(root / "train" / "cat" / "0003.png")  # same name, new bytes
    changed = load_dataset("folder", str(root))
    assert decodes and (changed.train_x == 255).any() and not (first.train_x == 255).any()
    assert len(list(folder_cache.glob("*.npz"))) == 1, "the stale cache must be replaced, not kept"
    assert not torch.equal(load_dataset("folder", str(root), image_size=4).train_x[:, :, :4, :4], changed.train_x)


def test_image_folder_from_an_archive_equals_the_unpacked_folder(tmp_path, folder_cache):
    """Catches an archive read in another order or with other labels than the same tree on disk."""
    import tarfile

    root = _class_sorted_folder(tmp_path / "toy-jpeg")
    with tarfile.open(tmp_path / "toy.tar.gz", "w:gz") as tar:
        tar.add(root, arcname="toy-jpeg")
    a, b = load_dataset("folder", str(root)), load_dataset("folder", str(tmp_path / "toy.tar.gz"))
    for k in ("train_x", "train_y", "test_x", "test_y"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    assert a.classes == b.classes and a.mean == pytest.approx(b.mean)


def test_image_folder_size_mean_std_and_bad_files(tmp_path, folder_cache):
    """Catches silent upsampling (own size kept when uniform), a wrong channel mean/std, unreadable files."""
    from PIL import Image

    root = _class_sorted_folder(tmp_path / "data", size=(6, 6))
    data = load_dataset("folder", str(root))
    assert data.image_shape == (3, 6, 6)
    x = data.train_x.double() / 255
    assert data.mean == pytest.approx(tuple(x.mean((0, 2, 3)).tolist()))
    assert data.std == pytest.approx(tuple(x.std((0, 2, 3)).tolist()))
    assert load_dataset("folder", str(root), image_size=12).image_shape == (3, 12, 12)
    Image.new("RGB", (9, 6), (0, 0, 0)).save(root / "train" / "cat" / "wide.png")
    assert load_dataset("folder", str(root)).image_shape == (3, 64, 64)  # mixed sizes: the 64 default
    (root / "train" / "cat" / "bad.png").write_bytes(b"not an image")
    with pytest.raises(CleadError, match="cannot read image .*bad.png"):
        load_dataset("folder", str(root))
    with pytest.raises(CleadError, match="train/ and test/"):
        load_dataset("folder", str(root / "train"))


def _tar(root, path, rename=None):
    """``root`` as an uncompressed tar at ``path``, members' mtimes fixed; ``rename`` maps class folder names."""
    import tarfile

    rename = rename or {}
    with tarfile.open(path, "w") as tar:
        for p in sorted(root.rglob("*")):
            rel = p.relative_to(root).parts
            info = tar.gettarinfo(p, arcname="/".join(["toy", *(rename.get(part, part) for part in rel)]))
            info.mtime = 0
            if p.is_file():
                with open(p, "rb") as f:
                    tar.addfile(info, f)
            else:
                tar.addfile(info)


def test_an_archive_changed_in_place_with_its_size_and_mtime_kept_is_not_served_from_the_cache(tmp_path, folder_cache):
    """Catches a cache keyed by path, size and mtime: the classes cat and dog swap folders, same bytes count."""
    import os

    root = _class_sorted_folder(tmp_path / "data")
    archive = tmp_path / "toy.tar"
    _tar(root, archive)
    first = load_dataset("folder", str(archive))
    stat = archive.stat()
    _tar(root, archive, rename={"cat": "dog", "dog": "cat"})
    os.utime(archive, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert archive.stat().st_size == stat.st_size and archive.stat().st_mtime_ns == stat.st_mtime_ns
    second = load_dataset("folder", str(archive))
    # the images of label 0 (cat) now show dog's colour
    assert torch.equal(second.train_x[:, 0, 0, 0].long(), 40 + 50 * (second.train_y ^ 1 * (second.train_y < 2)))
    assert not torch.equal(first.train_x[first.train_y == 0], second.train_x[second.train_y == 0])


def test_a_cache_rewritten_or_corrupted_is_rebuilt_never_trusted(tmp_path, folder_cache, caplog):
    """Catches a cache trusted for its key alone (labels shifted by one, same shapes) or a traceback on a
    truncated or bit-flipped cache file."""
    import logging

    import numpy as np

    root = _class_sorted_folder(tmp_path / "data")
    good = load_dataset("folder", str(root))
    (path,) = folder_cache.glob("*.npz")
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["train_y"] = (arrays["train_y"] + 1) % 4  # same shape and dtype, wrong labels; key and checksum kept
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    caplog.set_level(logging.INFO, logger="clead")
    assert torch.equal(load_dataset("folder", str(root)).train_y, good.train_y)
    assert "do not match their checksum" in caplog.text
    for damage in (lambda b: b[: len(b) // 2], lambda b: b[:100] + bytes([b[100] ^ 0xFF]) + b[101:]):
        path.write_bytes(damage(path.read_bytes()))
        caplog.clear()
        assert torch.equal(load_dataset("folder", str(root)).train_y, good.train_y)
        assert "is not used" in caplog.text


def test_an_empty_class_folder_or_a_class_in_one_split_is_an_error_naming_it(tmp_path, folder_cache):
    """Catches labels shifted by a dropped empty class folder, on disk and in an archive."""
    import tarfile

    root = _class_sorted_folder(tmp_path / "data")
    (root / "train" / "ant").mkdir()  # sorts first: every label would shift by one
    (root / "test" / "ant").mkdir()
    with pytest.raises(CleadError, match="train/ant holds no images"):
        load_dataset("folder", str(root))
    with tarfile.open(tmp_path / "a.tar.gz", "w:gz") as tar:
        tar.add(root, arcname="toy")
    with pytest.raises(CleadError, match="train/ant holds no images"):
        load_dataset("folder", str(tmp_path / "a.tar.gz"))
    (root / "train" / "ant").rmdir()
    from PIL import Image

    Image.new("RGB", (8, 8)).save(root / "test" / "ant" / "0000.png")
    with pytest.raises(CleadError, match="class 'ant' is in test/ but not in train/"):
        load_dataset("folder", str(root))


def test_an_archive_with_two_trees_is_refused(tmp_path, folder_cache):
    import tarfile

    root = _class_sorted_folder(tmp_path / "data")
    with tarfile.open(tmp_path / "two.tar", "w") as tar:
        tar.add(root, arcname="A")
        tar.add(root, arcname="B")
    with pytest.raises(CleadError, match="holds 2 trees \\(A, B\\)"):
        load_dataset("folder", str(tmp_path / "two.tar"))


def test_hard_links_in_an_archive_are_followed(tmp_path, folder_cache):
    """GNU tar stores a second name of a file as a hard-link member: the folder and the archive must agree."""
    import os
    import subprocess

    root = _class_sorted_folder(tmp_path / "data")
    os.link(root / "train" / "cat" / "0000.png", root / "train" / "cat" / "copy.png")
    subprocess.run(["tar", "czf", str(tmp_path / "l.tar.gz"), "-C", str(tmp_path), "data"], check=True)
    import tarfile

    with tarfile.open(tmp_path / "l.tar.gz") as tar:
        assert any(m.islnk() for m in tar.getmembers())
    a, b = load_dataset("folder", str(root)), load_dataset("folder", str(tmp_path / "l.tar.gz"))
    assert len(a.train_y) == len(b.train_y) == 49 and torch.equal(a.train_x, b.train_x)


def test_oversized_images_and_truncated_archives_are_one_line(tmp_path, folder_cache):
    import struct
    import tarfile
    import zlib

    root = _class_sorted_folder(tmp_path / "data")
    with tarfile.open(tmp_path / "ok.tar.gz", "w:gz") as tar:
        tar.add(root, arcname="toy")
    blob = (tmp_path / "ok.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CleadError, match="cannot read archive .*cut.tar.gz"):
        load_dataset("folder", str(tmp_path / "cut.tar.gz"))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    # a valid PNG header declaring 20000 x 20000 pixels (a decompression bomb), no pixel data needed to refuse it
    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    (root / "train" / "cat" / "bomb.png").write_bytes(bomb)
    with pytest.raises(CleadError, match="bomb.png is too large to decode safely"):
        load_dataset("folder", str(root))
