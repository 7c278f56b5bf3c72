"""The sketch + fabric GAN (FashionGAN, a BicycleGAN variant) as a training task.

One step, on a batch of (garment x, sketch s, fabric f), all in [-1, 1]:

* cVAE-GAN branch: ``(mu, logvar) = E(f)``, ``z_e = mu + sigma * eps``, ``G(s, z_e, f)``
  (the patch f itself is used by G only when ``model.fabric_map`` tiles it over the input)
  must look real to ``D(., s)`` and match x in L1; KL(q(z|f) || N(0, I)) keeps the code
  small; the local texture loss (``loss.texture``: block statistics, or FashionGAN's Gram
  matrices in a fixed pretrained stem; ``fashion_tune.texture``) matches a random block
  of ``G(s, z_e)`` near the centre, where a garment is, to the fabric patch;
* cLR-GAN branch: ``z_r ~ N(0, I)``, ``G(s, z_r, f)`` must look real, and the encoder must
  recover ``z_r`` from its centre crop (latent regression; this term trains G only);
* D (two-scale PatchGAN, conditioned on s) sees x as real and both outputs as fake;
  the configured gradient penalty and symmetry variant (the flipped output is judged
  with the flipped sketch) apply as in the noise task.

G and E share ``opt_g``; the loop keeps the EMA of G; E is saved as trained.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from PIL import Image
from torch import nn

from fashion_tune.config import TrialConfig
from fashion_tune.data.reader import ShardSet
from fashion_tune.losses import d_loss, flip, g_loss, penalty, symmetry_loss
from fashion_tune.metrics.evaluate import metric_ref
from fashion_tune.metrics.inception import InceptionMetric
from fashion_tune.metrics.paired import PairedEvaluator
from fashion_tune.metrics.reference import Reference
from fashion_tune.metrics.swap import fixed_pair_sheet
from fashion_tune.models import build_discriminator, build_generator
from fashion_tune.models.fashiongan import FabricEncoder, build_encoder, locate_patch
from fashion_tune.tasks.base import Batches, GanTask, Runtime
from fashion_tune.texture import texture_loss

GRID_PAIRS = 16


def build_paired_models(
    cfg: TrialConfig, img_size: int, channels: int
) -> tuple[nn.Module, FabricEncoder, nn.Module]:
    """G, E and D of a fashiongan config for images of this size and channel count."""
    m = cfg.model
    G = build_generator(
        m.arch,
        img_size=img_size,
        channels=channels,
        z_dim=m.z_dim,
        num_classes=0,
        width=m.g_width,
        depth=m.g_depth,
        fabric_map=m.fabric_map,
    )
    D = build_discriminator(
        m.arch,
        img_size=img_size,
        channels=channels,
        num_classes=0,
        width=m.d_width,
        depth=m.d_depth,
        norm=m.d_norm,
    )
    E = build_encoder(channels, m.z_dim, m.g_width)
    if not m.fabric_in:  # the control: the fabric never reaches G, in training, in every
        E.register_forward_pre_hook(_blind_encoder)  # evaluation and in a checkpoint loaded
        G.register_forward_pre_hook(_blind_generator)  # later
    return G, E, D


def _blind_encoder(_module: nn.Module, args: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
    """A forward pre-hook: the encoder gets zeros instead of the fabric."""
    return (torch.zeros_like(args[0]), *args[1:])


def _blind_generator(
    _module: nn.Module, args: tuple[torch.Tensor | None, ...]
) -> tuple[torch.Tensor | None, ...]:
    """A forward pre-hook: G's tiled fabric (model.fabric_map) is zeros."""
    if len(args) < 3 or args[2] is None:
        return args
    return (*args[:2], torch.zeros_like(args[2]), *args[3:])


class PairedTask(GanTask):
    name = "paired"
    loss_names = ("d", "g", "l1", "kl", "latent", "tex", "sym")

    def __init__(self, cfg: TrialConfig, shards: ShardSet, rt: Runtime):
        shards.require_pairs("model.arch=fashiongan")
        self.cfg, self.shards, self.rt = cfg, shards, rt
        G, E, D = build_paired_models(cfg, shards.image_size, shards.channels)
        self.G, self.E, self.D = rt.place(G), rt.place(E), rt.place(D)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False)
        o = cfg.optim
        betas = (o.beta1, o.beta2)
        params = [*self.G.parameters(), *self.E.parameters()]
        self.opt_g = torch.optim.Adam(params, lr=o.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=o.lr_d, betas=betas)
        self.noise_gen = torch.Generator(device=rt.device).manual_seed(cfg.runtime.seed + 1)
        self.z_dim = cfg.model.z_dim
        self.model_meta = {
            "img_size": shards.image_size,
            "channels": shards.channels,
            "num_classes": 0,
            "classes": [],
            "fabric_size": shards.manifest.fabric_size,
        }
        self.G_step, self.D_step = rt.compiled(self.G), rt.compiled(self.D)
        lc = cfg.loss
        self.lam_sym = lc.lambda_sym if lc.symmetry != "none" else 0.0
        self.evaluator: PairedEvaluator | None = None

    def nets(self) -> dict[str, nn.Module]:
        return {"G": self.G, "E": self.E, "D": self.D, "G_ema": self.G_ema}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    # -- one optimisation step ---------------------------------------------------------------
    def _real(
        self, batches: Batches
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
        images, _labels, sketches, fabrics = next(batches)
        dev, fmt = self.rt.device, self.rt.mem_format
        x, s, f = (
            t.to(dev, non_blocking=True).float().div_(127.5).sub_(1.0).contiguous(memory_format=fmt)
            for t in (images, sketches, fabrics)
        )
        if self.cfg.data.flip_aug:  # the garment, its sketch and its fabric flip together
            mask = torch.rand(len(x), device=dev, generator=self.noise_gen) < 0.5
            m = mask[:, None, None, None]
            x, s, f = (torch.where(m, flip(t), t) for t in (x, s, f))
        # where each patch was cut from its garment (flipped with it): G's tiled fabric is
        # laid in that phase, so map and target agree there instead of being off by the
        # cut's distance from the centre (a few px, on patterns of 8-16 px periods)
        at = locate_patch(x, f) if self.cfg.model.fabric_map else None
        return x, s, f, at

    def _fakes(
        self, s: torch.Tensor, f: torch.Tensor, at: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        mu, logvar = self.E(f)
        eps = torch.randn(mu.shape, device=mu.device, generator=self.noise_gen)
        z_enc = mu + eps * torch.exp(0.5 * logvar)
        z_rand = torch.randn(mu.shape, device=mu.device, generator=self.noise_gen)
        fake_enc = self.G_step(s, z_enc, f, at)
        fake_rand = self.G_step(s, z_rand, f, at)
        return fake_enc, fake_rand, mu, logvar, z_rand

    def step(self, batches: Batches) -> tuple[int, torch.Tensor]:
        lc, n_disc = self.cfg.loss, self.cfg.optim.n_disc
        shown = 0
        for i in range(n_disc):
            x, s, f, at = self._real(batches)
            keep = i == n_disc - 1  # the last D step's fakes serve G's step
            with torch.set_grad_enabled(keep), self.rt.autocast():
                fake_enc, fake_rand, mu, logvar, z_rand = self._fakes(s, f, at)
            with self.rt.autocast():
                real_logits = self.D_step(x, s)
                ld = d_loss(lc.gan, real_logits, self.D_step(fake_enc.detach(), s)) + d_loss(
                    lc.gan, real_logits, self.D_step(fake_rand.detach(), s)
                )
                if lc.penalty != "none":
                    ld = ld + lc.penalty_weight * penalty(
                        lc.penalty, self.D_step, x, fake_enc.detach(), s
                    )
            self.opt_d.zero_grad(set_to_none=True)
            ld.backward()
            self.opt_d.step()
            shown += len(x)
        losses = self._g_update(x, s, f, fake_enc, fake_rand, mu, logvar, z_rand)
        return shown, torch.stack([ld.detach(), *losses])

    def _g_update(
        self,
        x: torch.Tensor,
        s: torch.Tensor,
        f: torch.Tensor,
        fake_enc: torch.Tensor,
        fake_rand: torch.Tensor,
        mu: torch.Tensor,
        logvar: torch.Tensor,
        z_rand: torch.Tensor,
    ) -> list[torch.Tensor]:
        lc = self.cfg.loss
        self.D.requires_grad_(False)
        with self.rt.autocast():
            logits_enc = self.D_step(fake_enc, s)
            lg = g_loss(lc.gan, logits_enc) + g_loss(lc.gan, self.D_step(fake_rand, s))
            l1 = (fake_enc.float() - x.float()).abs().mean()
            kl = (-0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).float().sum(1)).mean()
            tex = self._texture(fake_enc, f)
            # latent regression trains G only: E is frozen for this forward
            self.E.requires_grad_(False)
            p = f.shape[-1]
            lo = (fake_rand.shape[-1] - p) // 2
            mu_back, _ = self.E(fake_rand[:, :, lo : lo + p, lo : lo + p])
            self.E.requires_grad_(True)
            latent = (mu_back.float() - z_rand.float()).abs().mean()
            flipped_d = lambda img, cond: self.D_step(img, flip(cond))  # noqa: E731
            sym = (
                symmetry_loss(lc.symmetry, flipped_d, fake_enc, logits_enc, s, lc.gan)
                if self.lam_sym > 0
                else torch.zeros((), device=self.rt.device)
            )
            total = (
                lg
                + lc.lambda_l1 * l1
                + lc.lambda_kl * kl
                + lc.lambda_latent * latent
                + lc.lambda_tex * tex
                + self.lam_sym * sym
            )
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)
        return [t.detach().float() for t in (lg, l1, kl, latent, tex, sym)]

    def _texture(self, fake: torch.Tensor, fabric: torch.Tensor) -> torch.Tensor:
        """The configured local texture loss (``fashion_tune.texture``)."""
        if self.cfg.loss.lambda_tex == 0:
            return torch.zeros((), device=fake.device)
        return texture_loss(self.cfg.loss.texture, fake, fabric, self.noise_gen)

    # -- evaluation and samples --------------------------------------------------------------
    def setup_eval(self, ref: Reference, inception: InceptionMetric | None) -> None:
        self._ref = ref
        self.evaluator = PairedEvaluator(ref, self.cfg.metrics, self.shards, self.cfg.data.split)
        # fixed pairs carried in every checkpoint, so sample / report show triptychs
        # without the shard set
        self.model_meta["grid_sketches"] = torch.from_numpy(
            self.evaluator.sketches[:GRID_PAIRS].copy()
        )
        self.model_meta["grid_fabrics"] = torch.from_numpy(
            self.evaluator.fabrics[:GRID_PAIRS].copy()
        )

    def evaluate(self) -> dict[str, Any]:
        assert self.evaluator is not None, "setup_eval first"
        return self.evaluator(self.G_ema, self.E)

    @property
    def ruler(self) -> str:
        return metric_ref(self._ref, self.cfg.metrics)

    def sample_grid(self) -> Image.Image:
        assert self.evaluator is not None, "setup_eval first"
        sk = self.evaluator.sketches[:GRID_PAIRS]
        fb = self.evaluator.fabrics[:GRID_PAIRS]
        scale = max(1, 64 // self.shards.image_size)
        return fixed_pair_sheet(self.G_ema, self.E, sk, fb, scale=scale)
