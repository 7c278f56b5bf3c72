"""The noise-to-image GAN (unconditional or class-conditional): ``G(z, y)`` vs ``D(x, y)``."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from fashion_tune.config import TrialConfig
from fashion_tune.data.reader import ShardSet
from fashion_tune.grids import make_grid
from fashion_tune.losses import d_loss, flip, g_loss, penalty, symmetry_loss
from fashion_tune.metrics.evaluate import Evaluator, metric_ref
from fashion_tune.metrics.inception import InceptionMetric
from fashion_tune.metrics.reference import Reference
from fashion_tune.models import Discriminator, Generator, build_discriminator, build_generator
from fashion_tune.sampling import fixed_noise, generate
from fashion_tune.tasks.base import Batches, GanTask, Runtime

GRID_COLS = 8


def build_models(cfg: TrialConfig, shards: ShardSet) -> tuple[Generator, Discriminator]:
    """G and D for ``cfg`` on this shard set (size, channels and classes come from it)."""
    m = cfg.model
    num_classes = shards.num_classes if cfg.data.conditional and shards.num_classes > 1 else 0
    # resnet counts residual blocks per stage (>= 1); the config counts extra depth
    extra = 1 if m.arch == "resnet" else 0
    G = build_generator(
        m.arch,
        img_size=shards.image_size,
        channels=shards.channels,
        z_dim=m.z_dim,
        num_classes=num_classes,
        width=m.g_width,
        depth=m.g_depth + extra,
    )
    D = build_discriminator(
        m.arch,
        img_size=shards.image_size,
        channels=shards.channels,
        num_classes=num_classes,
        width=m.d_width,
        depth=m.d_depth + extra,
        norm=m.d_norm,
    )
    return G, D


def label_freq(shards: ShardSet, split: str, num_classes: int) -> np.ndarray | None:
    if num_classes == 0:
        return None
    counts = np.bincount(shards.labels[shards.split_indices(split)], minlength=num_classes)
    return counts / counts.sum()


class NoiseTask(GanTask):
    """One step = ``n_disc`` D updates on real batches, then one G update (with the
    symmetry loss when on); with ``n_disc == 1`` G reuses D's fakes (one G forward per
    step, pytorch/examples' update order)."""

    name = "noise"
    loss_names = ("d", "g", "sym")

    def __init__(self, cfg: TrialConfig, shards: ShardSet, rt: Runtime):
        self.cfg, self.shards, self.rt = cfg, shards, rt
        G, D = build_models(cfg, shards)
        self.G: Generator = rt.place(G)  # type: ignore[assignment]
        self.D: Discriminator = rt.place(D)  # type: ignore[assignment]
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        o = cfg.optim
        betas = (o.beta1, o.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=o.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=betas)
        self.noise_gen = torch.Generator(device=rt.device).manual_seed(cfg.runtime.seed + 1)
        self.num_classes = self.G.num_classes
        self.model_meta = {
            "img_size": self.G.img_size,
            "channels": self.G.channels,
            "num_classes": self.num_classes,
            "classes": shards.classes if self.num_classes else [],
        }
        self.G_step, self.D_step = rt.compiled(self.G), rt.compiled(self.D)
        lc = cfg.loss
        self.lam = lc.lambda_sym if lc.symmetry != "none" else 0.0
        rows = min(self.num_classes, 10) if self.num_classes else 8
        self.grid_z = fixed_noise(rows * GRID_COLS, self.G.z_dim, cfg.runtime.seed + 7)
        self.grid_y = torch.arange(rows).repeat_interleave(GRID_COLS) if self.num_classes else None
        self.evaluator: Evaluator | None = None

    def nets(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    # -- one optimisation step ---------------------------------------------------------------
    def step(self, batches: Batches) -> tuple[int, torch.Tensor]:
        n_disc = self.cfg.optim.n_disc
        keep = n_disc == 1
        shown = 0
        for _ in range(n_disc):
            x, y = self._real(batches)
            ld, fake = self._d_update(x, y, keep_fake=keep)
            shown += len(x)
        lg, ls = self._g_update(fake if keep else None, y)
        return shown, torch.stack([ld, lg, ls])

    def _real(self, batches: Batches) -> tuple[torch.Tensor, torch.Tensor | None]:
        images, labels = next(batches)[:2]
        x = images.to(self.rt.device, non_blocking=True).float().div_(127.5).sub_(1.0)
        x = x.contiguous(memory_format=self.rt.mem_format)
        if self.cfg.data.flip_aug:
            mask = torch.rand(len(x), device=x.device, generator=self.noise_gen) < 0.5
            x = torch.where(mask[:, None, None, None], flip(x), x)
        return x, (labels.to(self.rt.device) if self.num_classes else None)

    def _z(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.G.z_dim, device=self.rt.device, generator=self.noise_gen)

    def _d_update(
        self, x: torch.Tensor, y: torch.Tensor | None, keep_fake: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lc, D_step = self.cfg.loss, self.D_step
        z = self._z(len(x))
        with torch.set_grad_enabled(keep_fake), self.rt.autocast():
            fake = self.G_step(z, y)
        with self.rt.autocast():
            loss = d_loss(lc.gan, D_step(x, y), D_step(fake.detach(), y))
            if lc.penalty != "none":
                loss = loss + lc.penalty_weight * penalty(lc.penalty, D_step, x, fake.detach(), y)
        self.opt_d.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_d.step()
        return loss.detach(), fake

    def _g_update(
        self, fake: torch.Tensor | None, y: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lc = self.cfg.loss
        self.D.requires_grad_(False)  # G's step needs no weight gradients of D
        with self.rt.autocast():
            if fake is None:
                fake = self.G_step(self._z(self.cfg.data.batch_size), y)
            logits = self.D_step(fake, y)
            loss = g_loss(lc.gan, logits)
            sym = (
                symmetry_loss(lc.symmetry, self.D_step, fake, logits, y, lc.gan)
                if self.lam > 0
                else torch.zeros((), device=self.rt.device)
            )
            total = loss + self.lam * sym
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return loss.detach(), sym.detach()

    # -- evaluation and samples --------------------------------------------------------------
    def setup_eval(self, ref: Reference, inception: InceptionMetric | None) -> None:
        freq = label_freq(self.shards, self.cfg.data.split, self.num_classes)
        self.evaluator = Evaluator(ref, self.cfg.metrics, self.G.z_dim, freq, inception)
        self._ref = ref

    def evaluate(self) -> dict[str, Any]:
        assert self.evaluator is not None, "setup_eval first"
        return self.evaluator(self.G_ema)

    @property
    def ruler(self) -> str:
        return metric_ref(self._ref, self.cfg.metrics)

    def sample_grid(self) -> Image.Image:
        scale = max(1, 64 // self.G.img_size)
        return make_grid(
            generate(self.G_ema, self.grid_z, self.grid_y), nrow=GRID_COLS, scale=scale
        )
