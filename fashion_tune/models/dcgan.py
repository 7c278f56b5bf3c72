"""DCGAN (Radford et al. 2016) in the shape of pytorch/examples ``dcgan/main.py``.

At 64 px, width 64, depth 0, unconditional and norm "batch" the layers are exactly those of
pytorch/examples (``main.0`` ... state-dict keys included, so its ``netG.pth`` / ``netD.pth``
load as they are), except that D ends at the logit: the ``Sigmoid`` moves into the loss.

Other sizes add or drop one 2x stage per octave (stage widths are capped at 8 x width);
``depth`` inserts that many 3x3 stride-1 conv + norm + activation layers after every
stride-2 layer. Conditional G swaps batch norm for conditional batch norm; conditional D
adds a projection term (Miyato & Koyama 2018) on the flattened 4x4 features that the last
4x4 conv reads: logit = conv(h) + <embed(y), h>.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .layers import (
    ConditionalBatchNorm2d,
    CondSequential,
    apply_spectral_norm,
    g_norm,
    num_stages,
    require_labels,
    stage_width,
)
from .registry import Discriminator, Generator, register


def _init_dcgan(module: nn.Module) -> None:
    """pytorch/examples ``weights_init``: conv weights N(0, 0.02), BN gain N(1, 0.02), bias 0.

    Conditional batch norm gets the same per class (gain N(1, 0.02), bias 0); only the
    projection embedding of D is N(0, 0.02). A gain near 0 would make G ignore z.
    """
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, ConditionalBatchNorm2d):
            nn.init.normal_(m.gain.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias.weight)
        elif isinstance(m, nn.Embedding) and not _in_cond_bn(module, m):
            nn.init.normal_(m.weight, 0.0, 0.02)  # projection vectors: the last conv's scale
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def _in_cond_bn(root: nn.Module, emb: nn.Module) -> bool:
    return any(
        isinstance(m, ConditionalBatchNorm2d) and (m.gain is emb or m.bias is emb)
        for m in root.modules()
    )


class DCGANGenerator(Generator):
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
        n = num_stages(img_size)

        def up(c_in: int, c_out: int, first: bool = False) -> list[nn.Module]:
            stride, pad = (1, 0) if first else (2, 1)
            layers = [
                nn.ConvTranspose2d(c_in, c_out, 4, stride, pad, bias=False),
                g_norm(c_out, num_classes),
                nn.ReLU(True),
            ]
            for _ in range(depth):
                layers += [
                    nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False),
                    g_norm(c_out, num_classes),
                    nn.ReLU(True),
                ]
            return layers

        ch = stage_width(width, 2 ** (n - 1))
        layers = up(z_dim, ch, first=True)
        # state size. ch x 4 x 4  (64 px: (width*8) x 4 x 4)
        res = 4
        for i in range(n - 1):
            out = stage_width(width, 2 ** (n - 2 - i))
            layers += up(ch, out)
            ch, res = out, res * 2
            # state size. ch x res x res  (64 px: w*4 x 8 x 8, w*2 x 16 x 16, w x 32 x 32)
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        # state size. channels x img_size x img_size
        self.main = CondSequential(*layers)
        _init_dcgan(self)

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        y = require_labels(self.num_classes, y)
        return self.main(z.view(z.shape[0], self.z_dim, 1, 1), y)  # z as [B, z_dim, 1, 1]


class DCGANDiscriminator(Discriminator):
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
        n = num_stages(img_size)
        bias = norm != "batch"  # convs followed by batch norm need no bias (pytorch/examples)

        def down(c_in: int, c_out: int, batch_norm: bool) -> list[nn.Module]:
            layers: list[nn.Module] = [nn.Conv2d(c_in, c_out, 4, 2, 1, bias=bias)]
            if batch_norm:
                layers.append(nn.BatchNorm2d(c_out))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            for _ in range(depth):
                layers.append(nn.Conv2d(c_out, c_out, 3, 1, 1, bias=bias))
                if norm == "batch":
                    layers.append(nn.BatchNorm2d(c_out))
                layers.append(nn.LeakyReLU(0.2, inplace=True))
            return layers

        # input is channels x img_size x img_size
        layers = down(channels, width, batch_norm=False)  # no norm on the input layer
        ch, res = width, img_size // 2
        # state size. width x (img_size/2) x (img_size/2)
        for i in range(1, n):
            out = stage_width(width, 2**i)
            layers += down(ch, out, batch_norm=norm == "batch")
            ch, res = out, res // 2
            # state size. ch x res x res  (64 px: w*2 x 16 x 16, w*4 x 8 x 8, w*8 x 4 x 4)
        layers.append(nn.Conv2d(ch, 1, 4, 1, 0, bias=bias))
        # state size. 1 x 1 x 1
        self.main = nn.Sequential(*layers)
        # projection: one vector per class, dotted with the flattened ch x 4 x 4 features
        self.embed = nn.Embedding(num_classes, ch * 4 * 4) if num_classes > 0 else None
        _init_dcgan(self)
        if norm == "spectral":
            apply_spectral_norm(self)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        if self.embed is None:
            return self.main(x).flatten()  # [B]
        y = require_labels(self.num_classes, y)
        *body, head = self.main
        h = x
        for layer in body:
            h = layer(h)
        # logit = w . h + <embed(y), h>, with h the ch x 4 x 4 features flattened
        projection = torch.sum(self.embed(y) * h.flatten(1), dim=1)  # [B]
        return head(h).flatten() + projection


register("dcgan", DCGANGenerator, DCGANDiscriminator)
