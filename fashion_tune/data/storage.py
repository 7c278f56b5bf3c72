"""Where shard sets live: a local folder or a pyarrow filesystem URI.

A :class:`Store` is one folder on any pyarrow filesystem (local path, ``file://``,
``s3://``, ``gs://``, ``hdfs://``). Writes are atomic: a file is written under a
temporary name and moved into place, so a reader never sees half a file. On
object stores the move is a copy + delete; each object appears whole or not at all.

Remote shard sets are copied once per node into a local cache (under a file
lock, so concurrent trials on one node copy it once) and then memory-mapped.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow.fs as pafs

from fashion_tune import atomic
from fashion_tune.errors import DataError

_URI_SCHEMES = (
    "file://",
    "s3://",
    "gs://",
    "gcs://",
    "hdfs://",
    "viewfs://",
    "abfs://",
    "abfss://",
)


def is_uri(location: str) -> bool:
    return location.startswith(_URI_SCHEMES)


def cache_root() -> Path:
    """Per-user cache for remote shard copies and verification stamps.

    ``FASHION_TUNE_CACHE`` overrides it; otherwise ``$XDG_CACHE_HOME/fashion-tune``
    or ``~/.cache/fashion-tune``, falling back to the temp dir if HOME is unwritable.
    """
    env = os.environ.get("FASHION_TUNE_CACHE")
    if env:
        root = Path(env)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = Path(base) / "fashion-tune"
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError:
        root = Path(tempfile.gettempdir()) / f"fashion-tune-cache-{os.getuid()}"
        root.mkdir(parents=True, exist_ok=True)
    return root


@dataclass(frozen=True)
class Store:
    """One folder on a pyarrow filesystem."""

    fs: pafs.FileSystem
    root: str  # path inside ``fs``
    location: str  # what the user gave, for messages

    @classmethod
    def open(cls, location: str | os.PathLike[str]) -> Store:
        loc = str(location)
        if is_uri(loc):
            if "?" in loc:  # pyarrow's ?endpoint_override=...: names appended would land in it
                raise DataError(
                    f"{loc}: options in the URI are not supported (folder names are appended "
                    "to it); set them in the environment, e.g. AWS_ENDPOINT_URL=http://host:9000"
                )
            try:
                fs, path = pafs.FileSystem.from_uri(loc)
            except Exception as exc:  # pyarrow raises ArrowInvalid / OSError flavours
                raise DataError(f"cannot open {loc}: {_short(str(exc))}") from None
            if not path.strip("/"):
                raise DataError(f"{loc} names no bucket or folder; give e.g. s3://bucket/shards")
            return cls(fs, path.rstrip("/"), loc)
        return cls(pafs.LocalFileSystem(), str(Path(loc).expanduser().resolve()), loc)

    @property
    def is_local(self) -> bool:
        return isinstance(self.fs, pafs.LocalFileSystem)

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def describe(self, name: str) -> str:
        """A file's name as the user would write it."""
        return f"{self.location.rstrip('/')}/{name}"

    def exists(self, name: str) -> bool:
        return self.fs.get_file_info(self.path(name)).type != pafs.FileType.NotFound

    def size(self, name: str) -> int:
        info = self.fs.get_file_info(self.path(name))
        if info.type == pafs.FileType.NotFound:
            raise DataError(f"missing file {self.describe(name)}")
        return int(info.size)

    def listdir(self) -> list[str]:
        info = self.fs.get_file_info(self.root)
        if info.type == pafs.FileType.NotFound:
            return []
        if info.type != pafs.FileType.Directory:
            raise DataError(f"{self.location} exists and is not a folder")
        sel = pafs.FileSelector(self.root, recursive=False)
        return sorted(Path(i.path).name for i in self.fs.get_file_info(sel))

    def read_bytes(self, name: str) -> bytes:
        with self.fs.open_input_stream(self.path(name)) as f:
            return bytes(f.read())

    def write_atomic(self, name: str, data: bytes | memoryview) -> None:
        """Write ``name`` whole or not at all: temp file, then a move into place.

        A failure of the file system (read-only, full, gone) is a :class:`DataError`.
        """
        try:
            if self.is_local:
                Path(self.root).mkdir(parents=True, exist_ok=True)
                atomic.write_bytes(self.path(name), data)
                return
            self.fs.create_dir(self.root, recursive=True)
            tmp = self.path(f".{name}.tmp-{uuid.uuid4().hex[:8]}")
            try:
                with self.fs.open_output_stream(tmp) as f:
                    f.write(data)
                self.fs.move(tmp, self.path(name))
            except BaseException:
                if self.fs.get_file_info(tmp).type != pafs.FileType.NotFound:
                    self.fs.delete_file(tmp)
                raise
        except OSError as exc:
            raise DataError(f"cannot write {self.describe(name)}: {os_reason(exc)}") from None

    def ensure_writable(self) -> bool:
        """Check that files can be written here before any work; returns whether the folder
        was created (so a caller that fails later can remove it again while it is empty)."""
        created = not self.exists_root()
        probe = self.path(f".probe-{uuid.uuid4().hex[:8]}")
        try:
            self.fs.create_dir(self.root, recursive=True)
            with self.fs.open_output_stream(probe):
                pass
            self.fs.delete_file(probe)
        except OSError as exc:
            if created:
                self.remove_if_empty()
            raise DataError(f"cannot write to {self.location}: {os_reason(exc)}") from None
        return created

    def exists_root(self) -> bool:
        try:
            return self.fs.get_file_info(self.root).type != pafs.FileType.NotFound
        except OSError:
            return False

    def remove_if_empty(self) -> None:
        """Remove this folder if nothing (not even a hidden temp file) is in it."""
        try:
            if self.exists_root() and not self.fs.get_file_info(
                pafs.FileSelector(self.root, recursive=False)
            ):
                self.fs.delete_dir(self.root)
        except OSError:
            pass

    def delete(self, name: str) -> None:
        if self.exists(name):
            self.fs.delete_file(self.path(name))

    def download(self, name: str, dest: Path) -> None:
        """Copy one file to a local path (atomically, via a temp file beside it).

        An object store that fails mid-copy (gone, refused) is a :class:`DataError`."""
        try:
            with (
                atomic.atomic_path(dest) as tmp,
                self.fs.open_input_stream(self.path(name)) as src,
                open(tmp, "wb") as out,
            ):
                while chunk := src.read(16 << 20):
                    out.write(chunk)
        except OSError as exc:
            if remote_failure(exc) is None:
                raise
            raise DataError(f"cannot read {self.describe(name)}: {remote_failure(exc)}") from None


def _short(text: str, limit: int = 240) -> str:
    """The first clause of a (pyarrow / AWS) message, so an error stays one readable line:
    a missing libjvm alone lists some hundred paths it tried."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= limit else first[: limit - 3].rstrip() + "..."


def remote_failure(exc: BaseException) -> str | None:
    """One line saying why an object store failed (unreachable, refused, denied), or None
    when ``exc`` is not an object-store failure. pyarrow raises these as plain OSErrors."""
    text = str(exc).strip()
    if not isinstance(exc, OSError) or not any(k in text for k in ("AWS Error", "google::cloud")):
        return None
    return _short(" ".join(text.split()), limit=300)


def os_reason(exc: BaseException) -> str:
    """The short reason of an OS / pyarrow file-system error, e.g. 'Read-only file system'."""
    text = str(exc)
    if "Detail: " in text:  # pyarrow: "Cannot create directory 'x'. Detail: [errno 2] ..."
        detail = text.rpartition("Detail: ")[2]
        return (detail.split("] ", 1)[-1] if detail.startswith("[errno") else detail).strip()
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__


def sha256_file(path: str | os.PathLike[str], chunk: int = 8 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
