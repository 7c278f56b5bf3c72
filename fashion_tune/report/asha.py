"""ASHA's effect: where trials ended, what was promoted, and the compute that saved.

Everything is counted in the search's budget unit: ``compute`` (training FLOPs in kimg of
the reference config, ``scheduler.budget: compute``) or ``kimg``. Promotion ASHA's own
records (``fashion_tune_scheduler.json``: rung records, pauses, promotions, prunes) give
the per-rung counts when present; otherwise trials are grouped by the budget they reached.
The Optuna journal, when there is one, gives each trial's state as Optuna recorded it.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from fashion_tune import experiment_layout as layout
from fashion_tune.report.collect import Experiment
from fashion_tune.report.rank import EPS, Entry, finite, max_kimg


@dataclass
class Rung:
    kimg: float  # the rung's level, in the budget unit (named kimg for older readers)
    stopped: int = 0  # trials that ended at this rung
    reached: int = 0  # trials that recorded a value here (or reported at or past it)
    promoted: int = 0  # trials promoted from it (promotion ASHA)
    bracket: int = 0


@dataclass
class AshaSummary:
    scheduler: str  # asha | asha-stop | fifo | unknown
    max_kimg: float | None
    grace_kimg: float | None
    reduction_factor: float | None
    rungs: list[Rung]
    finished: int  # reached the full budget
    other: dict[str, int]  # errored / diverged / unfinished / no results
    trials: int  # trials that trained at all
    used_kimg: float
    full_kimg: float  # every such trial run to max_kimg
    notes: list[str] = field(default_factory=list)
    unit: str = "kimg"  # the budget unit: kimg or compute
    unit_note: str = ""  # what one unit of compute is
    used: float = 0.0  # in the budget unit
    full: float = 0.0  # in the budget unit, every trained trial to its full budget
    promotions: dict[str, int] = field(default_factory=dict)  # "at once" / "resumed"
    events: list[dict[str, Any]] = field(default_factory=list)
    optuna_states: dict[str, int] = field(default_factory=dict)
    brackets: int = 1

    @property
    def savings(self) -> float | None:
        return 1 - self.used / self.full if self.full > 0 else None

    @property
    def kimg_savings(self) -> float | None:
        return 1 - self.used_kimg / self.full_kimg if self.full_kimg > 0 else None


def rung_milestones(max_t: float, grace: float, rf: float) -> list[float]:
    """Ray's AsyncHyperBand milestones (one bracket), ascending."""
    if grace <= 0 or rf <= 1 or max_t < grace:
        return []
    n = int(math.log(max_t / grace) / math.log(rf) + 1)  # Ray's own formula
    return [grace * rf**k for k in range(n)]


def _spent(e: Entry, unit: str) -> float | None:
    """A trial's last value of the budget unit (its kimg, or its last reported compute)."""
    if unit == "kimg":
        return e.kimg
    values = [finite(r.get("compute")) for r in e.trial.rows]
    found = [v for v in values if v is not None]
    return max(found) if found else None


def read_scheduler(exp: Experiment) -> dict[str, Any] | None:
    """Promotion ASHA's records, if the experiment has them (and they parse)."""
    try:
        if not exp.store.exists(layout.SCHEDULER_FILE):
            return None
        doc = json.loads(exp.store.read_bytes(layout.SCHEDULER_FILE))
    except (OSError, ValueError):
        exp.warnings.append(f"{layout.SCHEDULER_FILE} is unreadable: rung counts are estimated")
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("rungs"), list) else None


def optuna_states(exp: Experiment) -> dict[str, int]:
    """Trial states as the Optuna journal holds them (empty without a readable journal)."""
    from fashion_tune.data.storage import is_uri

    if is_uri(exp.location) or not exp.store.exists(layout.JOURNAL_FILE):
        return {}
    try:
        from fashion_tune.search.searcher import load_study

        study = load_study(exp.location, exp.name)
    except Exception as exc:  # a damaged journal: the report still renders
        exp.warnings.append(f"the Optuna journal could not be read ({type(exc).__name__})")
        return {}
    if study is None:
        return {}
    return dict(Counter(t.state.name for t in study.trials))


def summarize(exp: Experiment, entries: list[Entry]) -> AshaSummary:
    sch = (exp.search or {}).get("scheduler") or {}
    kind = str(sch.get("type") or "unknown")
    unit = "compute" if sch.get("budget") == "compute" else "kimg"
    budget = max_kimg(exp)
    grace, rf = finite(sch.get("grace_kimg")), finite(sch.get("reduction_factor"))
    notes: list[str] = []
    if not exp.search:
        notes.append("the scheduler's settings are unknown: trials are grouped by kimg reached")
    if budget is None:
        notes.append("the per-trial budget (max kimg) is unknown")
    trained = [e for e in entries if e.trial.rows]
    stops = [e for e in trained if e.outcome == "stopped"]
    state = read_scheduler(exp) if kind == "asha" else None
    rungs: list[Rung] = []
    promotions: dict[str, int] = {}
    events: list[dict[str, Any]] = []
    if state is not None and grace and rf:
        events = [e for e in state.get("events", []) if isinstance(e, dict)]
        pruned = Counter(
            (e.get("bracket"), e.get("rung")) for e in events if e.get("event") == "pruned"
        )
        for b, records in enumerate(state["rungs"]):
            for k, rec in enumerate(records):
                level = grace * rf ** (b + k)
                promoted = len(state.get("promoted", [])[b][k]) if state.get("promoted") else 0
                rungs.append(Rung(level, pruned.get((b, k), 0), len(rec), promoted, b))
        promotions = dict(
            Counter(str(e.get("how")) for e in events if e.get("event") == "promoted")
        )
    elif kind.startswith("asha") and budget and grace and rf and unit == "kimg":
        rungs = [Rung(m) for m in rung_milestones(budget, grace, rf) if m < budget - EPS]
    if not rungs:  # no known milestones: one row per distinct stop point
        ends = {round(v, 6) for e in stops if (v := _spent(e, unit)) is not None}
        rungs += [Rung(level) for level in sorted(ends)]
    if state is None:
        for e in trained:
            spent = _spent(e, unit)
            for r in rungs:
                if spent is not None and spent >= r.kimg - EPS:
                    r.reached += 1
        for e in stops:
            spent = _spent(e, unit)
            below = [r for r in rungs if spent is not None and spent >= r.kimg - EPS]
            if below:
                below[-1].stopped += 1
    other: dict[str, int] = {}
    for e in entries:
        if e.outcome not in ("stopped", "finished"):
            other[e.outcome] = other.get(e.outcome, 0) + 1
    used_kimg = sum(e.kimg for e in trained)
    full_kimg = len(trained) * budget if budget else 0.0
    used, full = float(used_kimg), float(full_kimg)
    unit_note = ""
    if unit == "compute":
        used = full = 0.0
        for e in trained:
            spent = _spent(e, unit)
            if spent is None or e.kimg <= 0 or not budget:
                continue
            used += spent
            full += spent / e.kimg * budget  # a config's cost per kimg is fixed
        ref = sch.get("compute_ref") or {}
        gflop = finite(ref.get("gflop_per_kimg"))
        if gflop:
            unit_note = (
                f"1 compute unit = the training FLOPs of 1 kimg of the reference config "
                f"({ref.get('config', '?')}, {ref.get('arch', '?')}): {gflop:.4g} GFLOP"
            )
    return AshaSummary(
        kind,
        budget,
        grace,
        rf,
        rungs,
        sum(1 for e in entries if e.outcome == "finished"),
        other,
        len(trained),
        used_kimg,
        full_kimg,
        notes,
        unit=unit,
        unit_note=unit_note,
        used=used,
        full=full,
        promotions=promotions,
        events=events,
        optuna_states=optuna_states(exp),
        brackets=int(finite(sch.get("brackets")) or 1),
    )
