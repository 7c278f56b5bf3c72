"""The files of a search experiment (``--storage/--name``): their names, in one place.

Ray Tune writes ``tuner.pkl``, its ``*-state-*`` files and one folder per trial;
fashion-tune adds the search description and the finished-trial ledger. Every module
that reads or writes an experiment (search, trainable, recovery, report, export) takes
the names from here.
"""

from __future__ import annotations

import fnmatch
import re

# -- written by Ray Tune ---------------------------------------------------------------------
TUNER_FILE = "tuner.pkl"  # a pickle; its presence means "an experiment lives here"
EXPERIMENT_STATE_GLOB = "experiment_state-*.json"  # trial list, statuses, folders (JSON)
# state files Ray rewrites at each step (names carry the driver session's start time)
STATE_GLOBS = (
    EXPERIMENT_STATE_GLOB,
    "search_gen_state-*.json",  # a cloudpickle, despite its name
    "searcher-state-*.pkl",
    "callback-states-*.pkl",
)
# inside a trial folder
PARAMS_FILE = "params.json"
RESULT_FILE = "result.json"  # one JSON line per report
PROGRESS_FILE = "progress.csv"
ERROR_FILE = "error.txt"
CHECKPOINT_RE = re.compile(r"^checkpoint_\d+$")

# -- written by fashion-tune -----------------------------------------------------------------
SEARCH_FILE = "fashion_tune_search.json"  # the resolved search space, beside Ray's state
LEDGER_DIR = "fashion_tune_finished"  # one JSON file per finished trial
JOURNAL_FILE = "optuna.journal"  # the Optuna study (JournalStorage; optuna-dashboard opens it)
SCHEDULER_FILE = "fashion_tune_scheduler.json"  # promotion ASHA's rungs and events (JSON)
TRIAL_CONFIG_FILE = "config.json"  # the full trial config, in each trial folder (train())
TRIAL_METRICS_FILE = "metrics.jsonl"  # train()'s own per-tick history
CHECKPOINT_STATE_FILE = "checkpoint.pt"  # inside each checkpoint_NNNNNN/
# the seed confirmation: a Ray Tune experiment of its own, nested in the search's folder
CONFIRM_DIR = "confirm"  # <experiment>/confirm/: Ray's state, trial folders, ledger
CONFIRM_FILE = "fashion_tune_confirm.json"  # in CONFIRM_DIR: the plan (configs, seeds)
# ablations: nested like the confirmation, one folder per (base, setting)
ABLATE_PREFIX = "ablate_"  # <experiment>/ablate_<base>_<setting>/ (e.g. ablate_best_loss.symmetry)
ABLATE_FILE = "fashion_tune_ablate.json"  # in each: the plan (values, seeds, base config)

# files that mark a folder of the experiment as a trial's
TRIAL_FILES = (PARAMS_FILE, RESULT_FILE, PROGRESS_FILE, TRIAL_METRICS_FILE, TRIAL_CONFIG_FILE)


def is_state_file(name: str) -> bool:
    """One of Ray's experiment-state files (``experiment_state-*.json``, ``*-state-*.pkl``)."""
    return any(fnmatch.fnmatch(name, p) for p in STATE_GLOBS)


def is_experiment_state(name: str) -> bool:
    return fnmatch.fnmatch(name, EXPERIMENT_STATE_GLOB)


def is_pickle_state(name: str) -> bool:
    """State files that hold a pickle (every state file but experiment_state-*.json)."""
    return is_state_file(name) and not is_experiment_state(name)


def ledger_entry_name(trial_id: str) -> str:
    return f"{trial_id}.json"


# an experiment name is one folder under --storage: no separators, no '..', nothing hidden
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot name an experiment folder, or None when it can."""
    if not name:
        return "is empty"
    if "/" in name or "\\" in name:
        return "holds a path separator: give one folder name (use --storage for the parent)"
    if ".." in name:
        return "holds '..'"
    if not NAME_RE.match(name):
        return (
            "must be 1-100 characters of letters, digits, '_', '.' or '-', starting with a "
            "letter or digit"
        )
    return None
