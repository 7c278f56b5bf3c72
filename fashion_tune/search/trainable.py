"""The Ray Tune function trainable: a thin adapter from ``train()``'s callbacks to ``tune.*``.

Only ``ray.tune`` APIs are used (``tune.report``, ``tune.get_checkpoint``,
``tune.Checkpoint``, ``tune.get_context``): Ray Train's own reporting functions fail
inside Tune trials on Ray 2.60.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import tempfile
from pathlib import Path
from typing import Any

from fashion_tune import experiment_layout as layout
from fashion_tune.config import TrialConfig
from fashion_tune.data.storage import Store
from fashion_tune.search import ray_private
from fashion_tune.training import train

logger = logging.getLogger("fashion_tune.trial")
LEDGER_DIR = layout.LEDGER_DIR  # one JSON file per finished trial, in the experiment folder
CONFIRM_KEY_PREFIX = "confirm."  # Tune config keys of a seed-confirmation trial's plan
PLAN_KEY_PREFIXES = (CONFIRM_KEY_PREFIX, "ablate.")  # ...and of an ablation trial's
# result keys Tune fills in itself (a replayed result must not carry stale copies)
RAY_AUTO_KEYS = frozenset(
    [
        "done",
        "training_iteration",
        "trial_id",
        "date",
        "timestamp",
        "time_this_iter_s",
        "time_total_s",
        "pid",
        "hostname",
        "node_ip",
        "config",
        "time_since_restore",
        "iterations_since_restore",
        "checkpoint_dir_name",
        "should_checkpoint",
        "experiment_tag",
    ]
)


def ledger_store(experiment: str) -> Store:
    """The experiment's ledger folder: one JSON file per finished trial."""
    return Store.open(f"{experiment.rstrip('/')}/{LEDGER_DIR}")


def ledger_entry(experiment: str, trial_id: str) -> dict[str, Any] | None:
    """The recorded final result of a trial, if the ledger says it already finished."""
    store = ledger_store(experiment)
    name = layout.ledger_entry_name(trial_id)
    if not store.exists(name):
        return None
    return json.loads(store.read_bytes(name))


class _VanishedTempFile(logging.Filter):
    """Drop Ray's "Last sync command failed" warning (trial folders) and its "Saving
    experiment state to storage ... failed" error (driver artifacts) when the cause is a
    temp file of an atomic write (ours or Ray's own) renamed into place while Ray's
    background sync to remote storage (s3://, gs://) listed it: the renamed file goes up
    with the next sync (state is saved every step) or the forced one at the end. Anything
    else still shows."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            exc = record.exc_info[1]
            text += f" {type(exc).__name__}: {exc}"
        ours = "Last sync" in text or "Saving experiment state" in text
        return not (ours and "FileNotFoundError" in text and "tmp-" in text)


_SYNC_FILTER = _VanishedTempFile()


def quiet_vanished_temp_files() -> None:
    """Install the filter in this process (the driver syncs the trial folders on its own
    node with the experiment, each worker its own); idempotent."""
    for name in ("ray.train._internal.syncer", "ray.tune.execution.experiment_state"):
        logging.getLogger(name).addFilter(_SYNC_FILTER)


def run_trial(
    params: dict[str, Any],
    fixed: dict[str, Any],
    experiment: str,
    compute_ref: dict[str, Any] | None = None,
) -> None:
    """One search trial: fixed settings + the searcher's ``params`` -> ``train()``.

    With ``compute_ref`` (the GFLOPs of one kimg of the search's reference config) every
    report also carries ``compute``: the trial's training FLOPs in reference kimg, the unit
    of ASHA's compute budget."""
    import torch
    from ray import tune

    quiet_vanished_temp_files()
    ctx = tune.get_context()
    done = ledger_entry(experiment, ctx.get_trial_id())
    if done is not None:
        # finished before the driver died, after Ray's last state write: replay, don't re-run
        ours = {k: v for k, v in done["result"].items() if k not in RAY_AUTO_KEYS}
        tune.report({**ours, "replayed": 1})
        return
    # a nested trial's plan keys (search/confirm.py, search/ablate.py) are labels, not config
    params = {k: v for k, v in params.items() if not k.startswith(PLAN_KEY_PREFIXES)}
    cfg = TrialConfig().with_overrides({**fixed, **params})
    resources = ctx.get_trial_resources().required_resources
    if cfg.runtime.threads == 0:
        torch.set_num_threads(max(1, int(resources.get("CPU", 1))))
    gpus = float(resources.get("GPU", 0))
    if 0 < gpus < 1 and cfg.runtime.gpu_mem_frac == 0:
        # Ray's fractional GPUs are bookkeeping only: hold each trial to its share
        cfg = cfg.with_overrides({"runtime.gpu_mem_frac": round(gpus * 0.95, 4)})
    run_dir = ray_private.trial_working_dir()  # synced to storage from any node
    scratch = Path(tempfile.mkdtemp(prefix="fashion-tune-ckpt-"))
    resume = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        resume = checkpoint.to_directory(str(scratch / "restored"))

    # the node each tick ran on (train() reports where it resumed): a moved trial shows it
    import ray

    where = {"node_id": ray.get_runtime_context().get_node_id()}
    ref_gflop = float((compute_ref or {}).get("gflop_per_kimg") or 0.0)

    def report(metrics: dict[str, Any], path: Path | None) -> None:
        clean = {
            k: (v if not (isinstance(v, float) and math.isinf(v)) else float("nan"))
            for k, v in metrics.items()
        }
        clean.update(where)
        if ref_gflop and isinstance(clean.get("gflop"), (int, float)):
            clean["compute"] = clean["gflop"] / ref_gflop
        if path is None:
            tune.report(clean)
        else:
            tune.report(clean, checkpoint=tune.Checkpoint.from_directory(str(path)))

    try:
        train(
            cfg,
            run_dir,
            report=report,
            resume=resume,
            log=logger.info,
            checkpoint_root=scratch / "ticks",
            keep_checkpoints=1,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
