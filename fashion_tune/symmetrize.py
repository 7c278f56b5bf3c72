"""Latent inversion of a mirrored image: the second idea of Makkapati & Patro (2017).

Given images x, find z* = argmin_z |G(z) - F(x)|^2 + beta |z|^2 (F = horizontal flip) with
Adam, G frozen. G(z*) is the mirrored design as the generator would draw it (on its manifold,
so without the distortions of a pixel flip), and (x + G(z*)) / 2 is a symmetrized image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from fashion_tune.losses import flip
from fashion_tune.models.registry import Generator


@dataclass(frozen=True)
class Inversion:
    """Result of :func:`invert_flipped`; all tensors detached, batch-first like ``x``."""

    z: Tensor  # z* [B, z_dim]
    reconstruction: Tensor  # G(z*) [B, C, S, S], approximates F(x)
    symmetrized: Tensor  # (x + G(z*)) / 2 [B, C, S, S]
    loss: float  # the objective at z*, averaged over the batch


def _objective(recon: Tensor, target: Tensor, z: Tensor, beta: float) -> Tensor:
    """Per-sample objective [B]: mean over pixels of (G(z) - F(x))^2 + beta * sum_j z_j^2."""
    return (recon - target).pow(2).flatten(1).mean(dim=1) + beta * z.pow(2).sum(dim=1)


def invert_flipped(
    G: Generator,
    x: Tensor,
    y: Tensor | None = None,
    *,
    steps: int = 200,
    lr: float = 0.05,
    beta: float = 1e-3,
    seed: int = 0,
) -> Inversion:
    """Invert the flipped images F(x) [B, C, S, S] in [-1, 1] through G; see the module doc.

    G runs in eval mode (batch norm on running statistics) and gets no gradients; its mode
    and its parameters' ``requires_grad`` are restored afterwards. z starts at N(0, I) drawn
    from ``seed`` (on the CPU, so a seed gives the same start on any device); each sample is
    optimized independently (the batch objective is the sum of per-sample objectives).
    ``steps=0`` returns the starting point.
    """
    target = flip(x.detach())
    start = torch.randn(x.shape[0], G.z_dim, generator=torch.Generator().manual_seed(seed))
    z = start.to(device=x.device, dtype=x.dtype).requires_grad_(True)
    was_training = G.training
    frozen = [(p, p.requires_grad) for p in G.parameters()]
    try:
        G.eval()
        for p, _ in frozen:
            p.requires_grad_(False)
        with torch.enable_grad():
            opt = torch.optim.Adam([z], lr=lr)
            for _ in range(steps):
                opt.zero_grad(set_to_none=True)
                _objective(G(z, y), target, z, beta).sum().backward()
                opt.step()
        with torch.no_grad():
            recon = G(z, y)
            loss = _objective(recon, target, z, beta).mean().item()
    finally:
        G.train(was_training)
        for p, requires_grad in frozen:
            p.requires_grad_(requires_grad)
    z = z.detach()
    return Inversion(z=z, reconstruction=recon, symmetrized=(x.detach() + recon) / 2, loss=loss)
