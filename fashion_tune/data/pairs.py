"""Sketch + fabric pairs made from a garment image at prepare time (FashionGAN's inputs).

From a prepared (C, S, S) uint8 garment image:

* **garment mask**: everything not connected to the image border through
  background-coloured pixels (a flood fill from the border, in NumPy, so holes inside the
  garment stay garment);
* **sketch** (1, S, S) uint8, dark lines on white: the garment's outline (the mask's
  morphological gradient) plus its strong inner edges (Pillow's ``FIND_EDGES`` on a
  lightly blurred grey image, thresholded inside the mask);
* **fabric** (C, P, P) uint8 with ``P = S // 4`` (FashionGAN crops 64 of 256 px): a crop
  centred on the mask's innermost point (the last pixels left by repeated erosion), so it
  shows the material, not the background.

Pillow (already a dependency, maintained, deterministic) does the filtering (blur, edge
kernel); NumPy the binary morphology. scikit-image is not installed, and SciPy / OpenCV
arrive only as other packages' dependencies, so none of them is added for this.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageFilter

PAIRS_VERSION = 1  # bump when the sketch or fabric recipe changes (it is in the fingerprint)
BG_TOLERANCE = 24  # grey levels a pixel may differ from the border colour and be background
EDGE_QUANTILE = 0.8  # inner edges: the strongest 20% of edge responses inside the garment
INK, PAPER = 0, 255


def fabric_size(image_size: int) -> int:
    return image_size // 4


def _grey(image: np.ndarray) -> Image.Image:
    if image.shape[0] == 1:
        return Image.fromarray(image[0], "L")
    return Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)), "RGB").convert("L")


def _dilate(m: np.ndarray) -> np.ndarray:
    """4-neighbour binary dilation."""
    out = m.copy()
    out[1:] |= m[:-1]
    out[:-1] |= m[1:]
    out[:, 1:] |= m[:, :-1]
    out[:, :-1] |= m[:, 1:]
    return out


def _erode(m: np.ndarray) -> np.ndarray:
    """4-neighbour binary erosion (outside the image counts as empty)."""
    return ~_dilate(~np.pad(m, 1))[1:-1, 1:-1]


def garment_mask(image: np.ndarray) -> np.ndarray:
    """(S, S) bool: the garment (not reachable from the border through background)."""
    arr = np.asarray(_grey(image)).astype(np.int16)
    ring = np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])
    candidate = np.abs(arr - int(np.median(ring))) <= BG_TOLERANCE
    border = np.zeros_like(candidate)
    border[0] = border[-1] = border[:, 0] = border[:, -1] = True
    background = candidate & border
    while True:  # flood fill from the border, through background-coloured pixels only
        grown = _dilate(background) & candidate
        if np.array_equal(grown, background):
            return ~background
        background = grown


def sketch(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(1, S, S) uint8 sketch: ink (0) on paper (255)."""
    mask = garment_mask(image) if mask is None else mask
    outline = mask & ~_erode(mask)  # the line lies on the garment's own border pixels
    edges = np.asarray(
        _grey(image).filter(ImageFilter.GaussianBlur(0.6)).filter(ImageFilter.FIND_EDGES)
    ).astype(np.float32)
    inner = mask & ~outline
    inner_lines = np.zeros_like(mask)
    if inner.any():
        level = max(float(np.quantile(edges[inner], EDGE_QUANTILE)), 16.0)
        inner_lines = inner & (edges > level)
    out = np.full(mask.shape, PAPER, np.uint8)
    out[outline | inner_lines] = INK
    return out[None]


def fabric_patch(image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(C, P, P) uint8 crop centred on the garment's innermost point."""
    s = image.shape[1]
    p = fabric_size(s)
    mask = garment_mask(image) if mask is None else mask
    cy, cx = s // 2, s // 2
    if mask.any():
        core = mask
        for _ in range(s // 2):  # erode until one more step would leave nothing
            nxt = _erode(core)
            if not nxt.any():
                break
            core = nxt
        ys, xs = np.nonzero(core)
        cy, cx = round(float(ys.mean())), round(float(xs.mean()))
    y0 = min(max(cy - p // 2, 0), s - p)
    x0 = min(max(cx - p // 2, 0), s - p)
    return np.ascontiguousarray(image[:, y0 : y0 + p, x0 : x0 + p])


def make_pair(
    image: np.ndarray, drawing: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(sketch (1, S, S), fabric (C, P, P)) of one prepared garment image; the sketch (and
    the garment's mask) from ``drawing`` when the source gives one (``Source.drawing``)."""
    shape = image if drawing is None else drawing
    mask = garment_mask(shape)
    return sketch(shape, mask), fabric_patch(image, mask)
