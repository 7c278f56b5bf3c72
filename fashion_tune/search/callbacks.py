"""Tune callbacks the search installs: scheduler state, the finished-trial ledger, the journal.

* ``SchedulerStateCallback`` carries the scheduler's records in Ray's saved experiment state
  (Ray restores a scheduler as constructed and saves none of its records), so ``--resume``
  brings back rungs, promotions and which trials wait at a rung. For promotion ASHA it also
  writes them as JSON into the experiment (``fashion_tune_scheduler.json``) for the report.
* ``FinishedLedger`` records each finished trial's final result in the experiment folder at
  once (``fashion_tune_finished/``), so ``--resume`` never trains a finished trial again, and
  copies the Optuna journal into an experiment in object storage.
"""

from __future__ import annotations

import json
from typing import Any

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
        if isinstance(self.scheduler, PromotionAsha):
            return {"promotion": self.scheduler.get_state()}
        return ray_private.asha_rungs(self.scheduler)

    def set_state(self, state: dict) -> None:
        if isinstance(self.scheduler, PromotionAsha):
            self.scheduler.set_state((state or {}).get("promotion"))
        else:
            ray_private.restore_asha_rungs(self.scheduler, state)

    def on_step_end(self, iteration: int, trials: list, **info: Any) -> None:
        self._write()

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
    """Records each finished trial's final result in the experiment folder, immediately."""

    def __init__(self, experiment: str):
        self.experiment = experiment

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        result = {k: v for k, v in (trial.last_result or {}).items() if _jsonable(v)}
        store = ledger_store(self.experiment)
        entry = {"trial_id": trial.trial_id, "config": trial.config, "result": result}
        data = json.dumps(entry, default=str).encode()
        store.write_atomic(layout.ledger_entry_name(trial.trial_id), data)
        upload_journal(self.experiment)

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        upload_journal(self.experiment)


def _jsonable(v: Any) -> bool:
    return isinstance(v, (int, float, str, bool)) or v is None
