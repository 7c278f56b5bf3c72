"""The Ray Tune experiments fashion-tune runs, and what they share.

Three experiments of one kind: the **search** (``tuner.py``: Optuna proposes, promotion
ASHA pauses and promotes), and the experiments **nested** in its folder that retrain a
planned list of configs with fresh seeds at the full budget: the **seed confirmation**
(``confirm.py``) and, built the same way, an ablation. All of them

* train through one trainable (``run_trial`` with the search's resolved fixed settings
  and per-trial resources: ``make_trainable``), named ``trial_<id>`` (``trial_name``);
* keep the same things (``keeping``: the 2 newest checkpoints and the best, retries of a
  failed trial from its checkpoint, trial artifacts synced to storage);
* resume through ``restore_tuner`` (state files repaired from the driver's staging copy
  first) and never train a finished trial twice (the ``FinishedLedger``).

A nested experiment is described by a :class:`Nested` (its folder and plan file); its plan
(which configs, which seeds) is written before the first trial and read back on every
resume, and its trials are a grid over the plan's rows (``grid_tuner``). What runs after a
search (its space's ``confirm:`` section, ...) is ``pipeline.py``'s business, so the
search and its nested experiments never import each other.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from typing import Any

from fashion_tune import experiment_layout as layout
from fashion_tune.data.storage import Store
from fashion_tune.errors import FashionTuneError
from fashion_tune.search import preflight, ray_private

logger = logging.getLogger("fashion_tune.search")
EPS = 1e-6  # a budget "reached" within float noise (kimg)


def trial_name(trial: Any) -> str:
    """Short trial names and folders (Ray's default folder name spells out every parameter)."""
    return f"trial_{trial.trial_id}"


def make_trainable(
    fixed: dict[str, Any],
    experiment: str,
    cpus: float,
    gpus: float,
    compute_ref: dict[str, Any] | None = None,
) -> Any:
    """``run_trial`` with its settings and resources, as Tune wants a trainable."""
    from ray import tune

    from fashion_tune.search.trainable import quiet_vanished_temp_files, run_trial

    quiet_vanished_temp_files()
    return tune.with_resources(
        tune.with_parameters(
            run_trial, fixed=fixed, experiment=experiment, compute_ref=compute_ref
        ),
        {"cpu": cpus, "gpu": gpus},
    )


def restore_tuner(experiment: str, trainable: Any) -> Any:
    """Ray's Tuner of an experiment, its state files repaired first; unfinished and errored
    trials resume (the caller has checked that the folder is trusted)."""
    from ray import tune

    from fashion_tune.search.recovery import repair_state_files

    for fixed_name in repair_state_files(experiment):
        logger.warning("repaired %s from the driver's staging copy (it was damaged)", fixed_name)
    return tune.Tuner.restore(
        experiment, trainable=trainable, resume_unfinished=True, resume_errored=True
    )


def keeping(metric: str, mode: str, max_failures: int) -> dict[str, Any]:
    """RunConfig settings for what a run keeps: the 2 newest checkpoints (and the best by
    ``metric``), retries of a failed trial, and trial artifacts synced to storage."""
    from ray import tune

    return {
        "checkpoint_config": tune.CheckpointConfig(
            num_to_keep=2, checkpoint_score_attribute=metric, checkpoint_score_order=mode
        ),
        "failure_config": tune.FailureConfig(max_failures=max_failures),
        "sync_config": tune.SyncConfig(sync_artifacts=True),
    }


def init_ray(address: str | None, num_cpus: int | None = None) -> None:
    """Join a cluster (``address``) or start a new embedded Ray bound to loopback.

    The embedded Ray registers its node as 127.0.0.1, binds its ports to loopback, keeps
    Ray's token authentication, and keeps its temp folder (where the driver stages its
    state files) in a folder only this user can enter.
    """
    import ray

    if ray.is_initialized():
        return
    # state as often as it costs <= 5% of the driver (every step while writes are cheap)
    ray_private.adaptive_state_writes()
    ray_private.consistent_resume()  # ...so a resume may pair a newer searcher state
    # ...which is deliberate: silence Ray's warning that snapshots come often
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # honour our CLIReporter columns
    try:
        if address:
            preflight.probe_address(address)
            ray.init(address=address, log_to_driver=True)
        else:
            temp_dir = ray_private.make_temp_root()
            with ray_private.loopback_only():
                ray.init(
                    address="local",  # always a new embedded Ray, never a cluster left running
                    num_cpus=num_cpus,
                    include_dashboard=False,
                    _node_ip_address="127.0.0.1",
                    _temp_dir=str(temp_dir),
                    log_to_driver=False,
                )
    except ConnectionError as exc:
        hint = (
            ""
            if address == "auto"
            else (
                "; its head answers, so check its token (RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH) "
                "and that it runs the same Ray version"
            )
        )
        raise FashionTuneError(f"cannot join the Ray cluster at {address}: {exc}{hint}") from None
    except ray.exceptions.AuthenticationError as exc:
        first = str(exc).split(". ", 1)[0]
        raise FashionTuneError(
            f"the Ray cluster at {address} refused this driver ({first}); give its token "
            "with RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH (see `ray get-auth-token`)"
        ) from None


# -- experiments nested in a search's folder ----------------------------------------------------
@dataclass(frozen=True)
class RunOptions:
    """How a nested experiment's trials run (the search's settings by default)."""

    max_failures: int = 3
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0  # 0: Ray decides
    verbose: int = 1
    callbacks: tuple[Any, ...] = ()  # extra Tune callbacks (tests)
    reuse_actors: bool = True


@dataclass(frozen=True)
class Nested:
    """A Tune experiment in ``<search>/<dirname>/`` that trains a plan's rows."""

    dirname: str  # e.g. layout.CONFIRM_DIR
    plan_file: str  # the plan, in that folder (e.g. layout.CONFIRM_FILE)
    what: str  # "confirmation", in messages
    command: str  # the command that runs / finishes it, in messages

    def path(self, experiment: str) -> str:
        return f"{experiment.rstrip('/')}/{self.dirname}"

    def existing_plan(self, experiment: str, keys: tuple[str, ...]) -> dict[str, Any] | None:
        """The plan already written (None when the experiment was never started); a folder
        that is not ours, or a damaged plan, is one error line."""
        where = self.path(experiment)
        store = Store.open(where)
        if not store.exists(self.plan_file):
            if store.exists(layout.TUNER_FILE):
                raise FashionTuneError(
                    f"{where} holds a Ray experiment without its {self.plan_file}: it is not "
                    f"a fashion-tune {self.what}; move it away"
                )
            return None
        try:
            plan = json.loads(store.read_bytes(self.plan_file))
            for key in keys:
                _ = plan[key]
        except (ValueError, KeyError, TypeError):
            raise FashionTuneError(
                f"{where}/{self.plan_file} is damaged: delete {where} to start the "
                f"{self.what} again"
            ) from None
        return plan

    def write_plan(self, experiment: str, plan: dict[str, Any]) -> None:
        store = Store.open(self.path(experiment))
        if not store.exists(self.plan_file):
            store.write_atomic(self.plan_file, json.dumps(plan, indent=1).encode())

    def grid_tuner(
        self,
        experiment: str,
        rows: list[dict[str, Any]],
        index_key: str,
        metric: str,
        mode: str,
        max_kimg: float,
        columns: dict[str, str],
        opts: RunOptions,
    ) -> Any:
        """A new Tuner whose trials are ``rows`` (a grid over their index), FIFO, each
        trained to ``max_kimg``; or the restored one when the folder holds an experiment."""
        from ray import tune
        from ray.tune.schedulers import FIFOScheduler

        from fashion_tune.search.callbacks import FinishedLedger, TrialLogKeeper

        where = self.path(experiment)
        search = json.loads(Store.open(experiment).read_bytes(layout.SEARCH_FILE))
        trainable = make_trainable(
            dict(search["fixed"]), where, opts.cpus_per_trial, opts.gpus_per_trial
        )
        if Store.open(where).exists(layout.TUNER_FILE):
            from fashion_tune.search.recovery import check_trusted

            check_trusted(where)
            return restore_tuner(where, trainable)
        param_space: dict[str, Any] = {index_key: tune.grid_search(list(range(len(rows))))}
        for key in rows[0]:
            param_space[key] = tune.sample_from(Pick(rows, key, index_key))
        return tune.Tuner(
            trainable,
            param_space=param_space,
            tune_config=tune.TuneConfig(
                scheduler=FIFOScheduler(),
                num_samples=1,  # the grid is the plan
                max_concurrent_trials=opts.max_concurrent or None,
                reuse_actors=opts.reuse_actors,
                trial_name_creator=trial_name,
                trial_dirname_creator=trial_name,
            ),
            run_config=tune.RunConfig(
                name=self.dirname,
                storage_path=experiment,
                # the search's budget, also when its scheduler stopped short of total_kimg
                stop={"kimg": float(max_kimg) - EPS},
                callbacks=[FinishedLedger(where), TrialLogKeeper(where), *opts.callbacks],
                **keeping(metric, mode, opts.max_failures),
                progress_reporter=tune.CLIReporter(
                    metric_columns=["kimg", metric],
                    parameter_columns=columns,
                    max_report_frequency=10,
                    # as the search's table (Ray's default follows a global verbosity that
                    # the search's fit has lowered by now)
                    print_intermediate_tables=True,
                ),
                verbose=opts.verbose,
            ),
        )


def plan_rows(
    configs: list[dict[str, Any]],
    seeds: list[int],
    fixed: dict[str, Any],
    keys: tuple[str, str, str],
) -> list[dict[str, Any]]:
    """One Tune config per planned trial, replica-major (every config gets its first seed
    before any gets its second, so a partial run already compares all of them), seed j
    the same for every config (the design is paired by seed).

    ``configs`` are ``{"params": {...}, "label": ...}``; ``keys`` names the plan keys
    (config index, replica index, label) that ``run_trial`` drops before building the
    trial's config. Every row has the same keys (Ray's table and grid need that): a key a
    config does not set gets the value the trial would have anyway (fixed or default).
    """
    from fashion_tune.config import TrialConfig

    key_config, key_replica, key_label = keys
    base = TrialConfig().with_overrides(fixed).flat()
    names = sorted({k for c in configs for k in c["params"]})
    rows = []
    for ri, seed in enumerate(seeds):
        for ci, c in enumerate(configs):
            params = {k: c["params"].get(k, base.get(k)) for k in names}
            rows.append(
                {
                    **params,
                    "runtime.seed": int(seed),
                    key_config: ci,
                    key_replica: ri,
                    key_label: c["label"],
                }
            )
    return rows


def fresh_seeds(domain: str, n: int, used: set[int]) -> list[int]:
    """n distinct seeds derived from ``domain`` (e.g. the search's seed and the
    experiment's purpose) and the replica index, none of them in ``used``."""
    import hashlib

    from fashion_tune.config import MAX_SEED

    out: list[int] = []
    j = 0
    while len(out) < n:
        digest = hashlib.sha256(f"{domain} {j}".encode()).digest()
        seed = int.from_bytes(digest[:4], "big") % (MAX_SEED + 1)
        if seed not in used and seed not in out:
            out.append(seed)
        j += 1
    return out


class Pick:
    """``tune.sample_from``: the value of ``key`` in the planned row the grid index picks
    (a class, not a lambda, so Ray's saved search state unpickles it plainly)."""

    def __init__(self, rows: list[dict[str, Any]], key: str, index_key: str):
        self.rows, self.key, self.index_key = rows, key, index_key

    def __call__(self, config: dict[str, Any]) -> Any:
        return self.rows[config[self.index_key]][self.key]

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a confirmation saved before ``index_key`` existed picked by its own index key
        state.setdefault("index_key", "confirm.index")
        self.__dict__.update(state)
