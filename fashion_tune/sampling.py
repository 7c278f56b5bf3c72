"""Generating images from a generator, the same way everywhere (metrics, grids, `sample`)."""

from __future__ import annotations

import torch
from torch import nn

MIN_BATCH = 64  # batch-norm generators sample with batch statistics: never tiny batches


@torch.no_grad()
def generate(
    G: nn.Module, z: torch.Tensor, y: torch.Tensor | None = None, batch: int = 256
) -> torch.Tensor:
    """G(z, y) in [-1, 1] on the CPU, in batches of at least ``MIN_BATCH`` rows.

    Generators run in training mode (batch statistics), as pytorch/examples' DCGAN
    samples: running statistics lag behind early in training and an EMA generator's
    are only copies. Short requests are padded with extra noise, then cut.
    """
    device = next(G.parameters()).device
    was_training = G.training
    G.train()
    out = []
    gen = torch.Generator().manual_seed(0)
    for i in range(0, len(z), batch):
        zb = z[i : i + batch]
        yb = None if y is None else y[i : i + batch]
        n = len(zb)
        if n < MIN_BATCH:
            pad = MIN_BATCH - n
            zb = torch.cat([zb, torch.randn(pad, zb.shape[1], generator=gen)])
            if yb is not None:
                yb = torch.cat([yb, yb[torch.arange(pad) % n]])
        x = G(zb.to(device), None if yb is None else yb.to(device))
        out.append(x[:n].float().cpu())
    G.train(was_training)
    return torch.cat(out)


def fixed_noise(n: int, z_dim: int, seed: int) -> torch.Tensor:
    return torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed))
