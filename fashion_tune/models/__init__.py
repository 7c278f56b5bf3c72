"""GAN generators and discriminators, built by family name.

>>> G = build_generator("dcgan", img_size=64, channels=3, z_dim=100, num_classes=0,
...                     width=64, depth=0)
>>> D = build_discriminator("dcgan", img_size=64, channels=3, num_classes=0, width=64,
...                         depth=0, norm="batch")

``G(z, y=None)`` maps z [B, z_dim] to images [B, C, S, S] in [-1, 1]; ``D(x, y=None)`` maps
images to raw logits [B]. With ``num_classes > 0`` both need labels y [B] (G through
conditional batch norm, D through a projection term). Add a family with
:func:`~fashion_tune.models.registry.register`.
"""

from __future__ import annotations

from . import dcgan, fashiongan, resnet  # noqa: F401  (importing a family registers it)
from .registry import (
    IMG_SIZES,
    NORMS,
    Discriminator,
    Generator,
    archs,
    build_discriminator,
    build_generator,
    family_kind,
    register,
)

ARCHS: tuple[str, ...] = archs("noise")  # G(z, y) families (the contract documented above)
PAIRED_ARCHS: tuple[str, ...] = archs("paired")  # G(sketch, z) families (fashiongan.py)

__all__ = [
    "ARCHS",
    "IMG_SIZES",
    "NORMS",
    "PAIRED_ARCHS",
    "Discriminator",
    "Generator",
    "build_discriminator",
    "build_generator",
    "family_kind",
    "register",
]
