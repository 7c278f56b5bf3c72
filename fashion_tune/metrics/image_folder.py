"""A folder of PNG / JPEG images as a set of "generated" images to score.

Flat (``DIR/*.png``) or one sub-folder per class (``DIR/<class>/*.png``, class names as
in the shard set, a ``/`` in a name written as ``_``). Every image must already have the
set's size and channel count: scoring silently resized images would measure the
resizing, not the generator.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from fashion_tune.data.reader import ShardSet
from fashion_tune.errors import FashionTuneError

SUFFIXES = {".png", ".jpg", ".jpeg"}


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in SUFFIXES)


def is_image_folder(path: Path) -> bool:
    """A folder holding images (directly or one level down) and no checkpoint."""
    if not path.is_dir() or (path / "checkpoint.pt").exists() or (path / "checkpoints").exists():
        return False
    if _images_in(path):
        return True
    return any(_images_in(sub) for sub in path.iterdir() if sub.is_dir())


def load_image_folder(
    folder: Path, shards: ShardSet, n: int
) -> tuple[torch.Tensor, np.ndarray | None]:
    """``n`` images (a fixed random subset when there are more) as uint8 (n, C, S, S), and
    their classes when the folder has one sub-folder per class."""
    from PIL import Image, UnidentifiedImageError

    flat = _images_in(folder)
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and _images_in(p))
    files: list[tuple[Path, int | None]]
    if flat and subs:
        raise FashionTuneError(
            f"{folder} mixes images and class sub-folders; use one layout or the other"
        )
    if subs:
        # a class name with '/' ("T-shirt/top") cannot be a folder name: '_' stands for it
        by_folder = {c.replace("/", "_"): i for i, c in enumerate(shards.classes)}
        by_folder.update({c: i for i, c in enumerate(shards.classes)})
        unknown = [s.name for s in subs if s.name not in by_folder]
        if unknown:
            known = ", ".join(shards.classes[:10]) + (", ..." if len(shards.classes) > 10 else "")
            raise FashionTuneError(
                f"{folder}: sub-folder(s) {', '.join(unknown[:3])} name no class of the shard "
                f"set ({known})"
            )
        files = [(f, by_folder[s.name]) for s in subs for f in _images_in(s)]
    else:
        files = [(f, None) for f in flat]
    if len(files) < n:
        raise FashionTuneError(
            f"{folder} holds {len(files)} images; scoring uses {n} (fixed counts keep scores "
            f"comparable): add images or pass --num-samples {max(16, len(files))}"
        )
    if len(files) > n:
        pick = np.sort(np.random.default_rng(0).choice(len(files), size=n, replace=False))
        files = [files[i] for i in pick]
    size, channels = shards.image_size, shards.channels
    want_mode = "L" if channels == 1 else "RGB"
    out = np.empty((n, channels, size, size), np.uint8)
    for i, (path, _) in enumerate(files):
        try:
            with Image.open(path) as im:
                im.load()
                mode, dims = im.mode, im.size
                if mode in ("L", "RGB") and mode != want_mode:
                    raise FashionTuneError(
                        f"{path} has {1 if mode == 'L' else 3} channel(s); the shard set has "
                        f"{channels}"
                    )
                if mode not in ("L", "RGB"):
                    raise FashionTuneError(
                        f"{path} is a {mode} image; give 8-bit {want_mode} images"
                    )
                if dims != (size, size):
                    raise FashionTuneError(
                        f"{path} is {dims[0]}x{dims[1]} px; the shard set's images are "
                        f"{size}x{size} (resize them first)"
                    )
                arr = np.asarray(im)
        except (UnidentifiedImageError, OSError) as exc:
            raise FashionTuneError(f"cannot read image {path}: {exc}") from None
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    classes = None if not subs else np.array([c for _, c in files], dtype=np.int64)
    return torch.from_numpy(out), classes
