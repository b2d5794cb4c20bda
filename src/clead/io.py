"""Atomic file writes: a temporary file in the same directory, then os.replace."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
import yaml


def atomic_write(path: str | Path, write: Callable[[Any], None], mode: str = "w") -> None:
    """Call ``write(fileobj)`` on a temporary file and rename it to ``path`` when it succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
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
