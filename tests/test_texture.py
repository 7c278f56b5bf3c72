"""FashionGAN's texture losses (issue 18, item 3): the Gram loss in the frozen Inception stem
tells a pattern's layout apart where the block statistics cannot, ignores where the
pattern sits, and trains a generator through the config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fashion_tune.config import TrialConfig
from fashion_tune.errors import ConfigError
from fashion_tune.texture import block_stats, gram_loss, stem, texture_loss


def _two_colour(mix: np.ndarray) -> torch.Tensor:
    """[1, 3, S, S] in [-1, 1]: red where mix is 0, blue where it is 1."""
    red, blue = np.array([0.9, 0.1, 0.1]), np.array([0.1, 0.2, 0.9])
    rgb = red[:, None, None] * (1 - mix) + blue[:, None, None] * mix
    return torch.from_numpy(rgb[None] * 2 - 1).float()


def _patterns(size: int = 16, period: int = 4) -> dict[str, torch.Tensor]:
    yy, xx = np.mgrid[0:size, 0:size]
    return {
        "stripes": _two_colour(((xx // (period // 2)) % 2).astype(float)),
        "stripes_shifted": _two_colour((((xx + 1) // (period // 2)) % 2).astype(float)),
        "checks": _two_colour((((xx // (period // 2)) + (yy // (period // 2))) % 2).astype(float)),
    }


def test_gram_sees_the_layout_that_block_statistics_miss() -> None:
    net = stem(torch.device("cpu"))
    p = _patterns()
    same = gram_loss(net, p["stripes"], p["stripes"]).item()
    shifted = gram_loss(net, p["stripes_shifted"], p["stripes"]).item()
    other = gram_loss(net, p["checks"], p["stripes"]).item()
    assert same == pytest.approx(0.0, abs=1e-6)
    assert other > 3 * shifted, (shifted, other)  # a different weave, not a moved one
    # the same two colours in equal parts: means and stds agree, so the statistics loss
    # tells stripes from checks only by the gradient term, weakly
    stats = (block_stats(p["checks"]) - block_stats(p["stripes"])).abs()
    assert stats[0, :6].max().item() < 1e-6  # means and stds: identical


def test_texture_losses_give_the_generator_a_gradient() -> None:
    gen = torch.Generator().manual_seed(0)
    fake = torch.zeros(2, 3, 64, 64).uniform_(-1, 1, generator=gen).requires_grad_()
    fabric = _patterns()["stripes"].expand(2, -1, -1, -1)
    for kind in ("stats", "gram"):
        fake.grad = None
        loss = texture_loss(kind, fake, fabric, gen)
        loss.backward()
        assert torch.isfinite(loss) and loss.item() > 0
        assert fake.grad is not None and fake.grad.abs().sum() > 0
        # only one block of the central half is compared
        assert fake.grad[:, :, :8].abs().sum() == 0 and fake.grad[:, :, -8:].abs().sum() == 0
    assert not any(p.requires_grad for p in stem(torch.device("cpu")).parameters())


def test_gram_is_a_config_choice() -> None:
    cfg = TrialConfig().with_overrides({"model.arch": "fashiongan", "loss.texture": "gram"})
    assert cfg.loss.texture == "gram"
    with pytest.raises(ConfigError, match=r"loss\.texture.*stats, gram"):
        TrialConfig().with_overrides({"loss.texture": "vgg"})
