"""Controlled distortions of real images: the cases a GAN metric must rank as a person would.

Each case turns held-out real images (uint8, with labels) into a "generator's output"
with a known defect: mode collapse (k real images per class, repeated), class means,
blur, noise, training-set copies (memorisation) and labels shuffled across classes.
The metric sanity suite (tests and ``benchmarks/metric_sanity.py``) scores each case
against a shard set's reference; a metric is trusted only if it orders them right.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch.nn import functional as F


@dataclass(frozen=True)
class Case:
    images: np.ndarray  # uint8 (N, C, S, S)
    labels: np.ndarray  # int (N,): the class each image claims to be


def _per_class(labels: np.ndarray, k: int, seed: int, images: np.ndarray) -> np.ndarray:
    """Each image replaced by one of ``k`` images of its own class, repeated."""
    rng = np.random.default_rng(seed)
    out = images.copy()
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        keep = rng.choice(rows, size=min(k, len(rows)), replace=False)
        out[rows] = images[keep[np.arange(len(rows)) % len(keep)]]
    return out


def _class_means(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
    out = np.empty_like(images)
    for c in np.unique(labels):
        sel = labels == c
        out[sel] = np.round(images[sel].astype(np.float64).mean(0)).astype(np.uint8)
    return out


def _blur(images: np.ndarray, size: int) -> np.ndarray:
    """Binomial blur (size 3: [1 2 1]/4, size 5: [1 4 6 4 1]/16), reflect-padded."""
    k1 = torch.tensor([float(math.comb(size - 1, i)) for i in range(size)])
    k2 = torch.outer(k1, k1)
    k2 = k2 / k2.sum()
    x = torch.from_numpy(images).float()
    c = x.shape[1]
    w = k2.expand(c, 1, size, size).contiguous()
    y = F.conv2d(F.pad(x, [size // 2] * 4, mode="reflect"), w, groups=c)
    return y.round().clamp(0, 255).to(torch.uint8).numpy()


def _noise(images: np.ndarray, sigma: float, seed: int) -> np.ndarray:
    """Gaussian pixel noise of std ``sigma`` on a [0, 1] scale, clipped."""
    rng = np.random.default_rng(seed)
    x = images.astype(np.float64) / 255 + rng.normal(0, sigma, images.shape)
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)


def distortion_cases(
    held_images: np.ndarray,
    held_labels: np.ndarray,
    train_images: np.ndarray,
    train_labels: np.ndarray,
    seed: int = 0,
) -> dict[str, Case]:
    """name -> Case, all with as many images as ``held_images``; in a fixed order."""
    x, y = held_images, held_labels
    rng = np.random.default_rng(seed)
    cases: dict[str, Callable[[], Case]] = {
        "held-out reals": lambda: Case(x, y),
        "training-set copies": lambda: Case(train_images, train_labels),
        "16 per class": lambda: Case(_per_class(y, 16, seed, x), y),
        "4 per class": lambda: Case(_per_class(y, 4, seed, x), y),
        "1 per class": lambda: Case(_per_class(y, 1, seed, x), y),
        "class means": lambda: Case(_class_means(x, y), y),
        "blur 3x3": lambda: Case(_blur(x, 3), y),
        "blur 5x5": lambda: Case(_blur(x, 5), y),
        "noise 0.1": lambda: Case(_noise(x, 0.1, seed), y),
        "noise 0.3": lambda: Case(_noise(x, 0.3, seed), y),
        "labels shuffled": lambda: Case(x, rng.permutation(y)),
    }
    return {name: make() for name, make in cases.items()}
