"""Atomic file writes (a temporary file in the same directory, then os.replace) and content digests."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import yaml


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Call ``write(fileobj)`` on a temporary file and rename it to ``path`` when it succeeds. The file gets the
    permissions a plain ``open(path, "w")`` would give (mkstemp's are owner-only)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_json(path: str | Path, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def write_yaml(path: str | Path, obj: Any) -> None:
    write_text(path, yaml.safe_dump(obj, sort_keys=False))


def save_torch(path: str | Path, obj: Any) -> None:
    atomic_write(path, lambda f: torch.save(obj, f), mode="wb")


def load_torch(path: str | Path) -> Any:
    """Load a checkpoint with ``weights_only=True``: tensors and plain containers, never arbitrary objects."""
    return torch.load(path, map_location="cpu", weights_only=True)


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def digest_tensors(tensors: Iterable[torch.Tensor]) -> str:
    """Hex SHA-256 of the tensors' dtypes, shapes and values (independent of device and memory layout)."""
    h = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def key_digest(key: dict[str, Any], length: int = 16) -> str:
    """Hex SHA-256 of ``key`` as sorted JSON (a cache file's name)."""
    return hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:length]


def _arrays_digest(arrays: dict[str, Any]) -> str:
    """Hex SHA-256 of named arrays: names, dtypes, shapes and bytes, in name order."""
    import numpy as np

    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name}|{a.dtype.str}|{a.shape}|".encode())
        h.update(a.tobytes() if a.dtype.kind in "OUS" else a.view(np.uint8).reshape(-1).data)
    return h.hexdigest()


def load_keyed_npz(path: str | Path, key: dict[str, Any], names: Iterable[str]) -> dict[str, Any] | None:
    """The arrays ``names`` of a cache written by :func:`save_keyed_npz`, if it exists, was made from exactly
    ``key`` and its arrays still have the checksum written with them; None otherwise (missing, truncated,
    corrupt, rewritten or made from something else: never trusted, the caller rebuilds it), with one log line
    saying why when the file exists."""
    import logging

    import numpy as np

    path = Path(path)
    if not path.is_file():
        return None
    why = None
    try:
        with np.load(path, allow_pickle=False) as z:
            if json.loads(str(z["key"])) != json.loads(json.dumps(key, sort_keys=True)):
                why = "made from other sources or options"
            else:
                arrays = {k: z[k] for k in names}  # each read from the file into a new array
                if "checksum" not in z.files or str(z["checksum"]) != _arrays_digest(arrays):
                    why = "its arrays do not match their checksum"
    except Exception as e:  # a truncated or bit-flipped zip: BadZipFile, EOFError, ValueError, zlib.error, ...
        why = f"unreadable ({type(e).__name__})"
    if why:
        logging.getLogger("clead").info("cache %s is not used (%s); rebuilding it", path, why)
        return None
    return arrays


def save_keyed_npz(path: str | Path, key: dict[str, Any], arrays: dict[str, Any]) -> bool:
    """Write ``arrays``, the ``key`` they were made from and their checksum, atomically; False if the cache cannot
    be written (a read-only home: the caller works without a cache)."""
    import numpy as np

    meta = {"key": np.array(json.dumps(key, sort_keys=True)), "checksum": np.array(_arrays_digest(arrays))}
    try:
        atomic_write(path, lambda f: np.savez(f, **meta, **arrays), mode="wb")
    except OSError:
        return False
    return True
