"""Training cost in FLOPs: the unit of ASHA's compute budget (``scheduler.budget: compute``).

A config's cost is counted once, analytically, with ``torch.utils.flop_counter`` over one
optimisation step (every D and G phase, the symmetry loss's extra passes included) of a
freshly built task on the CPU in float32: the count depends on the architecture, the
widths, the batch and the losses, not on the device, the precision or the weights, so the
count from a throw-away task stands for the trained one. Matrix products and convolutions
are counted (forward, backward, and the double backward of gradient penalties);
element-wise work (activations, norms, the optimizer) is not, as in the FLOP counts
papers quote.

``compute`` in a trial's results is its training FLOPs so far divided by the FLOPs of one
kimg of the search's *reference* config (its first point, the literature default, or the
fixed settings alone when it has no points): "reference kimg". A config that costs 7x the
reference per image reaches each compute rung after 1/7 of the kimg.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from fashion_tune.config import TrialConfig
from fashion_tune.errors import FashionTuneError

FLOPS_FILE = "flops.json"  # the count, cached in a trial's folder (resumes do not recount)


def flops_per_image(cfg: TrialConfig, shards: Any | None = None) -> float:
    """Training FLOPs per real image shown to D, for ``cfg`` on its shard set."""
    from fashion_tune.data.reader import ShardBatches, ShardSet
    from fashion_tune.models.registry import family_kind
    from fashion_tune.tasks import build_task
    from fashion_tune.tasks.base import Runtime

    shards = shards if shards is not None else ShardSet(cfg.data.path)
    rt = Runtime(torch.device("cpu"), False, torch.contiguous_format, False)
    rng = torch.get_rng_state()  # a throw-away task must not move the trial's random stream
    try:
        task = build_task(cfg, shards, rt)
        paired = family_kind(cfg.model.arch) == "paired"
        stream = ShardBatches(
            shards,
            split=cfg.data.split,
            batch_size=cfg.data.batch_size,
            seed=cfg.runtime.seed,
            pairs=paired,
        )
        counter = _global_flop_counter()
        with counter:
            shown, _ = task.step(iter(stream))
    finally:
        torch.set_rng_state(rng)
    flops = float(counter.get_total_flops())
    if not (math.isfinite(flops) and flops > 0 and shown > 0):
        raise FashionTuneError(f"could not count the training FLOPs of {cfg.model.arch}")
    return flops / shown


class _NoModuleTracking:
    """Stands in for FlopCounterMode's ModuleTracker: every count goes to "Global"."""

    parents: ClassVar[frozenset[str]] = frozenset({"Global"})

    def __enter__(self) -> _NoModuleTracking:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def _global_flop_counter_class() -> type:
    from torch.utils.flop_counter import FlopCounterMode

    class GlobalFlopCounter(FlopCounterMode):
        """FlopCounterMode without per-module attribution. Its ModuleTracker hooks every
        module's backward, which ``torch.autograd.grad`` (the gradient penalties' input
        gradients) refuses; the totals need no attribution."""

        def __enter__(self) -> GlobalFlopCounter:
            self.mod_tracker = _NoModuleTracking()  # type: ignore[assignment]
            return super().__enter__()

    return GlobalFlopCounter


def _global_flop_counter() -> Any:
    return _global_flop_counter_class()(display=False)


def gflop_per_kimg(cfg: TrialConfig, shards: Any | None = None) -> float:
    return flops_per_image(cfg, shards) * 1000 / 1e9
