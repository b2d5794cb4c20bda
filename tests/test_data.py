"""IDX reading, splits and batching."""
import pytest
import torch

from clead.data import batches, load_dataset, split
from clead.data.idx import read_idx
from clead.errors import CleadError

from conftest import write_idx


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
    order = lambda seed: torch.cat([yb for _, yb in batches(x, y, 3, shuffle=True,
                                                          generator=torch.Generator().manual_seed(seed))])  # noqa: E731
    assert sorted(order(0).tolist()) == list(range(10))
    assert torch.equal(order(0), order(0)) and not torch.equal(order(0), order(1))
    xb, yb = next(batches(x, y, 4))
    assert xb.dtype == torch.float32 and xb.max() <= 1 and torch.equal(xb.view(-1) * 255, yb.float())
