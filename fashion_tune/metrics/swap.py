"""The swap test: does a sketch + fabric generator make the garment *of its fabric*?

For N held-out sketches and K fabrics cut from K other held-out garments, every sketch is
rendered with every fabric (N x K outputs, from the fabric's mean code). Scores:

* ``fabric_top1`` (chance 1/K): is each output's own fabric patch (the crop recipe of
  ``data/pairs.py``) nearest, in colour and texture statistics, to the fabric it was made
  from among the K? (:func:`~fashion_tune.metrics.paired.fabric_retrieval`; ties shared.)
* ``texture_top1`` (chance 1/K): the same question asked without colour
  (:func:`~fashion_tune.metrics.paired.texture_retrieval`): a model that gets the colour
  right and paints it flat scores low.
* ``shape_iou``, ``edge_f1``: the outputs' agreement with their sketch;
* ``fd`` (and the other realism scores of the metric reference): the N x K outputs, each
  claiming its sketch's garment class.

A model that ignores its fabric scores chance on both retrievals: the fabric-blind control
(``model.fabric_in=false``) is the baseline to read them against. ``swap_sheet`` draws the
same outputs as a sheet: the fabrics along the top, one row per sketch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from fashion_tune.config import MetricsConfig
from fashion_tune.data.pairs import garment_mask, sketch
from fashion_tune.data.reader import ShardSet
from fashion_tune.errors import DataError
from fashion_tune.grids import make_grid, to_uint8
from fashion_tune.metrics.evaluate import score_images
from fashion_tune.metrics.paired import (
    edge_f1,
    fabric_retrieval,
    output_patches,
    shape_iou,
    texture_retrieval,
    translate,
)
from fashion_tune.metrics.reference import Reference

SWAP_SEED = 1812
SWAP_SCORES = ("fabric_top1", "texture_top1", "shape_iou", "edge_f1", "fd")


@dataclass
class SwapSet:
    """N held-out sketches and K fabrics of other held-out garments, drawn once (from the
    test split when it holds enough, else from the whole set)."""

    sketches: np.ndarray  # (N, 1, S, S) uint8
    fabrics: np.ndarray  # (K, C, P, P) uint8
    labels: np.ndarray | None  # (N,) the sketches' garment classes
    fabric_rows: np.ndarray | None = None  # (K,) the shard rows the fabrics were cut from

    @classmethod
    def draw(cls, shards: ShardSet, n: int, k: int, seed: int = SWAP_SEED) -> SwapSet:
        shards.require_pairs("the swap test")
        rows = shards.split_indices("test" if "test" in shards.manifest.splits else None)
        if len(rows) < n + k:  # too few held-out garments (a small set): all of them
            rows = shards.split_indices(None)
        if len(rows) < n + k:
            raise DataError(
                f"the swap test needs {n} sketches + {k} fabrics of distinct garments; "
                f"{shards.folder} has {len(rows)}"
            )
        pick = np.random.default_rng(seed).choice(rows, size=n + k, replace=False)
        sk_idx, fb_idx = np.sort(pick[:n]), np.sort(pick[n:])
        sketches, _ = shards.gather_pairs(sk_idx)
        _, fabrics = shards.gather_pairs(fb_idx)
        labels = shards.labels[sk_idx] if shards.num_classes > 1 else None
        return cls(sketches, fabrics, labels, fb_idx)


@torch.no_grad()
def render(G: nn.Module, E: nn.Module, swap: SwapSet) -> np.ndarray:
    """(N, K, C, S, S) uint8: every sketch with every fabric."""
    n, k = len(swap.sketches), len(swap.fabrics)
    sk = np.repeat(swap.sketches, k, axis=0)
    fb = np.tile(swap.fabrics, (n, 1, 1, 1))
    out = to_uint8(translate(G, E, sk, fb))
    return out.reshape(n, k, *out.shape[1:])


def swap_scores(
    outputs: np.ndarray, swap: SwapSet, ref: Reference | None, mcfg: MetricsConfig
) -> dict[str, Any]:
    """The swap-test scores of rendered ``outputs`` (N, K, C, S, S) uint8."""
    n, k = outputs.shape[:2]
    flat = outputs.reshape(n * k, *outputs.shape[2:])
    silhouettes = np.repeat(np.stack([garment_mask(s) for s in swap.sketches]), k, axis=0)
    patches = output_patches(outputs)  # cropped once for both retrievals
    scores: dict[str, Any] = {
        "fabric_top1": fabric_retrieval(outputs, swap.fabrics, patches),
        "texture_top1": texture_retrieval(outputs, swap.fabrics, patches),
        "chance": 1.0 / k,
        "shape_iou": shape_iou(flat, silhouettes),
        "edge_f1": edge_f1(np.stack([sketch(o) for o in flat]), np.repeat(swap.sketches, k, 0)),
    }
    if ref is not None:
        labels = None if swap.labels is None else np.repeat(swap.labels, k)
        real = score_images(ref, mcfg, torch.from_numpy(flat), labels)
        scores.update({key: v for key, v in real.items() if key not in scores})
    return scores


def swap_sheet(
    outputs: np.ndarray, swap: SwapSet, scale: int = 1, rows: int | None = None
) -> Image.Image:
    """The fabrics along the top, then one row per sketch (the first ``rows`` of them): the
    sketch, then it made of each fabric (the top-left cell is blank)."""
    outputs = outputs[:rows]
    n, k, c, s, _ = outputs.shape
    fabrics = to_uint8(swap.fabrics)
    rep = -(-s // fabrics.shape[-1])
    fabrics = fabrics.repeat(rep, axis=2).repeat(rep, axis=3)[:, :, :s, :s]
    sketches = np.repeat(swap.sketches[:n], c, axis=1)
    blank = np.full((1, c, s, s), 255, np.uint8)
    lines = [np.concatenate([blank, fabrics])]
    lines += [np.concatenate([sketches[i : i + 1], outputs[i]]) for i in range(n)]
    return make_grid(np.concatenate(lines), nrow=k + 1, scale=scale)


SHEET_SIDE = 6  # sketches and fabrics on a checkpoint's sheet


def fixed_pair_sheet(
    G: nn.Module, E: nn.Module, sketches: np.ndarray, fabrics: np.ndarray, scale: int = 1
) -> Image.Image:
    """The swap sheet of a checkpoint's fixed pairs: their first ``SHEET_SIDE`` fabrics
    along the top, a row per sketch; on the diagonal each sketch wears its own fabric."""
    side = min(SHEET_SIDE, len(sketches), len(fabrics))
    pairs = SwapSet(to_uint8(sketches[:side]), to_uint8(fabrics[:side]), None)
    return swap_sheet(render(G, E, pairs), pairs, scale=scale)
