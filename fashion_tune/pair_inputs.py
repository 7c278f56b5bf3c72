"""A user's own sketch and fabric images -> the inputs of a fashiongan checkpoint.

Any size and most modes are accepted: the sketch becomes grey, is padded to a square
with white, resized to the model's size and cut to ink / paper at ``INK_LEVEL`` (white
lines on black are inverted first); the fabric is centre-cropped to a square, converted
to the model's channels and resized to its fabric patch size. A file that cannot be read
as an image, or a sketch without lines, is one :class:`PairInputError` line.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from fashion_tune.data.imaging import flatten_alpha, to_8bit
from fashion_tune.errors import FashionTuneError

INK_LEVEL = 200  # after resizing, darker than this is a line (thin lines grey out)


class PairInputError(FashionTuneError):
    """A --sketch or --fabric file that cannot serve as a fashiongan input."""


def _open(path: Path, what: str) -> Image.Image:
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise PairInputError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise PairInputError(f"{what} {path} is a folder; give an image file") from None
    except PermissionError:
        raise PairInputError(f"{what} {path} cannot be read (permission denied)") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        why = str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__
        raise PairInputError(f"{what} {path} is not a readable image ({why})") from None
    if img.width < 1 or img.height < 1:
        raise PairInputError(f"{what} {path} is empty ({img.width}x{img.height})")
    try:
        return flatten_alpha(to_8bit(img))
    except (ValueError, OSError) as exc:
        raise PairInputError(f"{what} {path} has an unsupported mode {img.mode} ({exc})") from None


def _convert(img: Image.Image, mode: str, path: Path, what: str) -> Image.Image:
    try:
        return img.convert(mode)
    except (ValueError, OSError) as exc:
        raise PairInputError(
            f"{what} {path} has mode {img.mode}, which cannot be converted to {mode} ({exc})"
        ) from None


def load_sketch(path: Path, size: int) -> np.ndarray:
    """(1, size, size) uint8 sketch, ink 0 on paper 255."""
    grey = _convert(_open(path, "--sketch"), "L", path, "--sketch")
    arr = np.asarray(grey)
    ring = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    if np.median(ring) < 128:  # white lines on black: make them dark on white
        grey = Image.fromarray(255 - arr, "L")
    w, h = grey.size
    side = max(w, h)
    canvas = Image.new("L", (side, side), 255)
    canvas.paste(grey, ((side - w) // 2, (side - h) // 2))
    small = np.asarray(canvas.resize((size, size), Image.Resampling.BOX))
    out = np.where(small < INK_LEVEL, 0, 255).astype(np.uint8)
    if not (out == 0).any():
        raise PairInputError(
            f"--sketch {path} has no lines at {size}x{size} px (it is blank, or its lines are "
            "too light or too thin): draw dark lines on a light background"
        )
    return out[None]


def load_fabric(path: Path, size: int, channels: int) -> np.ndarray:
    """(channels, size, size) uint8 fabric patch."""
    img = _convert(_open(path, "--fabric"), "L" if channels == 1 else "RGB", path, "--fabric")
    w, h = img.size
    side = min(w, h)
    img = img.crop(
        ((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
    )
    arr = np.asarray(img.resize((size, size), Image.Resampling.LANCZOS), np.uint8)
    return arr[None].copy() if channels == 1 else np.ascontiguousarray(arr.transpose(2, 0, 1))


def rebuild_paired(state: dict[str, Any], cfg: Any) -> tuple[torch.nn.Module, torch.nn.Module]:
    """A fashiongan checkpoint's (G_ema, E), from the checkpoint alone."""
    from fashion_tune.tasks.paired import build_paired_models
    from fashion_tune.training import _load_weights

    meta = state["model_meta"]
    if "E" not in state:
        raise PairInputError("this fashiongan checkpoint has no fabric encoder E: export it again")
    G, E, _ = build_paired_models(cfg, int(meta["img_size"]), int(meta["channels"]))
    _load_weights(G, state["G_ema"] if "G_ema" in state else state["G"], "G", cfg)
    _load_weights(E, state["E"], "E", cfg)
    return G.eval(), E.eval()


def checkpoint_sheet(state: dict[str, Any], cfg: Any) -> Image.Image:
    """A fashiongan checkpoint's swap sheet on the fixed pairs it carries: its fabrics along
    the top, one row per sketch made of each (``metrics.swap.fixed_pair_sheet``)."""
    from fashion_tune.metrics.swap import fixed_pair_sheet

    meta = state["model_meta"]
    if "grid_sketches" not in meta:
        raise PairInputError("this fashiongan checkpoint carries no sample pairs")
    G, E = rebuild_paired(state, cfg)
    sk, fb = meta["grid_sketches"], meta["grid_fabrics"]
    scale = max(1, 64 // int(meta["img_size"]))
    return fixed_pair_sheet(G, E, np.asarray(sk), np.asarray(fb), scale=scale)
