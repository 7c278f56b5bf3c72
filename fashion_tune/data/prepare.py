"""``fashion-tune data prepare``: a source's images -> a resumable, atomic shard set.

Records are cut into shards of a fixed row count in the source's order. Each
shard is written atomically and recorded in ``_progress.json``; the manifest is
written last. A re-run with the same inputs resumes after the last finished
shard; a re-run with different inputs is refused (or, with ``overwrite``,
starts over).

With ``pairs`` each garment also gets a sketch and a fabric patch (``pairs.py``),
stored as two more columns of a version-2 set.
"""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np

from fashion_tune.data.imaging import SkipImage
from fashion_tune.data.pairs import PAIRS_VERSION, fabric_size, make_pair
from fashion_tune.data.shards import (
    DEFAULT_SHARD_MB,
    FORMAT_VERSION,
    MANIFEST,
    PAIRED_FORMAT_VERSION,
    PROGRESS,
    Manifest,
    ShardInfo,
    Skipped,
    check_size,
    encode_shard,
    fingerprint,
    shard_name,
)
from fashion_tune.data.sources import SOURCES, Record, Source, SourceOptions
from fashion_tune.data.storage import Store
from fashion_tune.errors import DataError

# (rows done, rows total) after each shard, and once at the start
ProgressFn = Callable[[int, int], None]


@dataclass(frozen=True)
class PrepareResult:
    manifest: Manifest
    location: str
    resumed_shards: int  # shards found finished from an earlier run
    already_complete: bool  # nothing to do: the same set was already there


def _load_one(source: Source, rec: Record) -> tuple[np.ndarray | None, str | None]:
    try:
        return source.load(rec), None
    except SkipImage as exc:
        return None, str(exc)


_WORKER_SOURCE: Source | None = None


def _init_worker(source: Source) -> None:
    global _WORKER_SOURCE
    _WORKER_SOURCE = source
    # Ctrl-C reaches the whole process group: the parent stops the pool and keeps the
    # finished shards; a worker printing its own KeyboardInterrupt traceback helps no one
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _worker_load(rec: Record) -> tuple[np.ndarray | None, str | None]:
    assert _WORKER_SOURCE is not None
    return _load_one(_WORKER_SOURCE, rec)


def _decode(
    source: Source, records: list[Record], workers: int, pool: object | None
) -> Iterator[tuple[np.ndarray | None, str | None]]:
    if pool is None:
        return (_load_one(source, r) for r in records)
    chunk = max(1, min(256, len(records) // (4 * workers) or 1))
    return pool.imap(_worker_load, records, chunksize=chunk)  # type: ignore[attr-defined]


def _read_progress(store: Store) -> dict:
    """The saved progress of an unfinished prepare; a damaged file is one clear line."""
    where = store.describe(PROGRESS)
    try:
        progress = json.loads(store.read_bytes(PROGRESS))
        if not isinstance(progress, dict):
            raise ValueError("not a JSON object")
        for s in progress.get("shards", []):
            ShardInfo(**s)
        for s in progress.get("skipped", []):
            Skipped(**s)
    except (ValueError, TypeError, UnicodeDecodeError) as exc:
        raise DataError(
            f"{where} is damaged ({str(exc).splitlines()[0][:80]}); re-run with --overwrite "
            "to start this prepare over"
        ) from None
    return progress


def _check_existing(store: Store, fp: str, overwrite: bool) -> dict | None:
    """Decide what an existing output folder means; returns saved progress to resume."""
    names = [n for n in store.listdir() if not n.startswith(".")]
    if not names:
        return None
    if MANIFEST in names and not overwrite:
        old = Manifest.from_json(store.read_bytes(MANIFEST).decode(), store.describe(MANIFEST))
        if old.fingerprint == fp:
            return {"complete": old}
        raise DataError(
            f"{store.location} already holds a different shard set ({old.source}, "
            f"{old.image_size}px, fingerprint {old.fingerprint}; the inputs or options "
            "differ); use another --out or --overwrite"
        )
    elif PROGRESS in names and not overwrite:
        progress = _read_progress(store)
        if progress.get("fingerprint") == fp:
            return progress
        raise DataError(
            f"{store.location} holds an unfinished prepare of different inputs "
            f"(fingerprint {progress.get('fingerprint')}; inputs changed, moved, added or "
            "deleted since, or other options); use another --out or --overwrite"
        )
    elif MANIFEST not in names and PROGRESS not in names:  # --overwrite too: not ours
        raise DataError(
            f"{store.location} is not empty and is not a shard set; choose an empty or new "
            "--out (--overwrite replaces only a shard set)"
        )
    for name in names:
        if name in (MANIFEST, PROGRESS) or name.startswith("shard-"):
            store.delete(name)
    return None


def _check_numbers(options: SourceOptions, shard_mb: float, max_skip_frac: float) -> None:
    """Numeric options, checked before anything is read or written."""
    if options.limit is not None and options.limit < 1:
        raise DataError(f"--limit must be at least 1, got {options.limit}")
    if not (math.isfinite(options.margin) and options.margin >= 0):
        raise DataError(f"--margin must be a finite number >= 0, got {options.margin}")
    if not (math.isfinite(shard_mb) and shard_mb > 0):
        raise DataError(f"--shard-mb must be a finite number > 0, got {shard_mb}")
    if not (math.isfinite(max_skip_frac) and 0 <= max_skip_frac <= 1):
        raise DataError(f"--max-skip-frac must be a fraction in [0, 1], got {max_skip_frac}")


def prepare(
    source_name: str,
    path: str | None,
    out: str,
    options: SourceOptions,
    *,
    shard_mb: float = DEFAULT_SHARD_MB,
    max_skip_frac: float = 0.01,
    workers: int | None = None,
    overwrite: bool = False,
    progress: ProgressFn | None = None,
    pairs: bool = False,
) -> PrepareResult:
    if source_name not in SOURCES:
        raise DataError(f"unknown source {source_name!r}; choose one of {', '.join(SOURCES)}")
    check_size(options.size)
    if options.channels not in (None, 1, 3):
        raise DataError(f"unsupported channel count {options.channels}: choose 1 or 3")
    _check_numbers(options, shard_mb, max_skip_frac)
    if source_name != "deepfashion":  # silently ignoring a filter would give the wrong set
        for flag, given in (("--category-type", options.category_types), ("--view", options.views)):
            if given:
                raise DataError(f"{flag} applies to the deepfashion source, not {source_name}")
    store = Store.open(out)
    unwritable: DataError | None = None
    try:
        created = store.ensure_writable()  # a read-only or impossible --out fails before work
    except DataError as exc:
        if not store.exists(MANIFEST):
            raise
        created, unwritable = False, exc  # a finished set may be read-only: "nothing to do"
    try:
        return _prepare(
            source_name,
            path,
            store,
            options,
            shard_mb,
            max_skip_frac,
            workers,
            overwrite,
            progress,
            pairs,
            unwritable,
        )
    except BaseException:
        if created:
            store.remove_if_empty()  # never leave an empty folder behind
        raise


def _prepare(
    source_name: str,
    path: str | None,
    store: Store,
    options: SourceOptions,
    shard_mb: float,
    max_skip_frac: float,
    workers: int | None,
    overwrite: bool,
    progress: ProgressFn | None,
    pairs: bool = False,
    unwritable: DataError | None = None,
) -> PrepareResult:
    source = SOURCES[source_name](path, options)
    scan = source.scan()
    records = scan.records[: options.limit] if options.limit else scan.records
    if not records:
        raise DataError(f"no images selected from {source_name} (check the filters)")
    image_bytes = scan.channels * options.size * options.size
    if pairs:  # the sketch and the fabric patch travel in the same row
        image_bytes += options.size**2 + scan.channels * fabric_size(options.size) ** 2
    if shard_mb * (1 << 20) < image_bytes:
        raise DataError(
            f"--shard-mb {shard_mb:g} is smaller than one image ({image_bytes / 1024:g} KiB); "
            f"use at least {image_bytes / (1 << 20):.3g}"
        )
    rows_per_shard = int(shard_mb * (1 << 20)) // image_bytes
    fp = fingerprint(
        {
            "source": source_name,
            "inputs": scan.spec,
            "options": asdict(options),
            "rows": len(records),
            "rows_per_shard": rows_per_shard,
            # only when on, so the fingerprints of sets without pairs stay as they were
            **({"pairs": PAIRS_VERSION} if pairs else {}),
        }
    )
    saved = _check_existing(store, fp, overwrite) if unwritable is None or not overwrite else None
    if saved and "complete" in saved:
        return PrepareResult(saved["complete"], store.location, len(saved["complete"].shards), True)
    if unwritable is not None:
        raise unwritable

    done: list[ShardInfo] = [ShardInfo(**s) for s in (saved or {}).get("shards", [])]
    skipped = scan.skipped + [Skipped(**s) for s in (saved or {}).get("skipped", [])]
    # a shard recorded in the progress file must still be there, whole
    for info in done:
        if not store.exists(info.file) or store.size(info.file) != info.bytes:
            raise DataError(
                f"{store.describe(info.file)} is missing or truncated although an earlier run "
                "finished it; re-run with --overwrite"
            )
    resumed = len(done)
    num_attr = len(scan.attributes)
    n_shards = (len(records) + rows_per_shard - 1) // rows_per_shard
    max_skips = int(max_skip_frac * len(records))
    if progress:
        progress(min(len(records), resumed * rows_per_shard), len(records))

    n_workers = workers if workers is not None else min(8, os.cpu_count() or 1)
    use_pool = source.parallel and n_workers > 1 and len(records) - resumed * rows_per_shard > 64
    ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
    pool = ctx.Pool(n_workers, _init_worker, (source,)) if use_pool else None
    try:
        for k in range(resumed, n_shards):
            lo, hi = k * rows_per_shard, min(len(records), (k + 1) * rows_per_shard)
            chunk = records[lo:hi]
            images = np.empty((len(chunk), scan.channels, options.size, options.size), np.uint8)
            keep: list[int] = []
            for j, (arr, reason) in enumerate(_decode(source, chunk, n_workers, pool)):
                if arr is None:
                    skipped.append(Skipped(chunk[j].source_id, reason or "unreadable"))
                    continue
                if arr.shape != images.shape[1:]:
                    raise DataError(f"{chunk[j].source_id}: decoded shape {arr.shape}, bug?")
                images[len(keep)] = arr
                keep.append(j)
            if len(skipped) - len(scan.skipped) > max_skips:
                first = "; ".join(f"{s.source_id}: {s.reason}" for s in skipped[-3:])
                raise DataError(
                    f"{len(skipped)} of {len(records)} images could not be used, more than "
                    f"--max-skip-frac {max_skip_frac:g} allows (latest: {first})"
                )
            kept = [chunk[j] for j in keep]
            made = (
                [make_pair(im, source.drawing(rec)) for im, rec in zip(images, kept)]
                if pairs
                else []
            )
            pair_cols = (
                (np.stack([m[0] for m in made]), np.stack([m[1] for m in made])) if made else None
            )
            if pairs and pair_cols is None:  # a shard with no usable rows
                s, p = options.size, fabric_size(options.size)
                pair_cols = (
                    np.zeros((0, 1, s, s), np.uint8),
                    np.zeros((0, scan.channels, p, p), np.uint8),
                )
            attrs = None
            if num_attr and scan.attribute_rows is not None:
                attrs = scan.attribute_rows[[lo + j for j in keep]]
            data, info = encode_shard(
                images[: len(keep)],
                np.array([r.label for r in kept], np.int64),
                np.array([r.split for r in kept], np.int64),
                attrs,
                [r.source_id for r in kept],
                num_attr,
                scan.splits,
                pair_cols,
            )
            info = ShardInfo(shard_name(k), info.rows, info.bytes, info.sha256, info.split_counts)
            store.write_atomic(info.file, data)
            done.append(info)
            state = {
                "fingerprint": fp,
                "shards": [asdict(s) for s in done],
                "skipped": [asdict(s) for s in skipped[len(scan.skipped) :]],
            }
            store.write_atomic(PROGRESS, json.dumps(state).encode())
            if progress:
                progress(hi, len(records))
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()

    if not any(info.rows for info in done):  # a set of nothing must not read as a set
        for info in done:
            store.delete(info.file)
        store.delete(PROGRESS)
        first = "; ".join(f"{s.source_id}: {s.reason}" for s in skipped[:2])
        raise DataError(f"none of the {len(records)} selected images could be used ({first})")
    manifest = Manifest(
        source=source_name,
        image_size=options.size,
        channels=scan.channels,
        classes=scan.classes,
        splits=scan.splits,
        attributes=scan.attributes,
        shards=done,
        skipped=skipped,
        fingerprint=fp,
        options={**asdict(options), "inputs": scan.spec, "rows_per_shard": rows_per_shard},
        format_version=PAIRED_FORMAT_VERSION if pairs else FORMAT_VERSION,
        pairs={"version": PAIRS_VERSION, "fabric_size": fabric_size(options.size)}
        if pairs
        else None,
    )
    store.write_atomic(MANIFEST, manifest.to_json().encode())
    store.delete(PROGRESS)
    return PrepareResult(manifest, store.location, resumed, False)
