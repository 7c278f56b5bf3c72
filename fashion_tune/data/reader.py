"""Reading a shard set: memory-mapped Arrow shards -> uint8 batches.

:class:`ShardSet` memory-maps every shard and views its image column as a
``(rows, C, S, S)`` uint8 NumPy array without copying. A batch is one gather
(``np.take``) from those views into a fresh array that becomes a torch tensor
without a further copy.

:class:`ShardBatches` is the training stream: a permutation per (seed, epoch),
split between processes (``rank`` / ``world_size``) and DataLoader workers,
resumable at any batch of any epoch.

Integrity: every shard's size is checked on open (a truncated file is named);
its SHA-256 is checked the first time this node opens that exact file
(a stamp in the user cache remembers it), or always with ``verify="full"``.
Remote sets (``s3://`` ...) are copied to a node-local cache under a file lock.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import torch
from filelock import FileLock
from torch.utils.data import IterableDataset, get_worker_info

from fashion_tune import atomic
from fashion_tune.data.shards import MANIFEST, PROGRESS, Manifest, ShardInfo
from fashion_tune.data.storage import Store, cache_root, sha256_file
from fashion_tune.errors import DataError

Verify = Literal["auto", "full", "size"]


def _verified_stamp(path: Path, info: ShardInfo) -> Path:
    st = path.stat()
    key = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{info.sha256}"
    return cache_root() / "verified" / hashlib.sha1(key.encode()).hexdigest()


def _verify_shard(path: Path, info: ShardInfo, verify: Verify) -> None:
    size = path.stat().st_size
    if size != info.bytes:
        raise DataError(
            f"shard {path} is truncated or altered: {size} bytes, expected {info.bytes}"
        )
    if verify == "size":
        return
    stamp = _verified_stamp(path, info) if verify == "auto" else None
    if stamp is not None and stamp.exists():
        return
    if sha256_file(path) != info.sha256:
        raise DataError(f"shard {path} fails its checksum: the file is corrupt; prepare it again")
    if stamp is not None:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()


def _read_manifest(store: Store) -> Manifest:
    if not store.exists(MANIFEST):
        if store.exists(PROGRESS):
            raise DataError(
                f"{store.location} is an unfinished prepare (no {MANIFEST}); "
                "run the same fashion-tune data prepare command again to finish it"
            )
        raise DataError(f"{store.location} is not a shard set: no {MANIFEST} there")
    return Manifest.from_json(store.read_bytes(MANIFEST).decode(), store.describe(MANIFEST))


def _local_copy(store: Store, manifest: Manifest) -> Path:
    """Copy a remote set into the node-local cache once (under a lock); return the folder."""
    key = hashlib.sha1(f"{store.location}|{manifest.fingerprint}".encode()).hexdigest()[:16]
    folder = cache_root() / "shards" / key
    folder.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock"):
        done = folder / ".complete"
        if not done.exists():
            for info in manifest.shards:
                dest = folder / info.file
                same_size = dest.exists() and dest.stat().st_size == info.bytes
                if same_size and sha256_file(dest) == info.sha256:
                    continue
                store.download(info.file, dest)
                if sha256_file(dest) != info.sha256:
                    dest.unlink()
                    raise DataError(f"shard {store.describe(info.file)} fails its checksum")
            atomic.write_text(folder / MANIFEST, manifest.to_json())
            done.touch()
    return folder


class ShardSet:
    """A memory-mapped shard set. Picklable: workers re-open it lazily."""

    def __init__(
        self,
        location: str | os.PathLike[str],
        *,
        cache: Literal["auto", "always", "never"] = "auto",
        verify: Verify = "auto",
    ):
        self.location = str(location)
        self._cache = cache
        self._verify: Verify = verify
        store = Store.open(self.location)
        self.manifest = _read_manifest(store)
        remote = not store.is_local
        if cache == "always" or (cache == "auto" and remote):
            self.folder = _local_copy(store, self.manifest)
        elif remote:
            raise DataError(f"{self.location} is remote; it must be cached (cache='never' given)")
        else:
            self.folder = Path(store.root)
        m = self.manifest
        self.shape = (m.channels, m.image_size, m.image_size)
        self.sketch_shape = (1, m.image_size, m.image_size)  # paired sets only
        self.fabric_shape = (m.channels, m.fabric_size, m.fabric_size)
        self._open(verify)

    # -- opening -----------------------------------------------------------------------------
    def _open(self, verify: Verify) -> None:
        chunks: list[np.ndarray] = []
        sketches: list[np.ndarray] = []
        fabrics: list[np.ndarray] = []
        labels, splits = [], []
        self._maps = []
        attrs: list[np.ndarray] = []
        for info in self.manifest.shards:
            path = self.folder / info.file
            if not path.exists():
                raise DataError(f"shard {path} is missing")
            _verify_shard(path, info, verify)
            try:
                mm = pa.memory_map(str(path), "r")
                reader = pa.ipc.open_file(mm)
                batches = [reader.get_batch(i) for i in range(reader.num_record_batches)]
            except (pa.ArrowInvalid, OSError) as exc:
                raise DataError(f"shard {path} cannot be read: {exc}") from None
            self._maps.append(mm)
            rows = sum(b.num_rows for b in batches)
            if rows != info.rows:
                raise DataError(f"shard {path} holds {rows} rows, manifest says {info.rows}")
            for b in batches:
                chunks.append(self._image_view(b))
                if self.manifest.pairs:
                    sketches.append(self._pair_view(b, "sketch", self.sketch_shape))
                    fabrics.append(self._pair_view(b, "fabric", self.fabric_shape))
                labels.append(b.column("label").to_numpy())
                splits.append(b.column("split").to_numpy())
                if self.manifest.attributes:
                    col = b.column("attributes")
                    attrs.append(col.values.to_numpy().reshape(b.num_rows, -1))
        self._chunks = chunks
        self._sketches, self._fabrics = sketches, fabrics
        self._starts = np.cumsum([0] + [len(c) for c in chunks])
        self.labels = np.concatenate(labels).astype(np.int64) if labels else np.zeros(0, np.int64)
        self.splits = np.concatenate(splits).astype(np.int8) if splits else np.zeros(0, np.int8)
        self._attrs = np.concatenate(attrs) if attrs else None

    def _image_view(self, batch: pa.RecordBatch) -> np.ndarray:
        col = batch.column("image")
        row = self.manifest.image_bytes
        width = getattr(col.type, "byte_width", None)
        if width != row:
            m = self.manifest
            raise DataError(
                f"{self.location}: the shards hold images of {width} bytes but the manifest "
                f"says {m.channels}x{m.image_size}x{m.image_size} = {row}; the manifest is "
                "damaged or from another set: prepare the set again"
            )
        buf = col.buffers()[1]
        arr = np.frombuffer(buf, np.uint8, count=len(col) * row, offset=col.offset * row)
        return arr.reshape(len(col), *self.shape)

    def _pair_view(self, batch: pa.RecordBatch, name: str, shape: tuple[int, ...]) -> np.ndarray:
        row = int(np.prod(shape))
        if name not in batch.schema.names:
            raise DataError(
                f"{self.location}: the manifest says the set has sketch / fabric pairs but a "
                f"shard lacks its {name!r} column; prepare the set again"
            )
        col = batch.column(name)
        if getattr(col.type, "byte_width", None) != row:
            raise DataError(
                f"{self.location}: the {name!r} column holds {col.type} rows, the manifest says "
                f"{'x'.join(map(str, shape))} = {row} bytes; prepare the set again"
            )
        buf = col.buffers()[1]
        arr = np.frombuffer(buf, np.uint8, count=len(col) * row, offset=col.offset * row)
        return arr.reshape(len(col), *shape)

    def __getstate__(self) -> dict:
        return {"location": self.location, "cache": self._cache, "verify": self._verify}

    def __setstate__(self, state: dict) -> None:
        # a worker re-opens the maps; the parent already checked every checksum
        self.__init__(state["location"], cache=state["cache"], verify="size")  # type: ignore[misc]

    # -- queries -----------------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self._starts[-1])

    @property
    def classes(self) -> list[str]:
        return self.manifest.classes

    @property
    def num_classes(self) -> int:
        return len(self.manifest.classes)

    @property
    def image_size(self) -> int:
        return self.manifest.image_size

    @property
    def channels(self) -> int:
        return self.manifest.channels

    def split_indices(self, split: str | None) -> np.ndarray:
        """Global row indices of one split (all rows for None), ascending."""
        if split is None:
            return np.arange(len(self), dtype=np.int64)
        if split not in self.manifest.splits:
            raise DataError(
                f"split {split!r} is not in {self.location}; "
                f"it has {', '.join(self.manifest.splits)}"
            )
        return np.flatnonzero(self.splits == self.manifest.splits.index(split)).astype(np.int64)

    def gather(self, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Images at global row indices ``idx`` (any order) as one (n, C, S, S) uint8 array."""
        idx = np.asarray(idx, dtype=np.int64)
        if len(idx) and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"row index out of range for {len(self)} rows")
        order = np.argsort(idx, kind="stable")
        if out is None:
            out = np.empty((len(idx), *self.shape), np.uint8)
        if np.array_equal(order, np.arange(len(idx))):
            return self.gather_sorted(idx, out)
        out[order] = self.gather_sorted(idx[order])
        return out

    def gather_sorted(self, idx: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``gather`` for ascending, in-range indices: the training hot path.

        Each chunk's rows are one contiguous slice of ``idx``, copied straight into ``out``
        (``mode="clip"`` lets NumPy write in place instead of buffering the result).
        """
        if out is None:
            out = np.empty((len(idx), *self.shape), np.uint8)
        if len(self._chunks) == 1:
            np.take(self._chunks[0], idx, axis=0, out=out, mode="clip")
            return out
        bounds = np.searchsorted(idx, self._starts)
        for c, chunk in enumerate(self._chunks):
            lo, hi = bounds[c], bounds[c + 1]
            if hi > lo:
                np.take(chunk, idx[lo:hi] - self._starts[c], axis=0, out=out[lo:hi], mode="clip")
        return out

    @property
    def has_pairs(self) -> bool:
        return bool(self.manifest.pairs)

    def require_pairs(self, why: str) -> None:
        """One line when this set has no sketch / fabric columns."""
        if not self.has_pairs:
            raise DataError(
                f"{self.location} has no sketch / fabric pairs (format version "
                f"{self.manifest.format_version}: prepared without --pairs or by an older "
                f"fashion-tune), which {why} needs; prepare it again with "
                "fashion-tune data prepare ... --pairs"
            )

    def gather_pairs(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(sketches (n, 1, S, S), fabrics (n, C, P, P)) at global row indices ``idx``."""
        self.require_pairs("reading pairs")
        idx = np.asarray(idx, dtype=np.int64)
        out = []
        for parts in (self._sketches, self._fabrics):
            if len(parts) == 1:
                out.append(parts[0][idx])
                continue
            c = np.searchsorted(self._starts, idx, side="right") - 1
            first = parts[0]
            arr = np.empty((len(idx), *first.shape[1:]), np.uint8)
            for k in np.unique(c):
                sel = c == k
                arr[sel] = parts[k][idx[sel] - self._starts[k]]
            out.append(arr)
        return out[0], out[1]

    def attributes(self, idx: np.ndarray) -> np.ndarray | None:
        return None if self._attrs is None else self._attrs[idx]


class ShardBatches(IterableDataset):
    """Shuffled uint8 batches ``(images (B,C,S,S), labels (B,))`` of one split (with
    ``pairs=True`` also ``sketches (B,1,S,S), fabrics (B,C,P,P)``).

    The order is a function of (seed, epoch) alone. Process ``rank`` of
    ``world_size`` takes every ``world_size``-th row of the permutation; within a
    process, DataLoader worker ``w`` of ``W`` yields batches ``w, w+W, ...`` (the
    DataLoader interleaves them back in order). ``set_epoch(e, start_batch=b)``
    resumes exactly at batch ``b`` of epoch ``e``. Iterate it in the main process: a batch
    costs ~14 us at 32 px, while a DataLoader worker's hand-over to the main process alone
    costs ~1 ms (benchmarks/RESULTS.md). With workers, use ``batch_size=None``.
    """

    def __init__(
        self,
        shards: ShardSet,
        *,
        split: str | None = "train",
        batch_size: int = 64,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
        pairs: bool = False,
    ):
        if batch_size < 1:
            raise DataError(f"batch size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise DataError(f"rank {rank} is outside world size {world_size}")
        self.shards = shards
        if pairs:
            shards.require_pairs("training on sketch + fabric pairs")
        self.pairs = pairs  # also yield (sketches, fabrics) after (images, labels)
        self.rows = shards.split_indices(split)
        if len(self.rows) < batch_size * world_size and drop_last:
            raise DataError(
                f"split {split!r} has {len(self.rows)} rows, fewer than one batch of "
                f"{batch_size} per process"
            )
        self.batch_size, self.seed = batch_size, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch, self.start_batch = 0, 0

    def set_epoch(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch, self.start_batch = epoch, start_batch

    def __len__(self) -> int:
        per_rank = len(self.rows) // self.world_size
        if self.drop_last:
            return per_rank // self.batch_size
        return -(-per_rank // self.batch_size)

    def epoch_rows(self, epoch: int) -> np.ndarray:
        """This rank's rows for ``epoch``, in order."""
        rng = np.random.default_rng([self.seed, epoch])
        perm = self.rows[rng.permutation(len(self.rows))]
        per_rank = len(perm) // self.world_size
        return perm[self.rank :: self.world_size][:per_rank]

    def batch_rows(self, epoch: int, batch: int) -> np.ndarray:
        rows = self.epoch_rows(epoch)
        return np.sort(rows[batch * self.batch_size : (batch + 1) * self.batch_size])

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        info = get_worker_info()
        wid, nworkers = (info.id, info.num_workers) if info else (0, 1)
        n = len(self)
        bs = self.batch_size
        rows = self.epoch_rows(self.epoch)[: n * bs]
        if self.drop_last:
            # rows sorted within each batch (sequential pages of the memory map), and the
            # whole epoch's labels looked up at once
            rows = np.sort(rows.reshape(n, bs), axis=1).reshape(-1)
        labels = torch.from_numpy(self.shards.labels[rows])
        for b in range(self.start_batch, n):
            if (b - self.start_batch) % nworkers != wid:
                continue
            idx = rows[b * bs : (b + 1) * bs]
            if self.pairs:
                idx = np.sort(idx)
                sk, fb = self.shards.gather_pairs(idx)
                yield (
                    torch.from_numpy(self.shards.gather_sorted(idx)),
                    torch.from_numpy(self.shards.labels[idx]),
                    torch.from_numpy(sk),
                    torch.from_numpy(fb),
                )
                continue
            if not self.drop_last:
                idx = np.sort(idx)
                yield (
                    torch.from_numpy(self.shards.gather_sorted(idx)),
                    torch.from_numpy(self.shards.labels[idx]),
                )
                continue
            yield torch.from_numpy(self.shards.gather_sorted(idx)), labels[b * bs : (b + 1) * bs]


def open_shards(location: str | os.PathLike[str], **kwargs: object) -> ShardSet:
    return ShardSet(location, **kwargs)  # type: ignore[arg-type]
