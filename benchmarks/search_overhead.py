"""Search scheduling overhead (issue 4, benchmark a): run_search's wall time vs. trial compute.

N short trials (a tiny DCGAN on a 3,000-image Fashion-MNIST subset, a few seconds each on one
thread) go through ``fashion_tune.search.tuner.run_search`` on the embedded local Ray, 2 trials
at a time (``max_concurrent: 2``, 1 CPU per trial; the machine has 2 cores), FIFO scheduler,
Optuna searcher, storage in a temp folder. Every row runs the same N configurations, written to
the space YAML as ``points`` with ``num_samples: N``, so rows do identical work.

What is measured, per row
  wall      ``run_search(space, opts)`` from the call to its return: tuner set-up, searcher,
            actor starts, every trial, the final state write. Ray itself is started once,
            before the first row (``init_ray``); that start-up is reported on its own.
  compute   per trial, the time its worker spends inside the trainable. The benchmark swaps
            ``fashion_tune.search.trainable.run_trial`` (what ``make_trainable`` hands to
            Tune) for a wrapper around the real one that passes on every bound parameter
            and stamps ``time.time()`` on entry and exit in the trial's worker process. Outside
            it: the worker process start, unpickling, Ray's actor set-up and reset. Inside it:
            the trial's own set-up (shard set, models, metric reference), training, metric
            evaluation, checkpoints, and every ``tune.report`` call. The wrapper also times
            each ``tune.report`` and, within it, the wait for the driver: Tune's function
            trainables block in ``report`` until the driver has processed the result and
            asks for the next one (``synchronous_result_reporting``), and ``report`` first
            copies the checkpoint and the trial's artifacts into storage.
            "pure" compute = in-trainable time minus the time inside ``tune.report``: what
            the same trial needs without Tune. It is the denominator of the headline ratio.
            Tune's own ``time_total_s`` is shown beside it: it runs from the trainable's
            session start (actor set-up) to the last report, so it includes the report waits
            except the last one and misses the work after the last report.
  ratio     wall / (sum of pure compute / 2): 1.0 means both slots were busy computing from
            the first to the last second. The target is <= 1.2x. The same ratio against
            the in-trainable time is shown too (it books checkpoint copies and driver
            round trips as compute).
  where     the rest, wall - pure/2, split per slot (trials are assigned to 2 slots by their
            entry times): head (run_search's start to each slot's first trial entry: tuner
            and searcher set-up, the first actors), gaps between a slot's trials (actor
            start or reset, Tune's bookkeeping), time inside tune.report (storage copies and
            driver round trips) and tail (last exit to the return: the final state write,
            actor shutdown). The driver's own CPU time and its experiment-state writes
            (``TuneController.save_to_dir``, counted and timed by a patch) are listed too.

Rows (interleaved, the order rotated each repeat; the median over repeats is reported):
  reuse          reuse_actors=True, the experiment state written as ``init_ray`` sets it up
                 (adaptive: as often as it costs <= 5% of the driver,
                 ``ray_private.adaptive_state_writes``): what ``fashion-tune search`` does.
  no-reuse       the same with reuse_actors=False: a fresh worker process per trial.
  reuse, every step  reuse_actors=True with the state written at every controller step
                 (``TUNE_GLOBAL_CHECKPOINT_S=0``, fashion-tune's setting before the adaptive
                 writes), to show what the every-step writes cost.
  no Ray         the baseline: the same N configs through ``train()`` in a plain
                 ``multiprocessing`` pool of 2 spawned processes (pool start included),
                 with OMP_NUM_THREADS=1 as Ray gives its 1-CPU workers.

Run: ``.venv/bin/python benchmarks/search_overhead.py [--quick]`` (the full run takes ~6-10 min
on 2 cores, --quick ~1-2 min). No timing is asserted: this prints a table and the ratios.
``--smoke`` checks the code path in about a minute: every row with 2 one-tick trials of 64
images on a 500-image set; its numbers mean nothing.

Bytecode: with ``PYTHONDONTWRITEBYTECODE`` set and no ``__pycache__`` in the venv (uv does not
compile bytecode by default), every new process compiles torch, Ray and torch._dynamo (which
``torch.optim.Adam`` imports on first use) from source: here ~2 s more to import
fashion_tune.training and ~4 s more for the first train() in each fresh process.
A normal Python installation caches bytecode after the first run; to measure that on such a
machine without writing into the venv, run with ``env -u PYTHONDONTWRITEBYTECODE
PYTHONPYCACHEPREFIX=/tmp/pycache``. The header prints which case a run is.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from _bench_common import (
    SMOKE_HELP,
    SMOKE_IMAGES,
    env,
    loadavg,
    machine,
    smoke_banner,
    smoke_shards,
)

from fashion_tune.data.prepare import prepare
from fashion_tune.data.sources import SourceOptions
from fashion_tune.data.storage import cache_root

CONCURRENCY = 2
TARGET = 1.2  # wall / (sum of trial compute / concurrency)
SUBSET = 3000  # Fashion-MNIST images in the shard set the trials read
# a tiny trial: ~1 s per 1 kimg tick on one thread (the tests' tiny config, longer ticks)
FIXED: dict[str, Any] = {
    "data.batch_size": 32,
    "model.arch": "dcgan",
    "model.z_dim": 16,
    "model.g_width": 8,
    "model.d_width": 8,
    "metrics.num_samples": 128,
    "metrics.kid_subset_size": 64,
    "metrics.kid_subsets": 5,
    "runtime.threads": 1,
    "runtime.device": "cpu",
}
ROWS = ("reuse", "no-reuse", "reuse, every step")


@dataclass(frozen=True)
class Plan:
    trials: int
    ticks: int  # reports per trial
    tick_kimg: float
    repeats: int


FULL = Plan(trials=16, ticks=3, tick_kimg=1.024, repeats=2)
QUICK = Plan(trials=8, ticks=2, tick_kimg=1.024, repeats=1)
SMOKE = Plan(trials=2, ticks=1, tick_kimg=0.064, repeats=1)


@dataclass
class TrialTimes:
    enter: float  # time.time() in the worker
    exit: float
    in_report: float  # s inside tune.report (persist + wait)
    waiting: float  # s of that blocked on the driver
    first_report: float  # time.time() when the first tune.report was called
    pid: int
    time_total_s: float = 0.0  # Tune's, from the last result
    eval_s: float = 0.0  # metric evaluation (from the ticks' img_per_s and eval_frac)
    train_s: float = 0.0

    @property
    def inside(self) -> float:
        return self.exit - self.enter

    @property
    def pure(self) -> float:
        return self.inside - self.in_report


@dataclass
class Run:
    row: str
    rep: int
    wall: float = 0.0
    trials: list[TrialTimes] = field(default_factory=list)
    driver_cpu: float = 0.0
    state_writes: int = 0
    state_write_s: float = 0.0
    load: tuple[float, float] = (0.0, 0.0)  # 1-min load average before / after
    parts: dict[str, float] = field(default_factory=dict)

    @property
    def pure(self) -> float:
        return sum(t.pure for t in self.trials)

    @property
    def inside(self) -> float:
        return sum(t.inside for t in self.trials)

    @property
    def ratio(self) -> float:
        return self.wall / (self.pure / CONCURRENCY)

    @property
    def ratio_inside(self) -> float:
        return self.wall / (self.inside / CONCURRENCY)


# -- the timed trainable (runs in Ray's worker processes; pickled by value from __main__) -------
def make_timed_trial(log_dir: str) -> Callable[..., None]:
    def timed_trial(params: dict[str, Any], **bound: Any) -> None:
        # ``bound``: whatever make_trainable binds to run_trial with
        # tune.with_parameters (fixed, experiment, compute_ref, ...), handed on unchanged, so
        # this wrapper keeps working when run_trial gains a parameter
        from ray import tune
        from ray.train._internal import session as train_session

        from fashion_tune.search import trainable

        # stamped after the import: Ray imports the real trainable's module when it unpickles
        # it, before the trial starts, so a fresh worker's imports are not trial compute
        enter = time.time()
        spent = {"report": 0.0, "wait": 0.0, "first": 0.0}
        report, wait = tune.report, train_session._TrainSession._report_training_result

        def timed_report(*args: Any, **kwargs: Any) -> None:
            t = time.time()
            spent["first"] = spent["first"] or t
            try:
                report(*args, **kwargs)
            finally:
                spent["report"] += time.time() - t

        def timed_wait(self: Any, *args: Any, **kwargs: Any) -> None:
            t = time.time()
            try:
                wait(self, *args, **kwargs)
            finally:
                spent["wait"] += time.time() - t

        tune.report = timed_report  # run_trial looks tune.report up at each call
        train_session._TrainSession._report_training_result = timed_wait  # type: ignore[method-assign]
        trial_id = tune.get_context().get_trial_id()
        try:
            trainable.run_trial(params, **bound)
        finally:
            done = time.time()
            tune.report = report
            train_session._TrainSession._report_training_result = wait  # type: ignore[method-assign]
            times = TrialTimes(
                enter, done, spent["report"], spent["wait"], spent["first"], os.getpid()
            )
            Path(log_dir, f"{trial_id}.json").write_text(json.dumps(asdict(times)))

    return timed_trial


def make_recorder() -> Any:
    from ray.tune import Callback

    class Recorder(Callback):
        """Driver side: the last result of each trial."""

        def __init__(self) -> None:
            self.results: dict[str, list[dict[str, Any]]] = {}

        def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info):
            keep = ("kimg", "img_per_s", "eval_frac", "time_total_s")
            self.results.setdefault(trial.trial_id, []).append({k: result.get(k) for k in keep})

    return Recorder()


@contextlib.contextmanager
def timed_trainable(log_dir: str) -> Iterator[None]:
    """Driver side: the search hands Tune the timed wrapper instead of ``run_trial``.

    ``make_trainable`` looks ``fashion_tune.search.trainable.run_trial`` up when it builds
    the trainable; every loaded fashion_tune module holding that function is patched, so a
    module that imported it by name is covered too (``run_ray`` checks every trial was
    timed)."""
    from fashion_tune.search import trainable

    original = trainable.run_trial
    holders = [
        m
        for name, m in list(sys.modules.items())
        if name.startswith("fashion_tune.") and getattr(m, "run_trial", None) is original
    ]
    timed = make_timed_trial(log_dir)
    for m in holders:
        m.run_trial = timed  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for m in holders:
            m.run_trial = original  # type: ignore[attr-defined]


@contextlib.contextmanager
def count_state_writes(run: Run) -> Iterator[None]:
    """Count and time Ray's experiment-state writes (driver side)."""
    from ray.tune.execution.tune_controller import TuneController

    original = TuneController.save_to_dir

    def save_to_dir(self: Any) -> None:
        t = time.perf_counter()
        try:
            original(self)
        finally:
            run.state_writes += 1
            run.state_write_s += time.perf_counter() - t

    TuneController.save_to_dir = save_to_dir  # type: ignore[method-assign]
    try:
        yield
    finally:
        TuneController.save_to_dir = original  # type: ignore[method-assign]


# -- the runs ------------------------------------------------------------------------------------
def write_space(folder: Path, data: Path, plan: Plan) -> Path:
    """FIFO, Optuna, N fixed points; concurrency 2, 1 CPU per trial."""
    rng = np.random.default_rng(0)
    points = [
        {
            "optim.lr_g": float(f"{10 ** rng.uniform(-4, -3):.3g}"),
            "optim.lr_d": float(f"{10 ** rng.uniform(-4, -3):.3g}"),
            "loss.gan": str(rng.choice(["ns", "hinge"])),
        }
        for _ in range(plan.trials)
    ]
    space = {
        "name": "overhead",
        "objective": {"metric": "kid", "mode": "min"},
        "fixed": {
            **FIXED,
            "data.path": str(data),
            "schedule.total_kimg": plan.ticks * plan.tick_kimg,
            "schedule.tick_kimg": plan.tick_kimg,
        },
        "params": {
            "optim.lr_g": {"loguniform": [1.0e-4, 1.0e-3]},
            "optim.lr_d": {"loguniform": [1.0e-4, 1.0e-3]},
            "loss.gan": {"choice": ["ns", "hinge"]},
        },
        "points": points,
        "scheduler": {"type": "fifo"},
        "searcher": {"type": "optuna", "seed": 0},
        "num_samples": plan.trials,
        "max_concurrent": CONCURRENCY,
        "resources": {"cpu": 1, "gpu": 0},
    }
    path = folder / "overhead.yaml"
    path.write_text(yaml.safe_dump(space, sort_keys=False))
    return path


def slug(row: str) -> str:
    """A row's name as an experiment / folder name."""
    return re.sub(r"[^A-Za-z0-9_.]+", "-", row)


def run_ray(row: str, rep: int, space_path: Path, data: Path, work: Path) -> Run:
    from fashion_tune.search import tuner
    from fashion_tune.search.space import load_space

    run = Run(row, rep)
    log_dir = work / f"times-{slug(row)}-{rep}"
    log_dir.mkdir()
    recorder = make_recorder()
    opts = tuner.SearchOptions(
        storage=str(work / "results"),
        name=f"{slug(row)}-{rep}",
        data=str(data),
        verbose=0,
        callbacks=(recorder,),
        reuse_actors=row != "no-reuse",
    )
    space = load_space(space_path)
    # "reuse, every step" fixes Ray's period at 0; the other rows keep init_ray's setting
    period = (
        env("TUNE_GLOBAL_CHECKPOINT_S", "0")
        if row == "reuse, every step"
        else contextlib.nullcontext()
    )
    with timed_trainable(str(log_dir)), period, count_state_writes(run):
        run.load = (os.getloadavg()[0], 0.0)
        c0, t0 = time.process_time(), time.time()
        grid = tuner.run_search(space, opts)
        t1, c1 = time.time(), time.process_time()
        run.load = (run.load[0], os.getloadavg()[0])
    errors = [r.error for r in grid if r.error]
    if errors or len(grid) != space.num_samples:
        raise SystemExit(f"{row}: {len(errors)} failed trials of {len(grid)}: {errors[:1]}")
    timed = len(list(log_dir.glob("*.json")))
    if timed != space.num_samples:
        raise SystemExit(
            f"{row}: {timed} of {space.num_samples} trials ran the timing wrapper: the search "
            "no longer builds its trainable from fashion_tune.search.trainable.run_trial "
            "(see timed_trainable)"
        )
    run.wall, run.driver_cpu = t1 - t0, c1 - c0
    for f in sorted(log_dir.glob("*.json")):
        times = TrialTimes(**json.loads(f.read_text()))
        results = recorder.results.get(f.stem, [])
        times.time_total_s = float(results[-1]["time_total_s"]) if results else float("nan")
        times.train_s, times.eval_s = tick_split(results)
        run.trials.append(times)
    run.parts = where_it_goes(run, t0, t1)
    return run


def tick_split(results: list[dict[str, Any]]) -> tuple[float, float]:
    """(training s, evaluation s) of a trial from its ticks' img_per_s and eval_frac."""
    train_s = eval_s = 0.0
    prev = 0.0
    for r in results:
        t = (float(r["kimg"]) - prev) * 1000 / max(float(r["img_per_s"]), 1e-9)
        frac = min(float(r["eval_frac"]), 0.999)
        train_s, eval_s, prev = train_s + t, eval_s + t * frac / (1 - frac), float(r["kimg"])
    return train_s, eval_s


def _plain_init() -> None:
    import torch

    import fashion_tune.training  # noqa: F401  (warm: what a reused Ray actor has imported)

    torch.set_num_threads(1)


def _plain_trial(job: tuple[dict[str, Any], str]) -> dict[str, Any]:
    from fashion_tune.config import TrialConfig
    from fashion_tune.training import train

    overrides, folder = job
    enter = time.time()
    scratch = Path(tempfile.mkdtemp(prefix="overhead-ckpt-"))
    ticks: list[dict[str, Any]] = []
    try:
        train(
            TrialConfig().with_overrides(overrides),
            folder,
            report=lambda m, p: ticks.append({**m, "t": time.time()}),
            log=lambda _: None,
            checkpoint_root=scratch,
            keep_checkpoints=1,
        )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    done = time.time()
    train_s, eval_s = tick_split(ticks)
    first = ticks[0]["t"] if ticks else enter
    return {"times": (enter, done, 0.0, 0.0, first, os.getpid()), "split": (train_s, eval_s)}


def run_plain(rep: int, space_path: Path, data: Path, work: Path) -> Run:
    """The same configs through train() in a plain pool of 2 spawned processes, no Ray."""
    from fashion_tune.search.space import load_space

    space = load_space(space_path)
    fixed = {**space.fixed, "data.path": str(data)}
    jobs = [
        ({**fixed, **p}, str(work / f"plain-{rep}" / f"trial-{i:02d}"))
        for i, p in enumerate(space.points)
    ]
    run = Run("no Ray", rep)
    run.load = (os.getloadavg()[0], 0.0)
    c0, t0 = time.process_time(), time.time()
    # Ray gives a 1-CPU worker OMP_NUM_THREADS=1 (numpy's BLAS in the metrics included): do too
    with (
        env("OMP_NUM_THREADS", "1"),
        mp.get_context("spawn").Pool(CONCURRENCY, initializer=_plain_init) as pool,
    ):
        out = list(pool.imap_unordered(_plain_trial, jobs, chunksize=1))
    t1, c1 = time.time(), time.process_time()
    run.load = (run.load[0], os.getloadavg()[0])
    run.wall, run.driver_cpu = t1 - t0, c1 - c0
    run.trials = []
    for o in out:
        times = TrialTimes(*o["times"])
        times.train_s, times.eval_s = o["split"]
        run.trials.append(times)
    run.parts = where_it_goes(run, t0, t1)
    return run


def where_it_goes(run: Run, t0: float, t1: float) -> dict[str, float]:
    """wall - pure/2 split into head, gaps, report and tail (in wall seconds, i.e. slot-s / 2)."""
    free = [t0] * CONCURRENCY  # when each slot's last trial exited
    head = gaps = 0.0
    started = [False] * CONCURRENCY
    for t in sorted(run.trials, key=lambda t: t.enter):
        # the slot that freed up most recently before this entry (ties: the earliest)
        ready = [i for i in range(CONCURRENCY) if free[i] <= t.enter + 1e-3]
        slot = (
            max(ready, key=lambda i: free[i])
            if ready
            else min(range(CONCURRENCY), key=free.__getitem__)
        )
        gap = max(0.0, t.enter - free[slot])
        if started[slot]:
            gaps += gap
        else:
            head += gap
            started[slot] = True
        free[slot] = t.exit
    tail = sum(max(0.0, t1 - f) for f in free)
    report = sum(t.in_report for t in run.trials)
    parts = {"head": head, "gaps": gaps, "report": report, "tail": tail}
    return {k: v / CONCURRENCY for k, v in parts.items()}


# -- report --------------------------------------------------------------------------------------
def med(runs: list[Run], fn: Callable[[Run], float]) -> float:
    return statistics.median(fn(r) for r in runs)


def report(runs: list[Run], plan: Plan) -> tuple[str, dict[str, Any]]:
    n = plan.trials
    lines = [
        f"{n} trials x {plan.ticks} ticks of {plan.tick_kimg} kimg, concurrency {CONCURRENCY}; "
        f"median of {plan.repeats} repeat(s); times in s.",
        "",
        "| row | wall | sum in-trainable | sum pure compute | sum time_total_s | "
        "wall / (pure/2) | wall / (in-trainable/2) | state writes (s) | driver CPU |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    summary: dict[str, Any] = {}
    for row in (*ROWS, "no Ray"):
        rs = [r for r in runs if r.row == row]
        if not rs:
            continue
        total = med(rs, lambda r: sum(t.time_total_s for t in r.trials))
        ratio = med(rs, lambda r: r.ratio)
        spread = (
            f" ({min(r.ratio for r in rs):.2f}-{max(r.ratio for r in rs):.2f})"
            if len(rs) > 1
            else ""
        )
        writes = (
            f"{med(rs, lambda r: r.state_writes):,.0f} ({med(rs, lambda r: r.state_write_s):.1f})"
            if row != "no Ray"
            else "-"
        )
        lines.append(
            f"| {row} | {med(rs, lambda r: r.wall):.1f} | {med(rs, lambda r: r.inside):.1f} | "
            f"{med(rs, lambda r: r.pure):.1f} | {f'{total:.1f}' if row != 'no Ray' else '-'} | "
            f"**{ratio:.2f}x**{spread} | {med(rs, lambda r: r.ratio_inside):.2f}x | {writes} | "
            f"{med(rs, lambda r: r.driver_cpu):.1f} |"
        )
        summary[row] = {
            "wall": med(rs, lambda r: r.wall),
            "pure": med(rs, lambda r: r.pure),
            "ratio": ratio,
            "ratios": [r.ratio for r in rs],
            "met": ratio <= TARGET,
        }
    lines += [
        "",
        "Where wall - pure/2 goes (wall s; per trial in brackets), and the trials' own costs:",
        "",
        "| row | wall - pure/2 | head | gaps between trials | in tune.report (of it waiting) | "
        "tail | trial set-up: 1st in its process / later | eval / pure |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in (*ROWS, "no Ray"):
        rs = [r for r in runs if r.row == row]
        if not rs:
            continue

        def part(name: str, rs: list[Run] = rs) -> float:
            return statistics.median(r.parts[name] for r in rs)

        over = med(rs, lambda r: r.wall - r.pure / CONCURRENCY)
        waiting = med(rs, lambda r: sum(t.waiting for t in r.trials) / CONCURRENCY)
        first, later = setups(rs, plan.ticks)
        evals = med(rs, lambda r: sum(t.eval_s for t in r.trials) / max(r.pure, 1e-9))
        per = 2 / n  # wall seconds -> slot-seconds per trial
        lines.append(
            f"| {row} | {over:.1f} | {part('head'):.1f} | {part('gaps'):.1f} "
            f"({part('gaps') * per:.2f}) | {part('report'):.1f} ({waiting:.1f}) | "
            f"{part('tail'):.1f} | {first:.2f} / {'-' if math.isnan(later) else f'{later:.2f}'} | "
            + f"{evals:.0%} |"
        )
    return "\n".join(lines), summary


def setups(rs: list[Run], ticks: int) -> tuple[float, float]:
    """Median trial set-up (entry to the first report, less the first tick's training and
    evaluation), for the first trial a worker process runs and for the later ones."""
    first: list[float] = []
    later: list[float] = []
    for r in rs:
        seen: set[int] = set()
        for t in sorted(r.trials, key=lambda t: t.enter):
            setup = t.first_report - t.enter - (t.train_s + t.eval_s) / ticks
            (later if t.pid in seen else first).append(setup)
            seen.add(t.pid)
    nan = float("nan")
    return (statistics.median(first) if first else nan, statistics.median(later) if later else nan)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="8 trials, one repeat (~1-2 min)")
    parser.add_argument("--trials", type=int, help="trials per row")
    parser.add_argument("--repeats", type=int, help="repeats of every row")
    parser.add_argument("--data-dir", type=Path, help="where the shard subset is kept")
    parser.add_argument("--json", type=Path, help="also write the measurements here")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    base = SMOKE if args.smoke else QUICK if args.quick else FULL
    plan = Plan(
        args.trials or base.trials, base.ticks, base.tick_kimg, args.repeats or base.repeats
    )
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a local, localhost-only Ray
    data_dir: Path = args.data_dir or cache_root() / "bench-data"
    data_dir.mkdir(parents=True, exist_ok=True)

    info = machine()
    if args.smoke:
        smoke_banner(
            "search_overhead.py",
            f"{plan.trials} trials of {plan.ticks} tick(s) of {plan.tick_kimg} kimg, "
            f"{SMOKE_IMAGES} images, every row",
        )
    print("Search scheduling overhead benchmark" + (" (--quick)" if args.quick else ""))
    for k, v in info.items():
        print(f"  {k:<8} {v}")
    print(f"  plan     {asdict(plan)}")
    print(f"  load avg {loadavg()} (1/5/15 min) at the start")
    t_start = time.perf_counter()

    if args.smoke:
        data = smoke_shards()
    else:
        data = data_dir / f"shards-fmnist-32-{SUBSET}"
        prepare("fashion-mnist", None, str(data), SourceOptions(size=32, limit=SUBSET))
    from fashion_tune.metrics import reference

    t0 = time.perf_counter()
    # the metric feature net is trained once per shard set and cached: not part of any row
    reference.ensure(str(data), log=lambda _: None)
    if time.perf_counter() - t0 > 2:
        print(f"  metric feature net / real stats ready in {time.perf_counter() - t0:.0f} s (once)")

    from fashion_tune.search.tuner import init_ray

    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="fashion-tune-overhead-") as tmp:
        work = Path(tmp)
        space_path = write_space(work, data, plan)
        t0 = time.perf_counter()
        # init_ray(None) would join the cluster named in /tmp/ray/ray_current_cluster
        # (left by any `ray start` or test cluster) instead of starting its own
        with env("RAY_ADDRESS", "local"):
            init_ray(None)
        ray_init = time.perf_counter() - t0
        print(f"  ray init {ray_init:.1f} s (embedded local Ray; once, outside the rows)\n")
        rows = [*ROWS, "no Ray"]
        for rep in range(plan.repeats):
            shift = rep % len(rows)
            for row in rows[shift:] + rows[:shift]:  # rotate: no row always goes first
                if row == "no Ray":
                    run = run_plain(rep, space_path, data, work)
                else:
                    run = run_ray(row, rep, space_path, data, work)
                runs.append(run)
                print(
                    f"  rep {rep + 1}/{plan.repeats} {row:<12} wall {run.wall:6.1f} s, "
                    f"pure compute {run.pure:6.1f} s, ratio {run.ratio:.2f}x; "
                    f"load {run.load[0]:.2f} -> {run.load[1]:.2f}",
                    flush=True,
                )
        import ray

        ray.shutdown()

    table, summary = report(runs, plan)
    print()
    print(table)
    ours = summary["reuse"]
    verdict = "met" if ours["met"] else "MISSED"
    print(
        f"\nfashion-tune search (reuse_actors, adaptive state writes): wall / (pure compute / 2) = "
        f"{ours['ratio']:.2f}x, target <= {TARGET}x: {verdict}; against the no-Ray pool's "
        f"wall: {ours['wall'] / summary['no Ray']['wall']:.2f}x"
    )
    print(f"ray init (once) {ray_init:.1f} s")
    print(f"\ntotal {time.perf_counter() - t_start:.1f} s; load avg at the end {loadavg()}")
    if args.json:
        payload = {
            "machine": info,
            "quick": args.quick,
            "smoke": args.smoke,
            "plan": asdict(plan),
            "ray_init_s": ray_init,
            "runs": [{**asdict(r), "ratio": r.ratio} for r in runs],
            "summary": summary,
        }
        args.json.write_text(json.dumps(payload, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
