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


def real_kernel(real: np.ndarray) -> np.ndarray:
    """The reals' KID kernel matrix, to pass to :func:`kernel_inception_distance` as ``kxx``."""
    x = real.astype(np.float64)
    return _poly_kernel(x, x)


def _poly_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a @ b.T / a.shape[1] + 1) ** 3


def kernel_inception_distance(
    real: np.ndarray,
    fake: np.ndarray,
    subset_size: int,
    subsets: int,
    seed: int = 0,
    kxx: np.ndarray | None = None,
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
    if kxx is None:  # the reals' kernel matrix: callers scoring many fakes pass it cached
        kxx = _poly_kernel(x, x)
    kyy, kxy = _poly_kernel(y, y), _poly_kernel(x, y)
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


def _pairwise(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and ``b``."""
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    d2 = (a64**2).sum(1)[:, None] + (b64**2).sum(1)[None, :] - 2 * a64 @ b64.T
    return np.sqrt(np.clip(d2, 0, None))


def _kth_nn_radius(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row."""
    d = _pairwise(x, x)
    np.fill_diagonal(d, np.inf)
    return np.partition(d, k - 1, axis=1)[:, k - 1]


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 3) -> dict[str, float]:
    """Improved precision / recall (Kynkaanniemi et al. 2019) and density / coverage
    (Naeem et al. 2020) with k-nearest-neighbour balls in feature space.

    precision: share of fakes inside some real's k-NN ball (fidelity);
    recall: share of reals inside some fake's k-NN ball (diversity);
    density: how many real balls hold a fake, on average / k (fidelity, ~1 for reals);
    coverage: share of reals whose ball holds at least one fake (diversity).
    Higher is better for all four. Needs more than ``k`` rows on each side.
    """
    if len(real) <= k or len(fake) <= k:
        nan = float("nan")
        return {"precision": nan, "recall": nan, "density": nan, "coverage": nan}
    r_real = _kth_nn_radius(real, k)
    r_fake = _kth_nn_radius(fake, k)
    d = _pairwise(real, fake)  # (R, F)
    inside_real = d <= r_real[:, None]  # fake j in real i's ball
    return {
        "precision": float(inside_real.any(0).mean()),
        "recall": float((d <= r_fake[None, :]).any(1).mean()),
        "density": float(inside_real.sum(0).mean() / k),
        "coverage": float((d.min(1) <= r_real).mean()),
    }


def prdc_by_class(
    real: np.ndarray,
    real_labels: np.ndarray,
    fake: np.ndarray,
    fake_labels: np.ndarray,
    k: int = 3,
) -> dict[str, float]:
    """:func:`prdc` within each class (reals of c vs fakes claiming c), averaged over the
    classes of the reals; a class with no fakes counts as precision / recall / coverage 0."""
    rows = []
    for c in np.unique(real_labels):
        f = fake[fake_labels == c]
        r = real[real_labels == c]
        if len(f) <= k:
            rows.append({"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0})
        else:
            rows.append(prdc(r, f, k))
    return {key: float(np.nanmean([row[key] for row in rows])) for key in rows[0]}


DIVERSITY_PER_CLASS = 100  # images per class behind the pixel diversity (fixed: comparable)


def pixel_diversity_by_class(
    images: torch.Tensor, labels: np.ndarray, num_classes: int
) -> np.ndarray:
    """Per class: mean pairwise L1 distance between images of that class, on a [0, 1]
    scale at <= 32 px (NaN for classes with fewer than 2 images). Mode collapse drives
    it to 0; real garments of one class differ by ~0.2-0.3 on Fashion-MNIST."""
    x = (
        images.float() / 255.0
        if images.dtype == torch.uint8
        else (images.float().clamp(-1, 1) + 1) / 2
    )
    if x.shape[-1] > 32:
        x = torch.nn.functional.interpolate(x, size=32, mode="area")
    flat = x.flatten(1)
    out = np.full(num_classes, np.nan)
    for c in range(num_classes):
        rows = np.flatnonzero(labels == c)[:DIVERSITY_PER_CLASS]
        if len(rows) < 2:
            continue
        d = torch.cdist(flat[rows], flat[rows], p=1) / flat.shape[1]
        n = len(rows)
        out[c] = float(d.sum() / (n * (n - 1)))
    return out


def diversity_ratio(fake_div: np.ndarray, real_div: np.ndarray) -> float:
    """Mean over classes of fake / real within-class diversity: 1 = as varied as the
    real garments, 0 = every image of a class identical (classes the fakes miss count 0)."""
    ratios = [
        (0.0 if np.isnan(f) else f / r)
        for f, r in zip(fake_div, real_div)
        if np.isfinite(r) and r > 0
    ]
    return float(np.mean(ratios)) if ratios else float("nan")


def symmetry_excess(
    fake_asym: np.ndarray, fake_cls: np.ndarray, real_asym_by_class: np.ndarray
) -> float:
    """Mean over classes of max(0, A(fakes of c) / A(reals of c) - 1), A = mean mirror
    asymmetry: 0 when the fakes are at least as symmetric as the real garments of their
    class, 0.5 when 50% more asymmetric. Being *more* symmetric than real garments (as
    blur and collapse are) earns nothing, so it cannot be gamed that way."""
    excess = []
    for c, ref in enumerate(real_asym_by_class):
        sel = fake_cls == c
        if sel.any() and ref > 0:
            excess.append(max(0.0, fake_asym[sel].mean() / ref - 1.0))
    return float(np.mean(excess)) if excess else float("nan")
