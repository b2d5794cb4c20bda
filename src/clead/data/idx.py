"""Reader for the IDX format of MNIST and Fashion-MNIST (optionally gzip-compressed)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import torch

from ..errors import CleadError

_UBYTE = 0x08


def read_idx(path: str | Path) -> torch.Tensor:
    """Read an IDX file of unsigned bytes into a uint8 tensor, checking magic number and size."""
    path = Path(path)
    if not path.is_file():
        raise CleadError(f"missing data file {path}")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise CleadError(f"cannot read {path}: {e} (truncated or corrupt file?)") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UBYTE:
        raise CleadError(f"{path} is not an IDX file of unsigned bytes (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise CleadError(f"{path}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise CleadError(
            f"{path}: IDX data has {len(raw) - header} bytes, header promises {expected} (truncated file?)"
        )
    arr = np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)
    return torch.from_numpy(arr.copy())
