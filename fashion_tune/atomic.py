"""Atomic writes to the local file system: a reader sees the old file or the new one, never half.

Each writer goes to a temporary name in the destination's own folder (so the final
``os.replace`` is a rename within one file system), is flushed and fsync'ed, and is
then moved into place; the folder is fsync'ed too, so the rename survives a crash.
A failure at any point removes the temporary file and leaves the destination as it was.

* :func:`write_bytes`, :func:`write_text`, :func:`write_json`: whole contents at once.
* :func:`atomic_path`: a temporary path (same suffix) for writers that want a file name,
  such as ``PIL.Image.save`` or ``torch.save``.
* :func:`atomic_dir`: a temporary folder that replaces a whole folder (checkpoints).

Object stores (``s3://`` ...) have their own whole-object semantics; see
:meth:`fashion_tune.data.storage.Store.write_atomic`.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_dir", "atomic_path", "fsync_dir", "write_bytes", "write_json", "write_text"]


def _tmp_name(path: Path) -> Path:
    # hidden, unique, and with the real suffix so format-sniffing writers still work
    return path.with_name(f".{path.stem}.tmp-{uuid.uuid4().hex[:8]}{path.suffix}")


def fsync_dir(folder: str | os.PathLike[str]) -> None:
    """Make a rename or creation inside ``folder`` durable (a no-op where unsupported)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically."""
    dest = Path(path)
    tmp = _tmp_name(dest)
    try:
        yield tmp
        _fsync_file(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(dest.parent)


def write_bytes(path: str | os.PathLike[str], data: bytes | bytearray | memoryview) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(data)
    return Path(path)


def write_text(path: str | os.PathLike[str], text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns the path."""
    return write_bytes(path, text.encode(encoding))


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 1) -> Path:
    """Write ``obj`` as JSON (strict: NaN and inf are refused) atomically; returns the path."""
    return write_text(path, json.dumps(obj, indent=indent, allow_nan=False) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success it replaces folder ``path``.

    A folder cannot be renamed over a non-empty one, so an existing ``path`` is first
    renamed aside and removed after the swap: a reader sees the old folder, the new
    one, or (for an instant) neither, never a mix of the two.
    """
    dest = Path(path)
    tmp = dest.with_name(f".{dest.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        yield tmp
        for f in tmp.rglob("*"):
            if f.is_file() and not f.is_symlink():
                _fsync_file(f)
        fsync_dir(tmp)
        old = None
        if dest.exists() or dest.is_symlink():
            old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
            os.replace(dest, old)
        os.replace(tmp, dest)
        fsync_dir(dest.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)
