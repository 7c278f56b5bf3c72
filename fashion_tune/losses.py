"""GAN losses, gradient penalties and the symmetry losses of Makkapati & Patro (2017).

Everything takes raw logits (D never ends in a sigmoid). Notation: D(x) a logit, G(z) a fake,
F the horizontal flip, sp(t) = softplus(t) = log(1 + e^t), E the mean over the batch.

Flip augmentation and the symmetry loss: if real images are randomly flipped, D learns to be
(nearly) flip-invariant, so D(F(G(z))) ~ D(G(z)) and the "consistency" term goes to ~0 on its
own, while "adversarial" only doubles the usual G term. The symmetry losses carry information
only when D sees unflipped reals; the caller decides, this module does not flip reals.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from fashion_tune.errors import ConfigError
from fashion_tune.registry_names import GAN_LOSSES, PENALTIES, SYMMETRY_VARIANTS

# D(x, y) -> logits [B]; an nn.Module discriminator or any callable with that contract
Critic = Callable[[Tensor, Tensor | None], Tensor]

# GAN_LOSSES, PENALTIES, SYMMETRY_VARIANTS: listed in registry_names (the config reads them)


def _check(what: str, kind: str, choices: tuple[str, ...]) -> None:
    if kind not in choices:
        raise ConfigError(f"unknown {what} {kind!r}; choose one of: {', '.join(choices)}")


def flip(x: Tensor) -> Tensor:
    """Horizontal flip F of a batch of images [B, C, H, W] (reverses W)."""
    return torch.flip(x, dims=[3])


def d_loss(kind: str, real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Discriminator loss, to minimize, from D's logits on reals and (detached) fakes."""
    _check("gan loss", kind, GAN_LOSSES)
    real, fake = real_logits.float(), fake_logits.float()
    if kind == "ns":
        # L_D = -E log sigmoid(D(x)) - E log(1 - sigmoid(D(G(z)))) = E sp(-D(x)) + E sp(D(G(z)))
        return F.softplus(-real).mean() + F.softplus(fake).mean()
    if kind == "hinge":
        # L_D = E max(0, 1 - D(x)) + E max(0, 1 + D(G(z)))
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    # wgan: L_D = E D(G(z)) - E D(x)   (needs a Lipschitz D: add "wgan-gp" or spectral norm)
    return fake.mean() - real.mean()


def g_loss(kind: str, fake_logits: Tensor) -> Tensor:
    """Generator loss, to minimize, from D's logits on fakes."""
    _check("gan loss", kind, GAN_LOSSES)
    fake = fake_logits.float()
    if kind == "ns":
        # non-saturating: L_G = -E log sigmoid(D(G(z))) = E sp(-D(G(z)))
        return F.softplus(-fake).mean()
    # hinge and wgan: L_G = -E D(G(z))
    return -fake.mean()


def _input_grad(D: Critic, x: Tensor, y: Tensor | None) -> Tensor:
    """d sum_i D(x_i) / dx, kept in the graph so the penalty trains D; zeros if D ignores x."""
    x = x.detach().requires_grad_(True)
    out = D(x, y)
    if not out.requires_grad:  # D does not depend on anything trainable nor on x
        return torch.zeros_like(x)
    (grad,) = torch.autograd.grad(out.sum(), x, create_graph=True, allow_unused=True)
    return torch.zeros_like(x) if grad is None else grad


def penalty(kind: str, D: Critic, real: Tensor, fake: Tensor, y: Tensor | None) -> Tensor:
    """Gradient penalty on D (0-dim, unweighted: multiply by its lambda / gamma in the caller).

    ``y`` labels both reals and fakes (conditional D); for "wgan-gp" the interpolates use it
    too, so generate the fakes with the reals' labels when D is conditional.
    Note: a D with batch norm also updates its running statistics on these extra calls.
    """
    _check("gradient penalty", kind, PENALTIES)
    if kind == "none":
        return real.new_zeros((), dtype=torch.float32)
    if kind == "wgan-gp":
        # Gulrajani et al. 2017: x^ = e x + (1 - e) G(z), e ~ U[0, 1] per sample;
        # P = E (|grad_x^ D(x^)|_2 - 1)^2
        eps = torch.rand(real.shape[0], 1, 1, 1, device=real.device, dtype=real.dtype)
        x_hat = eps * real.detach() + (1.0 - eps) * fake.detach()
        grad = _input_grad(D, x_hat, y).float().flatten(1)
        norm = torch.sqrt(grad.pow(2).sum(dim=1) + 1e-12)  # eps: finite gradient at grad = 0
        return (norm - 1.0).pow(2).mean()
    # r1 (Mescheder et al. 2018): P = 0.5 E |grad_x D(x)|^2 on reals only
    grad = _input_grad(D, real, y).float().flatten(1)
    return 0.5 * grad.pow(2).sum(dim=1).mean()


def symmetry_loss(
    variant: str,
    D: Critic,
    fake: Tensor,
    fake_logits: Tensor,
    y: Tensor | None,
    gan_loss: str,
) -> Tensor:
    """Generator-side symmetry term (0-dim, unweighted: multiply by lambda_sym in the caller).

    ``fake`` = G(z) with its graph to G; ``fake_logits`` = D(G(z), y) from the G step.
    Each D call here goes through D's graph, so gradients reach G through D (D is not
    stepped by this term: it is a G-step loss). With batch norm in D, F(G(z)) has the same
    per-channel batch statistics as G(z), so a train-mode D judges both alike.
    """
    _check("symmetry variant", variant, SYMMETRY_VARIANTS)
    _check("gan loss", gan_loss, GAN_LOSSES)
    if variant == "none":
        return fake_logits.new_zeros((), dtype=torch.float32)
    if variant == "pixel":
        # baseline, not the paper's: L = E |G(z) - F(G(z))|_1 (mean over pixels); only sensible
        # for centred front views
        return (fake - flip(fake)).abs().float().mean()
    flipped_logits = D(flip(fake), y)
    if variant == "consistency":
        # L = E (D(F(G(z))) - sg(D(G(z))))^2 on logits. The stop-gradient sg makes D(G(z)) a
        # fixed target: the term moves only the flipped judgement towards the unflipped one.
        # Without it G could also satisfy the term by moving D(G(z)) towards D(F(G(z))),
        # i.e. by fighting the adversarial loss that is already pushing D(G(z)) up.
        target = fake_logits.detach().float()
        return (flipped_logits.float() - target).pow(2).mean()
    # adversarial: the flipped fake must fool D too: L = L_G(D(F(G(z))))
    return g_loss(gan_loss, flipped_logits)
