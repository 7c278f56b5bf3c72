"""The names each extension point accepts, in one torch-free place.

The trial config (``config.py``: ``model.arch`` ... ``loss.symmetry``) and so every
search space and ``--set`` read their allowed values here, and the registries that
implement them (``models/registry.py``, ``losses.py``) take their lists from here too:
a new loss, penalty, symmetry variant or normalization is its implementation plus one
name below. A model family registers itself (``models/registry.register``) and must be
listed below; ``register`` refuses one that is not, so the config cannot fall behind.
"""

from __future__ import annotations

# fashion_tune/models/<family>.py, each registered (fashiongan: sketch + fabric pairs)
MODEL_FAMILIES = ("dcgan", "resnet", "fashiongan")
D_NORMS = ("none", "batch", "spectral")  # discriminator normalization
GAN_LOSSES = ("ns", "hinge", "wgan")  # non-saturating, hinge, Wasserstein
PENALTIES = ("none", "wgan-gp", "r1")  # gradient penalty on D
SYMMETRY_VARIANTS = ("none", "consistency", "adversarial", "pixel")  # see losses.symmetry_loss
TEXTURE_LOSSES = ("stats", "gram")  # fashiongan's local texture loss: see texture.py
