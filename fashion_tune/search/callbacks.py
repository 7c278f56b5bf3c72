"""Tune callbacks the search installs: scheduler state, the finished-trial ledger, the journal.

* ``SchedulerStateCallback`` carries the scheduler's records in Ray's saved experiment state
  (Ray restores a scheduler as constructed and saves none of its records), so ``--resume``
  brings back rungs, promotions and which trials wait at a rung. For promotion ASHA it also
  writes them as JSON into the experiment (``fashion_tune_scheduler.json``) for the report,
  whenever Ray saves its state and they changed.
* ``FinishedLedger`` records each finished trial's final result in the experiment folder at
  once (``fashion_tune_finished/``), so ``--resume`` never trains a finished trial again, and
  copies the Optuna journal into an experiment in object storage.
* ``TrialLogKeeper`` lines a trial's logged results in storage up with the checkpoint it
  starts again from (resumed from a rung, retried after a failure, or after a driver
  restart): Ray's loggers then *replace* the driver's copy with storage's, which can lag
  by one experiment-state write (rows lost) or, after a driver restart, run ahead of the
  checkpoint Ray resumes from (rows recorded twice).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs
from ray.tune import Callback

from fashion_tune import experiment_layout as layout
from fashion_tune.atomic import atomic_path
from fashion_tune.data.storage import Store
from fashion_tune.search import ray_private
from fashion_tune.search.promotion import PromotionAsha
from fashion_tune.search.searcher import upload_journal
from fashion_tune.search.trainable import ledger_entry, ledger_store


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
    """A (re)starting trial's ``result.json`` / ``progress.csv`` in storage hold exactly the
    rows up to the checkpoint it resumes from.

    Ray's JSON and CSV loggers (installed after the callbacks given to the Tuner, so they
    run after this one) restore those files from storage whenever a trial that has a
    checkpoint starts, to carry them over a driver restart. Two ways that goes wrong with
    state written less often than every step:

    * within one driver the staged copy is the newer one: a trial paused at a rung and
      promoted before the next state write came back without the rows of its last ticks.
      The staged copy is pushed first, so the restore is a no-op;
    * after a driver restart the trial resumes from the checkpoint of Ray's last saved
      state, which can be older than storage's logs (pushed at a later restart, or synced
      after it): the ticks since would be recorded twice. Rows past that checkpoint's tick
      are cut (a trial without a checkpoint starts over: all of them); a trial the ledger
      already has finished replays its result and keeps its rows.

    One trial's logs per (re)start: O(ticks), not O(trials).
    """

    def __init__(self, experiment: str):
        self.experiment = experiment

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        try:
            self._push(trial)
            if ledger_entry(self.experiment, trial.trial_id) is None:
                self._cut(trial, ray_private.checkpoint_tick(trial))
        except (OSError, AttributeError, ValueError) as exc:  # the restore then works as Ray's
            logging.getLogger("fashion_tune.search").warning(
                "could not line up the logs of %s before it restarts: %s", trial, exc
            )

    def _push(self, trial: Any) -> None:
        for name in (layout.RESULT_FILE, layout.PROGRESS_FILE):
            local, fs, remote = ray_private.trial_log_paths(trial, name)
            if not local.is_file():
                continue
            info_remote = fs.get_file_info(remote)
            if info_remote.type == pafs.FileType.File and (
                info_remote.size >= local.stat().st_size
            ):
                continue
            pafs.copy_files(str(local), remote, destination_filesystem=fs)

    def _cut(self, trial: Any, tick: int) -> None:
        local, fs, remote = ray_private.trial_log_paths(trial, layout.RESULT_FILE)
        data = _read(fs, remote)
        if data is None:
            return
        lines = data.splitlines(keepends=True)
        keep = next((i for i, line in enumerate(lines) if not _at_most(line, tick)), len(lines))
        if keep == len(lines):
            return
        _write_both(fs, remote, local, b"".join(lines[:keep]))
        local, fs, remote = ray_private.trial_log_paths(trial, layout.PROGRESS_FILE)
        data = _read(fs, remote)
        if data is not None:  # one CSV record per result row, after the header
            records = list(csv.reader(io.StringIO(data.decode())))
            out = io.StringIO()
            csv.writer(out).writerows(records[: keep + 1] if keep else [])
            _write_both(fs, remote, local, out.getvalue().encode())


def _at_most(line: bytes, tick: int) -> bool:
    """Is this result row of a tick <= ``tick``? (a row cut short by a kill: no)"""
    try:
        return int(json.loads(line).get("tick", 0)) <= tick
    except (ValueError, TypeError, AttributeError):
        return False


def _read(fs: Any, path: str) -> bytes | None:
    if fs.get_file_info(path).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(path) as f:
        return f.read()


def _write_both(fs: Any, remote: str, local: Path, data: bytes) -> None:
    """Storage's copy by write-then-move (a kill leaves the old one whole), and the
    driver's staged copy when there is one (Ray's loggers append to it)."""
    tmp = f"{remote}.tmp-{os.getpid()}"
    with fs.open_output_stream(tmp) as f:
        f.write(data)
    fs.move(tmp, remote)
    if local.is_file():
        with atomic_path(local) as t:
            Path(t).write_bytes(data)
