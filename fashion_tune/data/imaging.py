"""Image preprocessing shared by the sources: crop, pad to square, resize, to CHW uint8."""

from __future__ import annotations

import numpy as np
from PIL import Image


class SkipImage(Exception):
    """This one input cannot be used (missing, corrupt, empty box); the reason is recorded."""


def open_image(path: str) -> Image.Image:
    """Open and fully decode an image, turning any failure into :class:`SkipImage`."""
    try:
        img = Image.open(path)
        img.load()
    except FileNotFoundError:
        raise SkipImage("listed but missing") from None
    except Exception as exc:  # PIL raises many types for truncated / corrupt files
        raise SkipImage(f"corrupt image ({type(exc).__name__}: {exc})") from None
    return img


HIGH_DEPTH_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def to_8bit(img: Image.Image) -> Image.Image:
    """16-bit (and 32-bit integer) grayscale scaled to 8 bits, not clipped: PIL's own
    ``convert("L")`` clips every value above 255, so a 16-bit scan comes out nearly white."""
    if img.mode not in HIGH_DEPTH_MODES and img.mode != "F":
        return img
    arr = np.asarray(img).astype(np.float64)
    if img.mode.startswith("I;16"):
        top = 65535.0
    elif img.mode == "F":
        top = 1.0 if arr.size and arr.max() <= 1.0 else 255.0
    else:  # "I": 16-bit PNGs open as "I" on older Pillow; wider integers use their range
        top = 65535.0 if arr.size and arr.max() > 255 else 255.0
        top = max(top, float(arr.max()) if arr.size else top)
    out = np.clip(np.round(arr * (255.0 / top)), 0, 255).astype(np.uint8)
    return Image.fromarray(out, "L")


def flatten_alpha(img: Image.Image) -> Image.Image:
    """Images with transparency (RGBA, LA, a palette with a transparent entry) composited
    onto their border colour: the mean of the visible pixels on the outermost ring (white
    when the ring is fully transparent, as on a cut-out product shot)."""
    has_alpha = img.mode in ("RGBA", "LA", "PA") or (
        img.mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if not has_alpha:
        return img
    rgba = np.asarray(img.convert("RGBA"))
    alpha = rgba[..., 3].astype(np.float64) / 255.0
    ring = np.concatenate([rgba[0], rgba[-1], rgba[:, 0], rgba[:, -1]]).astype(np.float64)
    weight = ring[:, 3] / 255.0
    if weight.sum() > 0:
        fill = (ring[:, :3] * weight[:, None]).sum(0) / weight.sum()
    else:
        fill = np.full(3, 255.0)
    out = rgba[..., :3] * alpha[..., None] + fill * (1.0 - alpha[..., None])
    return Image.fromarray(np.clip(np.round(out), 0, 255).astype(np.uint8), "RGB")


def border_color(arr: np.ndarray) -> tuple[int, ...]:
    """Mean colour of the outermost pixel ring: pads product shots with their own background."""
    ring = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]]).reshape(-1, arr.shape[-1])
    return tuple(round(v) for v in ring.mean(axis=0))


def to_square(
    img: Image.Image,
    size: int,
    channels: int,
    bbox: tuple[int, int, int, int] | None = None,
    margin: float = 0.0,
) -> np.ndarray:
    """Crop to ``bbox`` grown by ``margin`` (a fraction of its size), pad to a square
    with the border colour, resize to ``size`` and return uint8 (channels, size, size)."""
    img = flatten_alpha(to_8bit(img))
    img = img.convert("L" if channels == 1 else "RGB")
    w, h = img.size
    if bbox is not None:
        x1, y1, x2, y2 = bbox
        if x2 <= x1 or y2 <= y1:
            raise SkipImage(f"empty bounding box {bbox}")
        mx, my = margin * (x2 - x1), margin * (y2 - y1)
        box = (
            max(0, int(x1 - mx)),
            max(0, int(y1 - my)),
            min(w, round(x2 + mx)),
            min(h, round(y2 + my)),
        )
        if box[2] <= box[0] or box[3] <= box[1]:
            raise SkipImage(f"bounding box {bbox} lies outside the {w}x{h} image")
        img = img.crop(box)
        w, h = img.size
    if w != h:
        side = max(w, h)
        arr = np.asarray(img)
        fill = border_color(arr if arr.ndim == 3 else arr[..., None])
        canvas = Image.new(img.mode, (side, side), fill[0] if channels == 1 else fill)
        canvas.paste(img, ((side - w) // 2, (side - h) // 2))
        img = canvas
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
    arr = np.asarray(img, dtype=np.uint8)
    if channels == 1:
        return arr[None, :, :].copy()
    return np.ascontiguousarray(arr.transpose(2, 0, 1))
