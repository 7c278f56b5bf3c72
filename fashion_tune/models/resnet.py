"""SNGAN-style ResNet generator and discriminator (Miyato et al. 2018; Miyato & Koyama 2018).

G: linear z -> 4x4 map, one upsampling residual block per 2x stage (plus ``depth - 1``
same-size blocks), BN, ReLU, 3x3 conv, tanh; BN becomes conditional BN when conditional.
D: an "optimized" first block (conv before activation), one downsampling residual block per
further 2x stage down to 4x4 (plus ``depth - 1`` same-size blocks each), ReLU, global sum
pooling, linear; conditional D adds the projection <embed(y), h>. Norm "batch" puts a batch
norm before every ReLU of D's residual branches; SNGAN itself uses "spectral".

Stage widths: ``width * min(S / res, 8)`` in G (``width`` channels at full resolution) and
``width * min(S / (2 * res), 8)`` in D (``width`` channels after the first block).
Weights start Xavier-uniform, gain sqrt(2) on residual convs (as the SNGAN code does).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from fashion_tune.errors import ConfigError

from .layers import (
    ConditionalModule,
    CondSequential,
    apply_spectral_norm,
    call,
    g_norm,
    num_stages,
    require_labels,
    stage_width,
)
from .registry import Discriminator, Generator, register


def _conv(c_in: int, c_out: int, kernel: int, gain: float) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, kernel, 1, kernel // 2)
    nn.init.xavier_uniform_(conv.weight, gain)
    if conv.bias is not None:
        nn.init.zeros_(conv.bias)
    return conv


def _check_depth(depth: int) -> None:
    if depth < 1:
        raise ConfigError(f"resnet needs depth >= 1 (residual blocks per stage), got {depth}")


class GBlock(ConditionalModule):
    """x -> norm, ReLU, [2x nearest], conv3x3, norm, ReLU, conv3x3; + [2x up] 1x1 shortcut."""

    def __init__(self, c_in: int, c_out: int, num_classes: int, upsample: bool) -> None:
        super().__init__()
        self.upsample = upsample
        self.norm1 = g_norm(c_in, num_classes)
        self.conv1 = _conv(c_in, c_out, 3, math.sqrt(2))
        self.norm2 = g_norm(c_out, num_classes)
        self.conv2 = _conv(c_out, c_out, 3, math.sqrt(2))
        learn_shortcut = upsample or c_in != c_out
        self.shortcut = _conv(c_in, c_out, 1, 1.0) if learn_shortcut else None

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        h = F.relu(call(self.norm1, x, y))
        if self.upsample:
            h = F.interpolate(h, scale_factor=2.0, mode="nearest")
            x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = self.conv1(h)
        h = self.conv2(F.relu(call(self.norm2, h, y)))
        return h + (x if self.shortcut is None else self.shortcut(x))


class DBlock(nn.Module):
    """x -> [BN], ReLU, conv3x3, [BN], ReLU, conv3x3, [avgpool]; + 1x1 shortcut, [avgpool].

    ``optimized`` is SNGAN's first block: conv before any activation (the input is an image),
    and the shortcut pools before its 1x1 conv.
    """

    def __init__(
        self, c_in: int, c_out: int, downsample: bool, batch_norm: bool, optimized: bool = False
    ) -> None:
        super().__init__()
        self.downsample, self.optimized = downsample, optimized
        self.norm1 = nn.BatchNorm2d(c_in) if batch_norm and not optimized else nn.Identity()
        self.conv1 = _conv(c_in, c_out, 3, math.sqrt(2))
        self.norm2 = nn.BatchNorm2d(c_out) if batch_norm else nn.Identity()
        self.conv2 = _conv(c_out, c_out, 3, math.sqrt(2))
        learn_shortcut = downsample or c_in != c_out
        self.shortcut = _conv(c_in, c_out, 1, 1.0) if learn_shortcut else None

    def forward(self, x: Tensor) -> Tensor:
        h = x if self.optimized else F.relu(self.norm1(x))
        h = self.conv2(F.relu(self.norm2(self.conv1(h))))
        if self.downsample:
            h = F.avg_pool2d(h, 2)
        s = x
        if self.optimized and self.downsample:
            s = F.avg_pool2d(s, 2)
        if self.shortcut is not None:
            s = self.shortcut(s)
        if self.downsample and not self.optimized:
            s = F.avg_pool2d(s, 2)
        return h + s


class ResNetGenerator(Generator):
    def __init__(
        self, *, img_size: int, channels: int, z_dim: int, num_classes: int, width: int, depth: int
    ) -> None:
        super().__init__(
            img_size=img_size,
            channels=channels,
            z_dim=z_dim,
            num_classes=num_classes,
            width=width,
            depth=depth,
        )
        _check_depth(depth)
        n = num_stages(img_size)
        ch = stage_width(width, 2**n)
        self.start = (ch, 4, 4)
        self.linear = nn.Linear(z_dim, ch * 4 * 4)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        # state size. ch x 4 x 4
        blocks: list[nn.Module] = []
        res = 4
        for i in range(n):
            out = stage_width(width, 2 ** (n - 1 - i))
            blocks.append(GBlock(ch, out, num_classes, upsample=True))
            blocks += [GBlock(out, out, num_classes, upsample=False) for _ in range(depth - 1)]
            ch, res = out, res * 2
            # state size. ch x res x res  (ends at width x img_size x img_size)
        self.blocks = CondSequential(*blocks)
        self.out = nn.Sequential(
            nn.BatchNorm2d(ch),
            nn.ReLU(True),
            _conv(ch, channels, 3, 1.0),
            nn.Tanh(),
            # state size. channels x img_size x img_size
        )

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        y = require_labels(self.num_classes, y)
        h = self.linear(z).view(z.shape[0], *self.start)  # [B, ch, 4, 4]
        return self.out(self.blocks(h, y))


class ResNetDiscriminator(Discriminator):
    def __init__(
        self, *, img_size: int, channels: int, num_classes: int, width: int, depth: int, norm: str
    ) -> None:
        super().__init__(
            img_size=img_size,
            channels=channels,
            num_classes=num_classes,
            width=width,
            depth=depth,
            norm=norm,
        )
        _check_depth(depth)
        n = num_stages(img_size)
        batch_norm = norm == "batch"
        # input is channels x img_size x img_size
        blocks: list[nn.Module] = [DBlock(channels, width, True, batch_norm, optimized=True)]
        blocks += [DBlock(width, width, False, batch_norm) for _ in range(depth - 1)]
        ch, res = width, img_size // 2
        # state size. width x (img_size/2) x (img_size/2)
        for i in range(1, n):
            out = stage_width(width, 2**i)
            blocks.append(DBlock(ch, out, True, batch_norm))
            blocks += [DBlock(out, out, False, batch_norm) for _ in range(depth - 1)]
            ch, res = out, res // 2
            # state size. ch x res x res  (ends at 4 x 4)
        self.blocks = nn.Sequential(*blocks)
        self.linear = nn.Linear(ch, 1)
        nn.init.xavier_uniform_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)
        self.embed = nn.Embedding(num_classes, ch) if num_classes > 0 else None
        if self.embed is not None:
            nn.init.xavier_uniform_(self.embed.weight)
        if norm == "spectral":
            apply_spectral_norm(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        y = require_labels(self.num_classes, y)
        h = torch.sum(F.relu(self.blocks(x)), dim=(2, 3))  # global sum pooling: [B, ch]
        logit = self.linear(h).flatten()  # [B]
        if self.embed is None:
            return logit
        # projection: logit = linear(h) + <embed(y), h>
        return logit + torch.sum(self.embed(y) * h, dim=1)


register("resnet", ResNetGenerator, ResNetDiscriminator)
