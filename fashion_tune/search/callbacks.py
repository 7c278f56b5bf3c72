"""Tune callbacks the search installs: scheduler state, the finished-trial ledger, the journal.

* ``SchedulerStateCallback`` carries the scheduler's records in Ray's saved experiment state
  (Ray restores a scheduler as constructed and saves none of its records), so ``--resume``
  brings back rungs, promotions and which trials wait at a rung. For promotion ASHA it also
  writes them as JSON into the experiment (``fashion_tune_scheduler.json``) for the report,
  whenever Ray saves its state and they changed.
* ``FinishedLedger`` records each finished trial's final result in the experiment folder at
  once (``fashion_tune_finished/``), so ``--resume`` never trains a finished trial again, and
  copies the Optuna journal into an experiment in object storage.
* ``TrialLogKeeper`` puts a trial's logged results into storage before the trial starts
  again (resumed from a rung, or retried after a failure): Ray's loggers then *replace*
  the driver's copy with storage's, which lags by up to one experiment-state write, so
  the rows reported since would be lost.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import pyarrow.fs as pafs
from ray.tune import Callback

from fashion_tune import experiment_layout as layout
from fashion_tune.data.storage import Store
from fashion_tune.search import ray_private
from fashion_tune.search.promotion import PromotionAsha
from fashion_tune.search.searcher import upload_journal
from fashion_tune.search.trainable import ledger_store


class SchedulerStateCallback(Callback):
    """Saves / restores the scheduler's records with Ray's experiment state."""

    def __init__(self, scheduler: Any, experiment: str):
        self.scheduler = scheduler
        self.experiment = experiment
        self._written = -1

    def get_state(self) -> dict | None:
        """Called by Ray as it saves the experiment state: the JSON for the report is
        written here too, so it always shows the snapshot a --resume restores."""
        if isinstance(self.scheduler, PromotionAsha):
            self._write()
            return {"promotion": self.scheduler.get_state()}
        return ray_private.asha_rungs(self.scheduler)

    def set_state(self, state: dict) -> None:
        if isinstance(self.scheduler, PromotionAsha):
            self.scheduler.set_state((state or {}).get("promotion"))
        else:
            ray_private.restore_asha_rungs(self.scheduler, state)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._write(force=True)

    def _write(self, force: bool = False) -> None:
        if not isinstance(self.scheduler, PromotionAsha):
            return
        if self.scheduler.changes == self._written and not force:
            return
        data = json.dumps(self.scheduler.summary(), indent=1).encode()
        Store.open(self.experiment).write_atomic(layout.SCHEDULER_FILE, data)
        self._written = self.scheduler.changes


class FinishedLedger(Callback):
    """Records each finished trial's final result in the experiment folder, immediately.

    An experiment in object storage also gets the driver's Optuna journal copied in, as
    often as that costs <= 5% of the driver's time (the whole file goes up each time: at
    every trial's end that was O(trials) per trial), and at the end. The driver's own copy
    is the one a --resume on the same machine reads."""

    def __init__(self, experiment: str):
        self.experiment = experiment
        self._next_upload = 0.0

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = {k: v for k, v in (trial.last_result or {}).items() if _jsonable(v)}
        store = ledger_store(self.experiment)
        entry = {"trial_id": trial.trial_id, "config": trial.config, "result": result}
        data = json.dumps(entry, default=str).encode()
        store.write_atomic(layout.ledger_entry_name(trial.trial_id), data)
        if time.monotonic() >= self._next_upload:
            self._upload()

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self._upload()

    def _upload(self) -> None:
        t0 = time.monotonic()
        upload_journal(self.experiment)
        took = time.monotonic() - t0
        self._next_upload = t0 + took * (1 - ray_private.STATE_SHARE) / ray_private.STATE_SHARE


def _jsonable(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None


class TrialLogKeeper(Callback):
    """Storage gets a trial's ``result.json`` / ``progress.csv`` before the trial restarts.

    Ray's JSON and CSV loggers (installed after the callbacks given to the Tuner, so they
    run after this one) restore those files from storage whenever a trial that has a
    checkpoint starts, to carry them over a driver restart. Within one driver the staged
    copy is the newer one: a trial paused at a rung and promoted before the next state
    write came back without the rows of its last ticks. Pushing the staged copy first makes
    the restore a no-op; after a driver restart there is no staged copy and storage's is
    restored as before. One trial's logs per (re)start: O(1), not O(trials).
    """

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for name in (layout.RESULT_FILE, layout.PROGRESS_FILE):
            try:
                local, fs, remote = ray_private.trial_log_paths(trial, name)
                if not local.is_file():
                    continue
                info_remote = fs.get_file_info(remote)
                if info_remote.type == pafs.FileType.File and (
                    info_remote.size >= local.stat().st_size
                ):
                    continue
                pafs.copy_files(str(local), remote, destination_filesystem=fs)
            except (OSError, AttributeError) as exc:  # the restore then works as Ray's
                logging.getLogger("fashion_tune.search").warning(
                    "could not save %s of %s before it restarts: %s", name, trial, exc
                )
