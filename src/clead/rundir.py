"""A run directory's files: their names, atomic writes, readers that fail in one line, and the lock.

Low in the house (it imports only `clead.io` and `clead.errors`): the modules that write or read a run's
artefacts ask it for the file names and go through its readers, so a tag, a checkpoint or a corrupt file means
the same thing everywhere.

**The lock.** A process that trains or evaluates in a run directory holds an exclusive ``flock`` on
``RUN/.clead.lock`` for as long as it works there; a second process refuses at once with one line naming the
holder. The kernel releases the lock when its process ends in any way (``kill -9`` included), so a lock left by
a killed process never blocks the next one; the file itself stays and means nothing on its own. Within one
process the lock is re-entrant (a suite trains a run, then evaluates it).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any, Iterator

from .errors import CleadError, RunInUse
from .io import write_text

CONFIG = "config.yaml"
METRICS = "metrics.jsonl"
LOCK = ".clead.lock"


def tagged(stem: str, tag: str | None, suffix: str) -> str:
    """``stem-TAG.suffix``, or ``stem.suffix`` without a tag: how every tagged artefact is named."""
    return f"{stem}-{tag}{suffix}" if tag else f"{stem}{suffix}"


def checkpoint(run_dir: str | Path, name: str = "best") -> Path:
    """``best.pt`` (the selected epoch's weights) or ``last.pt`` (the full training state of the last epoch)."""
    return Path(run_dir) / f"{name}.pt"


def config_yaml(run_dir: str | Path) -> Path:
    return Path(run_dir) / CONFIG


def metrics_jsonl(run_dir: str | Path) -> Path:
    return Path(run_dir) / METRICS


def adv_examples_png(run_dir: str | Path, tag: str | None = "") -> Path:
    return Path(run_dir) / tagged("adv_examples", tag, ".png")


def eps_sweep_png(run_dir: str | Path, tag: str | None = "") -> Path:
    return Path(run_dir) / tagged("eps_sweep", tag, ".png")


def eval_json(run_dir: str | Path, tag: str | None = "") -> Path:
    return Path(run_dir) / tagged("eval", tag, ".json")


def per_sample_csv(run_dir: str | Path, tag: str | None = "") -> Path:
    return Path(run_dir) / tagged("per_sample", tag, ".csv")


def eval_state(run_dir: str | Path, tag: str | None = "") -> Path:
    return Path(run_dir) / tagged("eval_state", tag, ".pt")


def robustbench_json(run_dir: str | Path, tag: str | None = "") -> Path:
    return Path(run_dir) / tagged("robustbench", tag, ".json")


def attack_bite_json(run_dir: str | Path, checkpoint: str = "last") -> Path:
    """``attack_bite-CHECKPOINT.json``: whether the run's training attack still bites on that checkpoint
    (``benchmarks/attack_bite.py``, a diagnosis of catastrophic overfitting)."""
    return Path(run_dir) / tagged("attack_bite", checkpoint, ".json")


def evaluations(run_dir: str | Path) -> list[Path]:
    """Every evaluation of a run, ``eval.json`` and ``eval-TAG.json``, threat matrices included, sorted."""
    return sorted(Path(run_dir).glob("eval*.json"))


def is_matrix(path: Path) -> bool:
    """Whether an evaluation file is a threat matrix (``eval-threats[-TAG].json``), which has its own format."""
    return path.stem == "eval-threats" or path.stem.startswith("eval-threats-")


def matrix_tag_of(path: Path) -> str:
    """The tag a threat matrix was made with (``""`` for ``eval-threats.json``)."""
    return path.stem[len("eval-threats") :].lstrip("-")


def _unreadable(path: Path, why: str) -> CleadError:
    return CleadError(
        f"{path} is unreadable ({why}); it may be truncated or corrupt: run the step that writes it again "
        "(train --resume, eval, ...) or delete it"
    )


def read_json(path: str | Path) -> Any:
    """A JSON artefact; a missing, truncated or corrupt one is a `CleadError` naming the file."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise CleadError(f"{path} does not exist") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise _unreadable(path, f"{type(e).__name__}: {e}") from None


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """One record per line (``metrics.jsonl``); [] when the file does not exist; a corrupt line is a
    `CleadError` naming the file and the line."""
    path = Path(path)
    if not path.is_file():
        return []
    out = []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise _unreadable(path, f"{type(e).__name__}: {e}") from None
    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise _unreadable(path, f"line {i}: {e}") from None
        if not isinstance(record, dict):
            raise _unreadable(path, f"line {i} is not a record")
        out.append(record)
    return out


def write_jsonl(path: str | Path, records: list[dict[str, Any]]) -> None:
    """All records, one per line, written atomically (a reader never sees half a line)."""
    write_text(path, "".join(json.dumps(r) + "\n" for r in records))


def append_jsonl(path: str | Path, record: dict[str, Any]) -> None:
    """Add one record, atomically: the file is rewritten whole, so a crash leaves the old or the new file."""
    write_jsonl(path, [*read_jsonl(path), record])


def _says(fd: int) -> str:
    """What a held lock file says of its holder (written when it was taken)."""
    return os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"


_held: set[str] = set()  # resolved run directories this process holds: the lock is re-entrant per process


@contextlib.contextmanager
def locked(run_dir: str | Path, what: str) -> Iterator[None]:
    """Hold ``run_dir``'s lock while the block runs (``what``: e.g. ``training``, named to a second process that
    finds it taken). Creates the directory if needed, and removes what it created when the block ends having
    written nothing there (a training refused before its first file leaves no empty directory behind)."""
    run_dir = Path(run_dir)
    created = _missing(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CleadError(f"cannot create run directory {run_dir}: {e.strerror or e}") from None
    try:
        with _locked(run_dir, what):
            yield
    finally:
        if created is not None:
            _remove_if_unused(run_dir, created)


def _missing(path: Path) -> Path | None:
    """The topmost of ``path`` and its parents that does not exist yet (what ``mkdir(parents=True)`` creates)."""
    top = None
    for p in [path, *path.parents]:
        if p.exists():
            break
        top = p
    return top


def _remove_if_unused(run_dir: Path, top: Path) -> None:
    """Remove ``run_dir`` (if it holds nothing but the lock file) and its empty parents up to ``top``."""
    try:
        if {p.name for p in run_dir.iterdir()} - {LOCK}:
            return
        (run_dir / LOCK).unlink(missing_ok=True)
        for p in [run_dir, *run_dir.parents]:
            p.rmdir()
            if p == top:
                break
    except OSError:  # something appeared in the meantime, or the directory is not ours to remove: keep it
        pass


@contextlib.contextmanager
def _locked(run_dir: Path, what: str) -> Iterator[None]:
    key = str(run_dir.resolve())
    if key in _held:
        yield
        return
    try:
        fd = os.open(run_dir / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise CleadError(f"cannot write in run directory {run_dir}: {e.strerror or e}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _says(fd)
            raise RunInUse(
                f"{run_dir} is in use ({holder}); wait for that process to finish, or choose another directory",
                holder,
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{what} by process {os.getpid()} since {time.strftime('%Y-%m-%d %H:%M:%S')}".encode(), 0)
        _held.add(key)
        try:
            yield
        finally:
            _held.discard(key)
    finally:
        os.close(fd)  # releases the flock


def holder(run_dir: str | Path) -> str | None:
    """Who holds ``run_dir``'s lock now (what its lock file says), or None when nobody does: this process
    included, or no lock file. Takes and at once releases the lock to find out; creates nothing."""
    run_dir = Path(run_dir)
    if str(run_dir.resolve()) in _held:
        return None
    try:
        fd = os.open(run_dir / LOCK, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _says(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
