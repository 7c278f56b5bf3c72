"""Every use of Ray's and Optuna's private internals by the search, in one module.

fashion-tune fills gaps of Ray Tune 2.60 (see ``tuner.py``) by reaching into objects
that have no public API for what it needs:

* ``OptunaSearch._ot_trials`` / ``_ot_study`` / ``_completed_trials`` / ``_metric``, and
  an Optuna trial's ``_trial_id``: to tell Optuna PRUNED / FAIL instead of COMPLETE;
* ``AsyncHyperBandScheduler._brackets[i]._rungs`` / ``_num_stopped``: ASHA's rung
  records, carried in a callback's state because Ray does not save the scheduler;
* ``ray._private.ray_constants.ENABLE_RAY_CLUSTER``: with it off, an embedded Ray
  registers its node as 127.0.0.1 and binds its gRPC ports to loopback (Ray otherwise
  turns 127.0.0.1 into the machine's routable address);
* Ray's temp-folder layout (``<temp>/session_*/artifacts/*/<name>/driver_artifacts``):
  where the driver stages its state files before copying them to storage;
* ``_ExperimentCheckpointManager``'s "auto" period: how often the experiment state is
  written (``adaptive_state_writes``);
* a trial's ``local_path`` / ``storage`` (where the driver logs its results, and where
  storage keeps them): ``trial_log_paths``.

Each is checked against the versions this module was written for: on others the search
fails at once with a message saying so, instead of misbehaving quietly.
"""

from __future__ import annotations

import glob
import os
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from fashion_tune.errors import FashionTuneError

WRITTEN_FOR = {"ray": "2.60.", "optuna": "5.0."}  # version prefixes checked at first use
TEMP_ENV = "FASHION_TUNE_RAY_TEMP"  # where the embedded Ray's private temp folder lives
NO_CLUSTER_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # Ray's switch; "0": a loopback-only node


@cache
def _versions() -> dict[str, str]:
    import optuna
    import ray

    return {"ray": ray.__version__, "optuna": optuna.__version__}


def check_versions() -> None:
    """Fail with one line unless Ray and Optuna are the versions this module knows."""
    for name, version in _versions().items():
        if not version.startswith(WRITTEN_FOR[name]):
            want = WRITTEN_FOR[name] + "x"
            raise FashionTuneError(
                f"fashion-tune's search relies on {name} {want} internals "
                f"(fashion_tune/search/ray_private.py) but {name} {version} is installed; "
                "install the locked versions (scripts/setup.sh or uv sync --locked)"
            )


# -- Optuna, as OptunaSearch holds it ------------------------------------------------------


def optuna_trial(searcher: Any, trial_id: str) -> Any:
    return optuna_trials(searcher)[trial_id]


def optuna_trials(searcher: Any) -> dict[str, Any]:
    """Ray trial id -> the Optuna trial OptunaSearch asked for it (empty before any)."""
    check_versions()
    return getattr(searcher, "_ot_trials", None) or {}


def optuna_study(searcher: Any) -> Any:
    check_versions()
    return searcher._ot_study


def completed_trials(searcher: Any) -> set[str]:
    """Ray trial ids the searcher has already told Optuna about (a mutable set)."""
    check_versions()
    return searcher._completed_trials


def searcher_metric(searcher: Any) -> str:
    check_versions()
    return searcher._metric


def frozen_trial(ot_trial: Any) -> Any:
    """An Optuna trial's record as its storage holds it now (state, intermediate values)."""
    check_versions()
    return ot_trial.storage.get_trial(ot_trial._trial_id)


def storage_trial_id(trial: Any) -> int:
    """The storage id of an Optuna ``Trial`` or ``FrozenTrial`` (unique within a storage)."""
    check_versions()
    return int(trial._trial_id)


def reported_steps(ot_trial: Any) -> set[int]:
    """Steps at which an Optuna trial already holds an intermediate value."""
    return set(frozen_trial(ot_trial).intermediate_values)


# -- ASHA's rung records ---------------------------------------------------------------------


def asha_rungs(scheduler: Any) -> dict[str, Any] | None:
    """ASHA's rung records as plain data (None for a scheduler without brackets)."""
    check_versions()
    brackets = getattr(scheduler, "_brackets", None)
    if brackets is None:
        return None
    return {
        "rungs": [[(m, dict(rec)) for m, rec in b._rungs] for b in brackets],
        "num_stopped": getattr(scheduler, "_num_stopped", 0),
    }


def restore_asha_rungs(scheduler: Any, state: dict[str, Any] | None) -> None:
    check_versions()
    brackets = getattr(scheduler, "_brackets", None)
    if not state or brackets is None:
        return
    for bracket, rungs in zip(brackets, state["rungs"], strict=True):
        bracket._rungs = [(m, dict(rec)) for m, rec in rungs]
    scheduler._num_stopped = state.get("num_stopped", 0)


# -- the TuneController a scheduler is handed ------------------------------------------------


def mark_trial_changed(tune_controller: Any, trial: Any) -> None:
    """Make Ray write ``trial``'s state again at its next experiment checkpoint.

    Ray caches each trial's JSON state and refreshes it only for trials it marks; stopping a
    PAUSED trial (no actor) does not mark it, so the saved state would keep it PAUSED and a
    resume or a reader would take it for unfinished. Schedulers get a wrapper of the
    controller; a simulated controller (benchmarks/replay.py) has nothing to mark.
    """
    controller = getattr(tune_controller, "_tune_controller", tune_controller)
    mark = getattr(controller, "_mark_trial_to_checkpoint", None)
    if mark is not None:
        check_versions()
        mark(trial)


# -- how often Ray writes the experiment state ----------------------------------------------
STATE_PERIOD_ENV = "TUNE_GLOBAL_CHECKPOINT_S"  # Ray's: seconds, or "auto"
STATE_SHARE = 0.05  # at most this share of the driver's time goes into state writes


def adaptive_state_writes() -> None:
    """Write the experiment state as often as costs <= 5% of the driver's time.

    Ray's "auto" period is ``max(10 s, 19 x the last write's time)``. Each write holds every
    trial (~25 KB each, mostly Ray's per-metric statistics), so a fixed period is either
    too rare for small searches (a driver killed 10 s after a trial paused at a rung brings
    it back running) or, at every step, costs O(trials) per step: 48 ms per step at 100
    trials, the whole driver at 1,000 (benchmarks/RESULTS.md, "Scale"). Without the 10 s
    floor the period is ~0.1 s (every step) while writes take milliseconds and grows with
    them. ``TUNE_GLOBAL_CHECKPOINT_S`` set to a number still fixes the period (Ray's
    setting). Patches Ray's class in this process (the driver); idempotent.
    """
    check_versions()
    from ray.tune.execution import experiment_state

    os.environ.setdefault(STATE_PERIOD_ENV, "auto")
    cls = experiment_state._ExperimentCheckpointManager
    if getattr(cls, "_fashion_tune_adaptive", False):
        return
    init = cls.__init__
    factor = (1 - STATE_SHARE) / STATE_SHARE

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        if self._auto_checkpoint_enabled:
            self._checkpoint_period = 0.0  # the first write times the next period

    def _update_auto_checkpoint_time(self: Any, time_taken: float) -> None:
        if self._auto_checkpoint_enabled:
            self._checkpoint_period = factor * time_taken

    setattr(cls, "__init__", __init__)  # noqa: B010 (a method of Ray's class, on purpose)
    setattr(cls, "_update_auto_checkpoint_time", _update_auto_checkpoint_time)  # noqa: B010
    setattr(cls, "_fashion_tune_adaptive", True)  # noqa: B010


def consistent_resume() -> None:
    """After Ray restores an experiment, the searcher's records agree with its trial list.

    Ray saves the trial list (``experiment_state``) and the search algorithm
    (``search_gen_state``, the limiter's live trials in it) as separate files, copied to
    storage one by one; a driver killed mid-copy, repaired from the newer staged copy
    (``recovery.repair_state_files``), pairs a search algorithm one snapshot ahead with an
    older trial list. Its counter then counts a trial Ray never restores (the search ends a
    trial short) and the limiter holds a slot for it forever (the search hangs once every
    slot is held so). Here the counter is cut to the trials Ray restored and the limiter
    forgets trials it does not have. Patches Ray's class in this process; idempotent.
    """
    check_versions()
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.search import ConcurrencyLimiter, SearchGenerator

    if getattr(TuneController, "_fashion_tune_consistent", False):
        return
    resume = TuneController.resume

    def _resume(self: Any, *args: Any, **kwargs: Any) -> None:
        resume(self, *args, **kwargs)
        ids = {t.trial_id for t in self._trials}
        alg = self._search_alg
        if isinstance(alg, SearchGenerator) and alg._counter > len(ids):
            alg._counter = len(ids)
        searcher = getattr(alg, "searcher", None)
        while searcher is not None:
            if isinstance(searcher, ConcurrencyLimiter):
                searcher.live_trials &= ids
                searcher.num_unfinished_live_trials = len(searcher.live_trials)
                paused = getattr(searcher, "paused", None)  # promotion.PausingLimiter's
                if isinstance(paused, set):
                    paused &= ids
            searcher = getattr(searcher, "searcher", None)

    setattr(TuneController, "resume", _resume)  # noqa: B010 (a method of Ray's class)
    setattr(TuneController, "_fashion_tune_consistent", True)  # noqa: B010


def trial_working_dir() -> Path:
    """Inside a trial: the folder whose files Ray syncs to the trial's storage folder at
    every checkpoint, on whatever node the trial runs.

    ``tune.get_context().get_trial_dir()`` is not that folder for the first trial of a
    fresh actor: Ray 2.60's ``FunctionTrainable.setup`` gives it the *driver's* staging
    path, which only the driver's own node syncs (with the experiment state); on a worker
    node the trial's own files (config, metrics, samples, TensorBoard) stayed there, lost.
    Reused actors already got this folder (``reset_config``).
    """
    check_versions()
    from ray.train._internal.session import get_session

    session = get_session()
    if session is None:
        raise RuntimeError("trial_working_dir() is for code running inside a Tune trial")
    path = Path(session.storage.trial_working_directory)
    path.mkdir(parents=True, exist_ok=True)
    return path


def trial_log_paths(trial: Any, name: str) -> tuple[Path, Any, str]:
    """(the driver's staged copy, the storage filesystem, the storage path) of one of a
    trial's log files (``result.json``, ``progress.csv``)."""
    check_versions()
    storage = trial.storage
    return (
        Path(trial.local_path) / name,
        storage.storage_filesystem,
        f"{storage.trial_fs_path.rstrip('/')}/{name}",
    )


def checkpoint_tick(trial: Any) -> int:
    """The ``tick`` of the checkpoint a (re)starting trial resumes from; 0 without one
    (it starts over). Read from the result Ray recorded with that checkpoint."""
    check_versions()
    result = trial.latest_checkpoint_result
    if result is None or result.checkpoint is None:
        return 0
    return int((result.metrics or {}).get("tick") or 0)


# -- the embedded Ray: loopback only, in a private temp folder ------------------------------


@contextmanager
def loopback_only() -> Iterator[None]:
    """While a Ray is started inside: it registers 127.0.0.1 and listens on loopback only.

    Ray resolves ``_node_ip_address="127.0.0.1"`` to the routable address unless its
    "no cluster" mode (meant for macOS / Windows) is on; with it on, GCS, raylet, driver,
    workers and the runtime-env agent bind 127.0.0.1 (measured with ``ss -ltnp``). The
    processes Ray starts inherit the setting; this process gets its own back afterwards
    (a later ``ray.init(address=...)`` to a real cluster must not register as loopback).
    """
    check_versions()
    import ray._private.ray_constants as ray_constants

    env, const = os.environ.get(NO_CLUSTER_ENV), ray_constants.ENABLE_RAY_CLUSTER
    os.environ[NO_CLUSTER_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = const
        if env is None:
            os.environ.pop(NO_CLUSTER_ENV, None)
        else:
            os.environ[NO_CLUSTER_ENV] = env


def private_problem(path: Path) -> str | None:
    """Why ``path`` is not a private folder of this user (None: it is one).

    Private: a real folder (not a link), owned by the current user, that nobody else can
    enter or write (mode 0o700 or stricter).
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "does not exist"
    except OSError as exc:
        return f"cannot be read ({exc.strerror})"
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        return "is not a folder (a link or a file)"
    if st.st_uid != os.getuid():
        return f"is owned by uid {st.st_uid}, not by you (uid {os.getuid()})"
    if st.st_mode & 0o077:
        return f"is open to other users (mode {stat.S_IMODE(st.st_mode):o}, want 700)"
    return None


def temp_root() -> Path:
    """The embedded Ray's private temp root (``$FASHION_TUNE_RAY_TEMP`` or
    ``<tmp>/fashion-tune-<uid>``): short, so Ray's socket paths fit."""
    env = os.environ.get(TEMP_ENV)
    return Path(env) if env else Path(tempfile.gettempdir()) / f"fashion-tune-{os.getuid()}"


# what Ray appends to the temp root for its longest socket; a Unix socket path holds 107 bytes
SOCKET_TAIL = "/ray/session_2026-12-04_04-55-51_273334_4194304/sockets/plasma_store"
SOCKET_PATH_MAX = 107


def make_temp_root() -> Path:
    """Create (mode 0700) or check the private temp root; Ray's temp folder is ``<root>/ray``.

    Ray makes its own folders world-writable; inside a folder only we can enter, nobody
    else can reach them, so the state files staged there can be trusted on --resume.
    """
    root = temp_root()
    longest = len(str(root.absolute())) + len(SOCKET_TAIL)
    if longest > SOCKET_PATH_MAX:
        raise FashionTuneError(
            f"Ray's temp folder {root} is too long for Ray's socket paths ({longest} of at "
            f"most {SOCKET_PATH_MAX} bytes); set {TEMP_ENV} to a folder of at most "
            f"{SOCKET_PATH_MAX - len(SOCKET_TAIL)} characters"
        )
    try:
        root.mkdir(mode=0o700, parents=True)
    except FileExistsError:
        pass
    except OSError as exc:
        raise FashionTuneError(f"cannot create Ray's temp folder {root}: {exc.strerror}") from None
    problem = private_problem(root)
    if problem:
        raise FashionTuneError(
            f"Ray's temp folder {root} {problem}; remove it, or set {TEMP_ENV} to a folder "
            "only you can enter"
        )
    return root / "ray"


def staging_dirs(experiment_name: str) -> list[Path]:
    """The driver staging folders of ``experiment_name`` in our private temp root.

    Empty when the root is missing or not private: staging copies anywhere else (Ray's
    default, world-writable ``/tmp/ray``) are never read.
    """
    check_versions()
    root = temp_root()
    if private_problem(root):
        return []
    pattern = f"{glob.escape(str(root))}/ray/session_*/artifacts/*/"
    pattern += f"{glob.escape(experiment_name)}/driver_artifacts"
    return [Path(p) for p in glob.glob(pattern) if Path(p).is_dir()]


def read_own_file(path: Path) -> bytes | None:
    """A regular file's bytes if the current user owns it (links are not followed)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.getuid():
            return None
        return f.read()
