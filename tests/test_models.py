"""Contract tests run over every registered model family, plus the pytorch/examples DCGAN check."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
import torch
from torch import nn

from fashion_tune.errors import ConfigError
from fashion_tune.models import (
    ARCHS,
    IMG_SIZES,
    NORMS,
    build_discriminator,
    build_generator,
)
from fashion_tune.models.layers import ConditionalBatchNorm2d

Z_DIM = 16
WIDTH = 8
BATCH = 3


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models run faster on one thread, and far faster when other jobs load the cores
    (multi-threaded kernels on tiny tensors then wait on each other: 100x slower seen here)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _build(
    arch: str,
    img_size: int,
    channels: int,
    num_classes: int,
    norm: str,
    depth: int = 1,
    width: int = WIDTH,
) -> tuple[nn.Module, nn.Module]:
    G = build_generator(
        arch,
        img_size=img_size,
        channels=channels,
        z_dim=Z_DIM,
        num_classes=num_classes,
        width=width,
        depth=depth,
    )
    D = build_discriminator(
        arch,
        img_size=img_size,
        channels=channels,
        num_classes=num_classes,
        width=width,
        depth=depth,
        norm=norm,
    )
    return G, D


CASES = list(itertools.product(ARCHS, IMG_SIZES, (1, 3), (0, 10), NORMS))


@pytest.mark.parametrize(("arch", "img_size", "channels", "num_classes", "norm"), CASES)
def test_contract(arch: str, img_size: int, channels: int, num_classes: int, norm: str) -> None:
    torch.manual_seed(0)
    G, D = _build(arch, img_size, channels, num_classes, norm)
    for model in (G, D):
        assert (model.img_size, model.channels, model.num_classes) == (
            img_size,
            channels,
            num_classes,
        )
    assert G.z_dim == Z_DIM

    z = torch.randn(BATCH, Z_DIM)
    y = torch.randint(0, num_classes, (BATCH,)) if num_classes else None
    fake = G(z, y)
    assert fake.shape == (BATCH, channels, img_size, img_size)
    assert torch.isfinite(fake).all()
    assert fake.min() >= -1.0 and fake.max() <= 1.0

    logits = D(fake, y)
    assert logits.shape == (BATCH,)
    assert torch.isfinite(logits).all()

    logits.mean().backward()
    for name, p in itertools.chain(G.named_parameters(), D.named_parameters()):
        assert p.grad is not None, f"no gradient reached {name}"
        assert torch.isfinite(p.grad).all(), f"non-finite gradient in {name}"


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("num_classes", [0, 10])
@pytest.mark.parametrize("norm", NORMS)
def test_channels_last_and_bf16_autocast(arch: str, num_classes: int, norm: str) -> None:
    torch.manual_seed(0)
    G, D = _build(arch, 64, 3, num_classes, norm)
    G = G.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    D = D.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    z = torch.randn(BATCH, Z_DIM)
    y = torch.randint(0, num_classes, (BATCH,)) if num_classes else None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fake = G(z, y)
        logits = D(fake, y)
    assert fake.shape == (BATCH, 3, 64, 64) and logits.shape == (BATCH,)
    assert fake.abs().max() <= 1.0
    assert torch.isfinite(logits.float()).all()
    logits.float().mean().backward()
    for name, p in itertools.chain(G.named_parameters(), D.named_parameters()):
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("depth", [0, 2])
def test_depth(arch: str, depth: int) -> None:
    if arch == "resnet" and depth == 0:
        with pytest.raises(ConfigError, match="depth"):
            _build(arch, 32, 1, 0, "none", depth=depth)
        return
    G, D = _build(arch, 32, 1, 0, "none", depth=depth)
    fake = G(torch.randn(2, Z_DIM))
    assert fake.shape == (2, 1, 32, 32) and D(fake).shape == (2,)


def test_more_depth_means_more_layers() -> None:
    for arch in ARCHS:
        counts = [
            sum(1 for _ in _build(arch, 32, 1, 0, "none", depth=d)[0].modules()) for d in (1, 2)
        ]
        assert counts[1] > counts[0], arch


def test_conditional_models_need_labels() -> None:
    for arch in ARCHS:
        G, D = _build(arch, 32, 1, 10, "none")
        with pytest.raises(ValueError, match="labels"):
            G(torch.randn(2, Z_DIM))
        with pytest.raises(ValueError, match="labels"):
            D(torch.zeros(2, 1, 32, 32))


def test_labels_change_conditional_outputs() -> None:
    for arch in ARCHS:
        torch.manual_seed(0)
        G, D = _build(arch, 32, 1, 10, "none")
        for m in G.modules():  # conditional BN starts as plain BN: make the classes differ
            if isinstance(m, ConditionalBatchNorm2d):
                nn.init.normal_(m.bias.weight)
        G.eval()
        z = torch.randn(1, Z_DIM).expand(2, Z_DIM)
        fake = G(z, torch.tensor([0, 1]))
        assert not torch.allclose(fake[0], fake[1])
        x = torch.randn(1, 1, 32, 32).expand(2, 1, 32, 32)
        D.eval()
        logits = D(x, torch.tensor([0, 1]))
        assert logits[0] != logits[1]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"arch": "stylegan"}, "dcgan, resnet"),
        ({"img_size": 48}, "img_size 48; choose one of: 32, 64, 128"),
        ({"channels": 2}, "channels"),
        ({"norm": "layer"}, "none, batch, spectral"),
        ({"num_classes": -1}, "num_classes"),
        ({"width": 0}, "width"),
        ({"depth": -1}, "depth"),
    ],
)
def test_bad_config_is_a_one_line_config_error(kwargs: dict, match: str) -> None:
    args: dict = {
        "arch": "dcgan",
        "img_size": 32,
        "channels": 1,
        "num_classes": 0,
        "width": 8,
        "depth": 0,
        "norm": "batch",
    }
    args.update(kwargs)
    norm = args.pop("norm")
    arch = args.pop("arch")
    with pytest.raises(ConfigError, match=match) as info:
        build_discriminator(arch, norm=norm, **args)
    assert "\n" not in str(info.value)
    if "norm" not in kwargs:
        with pytest.raises(ConfigError, match=match):
            build_generator(arch, z_dim=Z_DIM, **args)


# --- pytorch/examples dcgan/main.py, verbatim but for the ngpu plumbing ---------------------


class _RefGenerator(nn.Module):
    def __init__(self, nz: int, ngf: int, nc: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False),
            nn.BatchNorm2d(ngf * 8),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 4),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.ReLU(True),
            nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),
            nn.Tanh(),
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input)


class _RefDiscriminator(nn.Module):
    def __init__(self, ndf: int, nc: int) -> None:
        super().__init__()
        self.main = nn.Sequential(
            nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 2),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 4),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False),
            nn.BatchNorm2d(ndf * 8),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        return self.main(input).view(-1, 1).squeeze(1)


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_dcgan64_is_pytorch_examples_dcgan() -> None:
    torch.manual_seed(0)
    ref_G, ref_D = _RefGenerator(nz=100, ngf=64, nc=3), _RefDiscriminator(ndf=64, nc=3)
    G = build_generator(
        "dcgan", img_size=64, channels=3, z_dim=100, num_classes=0, width=64, depth=0
    )
    D = build_discriminator(
        "dcgan", img_size=64, channels=3, num_classes=0, width=64, depth=0, norm="batch"
    )
    assert _n_params(ref_G) == _n_params(G) == 3_576_704
    assert _n_params(ref_D) == _n_params(D) == 2_765_568

    # layer for layer: same layer types and the same state-dict keys and shapes (strict load)
    types = [
        [type(m) for m in model.get_submodule("main").children()] for model in (G, ref_G, D, ref_D)
    ]
    assert types[0] == types[1]
    assert types[2] == types[3][:-1]  # D ends at the logit: no Sigmoid
    G.load_state_dict(ref_G.state_dict())
    D.load_state_dict(ref_D.state_dict())
    for model in (G, D, ref_G, ref_D):
        model.eval()
    z = torch.randn(4, 100)
    with torch.no_grad():
        fake = G(z)
        torch.testing.assert_close(fake, ref_G(z.view(4, 100, 1, 1)))
        torch.testing.assert_close(torch.sigmoid(D(fake)), ref_D(fake))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("num_classes", [0, 10])
def test_generator_output_depends_on_z_at_init(arch: str, num_classes: int) -> None:
    """A freshly built G must use its latent: images for different z differ within a class.

    (A conditional batch norm whose gains start near 0 would erase z entirely.)
    """
    torch.manual_seed(0)
    G = build_generator(
        arch, img_size=32, channels=1, z_dim=16, num_classes=num_classes, width=16, depth=1
    )
    y = torch.zeros(64, dtype=torch.long) if num_classes else None
    with torch.no_grad():
        x = G(torch.randn(64, 16), y)
    per_pixel_std_over_z = x.std(dim=0).mean()
    assert per_pixel_std_over_z > 0.01  # healthy: ~0.07; zero-gain conditional BN: ~0.0006
