"""Distribution metrics on feature vectors, and the mirror-symmetry statistic on images.

Lower is better for all of them.
"""

from __future__ import annotations

import numpy as np
import torch


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """FD = |mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2)).

    Tr((S1 S2)^(1/2)) = sum sqrt(eig(S1^(1/2) S2 S1^(1/2))): a symmetric PSD problem,
    so ``eigh`` suffices (no scipy, no complex parts).
    """
    mu1, mu2 = mu1.astype(np.float64), mu2.astype(np.float64)
    w, v = np.linalg.eigh(cov1.astype(np.float64))
    sqrt1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = sqrt1 @ cov2.astype(np.float64) @ sqrt1
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * tr_sqrt)


def mean_cov(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = feats.astype(np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def _poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1) ** 3


def kernel_inception_distance(
    real: np.ndarray, fake: np.ndarray, subset_size: int, subsets: int, seed: int = 0
) -> float:
    """Unbiased MMD^2 with the polynomial kernel k(x, y) = (x.y / d + 1)^3, averaged over
    random subsets (Binkowski et al. 2018). Can be slightly negative for equal distributions.

    All subsets at once: with S the 0/1 matrix marking each subset's rows, the kernel sums
    over every subset are the row sums of (S K) * S, so the full kernel matrices are built
    once instead of once per subset.
    """
    rng = np.random.default_rng(seed)
    x, y = real.astype(np.float64), fake.astype(np.float64)
    m = min(subset_size, len(x), len(y))
    sx = np.zeros((subsets, len(x)))
    sy = np.zeros((subsets, len(y)))
    for i in range(subsets):
        sx[i, rng.choice(len(x), m, replace=False)] = 1
        sy[i, rng.choice(len(y), m, replace=False)] = 1
    kxx, kyy, kxy = _poly_kernel(x, x), _poly_kernel(y, y), _poly_kernel(x, y)
    sum_xx = ((sx @ kxx) * sx).sum(1) - sx @ np.diag(kxx)  # off-diagonal terms only
    sum_yy = ((sy @ kyy) * sy).sum(1) - sy @ np.diag(kyy)
    sum_xy = ((sx @ kxy) * sy).sum(1)
    mmd = (sum_xx + sum_yy) / (m * (m - 1)) - 2 * sum_xy / (m * m)
    return float(mmd.mean())


def mirror_asymmetry(images: torch.Tensor) -> torch.Tensor:
    """Per image: mean |x - flip(x)| on a [0, 1] pixel scale (0 = mirror-symmetric)."""
    # uint8 pixels, or generator output in [-1, 1]
    x = (
        images.float() / 255.0
        if images.dtype == torch.uint8
        else (images.float().clamp(-1, 1) + 1) / 2
    )
    return (x - x.flip(3)).abs().flatten(1).mean(1)


def symmetry_gap(
    fake_asym: np.ndarray, fake_cls: np.ndarray, real_asym_by_class: np.ndarray
) -> float:
    """Mean over classes of A(fakes of c) / A(reals of c), A = mean mirror asymmetry.

    0 = perfectly mirror-symmetric fakes; 1 = exactly as symmetric as the real garments
    of each class; > 1 = less symmetric than the real ones. Classes the fakes never
    hit (or whose reals are perfectly symmetric) are left out.
    """
    ratios = []
    for c, ref in enumerate(real_asym_by_class):
        sel = fake_cls == c
        if sel.any() and ref > 0:
            ratios.append(fake_asym[sel].mean() / ref)
    return float(np.mean(ratios)) if ratios else float("nan")
