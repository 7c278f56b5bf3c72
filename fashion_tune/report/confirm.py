"""Seed confirmation: do the search's winners hold up when trained again with fresh seeds?

``fashion-tune confirm`` (or a space's ``confirm:`` section) retrains the top-k configs
and the literature default with S fresh seeds at the full budget, as a Ray Tune
experiment in ``<experiment>/confirm/`` (``fashion_tune.search.confirm``). This module
reads it back and says what it shows:

* each config's value of the objective at the full budget (the final tick), per seed;
  a seed that diverged or errored is a failure, never a number;
* per config the mean and a 95% Student-t interval of the mean, ranked by mean;
* whether #1 (by mean) beats the literature default beyond seed noise: the paired t-test
  over the seeds both finished (replica j of every config has seed j), one-sided, alpha
  0.05; Welch's unpaired test only when the seeds differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from fashion_tune import experiment_layout as layout
from fashion_tune.report.collect import Experiment, ReportError, TrialRecord, load_experiment
from fashion_tune.report.rank import EPS, finite

OPEN = ("pending", "running")  # a planned seed without a value yet (not a failure)
ALPHA = 0.05  # one-sided level of the "beats the default" test
LEVEL = 0.95  # confidence of the interval of each mean
# plan keys of a confirmation trial's Tune config (run_trial drops them before TrialConfig)
KEY_INDEX, KEY_CONFIG, KEY_REPLICA, KEY_LABEL = (
    "confirm.index",
    "confirm.config",
    "confirm.replica",
    "confirm.label",
)


# -- statistics ------------------------------------------------------------------------------
@dataclass(frozen=True)
class MeanCI:
    n: int
    mean: float
    sd: float | None  # sample standard deviation (None: one value)
    low: float | None  # 95% t-interval of the mean (None: fewer than 2 values)
    high: float | None


def mean_ci(values: list[float], level: float = LEVEL) -> MeanCI:
    """Mean and the Student-t interval ``mean +- t_{(1+level)/2, n-1} * sd / sqrt(n)``."""
    from scipy import stats

    n = len(values)
    if n == 0:
        raise ValueError("no values")
    mean = math.fsum(values) / n
    if n < 2:
        return MeanCI(n, mean, None, None, None)
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf((1 + level) / 2, n - 1)) * sd / math.sqrt(n)
    return MeanCI(n, mean, sd, mean - half, mean + half)


@dataclass(frozen=True)
class Welch:
    diff: float  # improvement of a over b: mean(b) - mean(a) for min, mean(a) - mean(b) for max
    t: float
    df: float
    p: float  # one-sided: P(an improvement this large | no true improvement)
    kind: str = "Welch"  # or "paired t" (paired_one_sided)
    pairs: int = 0  # seeds paired (paired t only)


def paired_one_sided(a: dict[int, float], b: dict[int, float], mode: str) -> Welch:
    """The paired t-test that ``a`` is better than ``b``, seed by seed (one-sided): the
    confirmation gives replica j of every config the same seed, so each seed's difference
    removes what that seed does to both (Welch's test ignores the pairing)."""
    from fashion_tune.report.paired import paired_compare

    p = paired_compare(b, a, mode)  # improvement of a over b, > 0 is better
    if p.n < 2 or p.mean_diff is None or p.t is None or p.p_t is None:
        raise ValueError("the paired test needs at least 2 seeds with a value on both sides")
    one = p.p_t / 2 if p.mean_diff > 0 else 1 - p.p_t / 2
    return Welch(p.mean_diff, p.t, float(p.n - 1), one, "paired t", p.n)


def welch_one_sided(a: list[float], b: list[float], mode: str) -> Welch:
    """Welch's t-test that ``a`` is better than ``b`` (lower for min, higher for max)."""
    from scipy import stats

    if len(a) < 2 or len(b) < 2:
        raise ValueError("Welch's test needs at least 2 values on each side")
    ma, mb = math.fsum(a) / len(a), math.fsum(b) / len(b)
    va = math.fsum((x - ma) ** 2 for x in a) / (len(a) - 1)
    vb = math.fsum((x - mb) ** 2 for x in b) / (len(b) - 1)
    diff = (mb - ma) if mode == "min" else (ma - mb)
    qa, qb = va / len(a), vb / len(b)
    se = math.sqrt(qa + qb)
    if se == 0:  # no spread at all: the difference is exact
        return Welch(diff, math.copysign(math.inf, diff) if diff else 0.0, math.inf,
                     0.0 if diff > 0 else 1.0)  # fmt: skip
    df = (qa + qb) ** 2 / (qa**2 / (len(a) - 1) + qb**2 / (len(b) - 1))
    t = diff / se
    return Welch(diff, t, df, float(stats.t.sf(t, df)))


# -- reading a confirmation ------------------------------------------------------------------
@dataclass
class SeedValue:
    seed: int | None
    value: float | None  # the objective at the full budget (None: see status)
    status: str  # ok | diverged | errored | running | pending | missing
    trial: str = ""  # trial folder


@dataclass
class ConfirmedConfig:
    label: str  # "search #2", "literature default", "search #1, literature default"
    source: str | None  # the search trial it came from (None: the default, not run as #k)
    search_rank: int | None
    is_default: bool
    params: dict[str, Any]
    seeds: list[SeedValue]
    stats: MeanCI | None = None  # over the seeds with a value
    rank: int | None = None  # by mean

    @property
    def values(self) -> list[float]:
        return [s.value for s in self.seeds if s.value is not None]

    @property
    def failed(self) -> int:
        return sum(1 for s in self.seeds if s.status in ("diverged", "errored"))


@dataclass
class Confirmation:
    present: bool
    metric: str
    mode: str
    top_k: int = 0
    n_seeds: int = 0
    configs: list[ConfirmedConfig] = field(default_factory=list)  # ranked by mean first
    missing: int = 0  # planned seeds without a value, not failed (still to run)
    verdict: str = ""
    test: Welch | None = None
    notes: list[str] = field(default_factory=list)
    command: str = ""  # how to run or finish it


def plan_of(exp: Experiment) -> dict[str, Any] | None:
    """The confirmation's plan (written before its first trial), or None when there is none."""
    from fashion_tune.report.collect import _read_json, sub_store

    sub = sub_store(exp.store, layout.CONFIRM_DIR)
    doc = _read_json(sub, layout.CONFIRM_FILE) if sub.exists(layout.CONFIRM_FILE) else None
    return doc if isinstance(doc, dict) else None


def final_value(rec: TrialRecord | None, seed: int | None, metric: str, budget: float) -> SeedValue:
    """One planned run's objective at the full budget, or why it has none (a nested
    experiment's run: the confirmation's and the ablation's)."""
    if rec is None:
        return SeedValue(seed, None, "pending")
    name = rec.folder or f"trial_{rec.trial_id}"
    if rec.error or rec.status == "ERROR":
        return SeedValue(seed, None, "errored", name)
    if any(finite(r.get("diverged")) for r in rec.rows):
        return SeedValue(seed, None, "diverged", name)
    last = rec.rows[-1] if rec.rows else None
    kimg = finite((last or {}).get("kimg"))
    if last is None or kimg is None or kimg < budget - EPS:
        return SeedValue(seed, None, "running" if rec.rows else "pending", name)
    value = finite(last.get(metric))
    if value is None:  # NaN / inf at the end without a divergence flag: a failure too
        return SeedValue(seed, None, "diverged", name)
    return SeedValue(seed, value, "ok", name)


def summarize(plan: dict[str, Any], trials: list[TrialRecord], experiment: str) -> Confirmation:
    """A confirmation's plan + its trial records -> per-config values, ranking and verdict."""
    metric, mode = str(plan["metric"]), str(plan["mode"])
    budget = float(plan["max_kimg"])
    seeds = [int(s) for s in plan["seeds"]]
    by_slot: dict[tuple[int, int], TrialRecord] = {}
    for t in trials:
        ci, ri = t.params.get(KEY_CONFIG), t.params.get(KEY_REPLICA)
        if isinstance(ci, int) and isinstance(ri, int):
            by_slot[(ci, ri)] = t
    conf = Confirmation(True, metric, mode, int(plan["top_k"]), len(seeds))
    conf.command = f"fashion-tune confirm {experiment}"
    for ci, c in enumerate(plan["configs"]):
        values = [
            final_value(by_slot.get((ci, ri)), seed, metric, budget)
            for ri, seed in enumerate(seeds)
        ]
        cc = ConfirmedConfig(
            str(c["label"]), c.get("source"), c.get("search_rank"), bool(c.get("default")),
            dict(c.get("params") or {}), values,
        )  # fmt: skip
        if cc.values:
            cc.stats = mean_ci(cc.values)
        conf.configs.append(cc)
    conf.missing = sum(
        1 for c in conf.configs for s in c.seeds if s.status in ("pending", "running")
    )
    scored = [c for c in conf.configs if c.stats is not None]
    sign = 1.0 if mode == "min" else -1.0
    scored.sort(key=lambda c: sign * c.stats.mean)  # type: ignore[union-attr]
    for i, c in enumerate(scored, 1):
        c.rank = i
    conf.configs = scored + [c for c in conf.configs if c.stats is None]
    conf.notes = [str(n) for n in plan.get("notes") or []]
    conf.verdict, conf.test = _verdict(conf)
    return conf


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _mean(c: ConfirmedConfig) -> str:
    return _fmt(c.stats.mean) if c.stats else "–"


def _verdict(conf: Confirmation) -> tuple[str, Welch | None]:
    """One sentence: does #1 by mean beat the literature default beyond seed noise?"""
    m = conf.metric
    ranked = [c for c in conf.configs if c.rank]
    default = next((c for c in conf.configs if c.is_default), None)
    if not ranked:
        return "No confirmation run has finished yet: nothing to compare.", None
    best = ranked[0]
    first = f"#1 by mean ({best.label})"
    if default is None:
        return (
            f"The space has no literature default (no points), so {first}, mean {m} "
            f"{_mean(best)}, is not compared against one.",
            None,
        )
    if best is default:
        runner = ranked[1] if len(ranked) > 1 else None
        tail = (
            f"; the best searched config, {runner.label}, averages {_mean(runner)}"
            if runner
            else ""
        )
        return (
            f"The literature default is #1 by mean ({m} {_mean(best)}){tail}: the search "
            "found nothing better across seeds.",
            None,
        )
    a, b = best.values, default.values
    pa = {v.seed: v.value for v in best.seeds if v.value is not None and v.seed is not None}
    pb = {v.seed: v.value for v in default.seeds if v.value is not None and v.seed is not None}
    paired = len(pa.keys() & pb.keys()) >= 2
    if not paired and (len(a) < 2 or len(b) < 2):
        return (
            f"Cannot tell yet whether {first} beats the literature default: it has "
            f"{len(a)} finished seed(s) and the default {len(b)}; the paired test needs at "
            "least 2 seeds finished by both.",
            None,
        )
    # the same seeds on both sides (the plan's design): paired; else Welch's unpaired test
    w = paired_one_sided(pa, pb, conf.mode) if paired else welch_one_sided(a, b, conf.mode)
    seeds = f"{w.pairs} paired seeds" if paired else f"{len(a)} and {len(b)} seeds"
    means = (
        f"mean {m} {_mean(best)} vs {_mean(default)}, difference {_fmt(w.diff)}, "
        f"one-sided {w.kind} p = {w.p:.2g} ({seeds})"
    )
    if w.p < ALPHA:
        return f"{first} beats the literature default beyond seed noise: {means}.", w
    return (
        f"{first} does not beat the literature default beyond seed noise: {means}; with "
        f"these seeds the difference cannot be told from seed-to-seed variation "
        f"(p >= {ALPHA:g}).",
        w,
    )


def read_confirmation(exp: Experiment) -> Confirmation:
    """The confirmation of an experiment as it is on storage (missing, partial or done)."""
    command = f"fashion-tune confirm {exp.location}"
    plan = plan_of(exp)
    if plan is None:
        return Confirmation(False, exp.metric, exp.mode, command=command)
    try:
        sub = load_experiment(f"{exp.location.rstrip('/')}/{layout.CONFIRM_DIR}")
        trials = sub.trials
    except ReportError:
        trials = []
    try:
        return summarize(plan, trials, exp.location)
    except (KeyError, TypeError, ValueError) as exc:
        conf = Confirmation(False, exp.metric, exp.mode, command=command)
        conf.notes.append(f"the confirmation's plan ({layout.CONFIRM_FILE}) is damaged: {exc}")
        return conf


def interval_text(s: MeanCI | None) -> str:
    if s is None:
        return "–"
    if s.low is None or s.high is None:
        return "– (1 seed)"
    return f"[{_fmt(s.low)}, {_fmt(s.high)}]"


def seed_text(v: SeedValue) -> str:
    if v.value is not None:
        return _fmt(v.value)
    return {"running": "not finished", "pending": "not run"}.get(v.status, v.status)


# -- display ---------------------------------------------------------------------------------
def context(conf: Confirmation | None, experiment: str) -> dict[str, Any]:
    """Display strings for the page and the Markdown (escaping is theirs)."""
    if conf is None or not conf.present:
        notes = list(conf.notes) if conf else []
        return {
            "present": False,
            "notes": notes,
            "command": f"fashion-tune confirm {experiment}",
        }
    better = "lower" if conf.mode == "min" else "higher"
    seeds = [v.seed for v in conf.configs[0].seeds] if conf.configs else []
    rows = []
    for c in conf.configs:
        rows.append(
            {
                "rank": c.rank or "–",
                "label": c.label,
                "source": c.source or "–",
                "default": c.is_default,
                "values": [(seed_text(v), v.status) for v in c.seeds],
                "mean": _fmt(c.stats.mean) if c.stats else "–",
                "interval": interval_text(c.stats),
                "n": f"{len(c.values)} of {len(c.seeds)}"
                + (f", {c.failed} failed" if c.failed else ""),
            }
        )
    failed = sum(c.failed for c in conf.configs)
    status = []
    if conf.missing:
        status.append(
            f"{conf.missing} of {len(conf.configs) * conf.n_seeds} planned runs have not "
            f"finished yet: `{conf.command}` resumes the confirmation."
        )
    if failed:
        status.append(
            f"{failed} run(s) diverged or errored: they count as failures, not as values."
        )
    about = (
        f"Each config retrained with {conf.n_seeds} fresh seeds (the same seeds for every "
        f"config, none used by the search) to the full budget; the value is {conf.metric} at "
        f"the final tick ({better} is better). Ranked by the mean over the finished seeds, "
        "with the 95% Student-t interval of that mean."
    )
    return {
        "present": True,
        "metric": conf.metric,
        "about": about,
        "seeds": seeds,
        "rows": rows,
        "verdict": conf.verdict,
        "status": status,
        "notes": conf.notes,
        "command": conf.command,
    }


def document(conf: Confirmation | None) -> dict[str, Any] | None:
    """The confirmation for leaderboard.json (full-precision numbers)."""
    if conf is None or not conf.present:
        return None
    return {
        "metric": conf.metric,
        "mode": conf.mode,
        "top_k": conf.top_k,
        "seeds": conf.n_seeds,
        "configs": [
            {
                "rank": c.rank,
                "label": c.label,
                "source": c.source,
                "search_rank": c.search_rank,
                "default": c.is_default,
                "params": c.params,
                "runs": [
                    {"seed": v.seed, "value": v.value, "status": v.status, "trial": v.trial}
                    for v in c.seeds
                ],
                "mean": c.stats.mean if c.stats else None,
                "ci95": [c.stats.low, c.stats.high] if c.stats else None,
            }
            for c in conf.configs
        ],
        "missing": conf.missing,
        "test": (
            {
                "kind": conf.test.kind,
                "diff": conf.test.diff,
                "t": conf.test.t,
                "df": conf.test.df,
                "p": conf.test.p,
                "pairs": conf.test.pairs,
            }
            if conf.test
            else None
        ),
        "verdict": conf.verdict,
        "notes": conf.notes,
    }
