"""Image grids for the report: a checkpoint's EMA samples beside real images of the same classes
(a fashiongan checkpoint: its swap sheet, each fixed sketch made of each fixed fabric).

The generated grid uses fixed noise (``--seed``) and one row per class (the first
ten classes of a conditional generator), the layout of the trial's own sample grids,
so grids of different trials compare image for image.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from fashion_tune.errors import FashionTuneError

COLS = 8
MAX_ROWS = 10


def _labels(classes: list[str], rows: int) -> list[str]:
    return [classes[i] if i < len(classes) else str(i) for i in range(rows)]


def sample_grid(checkpoint: Path, seed: int) -> tuple[Image.Image, list[str]]:
    """(grid, class names of its rows) from a checkpoint's EMA generator."""
    import torch

    from fashion_tune.checkpoint import load
    from fashion_tune.grids import make_grid
    from fashion_tune.sampling import fixed_noise, generate
    from fashion_tune.training import rebuild_generator

    state, cfg = load(checkpoint)
    if state.get("task") == "paired":  # fashiongan: each sketch made of several fabrics
        from fashion_tune.pair_inputs import checkpoint_sheet

        return checkpoint_sheet(state, cfg), []
    G = rebuild_generator(state, cfg)
    classes = [str(c) for c in state["model_meta"].get("classes", [])]
    rows = min(G.num_classes, MAX_ROWS) if G.num_classes else COLS
    z = fixed_noise(rows * COLS, G.z_dim, seed)
    y = torch.arange(rows).repeat_interleave(COLS) if G.num_classes else None
    images = generate(G, z, y)
    names = _labels(classes, rows) if G.num_classes else []
    scale = max(1, 64 // G.img_size)
    return make_grid(images, nrow=COLS, scale=scale, row_labels=names or None), names


def real_grid(data_path: str, classes: list[str], seed: int) -> Image.Image:
    """Real images of ``classes`` (one row each; random rows when empty) from the shard set.

    Raises FashionTuneError when the set cannot be read here (moved, remote, corrupt).
    """
    from fashion_tune.data.reader import ShardSet
    from fashion_tune.grids import make_grid

    # a remote set is not copied just for a picture; sizes, not checksums, are checked
    shards = ShardSet(data_path, cache="never", verify="size")
    rng = np.random.default_rng(seed)
    rows_idx = shards.split_indices(None)
    picks: list[np.ndarray] = []
    if classes:
        for name in classes:
            if name not in shards.classes:
                raise FashionTuneError(f"class {name!r} is not in {data_path}")
            members = rows_idx[shards.labels[rows_idx] == shards.classes.index(name)]
            chosen = rng.choice(members, size=min(COLS, len(members)), replace=False)
            picks.append(np.concatenate([chosen, np.full(COLS - len(chosen), -1)]))
    else:
        picks.append(rng.choice(rows_idx, size=min(COLS * COLS, len(rows_idx)), replace=False))
    idx = np.concatenate(picks)
    images = np.full((len(idx), *shards.shape), 255, np.uint8)
    valid = idx >= 0
    images[valid] = shards.gather(idx[valid])
    scale = max(1, 64 // shards.image_size)
    return make_grid(images, nrow=COLS, scale=scale)  # rows as the generated grid's labels
