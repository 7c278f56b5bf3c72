"""FashionGAN (Cui et al. 2018; a BicycleGAN variant): garments from a sketch and a fabric.

* :class:`FashionGenerator` ``G(sketch, z, fabric=None, at=None)``: a U-Net over the sketch
  [B, 1, S, S] (in [-1, 1], ink -1) with the fabric code z [B, z_dim] tiled and concatenated
  into the input of every encoder layer and the bottleneck ("add_all" in BicycleGAN); out
  [B, C, S, S] in [-1, 1]. ``depth`` adds 3x3 convs at the bottleneck. With
  ``fabric_map=True`` the fabric patch itself [B, C, P, P] is also tiled over the canvas
  (:func:`fabric_map`) and concatenated to the sketch, as TextureGAN (Xian et al. 2018)
  puts its texture patch into the input: a code of a few numbers carries the fabric's
  colours, but a convolution cannot lay a periodic pattern out over a plain region from
  constant planes (every position looks alike there), while a tiled swatch hands it the
  pattern, in place, to mask and shade. ``at`` places the tiling's phase: in training,
  where the patch was cut from the garment, so the map agrees with the target there.
* :class:`FabricEncoder` ``E(fabric) -> (mu, logvar)``: a small conv net over the fabric
  patch [B, C, S/4, S/4] (FashionGAN encodes a crop of the garment), global pooling, two
  linear heads [B, z_dim].
* :class:`PatchDiscriminator` ``D(x, sketch)``: PatchGANs at two scales (full and half
  resolution) on the garment concatenated with its sketch; returns every patch logit of
  both scales [B, N] (the losses average them; a gradient penalty sums them).

The family is registered with ``kind="paired"``: its generator takes a sketch, not labels,
so the training loop drives it with the paired task (``fashion_tune.tasks.paired``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fashion_tune.errors import ConfigError
from fashion_tune.models.layers import apply_spectral_norm, num_stages, stage_width
from fashion_tune.models.registry import Discriminator, Generator, register


def _tile(z: Tensor, h: Tensor) -> Tensor:
    """Concatenate z [B, Z] as constant planes to h [B, C, H, W]."""
    return torch.cat([h, z[:, :, None, None].expand(-1, -1, *h.shape[2:]).to(h.dtype)], 1)


def fabric_map(fabric: Tensor, size: int, at: Tensor | None = None) -> Tensor:
    """The fabric patch [B, C, P, P] repeated over a [B, C, size, size] canvas, in phase
    with one whole copy whose top-left corner is at ``at`` [B, 2] (row, column). Training
    puts it where the patch was cut from the garment (:func:`locate_patch`), so the map
    and the garment agree there; elsewhere (sampling, evaluation) the copy is centred."""
    b, _, p, _ = fabric.shape
    if at is None:
        at = torch.full((b, 2), size // 2 - p // 2, device=fabric.device)
    grid = torch.arange(size, device=fabric.device)
    rows = (grid[None, :] - at[:, :1]) % p  # [B, size]: the patch row of each canvas row
    cols = (grid[None, :] - at[:, 1:]) % p
    batch = torch.arange(b, device=fabric.device)[:, None, None]
    tiled = fabric.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return tiled.permute(0, 3, 1, 2)  # [B, C, size, size]


@torch.no_grad()
def locate_patch(images: Tensor, patches: Tensor) -> Tensor:
    """[B, 2] (row, column) of each patch [B, C, P, P] inside its image [B, C, S, S]: the
    window of least squared difference (0 where the patch was cut from that image, as
    ``data.pairs.fabric_patch`` does), by one grouped convolution."""
    b, c, s, _ = images.shape
    p = patches.shape[-1]
    x, f = images.float(), patches.float()
    cross = F.conv2d(x.reshape(1, b * c, s, s), f, groups=b)[0]  # [B, L, L], L = s - p + 1
    energy = F.avg_pool2d(x.pow(2).sum(1, keepdim=True), p, stride=1)[:, 0] * (p * p)
    dist = energy - 2 * cross + f.pow(2).sum((1, 2, 3))[:, None, None]
    flat = dist.flatten(1).argmin(1)
    side = s - p + 1
    return torch.stack([flat // side, flat % side], 1)


def _no_classes(num_classes: int) -> None:
    if num_classes:
        raise ConfigError("fashiongan is conditioned on a sketch, not on classes: num_classes=0")


class FashionGenerator(Generator):
    def __init__(
        self,
        *,
        img_size: int,
        channels: int,
        z_dim: int,
        num_classes: int,
        width: int,
        depth: int,
        fabric_map: bool = False,
    ) -> None:
        super().__init__(
            img_size=img_size,
            channels=channels,
            z_dim=z_dim,
            num_classes=0,
            width=width,
            depth=depth,
        )
        _no_classes(num_classes)
        self.fabric_map = fabric_map
        n = num_stages(img_size)  # 32 px: 32 -> 16 -> 8 -> 4
        widths = [stage_width(width, 2**i) for i in range(n)]
        self.downs = nn.ModuleList()
        c_in = 1 + (channels if fabric_map else 0)  # the sketch (and the tiled fabric)
        for i, w in enumerate(widths):
            self.downs.append(
                nn.Sequential(
                    nn.Conv2d(c_in + z_dim, w, 4, 2, 1),  # [B, w, S/2^(i+1), ..]
                    nn.InstanceNorm2d(w, affine=True) if i else nn.Identity(),
                    nn.LeakyReLU(0.2),
                )
            )
            c_in = w
        self.mid = nn.Sequential(
            *[
                m
                for _ in range(depth)
                for m in (nn.Conv2d(c_in, c_in, 3, 1, 1), nn.InstanceNorm2d(c_in), nn.ReLU())
            ]
        )
        self.ups = nn.ModuleList()
        for i in reversed(range(n)):
            skip = widths[i - 1] if i else 0
            out = skip if i else width
            self.ups.append(
                nn.Sequential(
                    nn.ConvTranspose2d(c_in + z_dim if i == n - 1 else c_in, out, 4, 2, 1),
                    nn.InstanceNorm2d(out, affine=True),
                    nn.ReLU(),
                )
            )
            c_in = out + skip  # concatenated with the encoder's feature map of that size
        self.to_img = nn.Sequential(nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())

    def forward(  # type: ignore[override]
        self,
        sketch: Tensor,
        z: Tensor | None = None,
        fabric: Tensor | None = None,
        at: Tensor | None = None,
    ) -> Tensor:
        if z is None:
            raise ValueError("fashiongan's G needs a fabric code z [B, z_dim]")
        h = sketch
        if self.fabric_map:
            if fabric is None:
                raise ValueError("this fashiongan's G (model.fabric_map) needs the fabric patch")
            tiled = fabric_map(fabric, sketch.shape[-1], at)
            h = torch.cat([sketch, tiled.to(sketch.dtype)], 1)
        skips = []
        for down in self.downs:
            h = down(_tile(z, h))
            skips.append(h)
        h = self.mid(h)
        h = _tile(z, h)
        skips.pop()  # the bottleneck itself
        for up in self.ups:
            h = up(h)
            if skips:
                h = torch.cat([h, skips.pop()], 1)
        return self.to_img(h)  # [B, C, S, S]


class FabricEncoder(nn.Module):
    """fabric [B, C, P, P] -> (mu, logvar) [B, z_dim]."""

    def __init__(self, channels: int, z_dim: int, width: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 3, 2, 1),  # [B, 2w, P/2, P/2]
            nn.InstanceNorm2d(2 * width, affine=True),
            nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 3, 1, 1),
            nn.LeakyReLU(0.2),
            nn.AdaptiveAvgPool2d(1),  # [B, 4w, 1, 1]
            nn.Flatten(),
        )
        self.mu = nn.Linear(4 * width, z_dim)
        self.logvar = nn.Linear(4 * width, z_dim)

    def forward(self, fabric: Tensor) -> tuple[Tensor, Tensor]:
        h = self.net(fabric)
        return self.mu(h), self.logvar(h).clamp(-10, 10)


def _patch_d(c_in: int, width: int, layers: int, norm: str) -> nn.Sequential:
    mods: list[nn.Module] = [nn.Conv2d(c_in, width, 4, 2, 1), nn.LeakyReLU(0.2)]
    w = width
    for _ in range(layers - 1):
        mods += [nn.Conv2d(w, 2 * w, 4, 2, 1)]
        if norm == "batch":
            mods.append(nn.BatchNorm2d(2 * w))
        mods.append(nn.LeakyReLU(0.2))
        w *= 2
    mods.append(nn.Conv2d(w, 1, 3, 1, 1))  # one logit per patch
    return nn.Sequential(*mods)


class PatchDiscriminator(Discriminator):
    def __init__(
        self, *, img_size: int, channels: int, num_classes: int, width: int, depth: int, norm: str
    ) -> None:
        super().__init__(
            img_size=img_size,
            channels=channels,
            num_classes=0,
            width=width,
            depth=depth,
            norm=norm,
        )
        _no_classes(num_classes)
        layers = 2 + depth  # 32 px: 8x8 patches of 70%-of-image receptive field
        self.full = _patch_d(channels + 1, width, layers, norm)
        self.coarse = _patch_d(channels + 1, width, max(1, layers - 1), norm)
        if norm == "spectral":
            apply_spectral_norm(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None:
            raise ValueError("fashiongan's D needs the sketch as its condition")
        h = torch.cat([x, y.to(x.dtype)], 1)
        small = F.avg_pool2d(h, 2)
        return torch.cat([self.full(h).flatten(1), self.coarse(small).flatten(1)], 1)


def build_encoder(channels: int, z_dim: int, width: int) -> FabricEncoder:
    if z_dim < 1 or width < 1:
        raise ConfigError(f"fashiongan needs z_dim >= 1 and width >= 1, got {z_dim}, {width}")
    return FabricEncoder(channels, z_dim, width)


register("fashiongan", FashionGenerator, PatchDiscriminator, kind="paired")
