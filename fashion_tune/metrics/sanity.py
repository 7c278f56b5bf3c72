"""The metric sanity suite: score controlled distortions of real images against a reference.

Shared by the tests (which assert the orderings a person would expect) and by
``benchmarks/metric_sanity.py`` (which prints the table). Every case has the same number
of images, drawn from the set's held-out split (training-set copies from the training
split), so the scores compare like a trial's ticks do.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from fashion_tune.config import MetricsConfig
from fashion_tune.data.reader import ShardSet
from fashion_tune.metrics.distortions import distortion_cases
from fashion_tune.metrics.evaluate import score_images
from fashion_tune.metrics.reference import Reference


def sanity_images(shards: ShardSet, n: int = 1000, seed: int = 0) -> tuple[np.ndarray, ...]:
    """(held-out images, labels, training images, labels): ``n`` each, random rows."""
    rng = np.random.default_rng(seed)
    splits = shards.manifest.splits
    counts = shards.manifest.split_counts()
    held_split = next((s for s in splits[1:] if counts.get(s, 0) >= n), None)
    train = shards.split_indices(splits[0])
    if held_split is None:  # no held-out split big enough: the training split's tail
        held = train[-n:]
        train = train[:-n]
    else:
        held = shards.split_indices(held_split)
    h = np.sort(rng.choice(held, size=n, replace=False))
    t = np.sort(rng.choice(train, size=n, replace=False))
    return shards.gather(h), shards.labels[h], shards.gather(t), shards.labels[t]


def sanity_table(
    shards: ShardSet, ref: Reference, n: int = 1000, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """case name -> the scores a trial would report for those images."""
    held, held_y, train, train_y = sanity_images(shards, n, seed)
    cfg = MetricsConfig(num_samples=n, kid_subset_size=min(1000, n // 2), kid_subsets=20)
    out = {}
    for name, case in distortion_cases(held, held_y, train, train_y, seed).items():
        out[name] = score_images(ref, cfg, torch.from_numpy(case.images), case.labels)
    return out
