"""Scoring generated images against a shard set's reference, the same way everywhere.

One tick's scores (each at fixed sample counts, so values compare across trials and
ticks; noise and labels come from a fixed seed):

* ``fd`` (lower is better; **the objective**): Frechet distance in the reference's
  feature space. Its covariance term sees mode collapse; the sanity suite proves it
  ranks collapse, blur, noise and copies as a person would.
* ``kid`` (lower): kernel distance in the same space (unbiased, noisy at small N).
* ``precision`` / ``density`` (higher): fidelity; ``recall`` / ``coverage`` (higher):
  diversity; k-NN balls within each class where the set has labels.
* ``diversity`` (higher, 1 = like reals): within-class pixel diversity of the fakes
  relative to real garments of the same class.
* ``sym_excess`` (lower, 0 = as symmetric as reals): asymmetry beyond real garments';
  ``sym_gap`` (fakes' / reals' asymmetry) and ``sym_asym`` (raw) are kept for reference.
* ``metric_ref``: the ruler: a hash of the reference and these settings.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
import torch
from torch import nn

from fashion_tune.config import MetricsConfig
from fashion_tune.metrics.featnet import embed
from fashion_tune.metrics.inception import InceptionMetric
from fashion_tune.metrics.names import OBJECTIVE, SCORES, nan_scores
from fashion_tune.metrics.reference import PRDC_K, Reference
from fashion_tune.metrics.stats import (
    diversity_ratio,
    frechet_distance,
    kernel_inception_distance,
    mean_cov,
    mirror_asymmetry,
    pixel_diversity_by_class,
    prdc,
    prdc_by_class,
    symmetry_excess,
    symmetry_gap,
)
from fashion_tune.sampling import fixed_noise, generate

EVAL_SEED = 2024
EVAL_VERSION = 2
__all__ = ["OBJECTIVE", "SCORES", "Evaluator", "metric_ref", "nan_scores", "score_images"]


def metric_ref(ref: Reference, cfg: MetricsConfig) -> str:
    """The ruler: reference hash + the settings that decide a score's scale."""
    key = [ref.hash, EVAL_VERSION, cfg.num_samples, cfg.kid_subset_size, cfg.kid_subsets]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()[:12]


def score_images(
    ref: Reference,
    cfg: MetricsConfig,
    images: torch.Tensor,
    classes: np.ndarray | None,
) -> dict[str, Any]:
    """Score uint8 or [-1, 1] images; ``classes`` = what each claims to be (None: the
    feature net's guess where the set has labels)."""
    if images.dtype != torch.uint8 and not torch.isfinite(images).all():
        return {**nan_scores(), "metric_ref": metric_ref(ref, cfg)}
    feats, pred = embed(ref.net, images)
    feats = feats / ref.scale
    labelled = ref.task == "labels" and ref.num_classes >= 2
    cls = classes if classes is not None else (pred if labelled else np.zeros(len(feats), int))
    if labelled:
        nn_scores = prdc_by_class(ref.feats, ref.labels, feats, cls, PRDC_K)
    else:
        nn_scores = prdc(ref.feats, feats, PRDC_K)
    asym = mirror_asymmetry(images).numpy()
    n_cls = max(ref.num_classes, 1)
    div = pixel_diversity_by_class(images, cls if labelled else np.zeros(len(feats), int), n_cls)
    return {
        "fd": frechet_distance(ref.mu, ref.cov, *mean_cov(feats)),
        "kid": kernel_inception_distance(
            ref.feats, feats, cfg.kid_subset_size, cfg.kid_subsets, kxx=ref.kernel
        ),
        **nn_scores,
        "diversity": diversity_ratio(div, ref.div_by_class),
        "sym_excess": symmetry_excess(asym, pred if classes is None else cls, ref.asym_by_class),
        "sym_gap": symmetry_gap(asym, pred if classes is None else cls, ref.asym_by_class),
        "sym_asym": float(asym.mean()),
        "metric_ref": metric_ref(ref, cfg),
    }


class Evaluator:
    """Scores a generator each tick: fixed noise and labels, fixed counts."""

    def __init__(
        self,
        ref: Reference,
        cfg: MetricsConfig,
        z_dim: int,
        label_freq: np.ndarray | None,
        inception: InceptionMetric | None = None,
    ):
        self.ref, self.cfg, self.inception = ref, cfg, inception
        n = cfg.num_samples
        self.z = fixed_noise(n, z_dim, EVAL_SEED)
        if label_freq is None:
            self.y = None
        else:  # labels drawn from the training split's class frequencies
            rng = np.random.default_rng(EVAL_SEED)
            self.y = torch.from_numpy(rng.choice(len(label_freq), size=n, p=label_freq))

    @property
    def ruler(self) -> str:
        return metric_ref(self.ref, self.cfg)

    @torch.no_grad()
    def __call__(self, G: nn.Module) -> dict[str, Any]:
        fakes = generate(G, self.z, self.y)
        classes = None if self.y is None else self.y.numpy()
        scores = score_images(self.ref, self.cfg, fakes, classes)
        if self.inception and np.isfinite(scores["fd"]):
            scores.update(self.inception(fakes[: self.cfg.inception_samples]))
        return scores
