"""The metric feature network: a small CNN trained once per shard set.

Why not a plain classifier: a network trained only to name the class learns to ignore
within-class variety, so a generator that repeats one garment per class scores well in
its features (measured: ``benchmarks/RESULTS.md``, metric sanity). This network is
trained on two tasks at once, sharing one 128-d feature:

* **instance discrimination** (SimCLR's NT-Xent over two augmented views of each image):
  every garment must stay distinguishable from every other, so within-class variety is
  kept and collapse moves the feature distribution far;
* **the set's labels** (or, for sets without two classes, the rotation of the image):
  keeps the features semantic, so class-level defects show too.

The views differ only by small crops, shifts, contrast and, sometimes, a light 3x3 blur,
so the features stay sensitive to heavy blur and to pixel noise (they are defects) but
do not treat a barely softer image as a different garment. The choice was made by
measurement (``benchmarks/metric_sanity.py``), not by taste. Trains on 2 CPU cores in a
couple of minutes at 32 px; larger images are seen at 64 px.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from fashion_tune.data.reader import ShardSet

FEATNET_VERSION = 4
FEATURE_DIM = 128
TRAIN_IMAGES = 20_000  # images per epoch (a random subset for big sets)
TRAIN_EPOCHS = 2
BATCH = 256
TEMPERATURE = 0.2  # NT-Xent temperature


class FeatureNet(nn.Module):
    """conv 32-64-128 (2x2 max pools) -> 128-d feature -> task logits / projection."""

    def __init__(self, channels: int, num_outputs: int):
        super().__init__()

        def block(cin: int, cout: int) -> nn.Sequential:
            # no batch norm: a feature must not depend on what else is in the batch
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU(inplace=True))

        # ~7 M multiply-adds per 32 px image
        self.body = nn.Sequential(
            block(channels, 32),
            nn.MaxPool2d(2),  # (B, 32, S/2, S/2)
            block(32, 64),
            nn.MaxPool2d(2),  # (B, 64, S/4, S/4)
            block(64, 128),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),  # (B, 2048): keeps the garment's layout
            nn.Linear(128 * 16, FEATURE_DIM),
            nn.ReLU(inplace=True),  # (B, 128): the metric feature
        )
        self.head = nn.Linear(FEATURE_DIM, num_outputs)
        self.proj = nn.Sequential(  # SimCLR projection head (training only)
            nn.Linear(FEATURE_DIM, FEATURE_DIM), nn.ReLU(inplace=True), nn.Linear(FEATURE_DIM, 64)
        )

    def features(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] > 64:  # 128 px sets are seen at 64 px: plenty for garments
            x = F.interpolate(x, size=64, mode="area")
        return self.body(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def to_unit(images: torch.Tensor) -> torch.Tensor:
    """uint8 (B,C,S,S) -> float in [-1, 1], the generator's range."""
    return images.float().div_(127.5).sub_(1.0)


_BLUR = torch.tensor([[1.0, 2.0, 1.0], [2.0, 4.0, 2.0], [1.0, 2.0, 1.0]]) / 16


def augment(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """One random view: crop/scale 0.7-1, shift <= 7.5%, contrast/brightness, and for 30%
    of images a 3x3 binomial blur (no noise: pixel noise must stay visible to the metric)."""
    b, c = len(x), x.shape[1]
    scale = torch.empty(b).uniform_(0.7, 1.0, generator=g)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = torch.empty(b, 2).uniform_(-0.15, 0.15, generator=g)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    y = F.grid_sample(x, grid, padding_mode="border", align_corners=False)
    gain = torch.empty(b, 1, 1, 1).uniform_(0.8, 1.2, generator=g)
    bias = torch.empty(b, 1, 1, 1).uniform_(-0.1, 0.1, generator=g)
    y = y * gain + bias
    blurred = F.conv2d(F.pad(y, [1] * 4, mode="reflect"), _BLUR.expand(c, 1, 3, 3), groups=c)
    pick = (torch.rand(b, 1, 1, 1, generator=g) < 0.3).float()
    return (pick * blurred + (1 - pick) * y).clamp(-1, 1)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = TEMPERATURE) -> torch.Tensor:
    """SimCLR's contrastive loss: each view must pick its partner among 2B - 1 others."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = z @ z.T / temperature
    sim.fill_diagonal_(-1e9)
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(sim, target)


def _rotations(x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    k = torch.randint(0, 4, (len(x),), generator=g)
    return torch.stack([torch.rot90(img, int(r), dims=(1, 2)) for img, r in zip(x, k)]), k


def _split_rows(shards: ShardSet, g: torch.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(train rows, held-out rows): the first split, and the next non-empty one (or 10%)."""
    splits = shards.manifest.splits
    train_rows = shards.split_indices(splits[0])
    counts = shards.manifest.split_counts()
    held = [s for s in splits[1:] if counts.get(s)]
    if held:
        test_rows = shards.split_indices(held[0])
    else:
        perm = train_rows[torch.randperm(len(train_rows), generator=g).numpy()]
        cut = max(1, len(perm) // 10)
        test_rows, train_rows = np.sort(perm[:cut]), np.sort(perm[cut:])
    return train_rows, test_rows[:5000]


@torch.no_grad()
def embed(net: FeatureNet, images: torch.Tensor, batch: int = 250) -> tuple[np.ndarray, np.ndarray]:
    """(features, predicted class) for float [-1, 1] or uint8 images.

    channels_last and batches of 250 make this 1.7x faster on a CPU thread than the
    default layout in batches of 500 (measured; results equal to ~1e-6): it is most of a
    tick's evaluation cost.
    """
    net.eval().to(memory_format=torch.channels_last)
    feats, preds = [], []
    device = next(net.parameters()).device
    for i in range(0, len(images), batch):
        x = images[i : i + batch].to(device)
        x = to_unit(x) if x.dtype == torch.uint8 else x.float()
        x = x.contiguous(memory_format=torch.channels_last)
        f = net.features(x)
        feats.append(f.cpu())
        preds.append(net.head(f).argmax(1).cpu())
    return torch.cat(feats).numpy(), torch.cat(preds).numpy()


def train_feature_net(
    shards: ShardSet,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
    contrastive: bool = True,
) -> tuple[FeatureNet, float, str]:
    """Train on instance discrimination + the set's labels (or rotations); CPU is fine.

    Returns the net, its held-out accuracy on the label (or rotation) task, and the task.
    ``progress(done, total)`` is called after every step. ``contrastive=False`` trains
    the label task alone on unaugmented images: the classifier ruler fashion-tune used
    before (kept for ``benchmarks/metric_sanity.py``'s side-by-side).
    """
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    task = "labels" if shards.num_classes >= 2 else "rotation"
    net = FeatureNet(shards.channels, shards.num_classes if task == "labels" else 4)
    train_rows, test_rows = _split_rows(shards, g)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3)
    n = min(TRAIN_IMAGES, len(train_rows))
    steps_per_epoch = (n + BATCH - 1) // BATCH
    total, done = steps_per_epoch * TRAIN_EPOCHS, 0
    for _ in range(TRAIN_EPOCHS):
        net.train()
        pick = train_rows[torch.randperm(len(train_rows), generator=g).numpy()[:n]]
        for i in range(0, n, BATCH):
            idx = np.sort(pick[i : i + BATCH])
            x = to_unit(torch.from_numpy(shards.gather(idx)))
            y = torch.from_numpy(shards.labels[idx])
            if task == "rotation":
                x, y = _rotations(x, g)
            if contrastive:
                v1, v2 = augment(x, g), augment(x, g)
                h1, h2 = net.features(v1), net.features(v2)
                loss = nt_xent(net.proj(h1), net.proj(h2))
                ce = F.cross_entropy(net.head(h1), y) + F.cross_entropy(net.head(h2), y)
                loss = loss + ce / 2
            else:
                loss = F.cross_entropy(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done += 1
            if progress:
                progress(done, total)
    x = torch.from_numpy(shards.gather(test_rows))
    y = torch.from_numpy(shards.labels[test_rows])
    if task == "rotation":
        x, y = _rotations(x, g)
    _, pred = embed(net, x)
    return net, float((pred == y.numpy()).mean()), task
