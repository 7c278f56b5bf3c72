"""Ablations read back: does one setting matter beyond seed noise, and by how much?

An ablation (``fashion_tune.search.ablate``) trained one base config once per value of a
setting with the same seeds per value. For each value this module gives:

* the objective at the full budget per seed, its mean and 95% Student-t interval; the
  same for ``sym_excess`` (how much less symmetric the fakes are than the real images);
* training speed: kimg and compute (GFLOP) until the objective first reaches a threshold
  (the base value's median final value x 1.5 for ``min``, / 1.5 for ``max``). Runs that
  never reach it are censored at their last tick, not dropped: the median is Kaplan-Meier's,
  and the paired comparison scores a censored run as slower than a partner that reached
  the threshold before it was censored (``paired.paired_speed``);
* the difference from the base value **paired by seed**: mean improvement with its
  interval, Cohen's d_z, the paired t-test and Wilcoxon signed-rank p-values, each
  Holm-corrected across the values, and one plain sentence.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

from fashion_tune import experiment_layout as layout
from fashion_tune.report.collect import Experiment, ReportError, TrialRecord, load_experiment
from fashion_tune.report.confirm import MeanCI, SeedValue, final_value, mean_ci
from fashion_tune.report.paired import (
    Paired,
    Reach,
    SpeedCompare,
    first_reach,
    km_median,
    paired_compare,
    paired_speed,
    sentence,
    with_holm,
)
from fashion_tune.report.rank import finite

# plan keys of an ablation trial's Tune config (run_trial drops them before TrialConfig)
KEY_INDEX, KEY_VALUE, KEY_REPLICA, KEY_LABEL = (
    "ablate.index",
    "ablate.value",
    "ablate.replica",
    "ablate.label",
)
SPEED_FACTOR = 1.5  # the speed threshold: the base's median final value x (or /) this
SYM_KEY = "sym_excess"


@dataclass
class Run:
    seed: int
    final: SeedValue  # the objective at the full budget (or why there is none)
    sym_excess: float | None = None
    curve: list[tuple[float, float]] = field(default_factory=list)  # (kimg, objective)
    compute: list[tuple[float, float]] = field(default_factory=list)  # (GFLOP, objective)
    speed_kimg: Reach | None = None
    speed_gflop: Reach | None = None


@dataclass
class ValueResult:
    value: Any
    label: str
    is_base: bool
    runs: list[Run]
    stats: MeanCI | None = None
    sym: MeanCI | None = None
    median_kimg: float | None = None  # Kaplan-Meier median kimg to the threshold
    median_gflop: float | None = None
    reached: int = 0  # runs that reached the threshold
    vs_base: Paired | None = None
    speed_vs_base: SpeedCompare | None = None
    sentence: str = ""


@dataclass
class Ablation:
    folder: str  # ablate_<base>_<key>
    key: str
    base: str  # best | default
    base_label: str
    metric: str
    mode: str
    seeds: list[int]
    budget: float
    values: list[ValueResult] = field(default_factory=list)  # base value first
    threshold: float | None = None
    missing: int = 0  # planned runs not finished yet (not failures)
    notes: list[str] = field(default_factory=list)
    command: str = ""


def _curves(rec: TrialRecord | None, metric: str) -> tuple[list, list]:
    if rec is None:
        return [], []
    kimg, gflop = [], []
    for r in rec.rows:
        if r.get("replayed"):
            continue
        v, k, g = finite(r.get(metric)), finite(r.get("kimg")), finite(r.get("gflop"))
        if v is None or k is None:
            continue
        kimg.append((k, v))
        if g is not None:
            gflop.append((g, v))
    return sorted(kimg), sorted(gflop)


def _threshold(base: ValueResult, mode: str) -> float | None:
    finals = [r.final.value for r in base.runs if r.final.value is not None]
    if not finals:
        return None
    med = statistics.median(finals)
    return med * SPEED_FACTOR if mode == "min" else med / SPEED_FACTOR


def summarize(plan: dict[str, Any], trials: list[TrialRecord], experiment: str) -> Ablation:
    """An ablation's plan + its trial records -> per-value statistics and paired verdicts."""
    metric, mode = str(plan["metric"]), str(plan["mode"])
    budget = float(plan["max_kimg"])
    seeds = [int(s) for s in plan["seeds"]]
    slots: dict[tuple[int, int], TrialRecord] = {}
    for t in trials:
        vi, ri = t.params.get(KEY_VALUE), t.params.get(KEY_REPLICA)
        if isinstance(vi, int) and isinstance(ri, int):
            slots[(vi, ri)] = t
    key, base = str(plan["key"]), str(plan["base"])
    abl = Ablation(
        f"{layout.ABLATE_PREFIX}{base}_{key}", key, base, str(plan.get("base_label") or base),
        metric, mode, seeds, budget,
    )  # fmt: skip
    abl.command = (
        f"fashion-tune ablate {experiment} --vary {key}="
        + ",".join(str(v) for v in plan["values"])
        + f" --seeds {len(seeds)} --base {base}"
    )
    for vi, c in enumerate(plan["configs"]):
        runs = []
        for ri, seed in enumerate(seeds):
            rec = slots.get((vi, ri))
            final = final_value(rec, seed, metric, budget)
            curve, compute = _curves(rec, metric)
            sym = None
            if final.value is not None and rec is not None and rec.rows:
                sym = finite(rec.rows[-1].get(SYM_KEY))
            runs.append(Run(seed, final, sym, curve, compute))
        vr = ValueResult(c["value"], str(c["label"]), vi == 0, runs)
        finals = [r.final.value for r in runs if r.final.value is not None]
        vr.stats = mean_ci(finals) if finals else None
        syms = [r.sym_excess for r in runs if r.sym_excess is not None]
        vr.sym = mean_ci(syms) if syms else None
        abl.values.append(vr)
    abl.missing = sum(
        1 for v in abl.values for r in v.runs if r.final.status in ("pending", "running")
    )
    if abl.values:
        _speed(abl)
        _compare(abl)
    return abl


def _done(r: Run) -> bool:
    """A run that ended (finished, diverged or errored): its speed is known or censored."""
    return r.final.status not in ("pending", "running")


def _speed(abl: Ablation) -> None:
    abl.threshold = _threshold(abl.values[0], abl.mode)
    if abl.threshold is None:
        return
    for v in abl.values:
        for r in v.runs:
            if _done(r):
                r.speed_kimg = first_reach(r.curve, abl.threshold, abl.mode)
                r.speed_gflop = first_reach(r.compute, abl.threshold, abl.mode)
        kimg = [r.speed_kimg for r in v.runs if r.speed_kimg is not None]
        gflop = [r.speed_gflop for r in v.runs if r.speed_gflop is not None and r.compute]
        v.reached = sum(1 for s in kimg if s.reached)
        v.median_kimg = km_median(kimg) if kimg else None
        v.median_gflop = km_median(gflop) if gflop else None


def _by_seed(v: ValueResult) -> dict[int, float]:
    return {r.seed: r.final.value for r in v.runs if r.final.value is not None}


def _compare(abl: Ablation) -> None:
    base = abl.values[0]
    others = abl.values[1:]
    tests = with_holm([paired_compare(_by_seed(base), _by_seed(v), abl.mode) for v in others])
    for v, p in zip(others, tests, strict=True):
        v.vs_base = p
        v.sentence = sentence(str(v.value), str(base.value), p, abl.metric)
        b = {r.seed: r.speed_gflop for r in base.runs if r.speed_gflop and r.compute}
        o = {r.seed: r.speed_gflop for r in v.runs if r.speed_gflop and r.compute}
        if b and o:
            v.speed_vs_base = paired_speed(b, o)


def ablation_of(exp: Experiment, name: str) -> Ablation | None:
    """The ablation in ``<experiment>/<name>/`` as it is on storage (None: there is none);
    a damaged plan is a warning of the experiment."""
    from fashion_tune.report.collect import _read_json, sub_store

    sub = sub_store(exp.store, name)
    if not sub.exists(layout.ABLATE_FILE):
        return None
    plan = _read_json(sub, layout.ABLATE_FILE)
    try:
        trials = load_experiment(f"{exp.location.rstrip('/')}/{name}").trials
    except ReportError:
        trials = []
    try:
        return summarize(plan, trials, exp.location)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        exp.warnings.append(f"the ablation in {name} has a damaged plan ({exc}): not shown")
        return None


def read_ablations(exp: Experiment) -> list[Ablation]:
    """Every ablation of an experiment (partial ones too), by folder name."""
    names = sorted(n for n in exp.store.listdir() if n.startswith(layout.ABLATE_PREFIX))
    return [a for a in (ablation_of(exp, n) for n in names) if a is not None]


# -- display ---------------------------------------------------------------------------------
def _fmt(v: float | None) -> str:
    return "–" if v is None or not math.isfinite(v) else f"{v:.4g}"


def _ci(s: MeanCI | None) -> str:
    if s is None:
        return "–"
    if s.low is None or s.high is None:
        return f"{_fmt(s.mean)} (1 seed)"
    return f"{_fmt(s.mean)} [{_fmt(s.low)}, {_fmt(s.high)}]"


def _p(p: float | None) -> str:
    return "–" if p is None else f"{p:.3g}"


def context(abl: Ablation) -> dict[str, Any]:
    """Display strings for one ablation (the page and the Markdown escape them)."""
    better = "lower" if abl.mode == "min" else "higher"
    rows = []
    for v in abl.values:
        p, sp = v.vs_base, v.speed_vs_base
        done = sum(1 for r in v.runs if r.final.value is not None)
        failed = sum(1 for r in v.runs if r.final.status in ("diverged", "errored"))
        rows.append(
            {
                "label": v.label,
                "base": v.is_base,
                "n": f"{done} of {len(v.runs)}" + (f", {failed} failed" if failed else ""),
                "objective": _ci(v.stats),
                "sym": _ci(v.sym),
                "speed_kimg": _fmt(v.median_kimg),
                "speed_gflop": _fmt(v.median_gflop),
                "reached": f"{v.reached} of {len(v.runs)}",
                "diff": "–"
                if p is None
                else f"{_fmt(p.mean_diff)} [{_fmt(p.low)}, {_fmt(p.high)}]",
                "dz": "–" if p is None else _fmt(p.dz),
                "p_t": "–" if p is None else _p(p.p_t_holm),
                "p_w": "–" if p is None else _p(p.p_w_holm),
                "speed_test": "–"
                if sp is None
                else f"{sp.faster} faster, {sp.slower} slower (sign test p {_p(sp.p)})",
                "sentence": v.sentence,
            }
        )
    about = (
        f"The base config ({abl.base_label}) trained once per value of {abl.key} with the "
        f"same {len(abl.seeds)} fresh seeds per value, to {abl.budget:g} kimg; the objective "
        f"is {abl.metric} at the final tick ({better} is better). Differences are paired by "
        "seed against the base's own value (a positive improvement is better), with the paired "
        "t-test and the Wilcoxon signed-rank test, Holm-corrected across values."
    )
    speed = (
        f"Speed: kimg / GFLOP until {abl.metric} first reaches {_fmt(abl.threshold)} (the "
        f"base's median final value {'x' if abl.mode == 'min' else '/'} {SPEED_FACTOR}); "
        "Kaplan-Meier medians, runs that never reach it censored at their last tick."
        if abl.threshold is not None
        else "Speed: no base run finished yet, so there is no threshold."
    )
    status = []
    if abl.missing:
        status.append(
            f"{abl.missing} planned runs have not finished: `{abl.command}` resumes the ablation."
        )
    return {
        "title": f"{abl.key} from {abl.base_label}",
        "folder": abl.folder,
        "about": about,
        "speed": speed,
        "rows": rows,
        "sentences": [v.sentence for v in abl.values[1:] if v.sentence],
        "status": status,
        "notes": abl.notes,
        "command": abl.command,
    }


def document(abl: Ablation) -> dict[str, Any]:
    """One ablation for leaderboard.json (full-precision numbers)."""

    def paired(p: Paired | SpeedCompare | None) -> dict[str, Any] | None:
        return None if p is None else dict(p.__dict__)

    return {
        "folder": abl.folder,
        "key": abl.key,
        "base": abl.base,
        "base_label": abl.base_label,
        "metric": abl.metric,
        "mode": abl.mode,
        "seeds": abl.seeds,
        "max_kimg": abl.budget,
        "speed_threshold": abl.threshold,
        "values": [
            {
                "value": v.value,
                "label": v.label,
                "base": v.is_base,
                "runs": [
                    {
                        "seed": r.seed,
                        "value": r.final.value,
                        "status": r.final.status,
                        "trial": r.final.trial,
                        "sym_excess": r.sym_excess,
                        "kimg_to_threshold": None if r.speed_kimg is None else r.speed_kimg.time,
                        "reached": None if r.speed_kimg is None else r.speed_kimg.reached,
                    }
                    for r in v.runs
                ],
                "mean": v.stats.mean if v.stats else None,
                "ci95": [v.stats.low, v.stats.high] if v.stats else None,
                "sym_excess_mean": v.sym.mean if v.sym else None,
                "median_kimg_to_threshold": v.median_kimg,
                "median_gflop_to_threshold": v.median_gflop,
                "vs_base": paired(v.vs_base),
                "speed_vs_base": None
                if v.speed_vs_base is None
                else dict(v.speed_vs_base.__dict__),
                "sentence": v.sentence,
            }
            for v in abl.values
        ],
        "missing": abl.missing,
    }
