"""Scores of a sketch + fabric generator (fashiongan), each tick, at fixed sample counts.

On ``metrics.num_samples`` fixed pairs (sketch and fabric of real garments, drawn once
with a fixed seed from the test split when the set has one):

* the usual realism scores of the outputs (``fd``, the objective, and the rest of
  :func:`~fashion_tune.metrics.evaluate.score_images`, each output claiming its real
  garment's class);
* ``shape_iou`` (higher, 1 = perfect): sketch fidelity of the silhouette: IoU of the
  output's garment mask and the region the sketch encloses (both by ``pairs.garment_mask``);
* ``edge_f1`` (higher, 1 = perfect): sketch fidelity of the lines: the output's own sketch (the
  recipe of ``data/pairs.py``) against the input sketch, F1 of their ink pixels with a
  ``EDGE_TOL`` px tolerance, averaged over pairs;
* ``fabric_err`` (lower, in [0, 1]): fabric fidelity: the output's fabric patch (same
  recipe) vs the input fabric: per-channel |mean diff| + |std diff| + |mean gradient
  magnitude diff| (texture), over 255;
* ``fabric_div`` (higher): diversity across fabrics: ``DIV_SKETCHES`` sketches each
  rendered with ``DIV_FABRICS`` fabrics; mean pairwise L1 distance of those outputs (in
  [0, 1]), averaged over sketches. 0 means the fabric is ignored.
* ``fabric_top1`` (higher, chance = 1 / ``DIV_FABRICS``): the swap test. Those same
  outputs, each sketch with K fabrics of other garments: is each output's fabric patch
  closest (colour and texture statistics) to its own fabric among the K? Top-1 accuracy,
  ties shared (a model whose outputs ignore the fabric scores exactly chance).
* ``texture_top1`` (higher, chance as above): the same without colour, on each patch's
  pattern alone (:func:`texture_retrieval`); the standalone swap test on more sketches is
  ``metrics.swap``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from fashion_tune.config import MetricsConfig
from fashion_tune.data.pairs import fabric_patch, garment_mask, sketch
from fashion_tune.data.reader import ShardSet
from fashion_tune.grids import to_uint8
from fashion_tune.metrics.evaluate import score_images
from fashion_tune.metrics.reference import Reference

# name -> True when lower is better
PAIRED_SCORES: dict[str, bool] = {
    "shape_iou": False,
    "edge_f1": False,
    "fabric_err": True,
    "fabric_div": False,
    "fabric_top1": False,
    "texture_top1": False,
}
EDGE_TOL = 1  # px
DIV_SKETCHES, DIV_FABRICS = 8, 8
EVAL_SEED = 2025


def to_unit(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """uint8 images -> float in [-1, 1]."""
    t = torch.as_tensor(x)
    return t.float().div(127.5).sub(1.0) if t.dtype == torch.uint8 else t.float()


@torch.no_grad()
def translate(
    G: nn.Module,
    E: nn.Module,
    sketches: torch.Tensor | np.ndarray,
    fabrics: torch.Tensor | np.ndarray,
    batch: int = 256,
) -> torch.Tensor:
    """G(sketch, mu(E(fabric)), fabric) in [-1, 1] on the CPU (the fabric's mean code: no
    noise; the patch itself goes to a G that tiles it, ``model.fabric_map``)."""
    device = next(G.parameters()).device
    s_all, f_all = to_unit(sketches), to_unit(fabrics)
    out = []
    for i in range(0, len(s_all), batch):
        f = f_all[i : i + batch].to(device)
        mu, _ = E(f)
        out.append(G(s_all[i : i + batch].to(device), mu, f).float().cpu())
    return torch.cat(out)


def _dilate(m: np.ndarray, r: int) -> np.ndarray:
    out = m.copy()
    for _ in range(r):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= out[:, :-1]
        grown[:, :-1] |= out[:, 1:]
        out = grown
    return out


def edge_f1(pred: np.ndarray, target: np.ndarray, tol: int = EDGE_TOL) -> float:
    """Mean F1 of ink pixels (< 128) of two (N, 1, S, S) uint8 sketch batches."""
    scores = []
    for p, t in zip(pred[:, 0] < 128, target[:, 0] < 128):
        if not p.any() and not t.any():
            scores.append(1.0)
            continue
        prec = (p & _dilate(t, tol)).sum() / max(p.sum(), 1)
        rec = (t & _dilate(p, tol)).sum() / max(t.sum(), 1)
        scores.append(0.0 if prec + rec == 0 else float(2 * prec * rec / (prec + rec)))
    return float(np.mean(scores))


def shape_iou(outputs: np.ndarray, silhouettes: np.ndarray) -> float:
    """Mean IoU of the outputs' garment masks (uint8 images) and the sketches' regions."""
    ious = []
    for out, sil in zip(outputs, silhouettes):
        mask = garment_mask(out)
        union = (mask | sil).sum()
        ious.append(1.0 if union == 0 else float((mask & sil).sum() / union))
    return float(np.mean(ious))


def _texture_stats(patches: np.ndarray) -> np.ndarray:
    """(N, C, P, P) uint8 -> (N, 3C): channel means, stds, mean |gradient|."""
    x = patches.astype(np.float64)
    grad = np.abs(np.diff(x, axis=2)).mean(axis=(2, 3)) + np.abs(np.diff(x, axis=3)).mean(
        axis=(2, 3)
    )
    return np.concatenate([x.mean(axis=(2, 3)), x.std(axis=(2, 3)), grad / 2], axis=1)


def fabric_error(outputs: np.ndarray, fabrics: np.ndarray) -> float:
    """Mean texture-statistics distance (over 255) of the outputs' fabric patches to the
    input fabrics; both uint8."""
    mine = np.stack([fabric_patch(o, garment_mask(o)) for o in outputs])
    return float(np.abs(_texture_stats(mine) - _texture_stats(fabrics)).mean() / 255.0)


def output_patches(outputs: np.ndarray) -> np.ndarray:
    """The fabric patch of each swap output: (k, m, C, S, S) uint8 -> (k*m, C, P, P)."""
    flat = outputs.reshape(-1, *outputs.shape[2:])
    return np.stack([fabric_patch(o, garment_mask(o)) for o in flat])


def _top1(mine: np.ndarray, cand: np.ndarray) -> float:
    """Top-1 accuracy of descriptors ``mine`` (k*m, D) (output i*m + j made of fabric j)
    against the m fabrics' ``cand`` (m, D), by L1; an output equally near several fabrics
    gets 1 / (how many) of a hit when its own is among them."""
    m = len(cand)
    dist = np.abs(mine[:, None, :] - cand[None]).sum(-1)  # (k*m, m)
    nearest = np.isclose(dist, dist.min(axis=1, keepdims=True), rtol=0, atol=1e-9)
    own = np.tile(np.arange(m), len(mine) // m)
    return float((nearest[np.arange(len(mine)), own] / nearest.sum(axis=1)).mean())


def fabric_retrieval(
    outputs: np.ndarray, fabrics: np.ndarray, patches: np.ndarray | None = None
) -> float:
    """Swap-test top-1 accuracy: ``outputs`` (k, m, C, S, S) uint8, sketch i rendered with
    fabric j of ``fabrics`` (m, C, P, P) uint8; each output's fabric patch (``patches``,
    from :func:`output_patches` when not given) is matched to the nearest of the m fabrics
    (L1 on colour / texture statistics), ties shared."""
    mine = output_patches(outputs) if patches is None else patches
    return _top1(_texture_stats(mine), _texture_stats(fabrics))


def pattern_spectrum(patches: np.ndarray) -> np.ndarray:
    """(N, C, P, P) uint8 -> (N, P*P) colour-blind texture descriptors: the power spectrum
    (DC removed, summing to 1) of each patch's standardized main-colour-axis map."""
    x = patches.astype(np.float64) / 255.0
    n, c, p, _ = x.shape
    pix = x.reshape(n, c, p * p).transpose(0, 2, 1)  # (N, P*P, C)
    pix = pix - pix.mean(axis=1, keepdims=True)
    if c > 1:
        cov = pix.transpose(0, 2, 1) @ pix  # (N, C, C)
        _, vecs = np.linalg.eigh(cov)
        pix = pix @ vecs[:, :, -1:]  # the main colour axis (its sign does not matter)
    flat = pix[..., 0]
    flat = flat / np.maximum(flat.std(axis=1, keepdims=True), 1e-3)
    window = np.outer(np.hanning(p), np.hanning(p))
    power = np.abs(np.fft.fft2(flat.reshape(n, p, p) * window)) ** 2
    power[:, 0, 0] = 0.0
    power = power.reshape(n, p * p)
    return power / np.maximum(power.sum(axis=1, keepdims=True), 1e-12)


def texture_retrieval(
    outputs: np.ndarray, fabrics: np.ndarray, patches: np.ndarray | None = None
) -> float:
    """Colour-blind swap-test top-1 accuracy; arguments as :func:`fabric_retrieval`. Each
    patch is reduced to its pattern (its pixels projected on their main colour axis,
    standardized) and described by the power spectrum of that map (Hann-windowed: where
    the energy lies, not where the pattern sits), matched by L1 among the m fabrics."""
    mine = output_patches(outputs) if patches is None else patches
    return _top1(pattern_spectrum(mine), pattern_spectrum(fabrics))


class PairedEvaluator:
    """Scores G + E each tick on fixed pairs (see the module docstring)."""

    def __init__(self, ref: Reference, cfg: MetricsConfig, shards: ShardSet, split: str):
        self.ref, self.cfg = ref, cfg
        shards.require_pairs("scoring fashiongan")
        rows = shards.split_indices("test" if "test" in shards.manifest.splits else split)
        if len(rows) < min(cfg.num_samples, 64):  # too few held-out garments: the train split
            rows = shards.split_indices(split)
        rng = np.random.default_rng(EVAL_SEED)
        idx = np.sort(rng.choice(rows, size=min(cfg.num_samples, len(rows)), replace=False))
        self.sketches, self.fabrics = shards.gather_pairs(idx)
        self.silhouettes = np.stack([garment_mask(s) for s in self.sketches])
        self.labels = shards.labels[idx] if shards.num_classes > 1 else None
        k, m = min(DIV_SKETCHES, len(idx)), min(DIV_FABRICS, len(idx))
        self.div_sketches = np.repeat(self.sketches[:k], m, axis=0)
        self.div_fabrics = np.tile(self.fabrics[-m:], (k, 1, 1, 1))
        self.div_shape = (k, m)

    @torch.no_grad()
    def __call__(self, G: nn.Module, E: nn.Module) -> dict[str, Any]:
        fakes = translate(G, E, self.sketches, self.fabrics)
        scores = score_images(self.ref, self.cfg, fakes, self.labels)
        if not torch.isfinite(fakes).all():
            return {**scores, **dict.fromkeys(PAIRED_SCORES, float("nan"))}
        out = to_uint8(fakes)
        scores["shape_iou"] = shape_iou(out, self.silhouettes)
        scores["edge_f1"] = edge_f1(np.stack([sketch(o) for o in out]), self.sketches)
        scores["fabric_err"] = fabric_error(out, self.fabrics)
        k, m = self.div_shape
        swapped = translate(G, E, self.div_sketches, self.div_fabrics)
        div = swapped.reshape(k, m, -1)
        pair_l1 = (div[:, :, None] - div[:, None]).abs().mean(-1)  # [k, m, m]
        scores["fabric_div"] = float(pair_l1.sum((1, 2)).mean() / max(m * (m - 1), 1) / 2)
        swapped_u8 = to_uint8(swapped)
        grid = swapped_u8.reshape(k, m, *swapped_u8.shape[1:])
        patches = output_patches(grid)  # cropped once for both retrievals
        scores["fabric_top1"] = fabric_retrieval(grid, self.div_fabrics[:m], patches)
        scores["texture_top1"] = texture_retrieval(grid, self.div_fabrics[:m], patches)
        return scores
