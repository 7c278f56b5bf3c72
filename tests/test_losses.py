"""GAN losses, gradient penalties, symmetry losses and latent inversion."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
import torch
from torch import Tensor, nn

from fashion_tune.errors import ConfigError
from fashion_tune.losses import (
    GAN_LOSSES,
    PENALTIES,
    SYMMETRY_VARIANTS,
    d_loss,
    flip,
    g_loss,
    penalty,
    symmetry_loss,
)
from fashion_tune.models import Discriminator, Generator, build_discriminator, build_generator
from fashion_tune.symmetrize import invert_flipped

REAL = torch.tensor([1.0, -2.0])
FAKE = torch.tensor([0.5, -1.0])


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models run faster on one thread, and far faster when other jobs load the cores
    (multi-threaded kernels on tiny tensors then wait on each other: 100x slower seen here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _softplus(t: float) -> float:
    return math.log1p(math.exp(t))


def _tiny_gan(num_classes: int = 0) -> tuple[Generator, Discriminator]:
    torch.manual_seed(0)
    G = build_generator(
        "dcgan", img_size=32, channels=1, z_dim=8, num_classes=num_classes, width=4, depth=0
    )
    D = build_discriminator(
        "dcgan", img_size=32, channels=1, num_classes=num_classes, width=4, depth=0, norm="none"
    )
    return G, D


# --- GAN losses ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "want_d", "want_g"),
    [
        (
            "ns",
            (_softplus(-1.0) + _softplus(2.0)) / 2 + (_softplus(0.5) + _softplus(-1.0)) / 2,
            (_softplus(-0.5) + _softplus(1.0)) / 2,
        ),
        ("hinge", (0.0 + 3.0) / 2 + (1.5 + 0.0) / 2, 0.25),  # relu(1 - r), relu(1 + f); -mean f
        ("wgan", -0.25 - (-0.5), 0.25),  # mean f - mean r; -mean f
    ],
)
def test_known_values(kind: str, want_d: float, want_g: float) -> None:
    assert d_loss(kind, REAL, FAKE).item() == pytest.approx(want_d, rel=1e-6)
    assert g_loss(kind, FAKE).item() == pytest.approx(want_g, rel=1e-6)


def test_ns_at_zero_logits_is_2_log_2() -> None:
    zeros = torch.zeros(4)
    assert d_loss("ns", zeros, zeros).item() == pytest.approx(2 * math.log(2))


@pytest.mark.parametrize("kind", GAN_LOSSES)
def test_signs(kind: str) -> None:
    # inside the hinge margin, so every kind has a non-zero gradient
    real = torch.tensor([0.3, -0.2], requires_grad=True)
    fake = torch.tensor([0.1, -0.4], requires_grad=True)
    d_loss(kind, real, fake).backward()
    assert real.grad is not None and fake.grad is not None
    assert (real.grad < 0).all(), "D should want higher logits on reals"
    assert (fake.grad > 0).all(), "D should want lower logits on fakes"
    fake.grad = None
    g_loss(kind, fake).backward()
    assert fake.grad is not None
    assert (fake.grad < 0).all(), "G should want higher logits on fakes"


def test_ns_is_stable_at_extreme_logits() -> None:
    big = torch.tensor([1e4, -1e4])
    assert torch.isfinite(d_loss("ns", big, big)) and torch.isfinite(g_loss("ns", big))
    assert d_loss("ns", torch.tensor([1e4]), torch.tensor([-1e4])).item() == 0.0


# --- penalties -------------------------------------------------------------------------------


class _Linear(nn.Module):
    """D(x) = <w, x> with |w| = 1: unit gradient norm everywhere."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        super().__init__()
        w = torch.randn(shape)
        self.w = nn.Parameter(w / w.norm())

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return (x * self.w).flatten(1).sum(1)


def test_penalties() -> None:
    torch.manual_seed(0)
    real, fake = torch.randn(4, 1, 8, 8), torch.randn(4, 1, 8, 8)
    D = _Linear((1, 8, 8))
    assert penalty("none", D, real, fake, None).item() == 0.0
    assert penalty("wgan-gp", D, real, fake, None).item() == pytest.approx(0.0, abs=1e-6)
    assert penalty("r1", D, real, fake, None).item() == pytest.approx(0.5, rel=1e-5)

    with torch.no_grad():
        D.w.mul_(3.0)  # |grad| = 3: gp = (3 - 1)^2, r1 = 0.5 * 9
    gp = penalty("wgan-gp", D, real, fake, None)
    assert gp.item() == pytest.approx(4.0, rel=1e-5)
    gp.backward()  # the penalty trains D: it has a graph to D's parameters
    assert D.w.grad is not None and D.w.grad.abs().sum() > 0
    assert penalty("r1", D, real, fake, None).item() == pytest.approx(4.5, rel=1e-5)


def test_r1_of_a_constant_d_is_zero() -> None:
    real = torch.randn(4, 1, 8, 8)
    bias = nn.Parameter(torch.tensor(0.7))

    def ignores_x(x: Tensor, y: Tensor | None) -> Tensor:  # depends on a parameter, not on x
        return bias.expand(x.shape[0])

    def constant(x: Tensor, y: Tensor | None) -> Tensor:  # depends on nothing
        return torch.ones(x.shape[0])

    for D in (ignores_x, constant):
        assert penalty("r1", D, real, real, None).item() == 0.0


@pytest.mark.parametrize("kind", PENALTIES)
@pytest.mark.parametrize("num_classes", [0, 10])
def test_penalties_on_real_models(kind: str, num_classes: int) -> None:
    G, D = _tiny_gan(num_classes)
    y = torch.randint(0, 10, (4,)) if num_classes else None
    real, fake = torch.rand(4, 1, 32, 32) * 2 - 1, G(torch.randn(4, 8), y)
    value = penalty(kind, D, real, fake, y)
    assert value.dim() == 0 and torch.isfinite(value) and value.item() >= 0.0


# --- symmetry --------------------------------------------------------------------------------


def test_flip() -> None:
    x = torch.arange(24.0).view(1, 2, 3, 4)
    assert torch.equal(flip(x)[..., 0], x[..., -1])
    assert torch.equal(flip(flip(x)), x)


def test_pixel_symmetry_is_zero_only_on_mirror_symmetric_images() -> None:
    x = torch.rand(2, 3, 8, 8)
    symmetric = x + flip(x)
    logits = torch.zeros(2)
    assert symmetry_loss("pixel", None, symmetric, logits, None, "ns").item() == 0.0  # type: ignore[arg-type]
    assert symmetry_loss("pixel", None, x, logits, None, "ns").item() > 0.0  # type: ignore[arg-type]


def test_consistency_is_zero_for_a_flip_invariant_d() -> None:
    _, inner = _tiny_gan()

    def invariant(x: Tensor, y: Tensor | None) -> Tensor:
        return inner(x) + inner(flip(x))

    fake = torch.rand(4, 1, 32, 32)
    logits = invariant(fake, None)
    assert symmetry_loss("consistency", invariant, fake, logits, None, "ns").item() == 0.0
    assert symmetry_loss("consistency", inner, fake, inner(fake), None, "ns").item() > 0.0


def test_none_does_not_call_d() -> None:
    def exploding(x: Tensor, y: Tensor | None) -> Tensor:
        raise AssertionError("D was called")

    loss = symmetry_loss("none", exploding, torch.rand(2, 1, 8, 8), torch.zeros(2), None, "ns")
    assert loss.dim() == 0 and loss.item() == 0.0


@pytest.mark.parametrize("variant", [v for v in SYMMETRY_VARIANTS if v != "none"])
@pytest.mark.parametrize("gan_loss", GAN_LOSSES)
def test_symmetry_gradients_reach_g(variant: str, gan_loss: str) -> None:
    G, D = _tiny_gan(num_classes=10)
    y = torch.randint(0, 10, (4,))
    fake = G(torch.randn(4, 8), y)
    loss = symmetry_loss(variant, D, fake, D(fake, y), y, gan_loss)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    grads = [p.grad for p in G.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)


def test_unknown_kinds_raise_config_error() -> None:
    x, logits = torch.rand(2, 1, 8, 8), torch.zeros(2)
    D = _Linear((1, 8, 8))
    with pytest.raises(ConfigError, match="ns, hinge, wgan"):
        d_loss("lsgan", logits, logits)
    with pytest.raises(ConfigError, match="gan loss"):
        g_loss("lsgan", logits)
    with pytest.raises(ConfigError, match="none, wgan-gp, r1"):
        penalty("r2", D, x, x, None)
    with pytest.raises(ConfigError, match="consistency"):
        symmetry_loss("rotation", D, x, logits, None, "ns")
    with pytest.raises(ConfigError, match="gan loss"):
        symmetry_loss("adversarial", D, x, logits, None, "lsgan")


# --- latent inversion ------------------------------------------------------------------------


def test_inversion_reduces_loss_and_is_deterministic() -> None:
    G, _ = _tiny_gan()
    G.train()
    before = [p.detach().clone() for p in G.parameters()]
    with torch.no_grad():
        G.eval()
        x = flip(G(torch.randn(2, 8)))  # a target G can reach: F(x) is on G's manifold
        G.train()

    start = invert_flipped(G, x, steps=0)
    a = invert_flipped(G, x, steps=60, seed=3)
    b = invert_flipped(G, x, steps=60, seed=3)
    assert a.loss < start.loss
    assert torch.equal(a.z, b.z) and torch.equal(a.reconstruction, b.reconstruction)
    assert a.loss == b.loss
    assert not torch.equal(invert_flipped(G, x, steps=5, seed=4).z, a.z)

    assert a.z.shape == (2, 8) and a.reconstruction.shape == x.shape
    torch.testing.assert_close(a.symmetrized, (x + a.reconstruction) / 2)
    # G is frozen: untouched, no gradients, mode and requires_grad restored
    assert G.training
    for p, p0 in zip(G.parameters(), before, strict=True):
        assert torch.equal(p, p0) and p.grad is None and p.requires_grad


def test_inversion_of_a_conditional_g() -> None:
    G, _ = _tiny_gan(num_classes=10)
    x, y = torch.rand(3, 1, 32, 32) * 2 - 1, torch.tensor([0, 4, 9])
    result = invert_flipped(G, x, y, steps=10)
    assert result.reconstruction.shape == x.shape and math.isfinite(result.loss)
