"""Ray Tune wiring: Optuna proposes, ASHA stops, Ray schedules, storage keeps everything.

Beyond Ray's defaults (each a known gap of Ray Tune 2.60):

* ``scheduler.type: asha`` is promotion-based ASHA (``promotion.py``: trials pause at
  rungs and the best are resumed); Ray's stopping ASHA is ``asha-stop``;
* budgets are in compute (training FLOPs, in kimg of the reference config: ``flops.py``)
  unless ``scheduler.budget: kimg``;
* a trial that ends at a rung is told to Optuna as PRUNED with its rung value, a diverged
  one as FAILED (Tune tells the searcher every ended trial is COMPLETE with its last
  value), and the study is an Optuna journal in the experiment folder (``searcher.py``);
* the scheduler's records ride in a callback's ``get_state`` / ``set_state``, saved with
  Ray's own experiment state, so they survive ``--resume`` (Ray restores the scheduler
  as constructed);
* every finished trial is recorded at once in ``fashion_tune_finished/`` in the
  experiment folder, and a restored trial found there replays its result instead of
  training again, so ``--resume`` never re-runs finished work (Ray writes its state at
  most every few seconds); experiment state is written at every step;
* everything that can be checked is checked before Ray starts (``preflight.py``, also
  by ``--dry-run``), one trial must fit on a live node, and a new experiment that fails
  before any trial reported is removed, so it never blocks its name;
* the embedded Ray listens on loopback only and keeps its temp folder private.

Ray's and Optuna's private internals used for this live in ``ray_private.py`` only; what
the search shares with the experiments nested in its folder (trainable, resume, what runs
keep, the embedded Ray) lives in ``experiments.py``.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.fs as pafs

from fashion_tune import experiment_layout as layout
from fashion_tune.data.storage import Store, is_uri
from fashion_tune.search import preflight, ray_private
from fashion_tune.search.callbacks import FinishedLedger, SchedulerStateCallback, TrialLogKeeper
from fashion_tune.search.experiments import (  # shared with the nested experiments
    init_ray,
    keeping,
    make_trainable,
    restore_tuner,
    trial_name,
)
from fashion_tune.search.promotion import PausingLimiter, PromotionAsha
from fashion_tune.search.searcher import PrunedAwareOptunaSearch, journal_storage
from fashion_tune.search.space import Space

logger = logging.getLogger("fashion_tune.search")
METRIC_COLUMNS = ["kimg", "fd", "recall", "diversity", "sym_excess", "img_per_s"]
ASHA_STOP_MAX_T = 1e9  # Ray's stopping ASHA needs a max; compute budgets end per config


@dataclass(frozen=True)
class SearchOptions:
    storage: str = "results"
    name: str | None = None
    address: str | None = None
    data: str | None = None
    resume: bool = False
    max_failures: int = 3
    autoscaling: bool = False  # the cluster's autoscaler may add nodes a trial fits on
    verbose: int = 1
    callbacks: tuple[Any, ...] = ()  # extra Tune callbacks (tests inject faults with these)
    reuse_actors: bool = True  # ~0.5 s instead of ~4 s per trial start (benchmarks compare)


def experiment_path(space: Space, opts: SearchOptions) -> tuple[str, str, str]:
    """(storage root as Ray wants it, experiment name, experiment path)."""
    storage = opts.storage if is_uri(opts.storage) else str(Path(opts.storage).resolve())
    name = opts.name if opts.name is not None else space.name
    return storage, name, f"{storage.rstrip('/')}/{name}"


def resolve_fixed(space: Space, opts: SearchOptions) -> dict[str, Any]:
    """The fixed overrides every trial gets, with a local data path made absolute."""
    fixed = dict(space.fixed)
    data = opts.data or fixed.get("data.path") or "data/fashion-mnist-32"
    if not is_uri(data):
        data = str(Path(data).expanduser().resolve())
    fixed["data.path"] = data
    return fixed


def check_before_ray(space: Space, opts: SearchOptions) -> None:
    """Everything that can be checked without Ray (``--dry-run`` runs this too); writes nothing.

    Versions of Ray / Optuna internals, the experiment name and storage, the shard set,
    --max-failures, the experiment folder (new, or resumable and trusted), a --address
    that answers, and, for an embedded Ray, that one trial fits on this machine.
    """
    ray_private.check_versions()
    _, name, exp = experiment_path(space, opts)
    preflight.check_name(name)
    preflight.check_storage(opts.storage)
    preflight.check_max_failures(opts.max_failures)
    fixed = resolve_fixed(space, opts)
    preflight.check_data(fixed["data.path"], space.base_config().data.split)
    preflight.check_experiment(exp, opts.resume)
    if opts.address:
        preflight.probe_address(opts.address)
    else:
        res = preflight.local_resources() if space.gpus_per_trial else {"CPU": _cpus()}
        preflight.check_fits(
            space.cpus_per_trial, space.gpus_per_trial, [res], "this machine", False
        )


def _cpus() -> float:
    try:
        return float(len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return float(os.cpu_count() or 1)


def check_cluster(space: Space, opts: SearchOptions) -> None:
    """Once Ray runs: one trial must fit on a live node (unless an autoscaler adds nodes)."""
    autoscaling = opts.autoscaling or preflight.autoscaler_configured()
    where = "the Ray cluster" if opts.address else "this machine"
    nodes = preflight.cluster_nodes()
    preflight.check_fits(space.cpus_per_trial, space.gpus_per_trial, nodes, where, autoscaling)
    if autoscaling:
        logger.warning("an autoscaler is configured: trials wait for nodes that fit them")


def build_tuner(space: Space, opts: SearchOptions) -> Any:
    """The Tuner for a new experiment, or the restored one with ``opts.resume``
    (``run_search`` has checked the experiment folder first)."""
    import optuna
    from ray import tune

    storage, name, exp = experiment_path(space, opts)
    fixed = resolve_fixed(space, opts)
    trainable = make_trainable(
        fixed, exp, space.cpus_per_trial, space.gpus_per_trial, compute_reference(space, opts)
    )
    if opts.resume:
        return restore_tuner(exp, trainable)
    scheduler = make_scheduler(space)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = (
        optuna.samplers.RandomSampler(seed=space.seed)
        if space.searcher == "random"
        else optuna.samplers.TPESampler(seed=space.seed)
    )
    searcher: Any = PrunedAwareOptunaSearch(
        space=space,
        metric=space.metric,  # a define-by-run space: Tune does not pass these on
        mode=space.mode,
        points_to_evaluate=[dict(p) for p in space.points] or None,
        sampler=sampler,
        study_name=name,
        storage=journal_storage(exp),
        max_kimg=space.max_kimg,
        smooth=space.scheduler.smooth if space.scheduler.type == "asha" else 1,
    )
    max_concurrent = space.max_concurrent or 0
    limit = None
    if isinstance(scheduler, PromotionAsha):
        if max_concurrent:  # paused trials hold no slot (Ray's own limiter counts them)
            searcher = PausingLimiter(searcher, max_concurrent=max_concurrent)
    else:
        limit = max_concurrent or None  # OptunaSearch otherwise starts one pending trial
    callbacks = [
        SchedulerStateCallback(scheduler, exp),
        FinishedLedger(exp),
        TrialLogKeeper(exp),
        *opts.callbacks,
    ]
    columns = [*METRIC_COLUMNS[:1], "compute", *METRIC_COLUMNS[1:]]
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            metric=space.metric,
            mode=space.mode,
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=space.num_samples,
            max_concurrent_trials=limit,
            reuse_actors=opts.reuse_actors,
            trial_name_creator=trial_name,
            trial_dirname_creator=trial_name,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=storage,
            callbacks=callbacks,
            **keeping(space.metric, space.mode, opts.max_failures),
            progress_reporter=tune.CLIReporter(
                metric_columns=columns if space.scheduler.budget == "compute" else METRIC_COLUMNS,
                # conditional parameters are absent from some trials: Ray's table needs all
                parameter_columns=[p.key for p in space.params if not p.when][:6],
                max_report_frequency=10,
            ),
            verbose=opts.verbose,
        ),
    )


def make_scheduler(space: Space) -> Any:
    """The trial scheduler ``scheduler.type`` names: promotion ASHA (``asha``), Ray's
    stopping ASHA (``asha-stop``) or FIFO, over the budget ``scheduler.budget`` names."""
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    sch = space.scheduler
    by_kimg = sch.budget == "kimg"
    if sch.type == "asha":
        return PromotionAsha(
            time_attr=sch.time_attr,
            metric=space.metric,
            mode=space.mode,
            grace=sch.grace_kimg,
            reduction_factor=sch.reduction_factor,
            brackets=sch.brackets,
            smooth=sch.smooth,
            max_t=space.max_kimg if by_kimg else None,
        )
    if sch.type == "asha-stop":
        return AsyncHyperBandScheduler(
            time_attr=sch.time_attr,
            # kimg is fractional; Ray's int hints are narrower than its arithmetic
            max_t=space.max_kimg if by_kimg else ASHA_STOP_MAX_T,  # type: ignore[arg-type]
            grace_period=sch.grace_kimg,  # type: ignore[arg-type]
            reduction_factor=sch.reduction_factor,
            brackets=sch.brackets,
        )
    return FIFOScheduler()


_COMPUTE_REFS: dict[str, dict[str, Any]] = {}


def compute_reference(space: Space, opts: SearchOptions) -> dict[str, Any]:
    """The compute budget's unit: GFLOPs of one kimg of the space's first point (the
    literature default), or of its fixed settings when it has no points."""
    from fashion_tune.flops import gflop_per_kimg

    fixed = resolve_fixed(space, opts)
    point = dict(space.points[0]) if space.points else {}
    cfg = space.config_for(point).with_overrides({"data.path": fixed["data.path"]})
    key = cfg.to_json()
    if key not in _COMPUTE_REFS:
        _COMPUTE_REFS[key] = {
            "gflop_per_kimg": gflop_per_kimg(cfg),
            "config": "points[0]" if point else "fixed",
            "arch": cfg.model.arch,
        }
    return dict(_COMPUTE_REFS[key])


SEARCH_FILE = layout.SEARCH_FILE  # the resolved space, beside Ray's own state


def describe_search(space: Space, opts: SearchOptions) -> dict[str, Any]:
    """What ``report`` needs to know about the search without importing Ray's pickles."""
    sch = space.scheduler
    return {
        "space_path": space.path,
        "space_yaml": Path(space.path).read_text(),
        "name": experiment_path(space, opts)[1],
        "metric": space.metric,
        "mode": space.mode,
        "fixed": resolve_fixed(space, opts),
        "params": [
            {
                "key": p.key,
                "kind": p.kind,
                "values": list(p.values),
                "low": p.low,
                "high": p.high,
                "step": p.step,
                "when": {k: list(v) for k, v in p.when},
            }
            for p in space.params
        ],
        "points": [dict(p) for p in space.points],
        "scheduler": {
            "type": sch.type,
            "max_kimg": space.max_kimg,
            "grace_kimg": sch.grace_kimg,
            "reduction_factor": sch.reduction_factor,
            "budget": sch.budget,
            "time_attr": sch.time_attr,
            "brackets": sch.brackets,
            "smooth": sch.smooth,
            "compute_ref": compute_reference(space, opts),
        },
        "searcher": space.searcher,
        "seed": space.seed,
        "num_samples": space.num_samples,
    }


def run_search(space: Space, opts: SearchOptions) -> Any:
    """Run (or resume) the search; returns its ResultGrid (``pipeline.run`` runs what the
    space asks for after it).

    Nothing is written before every check passed. A new experiment that fails before
    any trial reported is removed again, so its name is not blocked by a half-made one.
    """
    check_before_ray(space, opts)
    init_ray(opts.address)
    check_cluster(space, opts)
    exp = experiment_path(space, opts)[2]
    store = Store.open(exp)
    before = set(store.listdir())
    try:
        tuner = build_tuner(space, opts)
        if not opts.resume or not store.exists(SEARCH_FILE):
            desc = json.dumps(describe_search(space, opts), indent=1).encode()
            store.write_atomic(SEARCH_FILE, desc)
        grid = tuner.fit()
    except BaseException:
        if not opts.resume:
            _remove_half_made(store, before)
        raise
    return grid


def _remove_half_made(store: Store, before: set[str]) -> None:
    """Delete what a new experiment wrote if no trial got as far as a report."""
    new = set(store.listdir()) - before
    for name in new:
        sub = Store(store.fs, store.path(name), store.describe(name))
        if name == layout.LEDGER_DIR or sub.exists(layout.RESULT_FILE):
            return  # a trial reported: keep everything (it can be resumed)
    for name in new:
        path = store.path(name)
        info = store.fs.get_file_info(path)
        if info.type == pafs.FileType.Directory:
            store.fs.delete_dir(path)
        else:
            store.fs.delete_file(path)
    if not before and not store.listdir():
        store.fs.delete_dir(store.root)
