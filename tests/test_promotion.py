"""Promotion ASHA's decisions, replayed against synthetic learning curves (no Ray workers).

The scheduler objects are the real ones (ours and Ray's); ``benchmarks/replay.py``'s
simulated controller plays the part of Ray's TuneController on a simulated clock. The live
search path (pauses, checkpoints, resume after a killed driver) is in ``test_search.py``.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
from ray.tune.experiment import Trial
from ray.tune.schedulers import AsyncHyperBandScheduler, TrialScheduler
from ray.tune.search import Searcher

from fashion_tune.search.promotion import PausingLimiter, PromotionAsha, smoothed

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from replay import Curve, Curves, replay

TICKS = 9  # per curve; a tick is 1 kimg; the reference config costs 1 GFLOP per kimg


def _curve(i: int, fds: list[float], cost: float = 1.0) -> Curve:
    n = len(fds)
    return Curve(
        index=i,
        params={"i": i},
        kimg=tuple(float(k + 1) for k in range(n)),
        fd=tuple(fds),
        seconds=tuple(cost for _ in range(n)),
        gflop=tuple(cost * (k + 1) for k in range(n)),
        progress=tuple((k + 1) / TICKS for k in range(n)),
        diverged=tuple(0 for _ in range(n)),
    )


def _flat(i: int, level: float, cost: float = 1.0) -> Curve:
    return _curve(i, [level + 0.01 * (TICKS - k) for k in range(TICKS)], cost)


def _promotion(**kw: Any) -> PromotionAsha:
    args: dict[str, Any] = dict(
        time_attr="compute", metric="fd", mode="min", grace=1, reduction_factor=3, smooth=1
    )
    return PromotionAsha(**{**args, **kw})


def _ray_asha() -> AsyncHyperBandScheduler:
    return AsyncHyperBandScheduler(
        time_attr="compute", metric="fd", mode="min", max_t=TICKS, grace_period=1,
        reduction_factor=3, brackets=1,
    )  # fmt: skip


def test_the_first_arrival_does_not_pass_unchallenged() -> None:
    """Ray's ASHA lets the first trial at a rung through (nothing to compare with); promotion
    ASHA makes it wait for competition, and a poor first arrival never trains to the end."""
    curves = Curves((_flat(0, 10.0), *(_flat(i, 2.0 + 0.1 * i) for i in range(1, 9))), 1.0)
    order = list(range(9))  # the worst config arrives first
    ray_run = replay(curves, _ray_asha, workers=1, order=order)
    ours = replay(curves, _promotion, workers=1, order=order)
    assert ray_run.trials[0].ticks == TICKS and ray_run.trials[0].status == "finished"
    assert ours.trials[0].ticks == 1 and ours.trials[0].status == "pruned"
    assert ours.reach_config == 1  # the best config is the one that trains to the end
    assert ours.total_gflop < ray_run.total_gflop
    assert ours.leftover == 0  # the scheduler ended its paused trials itself


def test_promoted_trials_resume_at_their_rung_and_the_leader_finishes() -> None:
    curves = Curves(tuple(_flat(i, 1.0 + 0.1 * i) for i in range(9)), 1.0)
    res = replay(curves, _promotion, workers=2, order=[1, 8, 7, 6, 0, 5, 4, 3, 2])
    by_config = {t.config: t for t in res.trials}
    assert by_config[0].status == "finished" and by_config[0].ticks == TICKS
    assert res.reach_config == 0
    # the others end paused at a rung (1 or 3 units), as pruned, none past its rung
    pruned = [t for t in res.trials if t.status == "pruned"]
    assert pruned and all(t.ticks in (1, 3) for t in pruned)
    assert sum(t.resumes for t in res.trials) >= 1  # someone waited, then was promoted
    assert res.total_gflop < curves.total_gflop / 2
    # asynchronous: promotions are made from the records so far, so an early arrival can
    # pass rung 1 that the final top third would not hold; the best always do
    assert {0, 1, 2} <= {t.config for t in res.trials if t.ticks >= 3}


def test_compute_budget_puts_costly_configs_on_the_same_rungs_sooner_in_kimg() -> None:
    """A config costing 9x the reference reaches the 3- and 9-unit rungs after 1 kimg."""
    sched = _promotion()
    curves = Curves((_flat(0, 1.0), _flat(1, 1.5, cost=9.0), _flat(2, 1.2)), 1.0)
    replay(curves, lambda: sched, workers=1, order=[1, 0, 2])
    state = sched.get_state()
    levels = {k: sched.level(0, k) for k in range(len(state["rungs"][0]))}
    costly = [levels[k] for k, rung in enumerate(state["rungs"][0]) if "c001" in rung]
    assert costly[:3] == [1.0, 3.0, 9.0]  # all recorded at its first tick (9 units)
    cheap = [levels[k] for k, rung in enumerate(state["rungs"][0]) if "c000" in rung]
    assert cheap[:2] == [1.0, 3.0]
    with_kimg = PromotionAsha("kimg", "fd", "min", 1, 3, smooth=1, max_t=TICKS)
    replay(curves, lambda: with_kimg, workers=1, order=[1, 0, 2])
    assert "c001" not in with_kimg.get_state()["rungs"][0][1]  # kimg: 1 kimg is rung 0 only


def test_brackets_hedge_a_grace_period_that_is_too_short() -> None:
    """A late bloomer: worst at 1 kimg, best from 3 kimg on. One bracket with grace 1 prunes
    it at its first rung; with two brackets (dealt round-robin), the one whose first rung
    is at 3 units keeps it."""
    bloomer = _curve(0, [9.0, 5.0] + [1.0 - 0.01 * k for k in range(TICKS - 2)])
    others = [_flat(i, 2.0 + 0.1 * i) for i in range(1, 12)]
    curves = Curves((bloomer, *others), 1.0)
    order = [1, 0, *range(2, 12)]  # the bloomer arrives second: bracket 1 of 2
    one = replay(curves, _promotion, workers=2, order=order)
    assert one.trials[1].ticks == 1 and one.reach_config != 0
    two = replay(curves, lambda: _promotion(brackets=2), workers=2, order=order)
    assert two.trials[1].config == 0 and two.trials[1].status == "finished"
    assert two.reach_config == 0


def test_smoothed_rung_values_are_the_mean_of_the_last_evaluations() -> None:
    assert smoothed([5.0, 3.0, 1.0], 2) == 2.0
    assert smoothed([5.0, math.nan, 1.0], 3) == 3.0  # NaN ticks are left out
    assert math.isnan(smoothed([math.nan], 2))
    # one lucky tick does not carry a trial over a steady better one when smoothing
    lucky = _curve(0, [3.0, 0.5] + [3.0] * (TICKS - 2))
    steady = _curve(1, [1.5, 1.4] + [1.0] * (TICKS - 2))
    filler = [_flat(i, 4.0 + i) for i in range(2, 6)]
    curves = Curves((lucky, steady, *filler), 1.0)

    def promoted_at_2(smooth: int) -> set[str]:
        sched = _promotion(grace=2, smooth=smooth)
        replay(curves, lambda: sched, workers=1, order=list(range(6)))
        return set(sched.get_state()["promoted"][0][0])

    assert promoted_at_2(1) == {"c000", "c001"}  # 6 records, quota 2: lucky gets in on 0.5
    sched = _promotion(grace=2, smooth=2, reduction_factor=6)
    replay(curves, lambda: sched, workers=1, order=list(range(6)))
    assert set(sched.get_state()["promoted"][0][0]) == {"c001"}  # mean 1.45 beats 1.75


class _Restarting(TrialScheduler):
    """Replaces the scheduler by a fresh one restored from its saved state at every result,
    as a driver restart does (the state must carry everything a decision depends on), and
    adds every trial to it again, as Ray does after restoring the callbacks' state."""

    def __init__(self, make: Any) -> None:
        self.make, self.inner = make, make()

    def _restart(self, tc: Any) -> None:
        state = self.inner.get_state()
        self.inner = self.make()
        self.inner.set_state(state)
        for trial in tc.get_trials():
            self.inner.on_trial_add(tc, trial)

    def on_trial_add(self, tc: Any, trial: Trial) -> None:
        self.inner.on_trial_add(tc, trial)

    def on_trial_result(self, tc: Any, trial: Trial, result: dict) -> str:
        self._restart(tc)
        return self.inner.on_trial_result(tc, trial, result)

    def on_trial_complete(self, tc: Any, trial: Trial, result: dict) -> None:
        self.inner.on_trial_complete(tc, trial, result)

    def on_trial_remove(self, tc: Any, trial: Trial) -> None:
        self.inner.on_trial_remove(tc, trial)

    def choose_trial_to_run(self, tc: Any) -> Trial | None:
        self._restart(tc)
        return self.inner.choose_trial_to_run(tc)


def test_saved_state_carries_every_decision() -> None:
    curves = Curves(
        tuple(_curve(i, [2 + math.sin(i * k) * 0.5 + 3 / (k + 1) for k in range(TICKS)],
                     cost=1 + i % 3) for i in range(14)),
        1.0,
    )  # fmt: skip
    order = [5, 3, 11, 0, 7, 13, 1, 9, 2, 12, 4, 8, 6, 10]

    def make() -> PromotionAsha:
        return _promotion(brackets=2, smooth=2)

    plain = replay(curves, make, workers=3, order=order)
    restarted = replay(curves, lambda: _Restarting(make), workers=3, order=order)
    assert [(t.config, t.ticks, t.status) for t in restarted.trials] == [
        (t.config, t.ticks, t.status) for t in plain.trials
    ]
    assert restarted.total_gflop == plain.total_gflop


def test_a_restored_trial_waiting_at_a_rung_goes_back_to_paused() -> None:
    sched = _promotion()
    trial = Trial("replay", config={}, trial_id="t1", stub=True)
    sched.on_trial_add(None, trial)
    sched.set_state({**sched.get_state(), "waiting": {"t1": 0}})
    trial.set_status(Trial.PENDING)  # Ray requeues unfinished trials as PENDING
    sched.on_trial_add(None, trial)
    assert trial.status == Trial.PAUSED


class _Counting(Searcher):
    def __init__(self) -> None:
        super().__init__(metric="fd", mode="min")
        self.n = 0

    def suggest(self, trial_id: str) -> dict | None:
        self.n += 1
        return {"x": self.n}

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False):
        pass


def test_paused_trials_hold_no_slot_of_max_concurrent() -> None:
    limiter = PausingLimiter(_Counting(), max_concurrent=2)
    assert limiter.suggest("a") and limiter.suggest("b")
    assert limiter.suggest("c") is None  # two running: full
    limiter.on_pause("a")
    assert limiter.suggest("c") == {"x": 3}  # a waits at a rung: its slot is free
    assert limiter.suggest("d") is None
    limiter.on_unpause("a")  # promoted: a runs again
    limiter.on_trial_complete("b")
    assert limiter.suggest("d") is None  # a and c run
    limiter.on_trial_complete("a")
    assert limiter.suggest("d") == {"x": 4}


@pytest.mark.parametrize("bad", [dict(grace=0), dict(reduction_factor=1), dict(smooth=0)])
def test_bad_settings_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        _promotion(**bad)


def test_make_scheduler_builds_each_type(tmp_path: Path) -> None:
    import yaml

    from fashion_tune.search.space import load_space
    from fashion_tune.search.tuner import ASHA_STOP_MAX_T, make_scheduler

    def space(**sched: Any) -> Any:
        path = tmp_path / "s.yaml"
        doc = {"fixed": {"schedule.total_kimg": 8}, "scheduler": sched}
        path.write_text(yaml.safe_dump(doc))
        return load_space(path)

    ours = make_scheduler(space(type="asha", grace_kimg=2, brackets=2, smooth=3))
    assert isinstance(ours, PromotionAsha)
    assert (ours.time_attr, ours.brackets, ours.smooth, ours.max_t) == ("compute", 2, 3, None)
    assert make_scheduler(space(type="asha", budget="kimg")).max_t == 8
    ray_s = make_scheduler(space(type="asha-stop", budget="compute", grace_kimg=2))
    assert isinstance(ray_s, AsyncHyperBandScheduler)
    assert ray_s._time_attr == "compute" and ray_s._max_t == ASHA_STOP_MAX_T
    assert type(make_scheduler(space(type="fifo"))).__name__ == "FIFOScheduler"


def test_optuna_hears_pruned_complete_and_failed_with_smoothed_values(tmp_path: Path) -> None:
    """The searcher's side, on a real Optuna journal: PRUNED (paused at a rung, or stopped),
    COMPLETE with the smoothed final value, FAIL for a diverged trial."""
    import optuna

    from fashion_tune.search.searcher import PrunedAwareOptunaSearch, journal_storage, load_study

    exp = tmp_path / "exp"
    exp.mkdir()
    space = {"x": optuna.distributions.FloatDistribution(0.0, 1.0)}
    searcher = PrunedAwareOptunaSearch(
        space=space, metric="fd", mode="min", study_name="exp",
        storage=journal_storage(str(exp)), max_kimg=4, smooth=2,
        sampler=optuna.samplers.RandomSampler(seed=0),
    )  # fmt: skip
    for tid in "abcd":
        assert searcher.suggest(tid) is not None

    def tick(tid: str, it: int, fd: float, progress: float) -> dict:
        result = {"fd": fd, "training_iteration": it, "progress": progress, "kimg": 4 * progress}
        searcher.on_trial_result(tid, result)
        return result

    tick("a", 1, 10.0, 0.25)
    tick("a", 2, 6.0, 0.5)
    searcher.on_trial_complete("a")  # ended paused at a rung: no result
    tick("b", 1, 9.0, 0.5)
    searcher.on_trial_complete("b", tick("b", 2, 7.0, 0.75))  # stopped by Ray's ASHA
    tick("c", 1, 5.0, 0.5)
    searcher.on_trial_complete("c", tick("c", 2, 3.0, 1.0))  # the full budget
    searcher.on_trial_complete("d", {"fd": math.nan, "training_iteration": 1, "diverged": 1})
    searcher.on_trial_complete("c", {"fd": 1.0})  # told twice: ignored

    study = load_study(exp, "exp")
    by_ray = {t.user_attrs["ray_trial_id"]: t for t in study.trials}
    assert {k: t.state.name for k, t in by_ray.items()} == {
        "a": "PRUNED", "b": "PRUNED", "c": "COMPLETE", "d": "FAIL",
    }  # fmt: skip
    assert by_ray["a"].intermediate_values == {1: 10.0, 2: 8.0}  # mean of the last 2
    assert by_ray["b"].intermediate_values[2] == 8.0
    assert by_ray["c"].value == 4.0  # the smoothed final value
