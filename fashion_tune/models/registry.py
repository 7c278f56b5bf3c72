"""The model extension point: two small bases and a registry of architecture families.

A family is one module (``dcgan.py``, ``resnet.py``) that subclasses :class:`Generator` and
:class:`Discriminator` and calls :func:`register`. The build functions check the arguments a
user can get wrong (size, channels, norm, arch) once, with one-line :class:`ConfigError`
messages, so families only check what is specific to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor, nn

from fashion_tune.errors import ConfigError
from fashion_tune.registry_names import D_NORMS, MODEL_FAMILIES

IMG_SIZES = (32, 64, 128)
CHANNELS = (1, 3)
NORMS = D_NORMS  # listed in registry_names (the config reads them there too)


class Generator(nn.Module):
    """z [B, z_dim] (+ labels y [B] when conditional) -> images [B, channels, S, S] in [-1, 1].

    Every generator records its build arguments as attributes so callers can introspect it
    and a checkpoint can rebuild it.
    """

    def __init__(
        self, *, img_size: int, channels: int, z_dim: int, num_classes: int, width: int, depth: int
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.channels = channels
        self.z_dim = z_dim
        self.num_classes = num_classes  # 0 = unconditional; labels y are then ignored
        self.width = width
        self.depth = depth

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        raise NotImplementedError


class Discriminator(nn.Module):
    """Images [B, channels, S, S] (+ labels y [B] when conditional) -> raw logits [B]."""

    def __init__(
        self, *, img_size: int, channels: int, num_classes: int, width: int, depth: int, norm: str
    ) -> None:
        super().__init__()
        self.img_size = img_size
        self.channels = channels
        self.z_dim = 0  # a discriminator takes no latent; kept so both sides introspect alike
        self.num_classes = num_classes
        self.width = width
        self.depth = depth
        self.norm = norm

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class Family:
    name: str
    generator: type[Generator]
    discriminator: type[Discriminator]
    # "noise": G(z, y) and D(x, y) as documented above; "paired": G(sketch, z) and
    # D(x, sketch), trained on sketch + fabric pairs (fashiongan.py)
    kind: str = "noise"


_FAMILIES: dict[str, Family] = {}


def register(
    name: str,
    generator: type[Generator],
    discriminator: type[Discriminator],
    kind: str = "noise",
) -> None:
    """Make an architecture family buildable by name (``kind``: see :class:`Family`)."""
    if name in _FAMILIES:
        raise ValueError(f"model family {name!r} is registered twice")
    if name not in MODEL_FAMILIES:
        raise ValueError(
            f"model family {name!r} is not listed in registry_names.MODEL_FAMILIES "
            "(the trial config and search spaces accept the names listed there)"
        )
    _FAMILIES[name] = Family(name, generator, discriminator, kind)


def archs(kind: str | None = None) -> tuple[str, ...]:
    """Registered family names (of one ``kind``, or all), in MODEL_FAMILIES' order."""
    names = sorted(_FAMILIES, key=MODEL_FAMILIES.index)
    return tuple(n for n in names if kind is None or _FAMILIES[n].kind == kind)


def family_kind(arch: str) -> str:
    return _family(arch).kind


def _choose(what: str, value: object, choices: tuple) -> None:
    if value not in choices:
        listed = ", ".join(str(c) for c in choices)
        raise ConfigError(f"unknown {what} {value!r}; choose one of: {listed}")


def _family(arch: str) -> Family:
    _choose("model arch", arch, archs())
    return _FAMILIES[arch]


def _check_common(img_size: int, channels: int, num_classes: int, width: int, depth: int) -> None:
    _choose("img_size", img_size, IMG_SIZES)
    _choose("channels", channels, CHANNELS)
    if num_classes < 0:
        raise ConfigError(f"num_classes must be >= 0 (0 = unconditional), got {num_classes}")
    if width < 1:
        raise ConfigError(f"model width must be >= 1 (base channel count), got {width}")
    if depth < 0:
        raise ConfigError(f"model depth must be >= 0, got {depth}")


def build_generator(
    arch: str,
    *,
    img_size: int,
    channels: int,
    z_dim: int,
    num_classes: int,
    width: int,
    depth: int,
    **family_options: Any,
) -> Generator:
    """Build the generator of family ``arch``; see :class:`Generator` for the call contract.
    ``family_options`` go to that family's generator alone (fashiongan's ``fabric_map``)."""
    family = _family(arch)
    _check_common(img_size, channels, num_classes, width, depth)
    if z_dim < 1:
        raise ConfigError(f"z_dim must be >= 1, got {z_dim}")
    return family.generator(
        img_size=img_size,
        channels=channels,
        z_dim=z_dim,
        num_classes=num_classes,
        width=width,
        depth=depth,
        **family_options,
    )


def build_discriminator(
    arch: str, *, img_size: int, channels: int, num_classes: int, width: int, depth: int, norm: str
) -> Discriminator:
    """Build the discriminator of family ``arch``; see :class:`Discriminator`."""
    family = _family(arch)
    _check_common(img_size, channels, num_classes, width, depth)
    _choose("discriminator norm", norm, NORMS)
    return family.discriminator(
        img_size=img_size,
        channels=channels,
        num_classes=num_classes,
        width=width,
        depth=depth,
        norm=norm,
    )
