"""Exporting a trial's best checkpoint: a folder ``fashion-tune sample`` loads on its own."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from fashion_tune import experiment_layout as layout
from fashion_tune.atomic import atomic_dir
from fashion_tune.report.collect import CheckpointInfo, Experiment, TrialRecord, sub_store

STATE_FILE = layout.CHECKPOINT_STATE_FILE


def safe_name(text: str) -> str:
    """A file-name-safe version of a user-controlled name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "trial"


def export_checkpoint(
    exp: Experiment,
    trial: TrialRecord,
    ckpt: CheckpointInfo,
    dest: Path,
    extra: dict[str, Any],
) -> Path:
    """Copy ``ckpt`` (checkpoint.pt + config.json) to ``dest`` with a ``trial.json`` beside.

    Raises FashionTuneError (from the checkpoint module) if it holds no checkpoint.pt.
    """
    from fashion_tune.checkpoint import CheckpointError

    src = sub_store(exp.trial_store(trial), ckpt.name)
    if not src.exists(STATE_FILE):
        raise CheckpointError(f"{src.describe(STATE_FILE)} is missing")
    info = {
        "experiment": exp.location,
        "trial_id": trial.trial_id,
        "trial_folder": trial.folder,
        "checkpoint": ckpt.name,
        "params": trial.params,
        "metrics": ckpt.metrics,
        **extra,
    }
    with atomic_dir(dest) as tmp:  # the export appears whole or not at all
        for name in (STATE_FILE, layout.TRIAL_CONFIG_FILE):
            if src.exists(name):
                src.download(name, tmp / name)
        if not (tmp / layout.TRIAL_CONFIG_FILE).exists() and trial.config:
            (tmp / layout.TRIAL_CONFIG_FILE).write_text(json.dumps(trial.config, indent=1))
        (tmp / "trial.json").write_text(json.dumps(info, indent=1, default=str))
    return dest
