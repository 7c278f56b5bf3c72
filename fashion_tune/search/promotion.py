"""Promotion-based ASHA (Li et al., MLSys 2020) on Ray Tune's public scheduler API.

Ray's ``AsyncHyperBandScheduler`` *stops* a trial for good on one comparison at a rung,
and lets the first arrivals through unchallenged. The paper's algorithm *promotes*
instead, and that is what this scheduler does:

* a trial that reaches a rung records its value there and **pauses** on that tick's
  checkpoint (``PAUSE``), freeing its slot;
* a free slot (``choose_trial_to_run``) resumes the best paused trial that is in the top
  ``1/eta`` of its rung (highest rung first); only when none is promotable does a new
  config start. A trial that is promotable the moment it reaches a rung continues at once
  (the same decision, without a pause and resume);
* nothing waits for a rung to fill (asynchronous); with ``n`` records at a rung its top
  ``floor(n / eta)`` are promotable, so the first arrivals wait for competition;
* once the searcher has no configs left, each rung promotes at least its best trial (so a
  finite search still trains its leader to the full budget: with 6 configs and eta 2 the
  top rung would otherwise hold one trial and promote none); trials still paused when
  nothing runs and none is promotable end as pruned (``stop_trial``: the searcher hears of
  them with no result).

Rungs sit at ``grace * eta**k`` (``k >= 0``) in the unit of ``time_attr``: ``compute``
(training FLOPs in kimg of the reference config, so a 7x costlier config reaches each rung
after 1/7 of the kimg) or ``kimg``. With ``brackets > 1`` trials are dealt round-robin to
brackets whose first rung is ``grace * eta**b`` (Hyperband's hedge against a grace period
that is too short). A trial that reaches its full budget (``progress >= 1``) always runs
to the end.

A rung value is the mean of the trial's last ``smooth`` evaluations, not one tick: the
objective's tick-to-tick noise is of the size of the differences ASHA has to rank
(benchmarks/RESULTS.md, "Learning curves").

The searcher learns which trials wait at a rung through Ray's searcher hooks ``on_pause`` /
``on_unpause`` (``PausingLimiter`` below counts them out of ``max_concurrent``: paused trials
hold no slot). The scheduler's records ride in Ray's experiment state through
``SchedulerStateCallback`` in ``tuner.py``; a restored trial that was waiting at a rung is
put back to PAUSED, not started.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from fashion_tune.search import ray_private
from fashion_tune.search.rungs import Rung

logger = logging.getLogger("fashion_tune.search")
EPS = 1e-9
STATE_VERSION = 1


def smoothed(values: list[float], k: int) -> float:
    """Mean of the last ``k`` finite values (NaN when there are none)."""
    finite = [v for v in values if math.isfinite(v)][-k:]
    return sum(finite) / len(finite) if finite else math.nan


class PromotionAsha(TrialScheduler):
    """Asynchronous successive halving by promotion; see the module docstring."""

    def __init__(
        self,
        time_attr: str,
        metric: str,
        mode: str,
        grace: float,
        reduction_factor: float,
        brackets: int = 1,
        smooth: int = 2,
        max_t: float | None = None,
    ):
        super().__init__()
        if grace <= 0 or reduction_factor <= 1 or brackets < 1 or smooth < 1:
            raise ValueError("grace > 0, reduction_factor > 1, brackets >= 1, smooth >= 1")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be min or max, got {mode!r}")
        self.time_attr = time_attr
        self._metric = metric
        self._mode = mode
        self.grace = float(grace)
        self.eta = float(reduction_factor)
        self.brackets = int(brackets)
        self.smooth = int(smooth)
        self.max_t = max_t
        self._reset()

    def _reset(self) -> None:
        self._bracket_of: dict[str, int] = {}
        # bracket -> rung index -> the rung's records (rungs.py)
        self._rungs: list[list[Rung]] = [[] for _ in range(self.brackets)]
        self._next: dict[str, int] = {}  # the next rung index a trial has not recorded
        self._hist: dict[str, list[float]] = {}  # recent finite objective values
        self._waiting: dict[str, int] = {}  # trial id -> rung index it waits at
        self._arrivals = 0
        self._exhausted = False  # the searcher has no configs left
        self._events: list[dict[str, Any]] = []  # pauses, promotions, prunes (for the report)
        self.changes = 0  # bumped by every rung record and event: "is there news to write"
        # What Ray's controller would otherwise be scanned for at every decision (all its
        # trials, each step): the trial objects, the live ones (not ended), new or requeued
        # trials in arrival order (PENDING when added; checked lazily), and PAUSED trials
        # that are not waiting at a rung (paused by someone else, or resumed by us and not
        # yet started).
        self._objs: dict[str, Trial] = {}
        self._active: set[str] = set()  # live and not waiting at a rung
        self._queue: dict[str, None] = {}
        self._unheld: dict[str, None] = {}

    # -- rungs -----------------------------------------------------------------------------
    def level(self, bracket: int, k: int) -> float:
        return self.grace * self.eta ** (bracket + k)

    def _rung(self, bracket: int, k: int) -> Rung:
        while len(self._rungs[bracket]) <= k:
            self._rungs[bracket].append(Rung(self._key))
        return self._rungs[bracket][k]

    def _key(self, value: float) -> float:
        """Sort key: better first; NaN last."""
        if not math.isfinite(value):
            return math.inf
        return value if self._mode == "min" else -value

    def promotable(self, tid: str) -> bool:
        """Whether a trial waiting at a rung is in the top 1/eta there, not yet promoted."""
        if tid not in self._waiting:
            return False
        rung = self._rung(self._bracket_of[tid], self._waiting[tid])
        return rung.promotable(tid, self.eta, self._exhausted)

    def _best_candidate(self, ok: Callable[[str], bool]) -> str | None:
        """The waiting trial to promote among those ``ok`` accepts: highest rung first,
        then best value; one look per rung (rungs.py)."""
        best: tuple[float, float, str] | None = None
        for b, rungs in enumerate(self._rungs):
            for k, rung in enumerate(rungs):
                if not rung.waiting():
                    continue
                tid = rung.best_waiting(ok, self.eta, self._exhausted)
                if tid is not None:
                    order = (-self.level(b, k), self._key(rung.values[tid]), tid)
                    best = order if best is None or order < best else best
        return None if best is None else best[2]

    def _paused(self, tid: str) -> bool:
        t = self._objs.get(tid)
        return t is not None and t.status == Trial.PAUSED

    def _promote(self, tid: str, how: str) -> None:
        b, k = self._bracket_of[tid], self._waiting.pop(tid)
        self._rungs[b][k].promote(tid)
        self._active.add(tid)
        self._event("promoted", tid, b, k, how=how)

    def _event(self, kind: str, tid: str, b: int, k: int, **extra: Any) -> None:
        self.changes += 1
        rungs = self._rungs[b]
        value = rungs[k].values.get(tid, math.nan) if k < len(rungs) else math.nan
        self._events.append(
            {
                "event": kind,
                "trial_id": tid,
                "bracket": b,
                "rung": k,
                "level": self.level(b, k),
                "value": value if math.isfinite(value) else None,
                **extra,
            }
        )

    # -- Ray's TrialScheduler API ----------------------------------------------------------
    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        self._metric = metric or self._metric
        self._mode = mode or self._mode
        return True

    def on_trial_add(self, tune_controller: Any, trial: Trial) -> None:
        tid = trial.trial_id
        self._objs[tid] = trial
        if tid not in self._bracket_of:
            self._bracket_of[tid] = self._arrivals % self.brackets
            self._arrivals += 1
        if trial.status in (Trial.TERMINATED, Trial.ERROR):
            self._forget(tid)  # e.g. restored as ended although the saved records wait
            return
        if tid in self._waiting:
            if trial.status == Trial.PENDING:
                # restored after a driver restart: Ray requeues it as PENDING; it still waits
                trial.set_status(Trial.PAUSED)
            return
        self._active.add(tid)
        if trial.status == Trial.PAUSED:
            self._unheld[tid] = None
        else:  # new, restored or requeued after a failure: to the back of the queue
            self._queue.pop(tid, None)
            self._queue[tid] = None

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        tid = trial.trial_id
        if tid not in self._objs:  # a trial the scheduler never saw added
            self.on_trial_add(tune_controller, trial)
        value = result.get(self._metric)
        if isinstance(value, (int, float)) and math.isfinite(value):
            self._hist.setdefault(tid, []).append(float(value))
            self._hist[tid] = self._hist[tid][-self.smooth :]
        t = result.get(self.time_attr)
        if result.get("diverged") or not isinstance(t, (int, float)) or not math.isfinite(t):
            return TrialScheduler.CONTINUE  # a diverged trial ends by itself
        if float(result.get("progress", 0.0)) >= 1.0 - EPS:
            return TrialScheduler.CONTINUE  # at its full budget: let it finish
        b, k = self._bracket_of[tid], self._next.get(tid, 0)
        reached = None
        while t >= self.level(b, k) * (1 - EPS) and (
            self.max_t is None or self.level(b, k) < self.max_t * (1 - EPS)
        ):
            self._rung(b, k).record(tid, smoothed(self._hist.get(tid, []), self.smooth))
            self.changes += 1
            reached, k = k, k + 1
        self._next[tid] = k
        if reached is None:
            return TrialScheduler.CONTINUE
        self._waiting[tid] = reached
        self._active.discard(tid)
        self._rung(b, reached).wait(tid)
        self._exhausted = self._exhausted or _searcher_finished(tune_controller)
        # this trial, or one already paused at a rung (not one whose pause is in flight)
        if self._best_candidate(lambda c: c == tid or self._paused(c)) == tid:
            self._promote(tid, how="at once")
            return TrialScheduler.CONTINUE
        self._event("paused", tid, b, reached)
        _searcher_hook(tune_controller, "on_pause", tid)
        return TrialScheduler.PAUSE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self._forget(trial.trial_id)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._forget(trial.trial_id)  # a retried trial comes back through on_trial_add

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        tid = trial.trial_id
        if tid in self._waiting:
            b, k = self._bracket_of[tid], self._waiting[tid]
            self._event("pruned", tid, b, k)
        self._forget(tid)

    def _forget(self, tid: str) -> None:
        """A finished trial keeps its rung records (others are ranked against them)."""
        k = self._waiting.pop(tid, None)
        if k is not None:
            self._rungs[self._bracket_of[tid]][k].unwait(tid)
        self._hist.pop(tid, None)
        self._active.discard(tid)
        self._queue.pop(tid, None)
        self._unheld.pop(tid, None)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        """A paused trial not ours to hold, else the best promotable one, else the oldest
        PENDING trial; O(rungs + log n) however many trials the search holds."""
        self._exhausted = self._exhausted or _searcher_finished(tune_controller)
        for tid in list(self._unheld):  # paused by someone else: not ours to hold
            if self._paused(tid) and tid not in self._waiting:
                return self._objs[tid]
            del self._unheld[tid]
        pick = self._best_candidate(self._paused)
        if pick is not None:
            self._promote(pick, how="resumed")
            _searcher_hook(tune_controller, "on_unpause", pick)
            self._unheld[pick] = None  # until Ray starts it
            return self._objs[pick]
        while self._queue:  # oldest first; a trial that left PENDING leaves the queue
            tid = next(iter(self._queue))
            t = self._objs.get(tid)
            if t is not None and t.status == Trial.PENDING:
                return t
            del self._queue[tid]
        if self._waiting and _searcher_finished(tune_controller) and not self._busy():
            # no config left to start and none promotable: the waiting ones end as pruned
            for tid in list(self._waiting):
                t = self._objs.get(tid)
                if t is None:  # in the restored records, not among Ray's restored trials
                    self._forget(tid)
                    continue
                tune_controller.stop_trial(t)
                ray_private.mark_trial_changed(tune_controller, t)  # saved as TERMINATED
        return None

    def _busy(self) -> bool:
        """Whether any trial runs or may start: a live trial not waiting at a rung, or a
        waiting one whose pause is still in flight (scanned only when none is active)."""
        return bool(self._active) or not all(
            self._paused(t) or t not in self._objs for t in self._waiting
        )

    def debug_string(self) -> str:
        parts = []
        for b, rungs in enumerate(self._rungs):
            cells = [
                f"{self.level(b, k):g}: {len(r)} recorded, {len(r.promoted)} promoted"
                for k, r in enumerate(rungs)
            ]
            parts.append(f"bracket {b}: " + ("; ".join(cells) or "no records"))
        return (
            f"Promotion ASHA ({self.time_attr}, eta {self.eta:g}, "
            f"{len(self._waiting)} paused at a rung) " + " | ".join(parts)
        )

    # -- state (saved with Ray's experiment state by SchedulerStateCallback) ---------------
    def get_state(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "bracket_of": dict(self._bracket_of),
            "rungs": [[dict(r.values) for r in rungs] for rungs in self._rungs],
            "promoted": [[sorted(r.promoted) for r in rungs] for rungs in self._rungs],
            "next": dict(self._next),
            "hist": {k: list(v) for k, v in self._hist.items()},
            "waiting": dict(self._waiting),
            "arrivals": self._arrivals,
            "exhausted": self._exhausted,
            "events": list(self._events),
        }

    def set_state(self, state: dict[str, Any] | None) -> None:
        if not state or state.get("version") != STATE_VERSION:
            return
        trials = list(self._objs.values())
        self._reset()
        self._bracket_of = dict(state["bracket_of"])
        for b, rungs in enumerate(state["rungs"][: self.brackets]):
            for k, (values, promoted) in enumerate(zip(rungs, state["promoted"][b])):
                rung = self._rung(b, k)
                for tid, value in values.items():
                    rung.record(tid, math.nan if value is None else float(value))
                rung.promoted.update(promoted)
        self._next = dict(state["next"])
        self._hist = {k: list(v) for k, v in state["hist"].items()}
        self._waiting = dict(state["waiting"])
        for tid, k in self._waiting.items():
            self._rung(self._bracket_of[tid], k).wait(tid)
        self._arrivals = int(state["arrivals"])
        self._exhausted = bool(state.get("exhausted", False))
        self._events = list(state.get("events", []))
        for trial in trials:  # trials Ray added before: sorted into queue / rungs again
            self.on_trial_add(None, trial)

    def summary(self) -> dict[str, Any]:
        """What the report shows: settings, rung records, and the event log."""
        return {
            "type": "asha",
            "time_attr": self.time_attr,
            "grace": self.grace,
            "reduction_factor": self.eta,
            "brackets": self.brackets,
            "smooth": self.smooth,
            **self.get_state(),
        }


def _searcher_hook(tune_controller: Any, name: str, trial_id: str) -> None:
    """Tell the searcher a trial paused / resumed (Ray's BOHB hooks; others ignore it)."""
    searcher = getattr(getattr(tune_controller, "search_alg", None), "searcher", None)
    hook = getattr(searcher, name, None)
    if hook is not None:
        hook(trial_id)


def _searcher_finished(tune_controller: Any) -> bool:
    search_alg = getattr(tune_controller, "search_alg", None)
    return bool(search_alg is None or search_alg.is_finished())


class PausingLimiter(ConcurrencyLimiter):
    """Ray's ConcurrencyLimiter, except that trials paused at a rung hold no slot.

    With Ray's own limiter, ``max_concurrent`` paused trials would stop the searcher from
    proposing anything, while no slot is busy.
    """

    def __init__(self, searcher: Any, max_concurrent: int):
        super().__init__(searcher, max_concurrent=max_concurrent)
        self.paused: set[str] = set()

    def suggest(self, trial_id: str) -> dict | None:
        if not self._limit_concurrency:
            return self.searcher.suggest(trial_id)
        if len(self.live_trials - self.paused) >= self.max_concurrent:
            return None
        suggestion = self.searcher.suggest(trial_id)
        if suggestion not in (None, Searcher.FINISHED):
            self.live_trials.add(trial_id)
            self.num_unfinished_live_trials += 1
        return suggestion

    def on_trial_complete(
        self, trial_id: str, result: dict | None = None, error: bool = False
    ) -> None:
        self.paused.discard(trial_id)
        super().on_trial_complete(trial_id, result=result, error=error)

    def on_pause(self, trial_id: str) -> None:
        if trial_id in self.live_trials:
            self.paused.add(trial_id)

    def on_unpause(self, trial_id: str) -> None:
        self.paused.discard(trial_id)
