"""Optuna as the search's searcher: told the truth about every trial, kept in a journal file.

Ray's ``OptunaSearch`` tells Optuna that every ended trial is COMPLETE with its last value.
``PrunedAwareOptunaSearch`` tells it:

* PRUNED, with the trial's rung value as its last intermediate value, for a trial that
  ended paused at a rung (promotion ASHA) or was stopped early (Ray's stopping ASHA);
* FAIL for a diverged trial (NaN objective);
* COMPLETE, with its smoothed final value, for a trial that reached its full budget.

Intermediate values are the same smoothed statistic the scheduler ranks rungs by (the
mean of the last ``smooth`` evaluations), so TPE and ASHA see one number per tick.

The study lives in an Optuna journal file in the experiment folder (``optuna.journal``,
JournalStorage): ``optuna-dashboard results/NAME/optuna.journal`` and ``optuna.load_study``
open it during and after the search, and the report reads trial states from it. For an
experiment in object storage the journal is written on this machine (file locks need a
local file system) and copied into the experiment as trials end.
"""

from __future__ import annotations

import hashlib
import logging
import math
from pathlib import Path
from typing import Any

from ray.tune.search.optuna import OptunaSearch

from fashion_tune import experiment_layout as layout
from fashion_tune.data.storage import Store, is_uri
from fashion_tune.search import ray_private
from fashion_tune.search.promotion import smoothed

logger = logging.getLogger("fashion_tune.search")
JOURNAL_FILE = layout.JOURNAL_FILE
RAY_TRIAL_ATTR = "ray_trial_id"  # user attribute linking an Optuna trial to its Tune trial


def journal_path(experiment: str) -> Path:
    """Where this machine writes the experiment's journal (the folder itself when local)."""
    if not is_uri(experiment):
        return Path(experiment) / JOURNAL_FILE
    digest = hashlib.sha256(experiment.encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "fashion-tune" / "journals" / digest / JOURNAL_FILE


def journal_storage(experiment: str) -> Any:
    """Optuna's JournalStorage on the experiment's journal file (fetched first when the
    experiment is in object storage and this machine has no copy)."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path = journal_path(experiment)
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_uri(experiment) and not path.exists():
        store = Store.open(experiment)
        if store.exists(JOURNAL_FILE):
            path.write_bytes(store.read_bytes(JOURNAL_FILE))
    return JournalStorage(JournalFileBackend(str(path)))


def upload_journal(experiment: str) -> None:
    """Copy this machine's journal into an experiment in object storage (no-op if local)."""
    if not is_uri(experiment):
        return
    path = journal_path(experiment)
    if path.exists():
        Store.open(experiment).write_atomic(JOURNAL_FILE, path.read_bytes())


def load_study(experiment_dir: str | Path, study_name: str) -> Any | None:
    """The experiment's Optuna study, read-only use (None when there is no journal)."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

    path = Path(experiment_dir) / JOURNAL_FILE
    if not path.is_file():
        return None
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    backend = JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
    try:
        return optuna.load_study(study_name=study_name, storage=JournalStorage(backend))
    except KeyError:  # no study of that name
        return None


class PrunedAwareOptunaSearch(OptunaSearch):
    """OptunaSearch that tells Optuna the truth about early-stopped and diverged trials."""

    def __init__(self, *args: Any, max_kimg: float, smooth: int = 1, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._max_kimg = max_kimg
        self._smooth = max(1, int(smooth))
        self._recent: dict[str, list[float]] = {}

    def suggest(self, trial_id: str) -> dict | None:
        suggestion = super().suggest(trial_id)
        ot_trials = ray_private.optuna_trials(self)
        if isinstance(suggestion, dict) and trial_id in ot_trials:
            ot_trials[trial_id].set_user_attr(RAY_TRIAL_ATTR, trial_id)
        return suggestion

    def _smoothed(self, trial_id: str, result: dict) -> float | None:
        value = result.get(ray_private.searcher_metric(self))
        if not isinstance(value, (int, float)) or not math.isfinite(value):
            return None
        recent = self._recent.setdefault(trial_id, [])
        recent.append(float(value))
        del recent[: -self._smooth]
        return smoothed(recent, self._smooth)

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in ray_private.completed_trials(self):
            return
        value = self._smoothed(trial_id, result)
        step = int(result.get("training_iteration", 0))
        ot_trial = ray_private.optuna_trial(self, trial_id)
        frozen = ray_private.frozen_trial(ot_trial)
        if frozen.state.is_finished():
            # told before a driver restart (the journal has it) while Ray's older saved
            # state had the trial still running: it trains on, Optuna's record stands
            return
        if value is not None and step not in frozen.intermediate_values:
            ot_trial.report(value, step)

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        import optuna

        done = ray_private.completed_trials(self)
        if trial_id in done or trial_id not in ray_private.optuna_trials(self):
            return
        ot_trial = ray_private.optuna_trial(self, trial_id)
        study = ray_private.optuna_study(self)
        done.add(trial_id)
        self._recent.pop(trial_id, None)
        frozen = ray_private.frozen_trial(ot_trial)
        if frozen.state.is_finished():  # told before a driver restart (the journal has it)
            return
        states = optuna.trial.TrialState
        if error:
            study.tell(ot_trial, None, state=states.FAIL)
            return
        if result is None:  # ended paused at a rung: its rung value is its last report
            study.tell(ot_trial, None, state=states.PRUNED)
            return
        steps = frozen.intermediate_values
        last = steps[max(steps)] if steps else None
        value = result.get(ray_private.searcher_metric(self))
        if result.get("diverged") or value is None or not math.isfinite(value):
            study.tell(ot_trial, None, state=states.FAIL)
        elif not _at_full_budget(result, self._max_kimg):
            # stopped early (Ray's ASHA): record its value at its rung, then PRUNED
            step = int(result.get("training_iteration", 0))
            if step not in steps:
                ot_trial.report(value, step)
            study.tell(ot_trial, None, state=states.PRUNED)
        else:
            study.tell(ot_trial, last if last is not None else value, state=states.COMPLETE)

    def restore(self, checkpoint_path: str) -> None:
        """Restore; Optuna trials the journal shows started after the saved state (the
        driver died between the two) are marked FAIL: Ray will never report to them."""
        import optuna

        super().restore(checkpoint_path)
        study = ray_private.optuna_study(self)
        ours = ray_private.optuna_trials(self).values()
        known = {ray_private.storage_trial_id(t) for t in ours}
        for frozen in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
            if ray_private.storage_trial_id(frozen) not in known:
                study.tell(frozen.number, None, state=optuna.trial.TrialState.FAIL)

    @property
    def study(self) -> Any:
        return ray_private.optuna_study(self)


def _at_full_budget(result: dict, max_kimg: float) -> bool:
    progress = result.get("progress")
    if isinstance(progress, (int, float)) and math.isfinite(progress):
        return progress >= 1.0 - 1e-6
    return float(result.get("kimg", math.inf)) >= max_kimg - 1e-6
