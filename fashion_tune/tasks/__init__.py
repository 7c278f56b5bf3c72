"""GAN tasks: what one kind of GAN owns (models, losses, one step); see ``base.py``.

``build_task`` picks the task from the config: the sketch + fabric family
``fashiongan`` is a paired task, every other family a noise-to-image one.
"""

from __future__ import annotations

from fashion_tune.config import TrialConfig
from fashion_tune.data.reader import ShardSet
from fashion_tune.models import family_kind
from fashion_tune.tasks.base import GanTask, Runtime, select_device
from fashion_tune.tasks.noise import NoiseTask, build_models, label_freq

__all__ = [
    "GanTask",
    "NoiseTask",
    "Runtime",
    "build_models",
    "build_task",
    "label_freq",
    "select_device",
]


def build_task(cfg: TrialConfig, shards: ShardSet, rt: Runtime) -> GanTask:
    """The task that trains ``cfg.model.arch`` on ``shards``."""
    if family_kind(cfg.model.arch) == "paired":
        from fashion_tune.tasks.paired import PairedTask

        return PairedTask(cfg, shards, rt)
    return NoiseTask(cfg, shards, rt)
