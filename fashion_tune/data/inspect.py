"""``fashion-tune data inspect``: a shard set's summary and a grid of real samples per class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fashion_tune.atomic import atomic_path
from fashion_tune.data.reader import ShardSet
from fashion_tune.data.storage import os_reason
from fashion_tune.errors import DataError
from fashion_tune.grids import make_grid, triptychs


def summary_rows(shards: ShardSet) -> list[tuple[str, str]]:
    m = shards.manifest
    counts = m.split_counts()
    total_bytes = sum(s.bytes for s in m.shards)
    rows = [
        ("location", shards.location),
        ("source", m.source),
        ("images", f"{m.rows:,} ({', '.join(f'{k} {v:,}' for k, v in counts.items())})"),
        (
            "image size",
            f"{m.image_size}x{m.image_size}, {m.channels} channel(s), layout {m.layout}",
        ),
        (
            "classes",
            f"{len(m.classes)}: {', '.join(m.classes[:12])}{' ...' if len(m.classes) > 12 else ''}",
        ),
        ("attributes", str(len(m.attributes))),
        ("shards", f"{len(m.shards)} files, {total_bytes / 2**20:,.1f} MiB"),
        ("skipped inputs", str(len(m.skipped))),
        ("fingerprint", m.fingerprint),
    ]
    if m.pairs:
        p = m.fabric_size
        rows.insert(-1, ("pairs", f"sketch {m.image_size}x{m.image_size}, fabric {p}x{p}"))
    return rows


def class_grid(
    shards: ShardSet, per_class: int = 8, split: str | None = None, seed: int = 0
) -> Image.Image:
    """One row per class (``per_class`` random real images each), class names on the left."""
    rng = np.random.default_rng(seed)
    rows_idx = shards.split_indices(split)
    labels = shards.labels[rows_idx]
    picks, names = [], []
    for c, name in enumerate(shards.classes):
        members = rows_idx[labels == c]
        if len(members) == 0:
            continue
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        chosen = np.concatenate([chosen, np.full(per_class - len(chosen), -1)])
        picks.append(chosen)
        names.append(f"{name} ({len(members):,})")
    if not picks:
        raise DataError(f"{shards.location} holds no images to show")
    idx = np.concatenate(picks)
    images = np.full((len(idx), *shards.shape), 255, np.uint8)
    valid = idx >= 0
    images[valid] = shards.gather(idx[valid])
    scale = max(1, 64 // shards.image_size)
    return make_grid(images, nrow=per_class, scale=scale, row_labels=names)


def write_grid(shards: ShardSet, out: Path, per_class: int = 8) -> Path:
    """Write the per-class grid to ``out`` atomically (a folder is created as needed)."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            class_grid(shards, per_class).save(tmp)
    except OSError as exc:
        raise DataError(f"cannot write the sample grid {out}: {os_reason(exc)}") from None
    return out


def pairs_grid(shards: ShardSet, n: int = 32, seed: int = 0) -> Image.Image:
    """Random training pairs as sketch | fabric | garment triptychs, four per row."""
    shards.require_pairs("the pairs grid")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(shards), size=min(n, len(shards)), replace=False))
    sketches, fabrics = shards.gather_pairs(idx)
    scale = max(1, 64 // shards.image_size)
    return triptychs([sketches, fabrics, shards.gather(idx)], per_row=4, scale=scale)


def write_pairs_grid(shards: ShardSet, out: Path, n: int = 32) -> Path:
    """Write the pairs grid to ``out`` atomically."""
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(out) as tmp:
            pairs_grid(shards, n).save(tmp)
    except OSError as exc:
        raise DataError(f"cannot write the pairs grid {out}: {os_reason(exc)}") from None
    return out
