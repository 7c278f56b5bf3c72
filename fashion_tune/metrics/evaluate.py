"""Per-tick evaluation of a generator: fd, kid, sym_gap (and optional Inception fid).

Sample counts are fixed by the config, and noise / labels come from a fixed seed,
so values compare across trials and across ticks of one trial.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from fashion_tune.config import MetricsConfig
from fashion_tune.metrics.features import Reference, embed
from fashion_tune.metrics.inception import InceptionMetric
from fashion_tune.metrics.stats import (
    frechet_distance,
    kernel_inception_distance,
    mean_cov,
    mirror_asymmetry,
    symmetry_gap,
)
from fashion_tune.sampling import fixed_noise, generate

EVAL_SEED = 2024


class Evaluator:
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

    @torch.no_grad()
    def __call__(self, G: nn.Module) -> dict[str, float]:
        fakes = generate(G, self.z, self.y)
        if not torch.isfinite(fakes).all():
            nan = float("nan")  # non-finite images: no meaningful score
            return {"fd": nan, "kid": nan, "sym_gap": nan, "sym_asym": nan}
        feats, pred = embed(self.ref.net, fakes)
        feats = feats / self.ref.scale
        mu, cov = mean_cov(feats)
        asym = mirror_asymmetry(fakes).numpy()
        extra = self.inception(fakes[: self.cfg.inception_samples]) if self.inception else {}
        return {
            **extra,
            "fd": frechet_distance(self.ref.mu, self.ref.cov, mu, cov),
            "kid": kernel_inception_distance(
                self.ref.feats, feats, self.cfg.kid_subset_size, self.cfg.kid_subsets
            ),
            "sym_gap": symmetry_gap(asym, pred, self.ref.asym_by_class),
            "sym_asym": float(asym.mean()),
        }
