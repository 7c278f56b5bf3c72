"""fabric-mnist: Fashion-MNIST silhouettes made of procedural fabrics, in colour.

**For tests and benchmarks only**: DeepFashion (colour, textured garments) is not available
offline, and FashionGAN's fabric input needs a colour set whose garments carry a known
texture. Each garment of Fashion-MNIST is filled with one fabric (solid, stripes, checks,
dots or a gradient) in two random colours, shaded by the original grey levels (so folds and
seams still show), on the black background. The fabric is a deterministic function of the
garment's id (the same set every time), and its kind is kept per garment as the attributes
``fabric:<kind>`` (one-hot), so a benchmark can ask whether a model's output follows its
fabric. With ``--pairs`` the sketch is drawn from the garment's shading, not from its
fabric (:meth:`FabricMNIST.drawing`), so only the fabric patch says what the garment is made
of. Nothing made from it is a claim about real garments.
"""

from __future__ import annotations

import colorsys
import hashlib

import numpy as np
from PIL import Image

from fashion_tune.data.imaging import to_square
from fashion_tune.data.sources.base import Record, Scan, register
from fashion_tune.data.sources.fashion_mnist import FashionMNIST
from fashion_tune.errors import DataError

FABRICS = ("solid", "stripes", "checks", "dots", "gradient")
SHADE_FLOOR = 0.35  # the darkest shading of a garment pixel (grey 0 inside it)


def _rng(source_id: str) -> np.random.Generator:
    seed = int.from_bytes(hashlib.sha256(f"fabric {source_id}".encode()).digest()[:8], "big")
    return np.random.default_rng(seed)


def fabric_kind(source_id: str) -> int:
    """The fabric kind of a garment (an index into FABRICS)."""
    return int(_rng(source_id).integers(len(FABRICS)))


def _colour(rng: np.random.Generator, hue: float) -> np.ndarray:
    r, g, b = colorsys.hsv_to_rgb(hue % 1.0, rng.uniform(0.55, 1.0), rng.uniform(0.65, 1.0))
    return np.array([r, g, b], np.float32)


def fabric(source_id: str, size: int) -> np.ndarray:
    """The garment's fabric: float32 (3, size, size) in [0, 1]."""
    rng = _rng(source_id)
    kind = FABRICS[int(rng.integers(len(FABRICS)))]
    hue = rng.uniform()
    c1 = _colour(rng, hue)
    c2 = _colour(rng, hue + rng.uniform(0.25, 0.75))  # a clearly different second colour
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    period = size * rng.uniform(1 / 8, 1 / 4)  # 4-8 px at 32 px, 8-16 px at 64 px
    angle = rng.choice([0.0, 45.0, 90.0, 135.0]) * np.pi / 180
    along = xx * np.cos(angle) + yy * np.sin(angle)
    if kind == "solid":
        mix = np.zeros((size, size), np.float32)
    elif kind == "stripes":
        mix = (np.floor(2 * along / period) % 2).astype(np.float32)
    elif kind == "checks":
        mix = ((np.floor(xx / period) + np.floor(yy / period)) % 2).astype(np.float32)
    elif kind == "dots":
        dy, dx = yy % period - period / 2, xx % period - period / 2
        mix = (dy**2 + dx**2 < (0.3 * period) ** 2).astype(np.float32)
    else:  # gradient
        mix = (along - along.min()) / max(float(np.ptp(along)), 1e-6)
    return c1[:, None, None] * (1 - mix) + c2[:, None, None] * mix


@register
class FabricMNIST(FashionMNIST):
    name = "fabric-mnist"

    def scan(self) -> Scan:
        if self.options.channels == 1:
            raise DataError("fabric-mnist is a colour set: --channels 1 would drop its fabrics")
        scan = super().scan()
        rows = np.zeros((len(scan.records), len(FABRICS)), np.int8)
        for i, rec in enumerate(scan.records):
            rows[i, fabric_kind(rec.source_id)] = 1
        scan.channels = 3
        scan.attributes = [f"fabric:{k}" for k in FABRICS]
        scan.attribute_rows = rows
        # v2: sketches are drawn from the garment's shading, not from its fabric
        scan.spec = {**scan.spec, "fabrics": "v2"}
        return scan

    def _shade(self, record: Record) -> np.ndarray:
        """The garment's shading at the output size, float in [0, 1]: the Fashion-MNIST
        grey levels lifted to at least SHADE_FLOOR inside the garment, 0 outside."""
        split_idx, i = record.ref
        size = self.options.size
        padded = np.zeros((32, 32), np.uint8)
        padded[2:30, 2:30] = self._images[split_idx][i]
        grey = padded if size == 32 else to_square(Image.fromarray(padded), size, 1)[0]
        grey = grey.astype(np.float32) / 255.0
        return np.where(grey > 0.03, SHADE_FLOOR + (1 - SHADE_FLOOR) * grey, 0.0)

    def drawing(self, record: Record) -> np.ndarray:
        """The sketch is drawn from the shading (outline, seams, folds), as a designer
        draws a garment before its fabric is chosen: drawn from the fabric-filled image,
        a striped garment's sketch would carry its stripes, and a model could copy the
        pattern from the sketch instead of taking it from the fabric (measured:
        benchmarks/RESULTS.md, FashionGAN's fabric)."""
        return np.clip(np.rint(self._shade(record) * 255), 0, 255).astype(np.uint8)[None]

    def load(self, record: Record) -> np.ndarray:
        rgb = fabric(record.source_id, self.options.size) * self._shade(record)[None]
        return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
