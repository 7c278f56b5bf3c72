"""Replay real Ray Tune schedulers against recorded learning curves (issue 10, part 6).

Syne Tune's simulator backend is the model: instead of training, a trial's next tick is
looked up in the curves that ``benchmarks/record_curves.py`` recorded, and a simulated clock
advances by that tick's measured seconds. The schedulers are the real objects (fashion-tune's
``PromotionAsha``, Ray's ``AsyncHyperBandScheduler`` and ``FIFOScheduler``), driven through
Ray Tune's ``TrialScheduler`` API by :class:`SimController`, which offers what schedulers use
of Ray's ``TuneController``: ``get_trials()``, ``stop_trial``, ``pause_trial``,
``_set_trial_status`` and ``search_alg.is_finished()``.

How the simulated search runs, as on Ray with a concurrency-limited searcher:

* ``workers`` slots. Whenever one is free the controller asks ``choose_trial_to_run``; a
  PAUSED trial it picks resumes after ``resume_overhead_s`` (its checkpoint is restored), a
  PENDING one starts. There is always exactly one PENDING new trial while configs are left
  (the next in the arrival ``order``), as with Ray's searcher behind a concurrency limiter.
* A tick of a trial occupies its slot for the tick's recorded training + evaluation
  seconds; then the scheduler sees its result (``kimg``, ``compute``, ``fd``, ``progress``,
  ``training_iteration``, ``diverged``, as fashion-tune's trainable reports) and says
  CONTINUE, PAUSE or STOP. A trial whose curve ends (full budget, or diverged) completes
  (``on_trial_complete``), whatever the decision.
* Trials stopped or paused keep their compute; a trial still PAUSED when nothing can run
  is stopped by the controller (a scheduler should have done it; counted in ``leftover``).

``compute`` is a tick's cumulative training GFLOPs divided by the GFLOPs of one kimg of the
reference config (config 0, the literature default): reference kimg.

``replay(curves, scheduler_factory, workers, order)`` returns a :class:`ReplayResult`; it
is deterministic for a given order. Import it from a test with ``benchmarks`` on
``sys.path``.

Run as a script, it replays each scheduler once over the recorded curves in record order and
prints a table (``benchmarks/search_efficiency.py`` is the study over many orders):
``.venv/bin/python benchmarks/replay.py [--workers 4] [--configs K]``. ``--smoke`` replays
the first 6 configs on 2 workers (a fraction of a second; the committed curves are only
read), to check the code path; its numbers mean nothing.
"""

from __future__ import annotations

import argparse
import heapq
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler

DEFAULT_CURVES = Path(__file__).resolve().parent / "data" / "curves_fmnist32.json"


# -- the recorded curves -------------------------------------------------------------------------
@dataclass(frozen=True)
class Curve:
    """One config's recorded run: per tick, cumulative kimg / GFLOPs and the tick's seconds."""

    index: int
    params: dict[str, Any]
    kimg: tuple[float, ...]
    fd: tuple[float, ...]  # NaN where the tick had no finite score
    seconds: tuple[float, ...]  # training + evaluation seconds of each tick
    gflop: tuple[float, ...]  # cumulative training GFLOPs
    progress: tuple[float, ...]
    diverged: tuple[int, ...]

    @property
    def ticks(self) -> int:
        return len(self.kimg)

    @property
    def finished(self) -> bool:
        """Reached its full budget (a diverged curve ends before)."""
        return bool(self.progress) and self.progress[-1] >= 1 - 1e-9 and not self.diverged[-1]

    @property
    def final_fd(self) -> float:
        return self.fd[-1] if self.finished else math.nan


@dataclass(frozen=True)
class Curves:
    curves: tuple[Curve, ...]
    ref_gflop_per_kimg: float  # GFLOPs of one kimg of config 0 (the compute unit)
    meta: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.curves)

    def compute(self, c: Curve, tick: int) -> float:
        return c.gflop[tick] / self.ref_gflop_per_kimg

    @property
    def best_final_fd(self) -> float:
        return min(c.final_fd for c in self.curves if math.isfinite(c.final_fd))

    @property
    def total_gflop(self) -> float:
        """Every config trained to its full budget (the FIFO baseline's compute)."""
        return sum(c.gflop[-1] for c in self.curves)

    @property
    def max_compute(self) -> float:
        return max(self.compute(c, c.ticks - 1) for c in self.curves)

    @property
    def max_kimg(self) -> float:
        return max(c.kimg[-1] for c in self.curves)

    def top(self, k: int) -> set[int]:
        """The k configs with the best final fd."""
        ranked = sorted(
            (i for i, c in enumerate(self.curves) if math.isfinite(c.final_fd)),
            key=lambda i: self.curves[i].final_fd,
        )
        return set(ranked[:k])

    def good(self, within: float) -> set[int]:
        """Configs whose final fd is within ``within`` of the best final fd (minimising)."""
        cut = self.best_final_fd * (1 + within)
        return {i for i, c in enumerate(self.curves) if c.final_fd <= cut}


def load_curves(path: str | Path = DEFAULT_CURVES) -> Curves:
    doc = json.loads(Path(path).read_text())
    curves = []
    for c in sorted(doc["configs"], key=lambda c: c["index"]):
        t = c["ticks"]
        curves.append(
            Curve(
                index=int(c["index"]),
                params=dict(c["params"]),
                kimg=tuple(float(x["kimg"]) for x in t),
                fd=tuple(math.nan if x["fd"] is None else float(x["fd"]) for x in t),
                seconds=tuple(float(x["train_s"]) + float(x["eval_s"]) for x in t),
                gflop=tuple(float(x["gflop"]) for x in t),
                progress=tuple(float(x["progress"]) for x in t),
                diverged=tuple(int(x.get("diverged", 0)) for x in t),
            )
        )
    by_index = {c["index"]: c for c in doc["configs"]}
    if 0 not in by_index:
        raise ValueError(f"{path}: config 0 (the compute reference) is not recorded")
    ref = float(by_index[0]["flops_per_image"]) * 1000 / 1e9
    meta = {k: v for k, v in doc.items() if k != "configs"}
    return Curves(tuple(curves), ref, meta)


# -- the simulated controller ----------------------------------------------------------------------
class _SearchAlg:
    """What schedulers ask of Ray's search algorithm: whether configs are left."""

    def __init__(self, n: int) -> None:
        self.n, self.handed_out = n, 0

    def is_finished(self) -> bool:
        return self.handed_out >= self.n


@dataclass
class TrialLog:
    config: int
    ticks: int = 0  # ticks trained
    status: str = "pending"  # finished, diverged, stopped (by the scheduler), pruned, leftover
    started_s: float = math.nan
    ended_s: float = math.nan
    pauses: int = 0
    resumes: int = 0


@dataclass
class ReplayResult:
    workers: int
    order: list[int]
    trials: list[TrialLog]
    total_gflop: float  # trained until the search ended
    end_s: float  # simulated wall time when the search ended
    reach_gflop: float  # GFLOPs spent when a good config first finished its full budget
    reach_s: float  # simulated wall time then (NaN: never)
    reach_config: int | None
    busy_s: float  # slot-seconds spent training, evaluating and resuming
    leftover: int  # trials the controller had to stop (still PAUSED when nothing could run)
    decisions: dict[str, int] = field(default_factory=dict)

    @property
    def reached(self) -> bool:
        return math.isfinite(self.reach_s)


class SimController:
    """The part of Ray's TuneController that schedulers use, on a simulated clock."""

    def __init__(
        self,
        curves: Curves,
        scheduler: TrialScheduler,
        workers: int,
        order: Sequence[int],
        resume_overhead_s: float = 2.0,
        start_overhead_s: float = 0.0,
        within: float = 0.05,
        good: set[int] | None = None,
    ) -> None:
        self.curves, self.scheduler, self.workers = curves, scheduler, workers
        self.order = list(order)
        self.resume_overhead_s, self.start_overhead_s = resume_overhead_s, start_overhead_s
        self.search_alg = _SearchAlg(len(self.order))
        self.good = curves.good(within) if good is None else set(good)
        self._trials: list[Trial] = []
        self._log: dict[str, TrialLog] = {}
        self._config: dict[str, int] = {}
        self._next_tick: dict[str, int] = {}
        self._events: list[tuple[float, int, str, int]] = []  # (end s, seq, trial id, tick)
        self._running: dict[str, tuple[float, float, float]] = {}  # id -> (start, end, gflop)
        self._seq = 0
        self.now = 0.0
        self.gflop_done = 0.0
        self.busy_s = 0.0
        self.leftover = 0
        self.decisions: dict[str, int] = {}
        self.reach: tuple[float, float, int] | None = None

    # -- what schedulers call ----------------------------------------------------------------
    def get_trials(self) -> list[Trial]:
        return self._trials

    def _set_trial_status(self, trial: Trial, status: str) -> None:
        trial.set_status(status)

    def pause_trial(self, trial: Trial, should_checkpoint: bool = True) -> None:
        if trial.status == Trial.RUNNING:
            self._cancel(trial)
        trial.set_status(Trial.PAUSED)

    def stop_trial(self, trial: Trial) -> None:
        """As Ray's: PENDING / PAUSED -> on_trial_remove; RUNNING -> on_trial_complete."""
        if trial.status in (Trial.TERMINATED, Trial.ERROR):
            return
        log = self._log[trial.trial_id]
        if trial.status in (Trial.PENDING, Trial.PAUSED):
            self.scheduler.on_trial_remove(self, trial)
            if log.status == "pending":
                log.status = "pruned" if log.ticks else "never started"
        else:
            self._cancel(trial)
            self.scheduler.on_trial_complete(self, trial, dict(trial.last_result))
            if log.status == "pending":
                log.status = "stopped"
        log.ended_s = self.now
        trial.set_status(Trial.TERMINATED)

    # -- the simulation ----------------------------------------------------------------------
    def _add_next_config(self) -> None:
        if self.search_alg.is_finished():
            return
        config = self.order[self.search_alg.handed_out]
        self.search_alg.handed_out += 1
        tid = f"c{config:03d}"
        trial = Trial("replay", config={"config": config}, trial_id=tid, stub=True)
        self._trials.append(trial)
        self._log[tid] = TrialLog(config)
        self._config[tid] = config
        self._next_tick[tid] = 0
        self.scheduler.on_trial_add(self, trial)

    def _pending_new(self) -> bool:
        # only a new config is ever PENDING here, and only the newest (one at a time)
        return bool(self._trials) and self._trials[-1].status == Trial.PENDING

    def _cancel(self, trial: Trial) -> None:
        """A running trial's current tick is abandoned (only when a scheduler pauses or stops
        a trial between results; the compute already spent on it is counted)."""
        if trial.trial_id in self._running:
            start, end, gflop = self._running.pop(trial.trial_id)
            frac = (self.now - start) / (end - start) if end > start else 1.0
            self.gflop_done += gflop * min(max(frac, 0.0), 1.0)
            self._events = [e for e in self._events if e[2] != trial.trial_id]
            heapq.heapify(self._events)

    def _start_tick(self, trial: Trial, overhead: float) -> None:
        tid = trial.trial_id
        c = self.curves.curves[self._config[tid]]
        k = self._next_tick[tid]
        seconds = overhead + c.seconds[k]
        gflop = c.gflop[k] - (c.gflop[k - 1] if k else 0.0)
        self._running[tid] = (self.now + overhead, self.now + seconds, gflop)
        self.busy_s += seconds
        self._seq += 1
        heapq.heappush(self._events, (self.now + seconds, self._seq, tid, k))

    def _free_slots(self) -> int:
        return self.workers - len(self._running)

    def _fill_slots(self) -> None:
        while self._free_slots() > 0:
            if not self._pending_new():
                self._add_next_config()
            trial = self.scheduler.choose_trial_to_run(self)
            if trial is None:
                return
            log = self._log[trial.trial_id]
            if trial.status == Trial.PAUSED:
                log.resumes += 1
                overhead = self.resume_overhead_s
            elif trial.status == Trial.PENDING:
                log.started_s = self.now
                overhead = self.start_overhead_s
            else:
                raise RuntimeError(f"scheduler chose {trial} in status {trial.status}")
            trial.set_status(Trial.RUNNING)
            self._start_tick(trial, overhead)

    def _result(self, tid: str, k: int) -> dict[str, Any]:
        c = self.curves.curves[self._config[tid]]
        fd = c.fd[k]
        return {
            "kimg": c.kimg[k],
            "compute": self.curves.compute(c, k),
            "fd": fd,
            "progress": c.progress[k],
            "training_iteration": k + 1,
            "diverged": int(c.diverged[k] or not math.isfinite(fd)),
            "trial_id": tid,
        }

    def run(self) -> ReplayResult:
        by_id = {}
        self._add_next_config()
        self._fill_slots()
        while self._events:
            end, _, tid, k = heapq.heappop(self._events)
            self.now = end
            trial = by_id.get(tid) or next(t for t in self._trials if t.trial_id == tid)
            by_id[tid] = trial
            _, _, gflop = self._running.pop(tid)
            self.gflop_done += gflop
            log = self._log[tid]
            log.ticks = k + 1
            self._next_tick[tid] = k + 1
            c = self.curves.curves[self._config[tid]]
            result = self._result(tid, k)
            trial.update_last_result(result)
            decision = self.scheduler.on_trial_result(self, trial, result)
            self.decisions[decision] = self.decisions.get(decision, 0) + 1
            last = k + 1 >= c.ticks
            if last:  # the trainable returns: full budget or diverged
                self.scheduler.on_trial_complete(self, trial, result)
                trial.set_status(Trial.TERMINATED)
                log.status = "finished" if c.finished else "diverged"
                log.ended_s = self.now
                if self.reach is None and c.finished and self._config[tid] in self.good:
                    self.reach = (self.now, self.gflop_done, self._config[tid])
            elif decision == TrialScheduler.STOP:
                self.stop_trial(trial)
            elif decision == TrialScheduler.PAUSE:
                trial.set_status(Trial.PAUSED)
                log.pauses += 1
            else:
                self._start_tick(trial, 0.0)
            self._fill_slots()
            if not self._events:  # nothing runs: anything left waiting is stopped
                self._fill_slots()
                for t in self._trials:
                    if t.status in (Trial.PAUSED, Trial.PENDING):
                        self.leftover += 1
                        self.stop_trial(t)
                        self._log[t.trial_id].status = "leftover"
        return ReplayResult(
            workers=self.workers,
            order=self.order,
            trials=[self._log[t.trial_id] for t in self._trials],
            total_gflop=self.gflop_done,
            end_s=self.now,
            reach_gflop=self.reach[1] if self.reach else math.nan,
            reach_s=self.reach[0] if self.reach else math.nan,
            reach_config=self.reach[2] if self.reach else None,
            busy_s=self.busy_s,
            leftover=self.leftover,
            decisions=dict(self.decisions),
        )


def replay(
    curves: Curves,
    scheduler_factory: Callable[[], TrialScheduler],
    workers: int,
    order: Sequence[int],
    resume_overhead_s: float = 2.0,
    start_overhead_s: float = 0.0,
    within: float = 0.05,
    good: set[int] | None = None,
) -> ReplayResult:
    """One simulated search: a fresh scheduler, ``workers`` slots, configs in ``order``.
    "Reach" is the first full-budget finish of a config in ``good`` (positions in
    ``curves``; default: final fd within ``within`` of the best)."""
    sim = SimController(
        curves,
        scheduler_factory(),
        workers,
        order,
        resume_overhead_s=resume_overhead_s,
        start_overhead_s=start_overhead_s,
        within=within,
        good=good,
    )
    return sim.run()


# -- as a script: one replay per scheduler ------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    import numpy as np
    from _bench_common import SMOKE_HELP, smoke_banner

    parser = argparse.ArgumentParser(description="Replay each scheduler once over the curves.")
    parser.add_argument("--curves", type=Path, default=DEFAULT_CURVES)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--configs", type=int, help="only the first K recorded configs")
    parser.add_argument("--smoke", action="store_true", help=SMOKE_HELP)
    args = parser.parse_args(argv)
    if args.smoke:
        args.configs, args.workers = 6, 2
        smoke_banner("replay.py", "the first 6 recorded configs on 2 workers")
    from ray.tune.schedulers import AsyncHyperBandScheduler, FIFOScheduler

    from fashion_tune.search.promotion import PromotionAsha
    from fashion_tune.search.tuner import ASHA_STOP_MAX_T

    curves = load_curves(args.curves)
    if args.configs:
        curves = replace(curves, curves=curves.curves[: args.configs])
    grace = curves.compute(curves.curves[0], 0)  # one tick of config 0, in reference kimg
    schedulers: dict[str, Callable[[], TrialScheduler]] = {
        "fifo": FIFOScheduler,
        "ray-asha / compute": lambda: AsyncHyperBandScheduler(
            time_attr="compute",
            metric="fd",
            mode="min",
            max_t=ASHA_STOP_MAX_T,
            grace_period=grace,
            reduction_factor=3,
        ),
        "promotion / compute": lambda: PromotionAsha("compute", "fd", "min", grace, 3, smooth=2),
    }
    order = list(range(len(curves)))
    print(
        f"{len(curves)} configs of {args.curves.name} in record order, {args.workers} workers, "
        f"grace {grace:.3f} reference kimg, eta 3; compute as a fraction of every config at "
        "its full budget"
    )
    print()
    print(
        "| scheduler | compute | reached a good config | compute then | wall then (s) | end (s) |"
    )
    print("|---|---:|---|---:|---:|---:|")
    full = curves.total_gflop
    for name, factory in schedulers.items():
        np.random.seed(0)  # Ray's ASHA deals trials to brackets with np.random
        r = replay(curves, factory, args.workers, order)
        reach = f"#{curves.curves[r.reach_config].index}" if r.reach_config is not None else "never"
        print(
            f"| {name} | {r.total_gflop / full:.2f} | {reach} | {r.reach_gflop / full:.2f} | "
            f"{r.reach_s:.0f} | {r.end_s:.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
