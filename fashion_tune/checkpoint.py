"""Checkpoints: a folder holding ``checkpoint.pt`` (weights-only loadable) and ``config.json``.

A checkpoint alone rebuilds its models: it carries the full trial config. It
also carries everything resuming needs to continue exactly where it stopped:
optimizer states, the EMA generator, kimg, the data position and RNG states.
Written atomically (a temp folder renamed into place); loaded with
``torch.load(weights_only=True)`` so a checkpoint from a shared bucket cannot
run code.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import torch

from fashion_tune.config import TrialConfig
from fashion_tune.errors import FashionTuneError

FORMAT_VERSION = 1
STATE_FILE = "checkpoint.pt"
CONFIG_FILE = "config.json"


class CheckpointError(FashionTuneError):
    """A checkpoint is missing, corrupt, or from an incompatible version."""


def save(path: Path, state: dict[str, Any], cfg: TrialConfig) -> Path:
    """Write ``state`` (tensors, state dicts, numbers) and the config to folder ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        payload = {"format_version": FORMAT_VERSION, "config": cfg.to_json(), **state}
        torch.save(payload, tmp / STATE_FILE)
        (tmp / CONFIG_FILE).write_text(cfg.to_json())
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


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
    if not p.exists():
        raise CheckpointError(f"checkpoint {p} does not exist")
    raise CheckpointError(f"{p} holds no {STATE_FILE}: not a fashion-tune checkpoint")


def load(
    path: str | os.PathLike[str], map_location: str | torch.device = "cpu"
) -> tuple[dict[str, Any], TrialConfig]:
    folder = resolve(path)
    try:
        state = torch.load(folder / STATE_FILE, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated zip, pickle of a forbidden type, ...
        raise CheckpointError(
            f"cannot load {folder / STATE_FILE}: {type(exc).__name__}: {exc}"
        ) from None
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{folder} has checkpoint format {version}; this fashion-tune reads {FORMAT_VERSION}"
        )
    cfg = TrialConfig.from_dict(json.loads(state["config"]))
    return state, cfg
