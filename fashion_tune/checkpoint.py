"""Checkpoints: a folder holding ``checkpoint.pt`` (weights-only loadable) and ``config.json``.

A checkpoint alone rebuilds its models: it carries the full trial config. It
also carries everything resuming needs to continue exactly where it stopped:
optimizer states, the EMA generator, kimg, the data position and RNG states.
Written atomically (a temp folder swapped into place by
:func:`fashion_tune.atomic.atomic_dir`); loaded with ``torch.load(weights_only=True)``
so a checkpoint from a shared bucket cannot run code.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from fashion_tune.atomic import atomic_dir
from fashion_tune.config import TrialConfig
from fashion_tune.errors import ConfigError, FashionTuneError

FORMAT_VERSION = 1
STATE_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"
# what any reader needs: the generator weights and the facts that rebuild it
REQUIRED_KEYS = ("G", "model_meta")


class CheckpointError(FashionTuneError):
    """A checkpoint is missing, corrupt, or from an incompatible version."""


# a resumable checkpoint's weights and optimizer states when it names none (format 1 as
# written before tasks existed: the noise-to-image GAN)
DEFAULT_NETS = ("G", "D", "G_ema")
DEFAULT_OPTIMIZERS = ("opt_g", "opt_d")


@dataclass
class TrainState:
    """Everything a trial needs to continue exactly where it stopped, typed.

    The task (``fashion_tune.tasks``) fills ``nets`` / ``optimizers`` / ``rng_noise``;
    the training loop fills the progress fields. Saved as flat keys (``G``, ``opt_d``,
    ``nimg``, ...) so readers that only sample (``state["G_ema"]``) need no task.
    """

    nets: dict[str, dict[str, torch.Tensor]]  # weights by name: "G", "D", "G_ema", ...
    optimizers: dict[str, dict[str, Any]]  # optimizer states by name: "opt_g", ...
    rng_noise: torch.Tensor  # the task's noise generator (latents, flips, crops)
    rng_torch: torch.Tensor  # torch's global CPU generator
    nimg: int  # real images shown to D so far
    tick: int
    epoch: int  # data position: epoch and batch within it
    batch: int
    model_meta: dict[str, Any]  # what rebuilds G without a shard set (size, channels, ...)
    task: str = "noise"  # which task wrote it (fashion_tune.tasks)
    metrics: dict[str, Any] = field(default_factory=dict)  # the last tick's report
    history: list[dict[str, Any]] = field(default_factory=list)  # every tick's report

    def to_payload(self) -> dict[str, Any]:
        return {
            **self.nets,
            **self.optimizers,
            "task": self.task,
            "task_nets": list(self.nets),
            "task_optimizers": list(self.optimizers),
            "rng_noise": self.rng_noise,
            "rng_torch": self.rng_torch,
            "nimg": self.nimg,
            "tick": self.tick,
            "epoch": self.epoch,
            "batch": self.batch,
            "model_meta": self.model_meta,
            "metrics": json.dumps(self.metrics),
            "history": json.dumps(self.history),
        }

    @classmethod
    def from_payload(cls, state: dict[str, Any], where: Path) -> TrainState:
        """The state of a loaded checkpoint; one line when it cannot be resumed."""
        nets = list(state.get("task_nets", DEFAULT_NETS))
        opts = list(state.get("task_optimizers", DEFAULT_OPTIMIZERS))
        need = [*nets, *opts, "rng_noise", "rng_torch", "nimg", "tick", "epoch", "batch"]
        missing = [k for k in need if k not in state]
        if missing:
            raise CheckpointError(
                f"{where} cannot be resumed: it lacks {', '.join(missing)} "
                "(an exported checkpoint holds only what sampling needs)"
            )
        return cls(
            nets={k: state[k] for k in nets},
            optimizers={k: state[k] for k in opts},
            rng_noise=state["rng_noise"],
            rng_torch=state["rng_torch"],
            nimg=int(state["nimg"]),
            tick=int(state["tick"]),
            epoch=int(state["epoch"]),
            batch=int(state["batch"]),
            model_meta=state["model_meta"],
            task=str(state.get("task", "noise")),
            metrics=json.loads(state.get("metrics", "{}")),
            history=json.loads(state.get("history", "[]")),
        )


def save_train_state(path: Path, ts: TrainState, cfg: TrialConfig) -> Path:
    """Write a resumable checkpoint folder."""
    return save(path, ts.to_payload(), cfg)


def load_train_state(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[TrainState, TrialConfig]:
    """A resumable checkpoint's state and config; one line when it is not resumable."""
    state, cfg = load(path, map_location=map_location)
    return TrainState.from_payload(state, resolve(path)), cfg


def save(path: Path, state: dict[str, Any], cfg: TrialConfig) -> Path:
    """Write ``state`` (tensors, state dicts, numbers) and the config to folder ``path``."""
    path = Path(path)
    with atomic_dir(path) as tmp:
        payload = {"format_version": FORMAT_VERSION, "config": cfg.to_json(), **state}
        torch.save(payload, tmp / STATE_FILE)
        (tmp / CONFIG_FILE).write_text(cfg.to_json())
    return path


def _newest_tick(folder: Path) -> Path | None:
    """The newest finished ``tick-NNNNN`` checkpoint in a checkpoints folder: used when
    there is no ``latest`` link (a run from before the link was kept up each tick, or a
    folder copied without its links)."""
    if not folder.is_dir():
        return None
    ticks = sorted(p for p in folder.glob("tick-*") if (p / STATE_FILE).is_file())
    return ticks[-1] if ticks else None


def resolve(path: str | os.PathLike[str]) -> Path:
    """Accept a checkpoint folder, its checkpoint.pt, or a run / export folder holding one."""
    p = Path(path).expanduser()
    if p.is_file() and p.name == STATE_FILE:
        return p.parent
    if (p / STATE_FILE).is_file():
        return p
    for cand in (p / "checkpoint", p / "checkpoints" / "latest"):
        if (cand / STATE_FILE).is_file():
            return cand
    for folder in (p / "checkpoints", p):
        newest = _newest_tick(folder)
        if newest is not None:
            return newest
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    if p.is_file():
        raise CheckpointError(
            f"{p} is not a fashion-tune checkpoint: give its folder or the {STATE_FILE} in it"
        )
    raise CheckpointError(f"{p} holds no {STATE_FILE}: not a fashion-tune checkpoint")


def _load_error(exc: Exception) -> str:
    """One line saying why torch could not load a file, without torch's advice to retry
    unsafely (``weights_only=False`` would let a checkpoint from a shared bucket run code)."""
    text = str(exc)
    unsafe = re.search(
        r"WeightsUnpickler error: ([^\n]*?)(?: was not an allowed|\.? Please|$)", text
    )
    if unsafe or "weights_only" in text or isinstance(exc, pickle.UnpicklingError):
        why = unsafe.group(1).strip() if unsafe else type(exc).__name__
        return (
            f"it holds Python objects that a safe (weights-only) load refuses ({why}); "
            "fashion-tune checkpoints hold only tensors and numbers"
        )
    first = next((ln.strip() for ln in text.splitlines() if ln.strip()), type(exc).__name__)
    return f"the file is corrupt or not a torch checkpoint ({first})"


def load(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], TrialConfig]:
    """A checkpoint's state and its config; every way it can be unusable is one clear line."""
    folder = resolve(path)
    file = folder / STATE_FILE
    try:
        with warnings.catch_warnings():  # a foreign pickle's protocol: the error says enough
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            state = torch.load(file, map_location=map_location, weights_only=True)
    except (PermissionError, FileNotFoundError, IsADirectoryError) as exc:
        raise CheckpointError(f"cannot read {file}: {exc.strerror or exc}") from None
    except Exception as exc:  # truncated zip, pickle of a forbidden type, ...
        raise CheckpointError(f"cannot load {file}: {_load_error(exc)}") from None
    if not isinstance(state, dict):
        raise CheckpointError(
            f"{file} holds a {type(state).__name__}, not a fashion-tune checkpoint "
            "(a dict with weights and config)"
        )
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{folder} has checkpoint format {version}; this fashion-tune reads {FORMAT_VERSION}"
        )
    raw = state.get("config")
    if not isinstance(raw, str):
        raise CheckpointError(f"{file} has no config: it cannot rebuild its models")
    try:
        d = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file} has a config that is not JSON ({exc.msg})") from None
    if isinstance(d, dict) and isinstance(d.get("model"), dict):
        d["model"].setdefault("fabric_map", False)  # fashiongan before the tiled fabric
    try:
        cfg = TrialConfig.from_dict(d)
    except ConfigError as exc:
        raise CheckpointError(f"{file} has an invalid config: {exc}") from None
    missing = [k for k in REQUIRED_KEYS if k not in state]
    if missing:
        raise CheckpointError(f"{file} lacks {', '.join(missing)}: not a complete checkpoint")
    return state, cfg
