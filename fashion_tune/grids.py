"""Image grids: uint8 or [-1, 1] float batches -> one PIL image, optionally with row labels."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont


def to_uint8(images: torch.Tensor | np.ndarray) -> np.ndarray:
    """(N, C, H, W) in uint8, or float in [-1, 1] (generator output) -> uint8 NumPy."""
    if isinstance(images, torch.Tensor):
        if images.dtype != torch.uint8:
            images = ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
        return images.cpu().numpy()
    return images.astype(np.uint8, copy=False)


def make_grid(
    images: torch.Tensor | np.ndarray,
    nrow: int = 8,
    pad: int = 2,
    scale: int = 1,
    row_labels: list[str] | None = None,
    pad_value: int = 255,
) -> Image.Image:
    """Tile (N, C, H, W) images ``nrow`` per row; ``scale`` enlarges small images (nearest)."""
    arr = to_uint8(images)
    n, c, h, w = arr.shape
    rows = -(-n // nrow)
    grid = np.full((c, rows * (h + pad) + pad, nrow * (w + pad) + pad), pad_value, np.uint8)
    for i in range(n):
        r, k = divmod(i, nrow)
        y, x = pad + r * (h + pad), pad + k * (w + pad)
        grid[:, y : y + h, x : x + w] = arr[i]
    img = Image.fromarray(grid[0] if c == 1 else grid.transpose(1, 2, 0))
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    if row_labels:
        font = ImageFont.load_default()
        label_w = 8 + max(int(font.getlength(t)) for t in row_labels)
        # PIL reads a bare int as a packed pixel: 255 in an RGB image would be red
        fill = pad_value if img.mode == "L" else (pad_value,) * len(img.getbands())
        ink = 0 if img.mode == "L" else (0,) * len(img.getbands())
        canvas = Image.new(img.mode, (img.width + label_w, img.height), fill)
        canvas.paste(img, (label_w, 0))
        draw = ImageDraw.Draw(canvas)
        cell = (h + pad) * scale
        for r, text in enumerate(row_labels[:rows]):
            draw.text((4, pad * scale + r * cell + cell // 2 - 6), text, fill=ink)
        img = canvas
    return img


def triptychs(
    columns: list[torch.Tensor | np.ndarray], per_row: int = 4, scale: int = 1
) -> Image.Image:
    """Side-by-side sets (e.g. sketch | fabric | garment): ``columns`` are batches of the
    same length, each resized (nearest) to the largest size and given the most channels;
    each grid row holds ``per_row`` sets."""
    arrs = [to_uint8(c) for c in columns]
    size = max(a.shape[-1] for a in arrs)
    chans = max(a.shape[1] for a in arrs)
    fitted = []
    for a in arrs:
        if a.shape[-1] != size:  # integer-upscale (the fabric patch is S/4)
            k = -(-size // a.shape[-1])
            a = a.repeat(k, axis=2).repeat(k, axis=3)[:, :, :size, :size]
        if a.shape[1] != chans:
            a = np.repeat(a, chans, axis=1)
        fitted.append(a)
    n = len(fitted[0])
    inter = np.stack(fitted, axis=1).reshape(n * len(fitted), chans, size, size)
    return make_grid(inter, nrow=per_row * len(fitted), scale=scale)
