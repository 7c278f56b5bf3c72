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
from typing import Any

from ray.tune.experiment import Trial
from ray.tune.schedulers import TrialScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from fashion_tune.search import ray_private

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
        # bracket -> rung index -> trial id -> rung value
        self._rungs: list[list[dict[str, float]]] = [[] for _ in range(self.brackets)]
        self._promoted: list[list[set[str]]] = [[] for _ in range(self.brackets)]
        self._next: dict[str, int] = {}  # the next rung index a trial has not recorded
        self._hist: dict[str, list[float]] = {}  # recent finite objective values
        self._waiting: dict[str, int] = {}  # trial id -> rung index it waits at
        self._arrivals = 0
        self._exhausted = False  # the searcher has no configs left
        self._events: list[dict[str, Any]] = []  # pauses, promotions, prunes (for the report)
        self.changes = 0  # bumped by every rung record and event: "is there news to write"

    # -- rungs -----------------------------------------------------------------------------
    def level(self, bracket: int, k: int) -> float:
        return self.grace * self.eta ** (bracket + k)

    def _rung(self, bracket: int, k: int) -> dict[str, float]:
        while len(self._rungs[bracket]) <= k:
            self._rungs[bracket].append({})
            self._promoted[bracket].append(set())
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
        b, k = self._bracket_of[tid], self._waiting[tid]
        rung = self._rung(b, k)
        if tid in self._promoted[b][k] or not math.isfinite(rung.get(tid, math.nan)):
            return False
        quota = int(len(rung) / self.eta + EPS)
        if self._exhausted:  # no config will arrive: each rung's best goes on
            quota = max(1, quota)
        top = sorted(rung, key=lambda t: (self._key(rung[t]), t))[:quota]
        return tid in top

    def _best_candidate(self, candidates: list[str]) -> str | None:
        """The trial to promote among ``candidates``: highest rung first, then best value."""
        ok = [t for t in candidates if self.promotable(t)]
        if not ok:
            return None

        def order(t: str) -> tuple[float, float, str]:
            b, k = self._bracket_of[t], self._waiting[t]
            return (-self.level(b, k), self._key(self._rungs[b][k][t]), t)

        return min(ok, key=order)

    def _promote(self, tid: str, how: str) -> None:
        b, k = self._bracket_of[tid], self._waiting.pop(tid)
        self._promoted[b][k].add(tid)
        self._event("promoted", tid, b, k, how=how)

    def _event(self, kind: str, tid: str, b: int, k: int, **extra: Any) -> None:
        self.changes += 1
        value = self._rungs[b][k].get(tid, math.nan) if k < len(self._rungs[b]) else math.nan
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
        if tid not in self._bracket_of:
            self._bracket_of[tid] = self._arrivals % self.brackets
            self._arrivals += 1
        elif tid in self._waiting and trial.status == Trial.PENDING:
            # restored after a driver restart: Ray requeues it as PENDING; it still waits
            trial.set_status(Trial.PAUSED)

    def on_trial_result(self, tune_controller: Any, trial: Trial, result: dict) -> str:
        tid = trial.trial_id
        if tid not in self._bracket_of:  # a trial the scheduler never saw added
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
            self._rung(b, k)[tid] = smoothed(self._hist.get(tid, []), self.smooth)
            self.changes += 1
            reached, k = k, k + 1
        self._next[tid] = k
        if reached is None:
            return TrialScheduler.CONTINUE
        self._waiting[tid] = reached
        self._exhausted = self._exhausted or _searcher_finished(tune_controller)
        waiting_paused = [
            t.trial_id
            for t in tune_controller.get_trials()
            if t.status == Trial.PAUSED and t.trial_id in self._waiting
        ]
        if self._best_candidate([tid, *waiting_paused]) == tid:
            self._promote(tid, how="at once")
            return TrialScheduler.CONTINUE
        self._event("paused", tid, b, reached)
        _searcher_hook(tune_controller, "on_pause", tid)
        return TrialScheduler.PAUSE

    def on_trial_complete(self, tune_controller: Any, trial: Trial, result: dict) -> None:
        self._forget(trial.trial_id)

    def on_trial_error(self, tune_controller: Any, trial: Trial) -> None:
        self._forget(trial.trial_id)

    def on_trial_remove(self, tune_controller: Any, trial: Trial) -> None:
        tid = trial.trial_id
        if tid in self._waiting:
            b, k = self._bracket_of[tid], self._waiting[tid]
            self._event("pruned", tid, b, k)
        self._forget(tid)

    def _forget(self, tid: str) -> None:
        """A finished trial keeps its rung records (others are ranked against them)."""
        self._waiting.pop(tid, None)
        self._hist.pop(tid, None)

    def choose_trial_to_run(self, tune_controller: Any) -> Trial | None:
        self._exhausted = self._exhausted or _searcher_finished(tune_controller)
        trials = list(tune_controller.get_trials())
        paused = [t for t in trials if t.status == Trial.PAUSED]
        for t in paused:  # paused by someone else (Ray, a user): not ours to hold
            if t.trial_id not in self._waiting:
                return t
        by_id = {t.trial_id: t for t in paused}
        pick = self._best_candidate(list(by_id))
        if pick is not None:
            self._promote(pick, how="resumed")
            _searcher_hook(tune_controller, "on_unpause", pick)
            return by_id[pick]
        for t in trials:
            if t.status == Trial.PENDING:
                return t
        busy = any(t.status in (Trial.RUNNING, Trial.PENDING) for t in trials)
        if paused and not busy and _searcher_finished(tune_controller):
            # no config left to start and none promotable: the waiting ones end as pruned
            for t in paused:
                tune_controller.stop_trial(t)
                ray_private.mark_trial_changed(tune_controller, t)  # saved as TERMINATED
        return None

    def debug_string(self) -> str:
        parts = []
        for b, rungs in enumerate(self._rungs):
            cells = [
                f"{self.level(b, k):g}: {len(r)} recorded, {len(self._promoted[b][k])} promoted"
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
            "rungs": [[dict(r) for r in rungs] for rungs in self._rungs],
            "promoted": [[sorted(p) for p in ps] for ps in self._promoted],
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
        self._reset()
        self._bracket_of = dict(state["bracket_of"])
        for b, rungs in enumerate(state["rungs"][: self.brackets]):
            self._rungs[b] = [dict(r) for r in rungs]
            self._promoted[b] = [set(p) for p in state["promoted"][b]]
        self._next = dict(state["next"])
        self._hist = {k: list(v) for k, v in state["hist"].items()}
        self._waiting = dict(state["waiting"])
        self._arrivals = int(state["arrivals"])
        self._exhausted = bool(state.get("exhausted", False))
        self._events = list(state.get("events", []))

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
