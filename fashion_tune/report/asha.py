"""ASHA's effect: how many trials stopped at each rung, and the compute that saved."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fashion_tune.report.collect import Experiment
from fashion_tune.report.rank import EPS, Entry, finite, max_kimg


@dataclass
class Rung:
    kimg: float
    stopped: int = 0  # trials whose last report is at this rung (stopped there)
    reached: int = 0  # trials that reported at or past it


@dataclass
class AshaSummary:
    scheduler: str  # asha | fifo | unknown
    max_kimg: float | None
    grace_kimg: float | None
    reduction_factor: float | None
    rungs: list[Rung]
    finished: int  # reached max_kimg
    other: dict[str, int]  # errored / diverged / unfinished / no results
    trials: int  # trials that trained at all
    used_kimg: float
    full_kimg: float  # every such trial run to max_kimg
    notes: list[str] = field(default_factory=list)

    @property
    def savings(self) -> float | None:
        return 1 - self.used_kimg / self.full_kimg if self.full_kimg > 0 else None


def rung_milestones(max_t: float, grace: float, rf: float) -> list[float]:
    """Ray's AsyncHyperBand milestones (one bracket), ascending."""
    if grace <= 0 or rf <= 1 or max_t < grace:
        return []
    n = int(math.log(max_t / grace) / math.log(rf) + 1)  # Ray's own formula
    return [grace * rf**k for k in range(n)]


def summarize(exp: Experiment, entries: list[Entry]) -> AshaSummary:
    sch = (exp.search or {}).get("scheduler") or {}
    kind = str(sch.get("type") or "unknown")
    budget = max_kimg(exp)
    grace, rf = finite(sch.get("grace_kimg")), finite(sch.get("reduction_factor"))
    notes: list[str] = []
    if kind == "asha" and budget and grace and rf:
        milestones = [m for m in rung_milestones(budget, grace, rf) if m < budget - EPS]
    else:
        milestones = []
        if not exp.search:
            notes.append("the scheduler's settings are unknown: trials are grouped by kimg reached")
    if budget is None:
        notes.append("the per-trial budget (max kimg) is unknown")
    trained = [e for e in entries if e.trial.rows]
    stops: list[Entry] = [e for e in trained if e.outcome == "stopped"]
    rungs = [Rung(m) for m in milestones]
    if not rungs:  # no known milestones: one row per distinct stop point
        for k in sorted({round(e.kimg, 6) for e in stops}):
            rungs.append(Rung(k))
    for e in trained:
        for r in rungs:
            if e.kimg >= r.kimg - EPS:
                r.reached += 1
    for e in stops:
        below = [r for r in rungs if e.kimg >= r.kimg - EPS]
        if below:
            below[-1].stopped += 1
    other: dict[str, int] = {}
    for e in entries:
        if e.outcome not in ("stopped", "finished"):
            other[e.outcome] = other.get(e.outcome, 0) + 1
    used = sum(e.kimg for e in trained)
    full = len(trained) * budget if budget else 0.0
    return AshaSummary(
        kind,
        budget,
        grace,
        rf,
        rungs,
        sum(1 for e in entries if e.outcome == "finished"),
        other,
        len(trained),
        used,
        full,
        notes,
    )
