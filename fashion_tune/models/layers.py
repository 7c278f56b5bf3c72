"""Building blocks shared by the model families.

- :class:`ConditionalBatchNorm2d`: batch norm whose gain and bias are looked up per class.
- :class:`CondSequential`: an ``nn.Sequential`` that hands the labels to the layers that take them.
- channel schedule and spectral norm helpers.
"""

from __future__ import annotations

from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

MAX_WIDTH_MULT = 8  # no stage is wider than 8 x width (the 4x4 stage of pytorch/examples at 64 px)


def num_stages(img_size: int) -> int:
    """Number of 2x resolution steps between 4x4 and ``img_size`` (32 -> 3, 64 -> 4, 128 -> 5)."""
    return (img_size // 4).bit_length() - 1


def stage_width(width: int, mult: int) -> int:
    """Channels of a stage that is ``mult`` times the base width, capped at ``MAX_WIDTH_MULT``."""
    return width * min(mult, MAX_WIDTH_MULT)


def require_labels(num_classes: int, y: Tensor | None) -> Tensor | None:
    """The labels a model should use: ``y`` if it is conditional (then y is required), else None."""
    if num_classes == 0:
        return None
    if y is None:
        raise ValueError(f"this model is class-conditional ({num_classes} classes): pass labels y")
    return y


class ConditionalModule(nn.Module):
    """A layer whose forward takes the class labels too: ``forward(x, y)``."""

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        raise NotImplementedError


def call(layer: nn.Module, x: Tensor, y: Tensor | None) -> Tensor:
    """Apply ``layer`` to ``x``, passing ``y`` only to layers that take labels."""
    return layer(x, y) if isinstance(layer, ConditionalModule) else layer(x)


class CondSequential(nn.Sequential):
    """``nn.Sequential`` that passes the labels ``y`` to its :class:`ConditionalModule` layers.

    With no conditional layers it does exactly what ``nn.Sequential`` does (same state-dict keys).
    """

    def forward(self, input: Tensor, y: Tensor | None = None) -> Tensor:
        for layer in self:
            input = call(layer, input, y)
        return input


class ConditionalBatchNorm2d(ConditionalModule):
    """Batch norm with a per-class affine transform (de Vries et al. 2017; Miyato & Koyama 2018).

    out = gain[y] * (x - mean) / sqrt(var + eps) + bias[y], gain starting at 1 and bias at 0,
    so it starts as a plain batch norm.
    """

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: Tensor, y: Tensor | None) -> Tensor:
        if y is None:
            raise ValueError("ConditionalBatchNorm2d needs labels y")
        gain = self.gain(y)[:, :, None, None]  # [B, C, 1, 1]
        bias = self.bias(y)[:, :, None, None]  # [B, C, 1, 1]
        return self.bn(x) * gain + bias


def g_norm(num_features: int, num_classes: int) -> nn.Module:
    """The generator's norm layer: batch norm, or conditional batch norm when conditional."""
    if num_classes > 0:
        return ConditionalBatchNorm2d(num_features, num_classes)
    return nn.BatchNorm2d(num_features)


def apply_spectral_norm(module: nn.Module) -> None:
    """Spectrally normalize every conv, linear and embedding weight in ``module`` (in place).

    Call it after initializing the weights: the parametrization keeps the initialized weight
    as ``weight.original`` and divides by its largest singular value at every forward.
    """
    for layer in list(module.modules()):
        if isinstance(layer, (nn.Conv2d, nn.Linear, nn.Embedding)):
            spectral_norm(layer)
