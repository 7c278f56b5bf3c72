"""The domain feature network and the cached reference statistics of a shard set.

Inception features are a poor ruler for 32 px grayscale garments, and no weights
can be downloaded at run time; a small CNN trained once on the shard set's own
labels ("Frechet LeNet Distance" style) ranks GANs cheaply and consistently.
It is trained once per shard set and cached beside it (or in the user cache if
the set is read-only / remote) with its test accuracy; the real-image statistics
are cached too. Cache files are keyed by a hash of their inputs, written
atomically under a file lock, and loaded with ``weights_only=True``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from filelock import FileLock
from torch import nn

from fashion_tune.data.reader import ShardSet
from fashion_tune.data.storage import cache_root
from fashion_tune.metrics.stats import mean_cov, mirror_asymmetry

FEATNET_VERSION = 3
FEATURE_DIM = 128
TRAIN_IMAGES = 20_000  # images per featnet epoch (a random subset for big sets)
TRAIN_EPOCHS = 2


class FeatureNet(nn.Module):
    """conv 32-64-128 (2x2 max pools) -> 128-d feature -> class logits."""

    def __init__(self, channels: int, num_outputs: int):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            # no batch norm: features must not depend on what else is in the batch
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))

        # ~7 M multiply-adds per 32 px image: trains in seconds on a CPU
        self.body = nn.Sequential(
            block(channels, 32),
            nn.MaxPool2d(2),  # (B, 32, S/2, S/2)
            block(32, 64),
            nn.MaxPool2d(2),  # (B, 64, S/4, S/4)
            block(64, 128),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),  # (B, 2048): keeps layout
            nn.Linear(128 * 16, FEATURE_DIM),
            nn.ReLU(inplace=True),  # (B, 128)
        )
        self.head = nn.Linear(FEATURE_DIM, num_outputs)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > 64:  # 128 px sets: the classifier sees 64 px, plenty for garments
            x = nn.functional.interpolate(x, size=64, mode="area")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B,C,S,S) -> float in [-1, 1], the generator's range."""
    return images.float().div_(127.5).sub_(1.0)


@dataclass
class Reference:
    """What fd / kid / sym_gap compare against, for one shard set."""

    net: FeatureNet
    accuracy: float  # held-out accuracy of the feature net on its task
    task: str  # "labels" or "rotation" (sets without two classes)
    mu: np.ndarray
    cov: np.ndarray
    feats: np.ndarray  # real features for KID, (num_samples, 128), already scaled
    scale: float  # features are divided by this (the real features' RMS) before fd / kid
    asym_by_class: np.ndarray  # mean mirror asymmetry of real images per class
    num_classes: int


def cache_dir_for(shards: ShardSet) -> Path:
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


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:12]


def _atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if path.suffix == ".npz":
        with open(tmp, "wb") as f:
            np.savez(f, **obj)  # type: ignore[arg-type]
    else:
        torch.save(obj, tmp)
    os.replace(tmp, path)


@torch.no_grad()
def embed(net: FeatureNet, images: torch.Tensor, batch: int = 500) -> tuple[np.ndarray, np.ndarray]:
    """(features, predicted class) for float [-1, 1] or uint8 images."""
    net.eval()
    feats, preds = [], []
    device = next(net.parameters()).device
    for i in range(0, len(images), batch):
        x = images[i : i + batch].to(device)
        x = to_unit(x) if x.dtype == torch.uint8 else x.float()
        f = net.features(x)
        feats.append(f.cpu())
        preds.append(net.head(f).argmax(1).cpu())
    return torch.cat(feats).numpy(), torch.cat(preds).numpy()


def _rotations(x: torch.Tensor, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.randint(0, 4, (len(x),), generator=gen)
    return torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(x, k)]), k


def train_feature_net(shards: ShardSet, seed: int = 0) -> tuple[FeatureNet, float, str]:
    """Train on the set's labels (or rotation prediction without 2+ classes); CPU is fine."""
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    task = "labels" if shards.num_classes >= 2 else "rotation"
    net = FeatureNet(shards.channels, shards.num_classes if task == "labels" else 4)
    splits = shards.manifest.splits
    train_rows = shards.split_indices(splits[0])
    held = [s for s in splits[1:] if shards.manifest.split_counts().get(s)]
    if held:
        test_rows = shards.split_indices(held[0])
    else:  # no held-out split: keep 10% of the training rows back
        perm = train_rows[torch.randperm(len(train_rows), generator=g).numpy()]
        cut = max(1, len(perm) // 10)
        test_rows, train_rows = np.sort(perm[:cut]), np.sort(perm[cut:])
    test_rows = test_rows[:5000]
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    n = min(TRAIN_IMAGES, len(train_rows))
    for _ in range(TRAIN_EPOCHS):
        net.train()
        pick = train_rows[torch.randperm(len(train_rows), generator=g).numpy()[:n]]
        for i in range(0, n, 128):
            idx = np.sort(pick[i : i + 128])
            x = to_unit(torch.from_numpy(shards.gather(idx)))
            y = torch.from_numpy(shards.labels[idx])
            if task == "rotation":
                x, y = _rotations(x, g)
            loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    x = torch.from_numpy(shards.gather(test_rows))
    y = torch.from_numpy(shards.labels[test_rows])
    if task == "rotation":
        x, y = _rotations(x, g)
    _, pred = embed(net, x)
    return net, float((pred == y.numpy()).mean()), task


def load_reference(
    shards: ShardSet, num_samples: int, device: torch.device | str = "cpu", log=print
) -> Reference:
    """The feature net and real statistics for ``shards``, from the cache or computed once."""
    folder = cache_dir_for(shards)
    fp = shards.manifest.fingerprint
    net_path = folder / f"featnet-{_key(fp, FEATNET_VERSION, TRAIN_IMAGES, TRAIN_EPOCHS)}.pt"
    stats_path = folder / f"realstats-{_key(fp, FEATNET_VERSION, net_path.name, num_samples)}.npz"
    with FileLock(str(folder / ".lock")):
        if net_path.exists():
            blob = torch.load(net_path, map_location="cpu", weights_only=True)
        else:
            t0 = time.perf_counter()
            net, acc, task = train_feature_net(shards)
            blob = {
                "state": net.state_dict(),
                "accuracy": acc,
                "task": task,
                "outputs": net.head.out_features,
                "version": FEATNET_VERSION,
            }
            _atomic_save(blob, net_path)
            log(
                f"trained the metric feature net ({task}, held-out accuracy {acc:.3f}) "
                f"in {time.perf_counter() - t0:.0f} s; cached at {net_path}"
            )
        net = FeatureNet(shards.channels, int(blob["outputs"]))
        net.load_state_dict(blob["state"])
        net.eval()
        if stats_path.exists():
            st = dict(np.load(stats_path))
        else:
            rows = shards.split_indices(shards.manifest.splits[0])
            rng = np.random.default_rng(12345)
            pick = np.sort(rng.choice(rows, size=min(num_samples, len(rows)), replace=False))
            images = torch.from_numpy(shards.gather(pick))
            feats, _ = embed(net, images)
            # unit RMS on reals: fd / kid land in the familiar ranges whatever the net
            scale = float(np.sqrt((feats.astype(np.float64) ** 2).mean()))
            feats = feats / scale
            mu, cov = mean_cov(feats)
            asym = mirror_asymmetry(images).numpy()
            labels = shards.labels[pick]
            by_class = np.array(
                [
                    asym[labels == c].mean() if (labels == c).any() else 0.0
                    for c in range(shards.num_classes)
                ]
            )
            st = {
                "mu": mu,
                "cov": cov,
                "feats": feats,
                "asym_by_class": by_class,
                "scale": np.float64(scale),
            }
            _atomic_save(st, stats_path)
    return Reference(
        net=net.to(device),
        accuracy=float(blob["accuracy"]),
        task=str(blob["task"]),
        mu=st["mu"],
        cov=st["cov"],
        feats=st["feats"],
        asym_by_class=st["asym_by_class"],
        scale=float(st["scale"]),
        num_classes=shards.num_classes,
    )
