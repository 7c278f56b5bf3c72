"""Ranking: each trial by its best value over all ticks, its outcome, its best checkpoint.

A trial that ASHA stopped ends with an early, usually worse value; a trial's last
report says little about how good it got. So a trial is ranked by the best finite
value it ever reported, and its best checkpoint is the kept checkpoint with the best
value (Ray keeps the best few by the objective).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from fashion_tune.metrics.names import RULER, SCORES
from fashion_tune.report.collect import CheckpointInfo, Experiment, ReportError, TrialRecord

HIGHER_IS_BETTER = {"img_per_s", "featnet_acc"} | {k for k, lower in SCORES.items() if not lower}
KNOWN_METRICS = (*SCORES, "loss/d", "loss/g", "loss/sym", "img_per_s")
SYMMETRY_METRICS = ("sym_excess", "sym_gap", "sym_asym")
# Ray's bookkeeping columns: numeric but not metrics
RAY_COLUMNS = {
    "tick", "kimg", "timestamp", "training_iteration", "time_this_iter_s", "time_total_s",
    "pid", "time_since_restore", "iterations_since_restore", "done", "should_checkpoint",
    "diverged", "eval_frac",
}  # fmt: skip
EPS = 1e-6
FOLDER_MISSING = "folder missing"


@dataclass
class Entry:
    """One trial's line in the leaderboard."""

    trial: TrialRecord
    best: float | None  # best finite value over all ticks
    best_row: dict[str, Any] | None  # the report holding it
    last: float | None  # the last report's value (shown, never ranked on)
    kimg: float  # kimg reached
    outcome: str  # finished | stopped | diverged | errored | unfinished | pending | no results
    #              | other ruler (scored against a different metric reference: not ranked)
    #              | folder missing (only the ledger's last value is left: shown, not ranked)
    checkpoint: CheckpointInfo | None  # the best kept checkpoint
    rank: int | None = None  # 1-based; None: nothing to rank on

    @property
    def name(self) -> str:
        return self.trial.folder or f"trial_{self.trial.trial_id}"


def finite(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    try:
        f = float(v)
    except OverflowError:  # an integer beyond any float
        return None
    return f if math.isfinite(f) else None


def better(a: float, b: float, mode: str) -> bool:
    return a < b if mode == "min" else a > b


def best_of(rows: list[dict[str, Any]], metric: str, mode: str) -> tuple[float, dict] | None:
    """The best finite value of ``metric`` over ``rows`` (the earliest on ties)."""
    best: tuple[float, dict] | None = None
    for row in rows:
        v = finite(row.get(metric))
        if v is not None and (best is None or better(v, best[0], mode)):
            best = (v, row)
    return best


def available_metrics(exp: Experiment) -> list[str]:
    """Numeric metrics the trials reported (objectives first)."""
    seen: dict[str, None] = {}
    for t in exp.trials:
        for row in t.rows:
            for k, v in row.items():
                if k in RAY_COLUMNS:
                    continue
                if finite(v) is not None or (isinstance(v, float) and math.isnan(v)):
                    seen.setdefault(k, None)
    found = [m for m in KNOWN_METRICS if m in seen]
    return found + sorted(k for k in seen if k not in found)


def resolve_metric(exp: Experiment, metric: str | None, mode: str | None) -> tuple[str, str]:
    """The metric and mode to rank by; an unknown metric is a ReportError."""
    metric = metric or exp.metric
    have = available_metrics(exp)
    if have and metric not in have:
        raise ReportError(f"unknown metric {metric!r}; the trials report: {', '.join(have)}")
    if not have and metric not in (exp.metric, *KNOWN_METRICS):
        raise ReportError(f"unknown metric {metric!r}; no trial reported any metric yet")
    if mode is None:
        default = "max" if metric in HIGHER_IS_BETTER else "min"
        mode = exp.mode if metric == exp.metric else default
    if mode not in ("min", "max"):
        raise ReportError(f"--mode must be min or max, not {mode!r}")
    return metric, mode


def max_kimg(exp: Experiment) -> float | None:
    """The per-trial budget: the scheduler's max, else the trial configs' total_kimg."""
    if exp.search:
        v = finite((exp.search.get("scheduler") or {}).get("max_kimg"))
        if v:
            return v
    totals = [finite((t.config or {}).get("schedule", {}).get("total_kimg")) for t in exp.trials]
    found = [v for v in totals if v]
    return max(found) if found else None


def outcome(trial: TrialRecord, kimg: float, budget: float | None) -> str:
    if trial.error or trial.status == "ERROR":
        return "errored"
    if trial.folder is None and trial.rows:
        return FOLDER_MISSING
    if any(finite(r.get("diverged")) for r in trial.rows):
        return "diverged"
    if not trial.rows:
        return "pending" if trial.status == "PENDING" else "no results"
    if budget is not None and kimg >= budget - EPS:
        return "finished"
    if trial.status == "TERMINATED" or trial.in_ledger:
        return "stopped"
    return "unfinished"


def best_checkpoint(trial: TrialRecord, metric: str, mode: str) -> CheckpointInfo | None:
    """The kept checkpoint whose report has the best value (the newest if none has one)."""
    scored = [(finite((c.metrics or {}).get(metric)), c) for c in trial.checkpoints]
    good = [(v, c) for v, c in scored if v is not None]
    if good:
        pick = good[0]
        for v, c in good[1:]:
            if better(v, pick[0], mode):
                pick = (v, c)
        return pick[1]
    return trial.checkpoints[-1] if trial.checkpoints else None


def leaderboard(exp: Experiment, metric: str, mode: str) -> list[Entry]:
    """All trials: ranked ones by best value, then the rest in experiment order."""
    budget = max_kimg(exp)
    entries = []
    for t in exp.trials:
        # a trial whose folder is gone has only the last value our ledger kept: not a "best"
        found = best_of(t.rows, metric, mode) if t.folder is not None else None
        kimgs = [finite(r.get("kimg")) for r in t.rows]
        kimg = max((k for k in kimgs if k is not None), default=0.0)
        last = finite(t.rows[-1].get(metric)) if t.rows else None
        entries.append(
            Entry(
                t,
                found[0] if found else None,
                found[1] if found else None,
                last,
                kimg,
                outcome(t, kimg, budget),
                best_checkpoint(t, metric, mode),
            )
        )
    _unrank_other_rulers(exp, entries)
    ranked = [e for e in entries if e.best is not None]
    sign = 1.0 if mode == "min" else -1.0
    ranked.sort(key=lambda e: sign * (e.best or 0.0))  # stable: ties keep experiment order
    for i, e in enumerate(ranked, 1):
        e.rank = i
    return ranked + [e for e in entries if e.best is None]


def ruler_of(trial: TrialRecord) -> str | None:
    """The metric reference + settings that scored a trial's ticks (None: before rulers were
    recorded); a trial whose ticks disagree gets the newest tick's."""
    rulers = [r.get(RULER) for r in trial.rows if isinstance(r.get(RULER), str)]
    return rulers[-1] if rulers else None


def _unrank_other_rulers(exp: Experiment, entries: list[Entry]) -> None:
    """Scores made with different references are not comparable: rank only the trials
    scored with the most common ruler and say which were left out."""
    counts: dict[str | None, int] = {}
    for e in entries:
        if e.best is not None:
            r = ruler_of(e.trial)
            counts[r] = counts.get(r, 0) + 1
    if len(counts) <= 1:
        return
    main = max(counts, key=lambda r: counts[r])
    left = [e for e in entries if e.best is not None and ruler_of(e.trial) != main]
    for e in left:
        e.best, e.best_row, e.outcome = None, None, "other ruler"
    names = ", ".join(f"{e.name} ({ruler_of(e.trial) or 'none recorded'})" for e in left[:8])
    exp.warnings.append(
        f"{len(left)} trial(s) were scored against a different metric reference than the "
        f"{counts[main]} ranked ones (metric_ref {main or 'none recorded'}) and are not ranked "
        f"with them: {names}"
    )


def quality_metric(exp: Experiment, metric: str) -> str:
    """The 'quality' axis against symmetry: the ranking metric unless it is a symmetry one."""
    if metric not in SYMMETRY_METRICS:
        return metric
    return exp.metric if exp.metric not in SYMMETRY_METRICS else "fd"


def symmetry_metric(entries: list[Entry]) -> str:
    """sym_excess (asymmetry beyond real garments'), or sym_gap for older experiments."""
    have = any("sym_excess" in r for e in entries for r in e.trial.rows)
    return "sym_excess" if have else "sym_gap"


def pareto_front(points: list[tuple[str, float, float]]) -> list[str]:
    """Ids of the points no other point beats on both coordinates (both minimized)."""
    front = []
    for pid, x, y in points:
        dominated = any((x2 <= x and y2 <= y) and (x2 < x or y2 < y) for _, x2, y2 in points)
        if not dominated:
            front.append(pid)
    return front


def quality_vs_symmetry(
    entries: list[Entry], quality: str, mode: str
) -> tuple[list[tuple[str, float, float]], list[str]]:
    """(trial name, quality, symmetry) at each trial's best tick for ``quality`` and the
    Pareto front, over the trials of competitive quality only (the better half of the
    ranked trials, at least 3): blurred or collapsed generators are very symmetric, and
    a front made of them would say nothing."""
    sym = symmetry_metric(entries)
    scored = []
    for e in entries:
        if e.outcome == "other ruler":
            continue
        found = best_of(e.trial.rows, quality, mode)
        if found is not None:
            scored.append((e, found))
    scored.sort(key=lambda p: p[1][0] if mode == "min" else -p[1][0])
    keep = scored[: max(3, (len(scored) + 1) // 2)]
    pts = []
    for e, found in keep:
        gap = finite(found[1].get(sym))
        if gap is not None:
            pts.append((e.name, found[0], gap))
    sign = 1.0 if mode == "min" else -1.0
    front = pareto_front([(n, sign * q, g) for n, q, g in pts])
    return pts, front
