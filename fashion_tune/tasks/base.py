"""The GAN task: what one kind of GAN owns, behind one small base.

A task owns its models, optimizers, losses and noise generator, and does one
optimisation step at a time (stylegan3's ``Loss.accumulate_gradients`` plays the
same part there). The training loop (``fashion_tune.training``) owns everything a
task does not: kimg ticks, the EMA of ``G``, checkpoints and exact resume, metric
logging, TensorBoard and the report / should-stop callbacks. A task's whole state
goes into and comes out of one :class:`~fashion_tune.checkpoint.TrainState`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import torch
from PIL import Image
from torch import nn

from fashion_tune.config import TrialConfig
from fashion_tune.errors import ConfigError
from fashion_tune.metrics.inception import InceptionMetric
from fashion_tune.metrics.reference import Reference

Batches = Iterator[Any]  # what the shard reader yields: (images, labels[, sketches, fabrics])


@dataclass(frozen=True)
class Runtime:
    """Where and how the models run (from ``cfg.runtime``)."""

    device: torch.device
    bf16: bool
    mem_format: torch.memory_format
    compile: bool

    @classmethod
    def from_config(cls, cfg: TrialConfig) -> Runtime:
        rt = cfg.runtime
        device = select_device(rt.device)
        on_cuda = device.type == "cuda"
        if on_cuda and rt.gpu_mem_frac:
            torch.cuda.set_per_process_memory_fraction(rt.gpu_mem_frac, device)
        bf16 = rt.amp == "bf16" or (rt.amp == "auto" and on_cuda)
        last = rt.channels_last == "on" or (rt.channels_last == "auto" and on_cuda)
        fmt = torch.channels_last if last else torch.contiguous_format
        return cls(device, bf16, fmt, rt.compile)

    def autocast(self) -> AbstractContextManager[Any]:
        if self.bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return nullcontext()

    def place(self, net: nn.Module) -> nn.Module:
        return net.to(self.device).to(memory_format=self.mem_format)

    def compiled(self, net: nn.Module) -> Callable[..., Any]:
        """The callable a step runs (compiled when asked; weights stay in ``net``)."""
        return torch.compile(net) if self.compile else net


def select_device(want: str) -> torch.device:
    if want == "cuda" or (want == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("runtime.device is 'cuda' but no CUDA device is visible")
        return torch.device("cuda")
    return torch.device("cpu")


class GanTask(ABC):
    """One kind of GAN: models, losses and one optimisation step.

    Subclasses set ``G`` (trained generator), ``G_ema`` (its EMA, updated by the loop),
    ``noise_gen`` and ``model_meta`` and list what is saved in :meth:`nets` /
    :meth:`optimizers`.
    """

    name: str  # recorded in checkpoints
    loss_names: tuple[str, ...]  # the per-step values :meth:`step` returns -> "loss/<name>"
    G: nn.Module
    G_ema: nn.Module
    noise_gen: torch.Generator
    model_meta: dict[str, Any]

    @abstractmethod
    def nets(self) -> dict[str, nn.Module]:
        """Networks whose weights a checkpoint carries, by checkpoint key."""

    @abstractmethod
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Optimizers whose states a checkpoint carries, by checkpoint key."""

    @abstractmethod
    def step(self, batches: Batches) -> tuple[int, torch.Tensor]:
        """One optimisation step (all D and G phases); returns (real images shown to D,
        the losses named by ``loss_names`` as one detached tensor)."""

    @abstractmethod
    def setup_eval(self, ref: Reference, inception: InceptionMetric | None) -> None:
        """Prepare the fixed-count evaluation against the shard set's metric reference."""

    @abstractmethod
    def evaluate(self) -> dict[str, Any]:
        """This tick's scores of ``G_ema`` (including ``metric_ref``)."""

    @property
    @abstractmethod
    def ruler(self) -> str:
        """The metric reference hash the scores are measured with."""

    @abstractmethod
    def sample_grid(self) -> Image.Image:
        """A grid of ``G_ema``'s outputs on fixed inputs (compares over time)."""

    # -- state: weights, optimizers and the noise generator --------------------------------
    def state(self) -> tuple[dict[str, Any], dict[str, Any], torch.Tensor]:
        nets = {k: net.state_dict() for k, net in self.nets().items()}
        opts = {k: o.state_dict() for k, o in self.optimizers().items()}
        return nets, opts, self.noise_gen.get_state()

    def load_state(
        self,
        nets: dict[str, Any],
        opts: dict[str, Any],
        rng_noise: torch.Tensor,
        load_weights: Callable[[nn.Module, Any, str], None],
    ) -> None:
        for key, net in self.nets().items():
            load_weights(net, nets[key], key)
        for key, o in self.optimizers().items():
            o.load_state_dict(opts[key])
        on_cuda = self.noise_gen.device.type == "cuda"
        self.noise_gen.set_state(rng_noise if on_cuda else rng_noise.cpu())
