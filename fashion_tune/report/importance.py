"""Parameter importance with Optuna's evaluator, on an in-memory study of ended trials.

Each trial that ended (finished or stopped by ASHA, not errored or diverged) enters
with its searched params and its best value over all ticks. Distributions come from
``fashion_tune_search.json``, widened to cover every observed value (a fixed point
may lie outside the sampled range); without that file they are inferred from the
values. Optuna 5's default evaluator, PED-ANOVA, handles conditional parameters (a
param present in only some trials); should it fail, a fallback evaluates only the
params present in every trial and says which were left out.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

from fashion_tune.report.collect import Experiment
from fashion_tune.report.rank import Entry

MIN_TRIALS = 3


@dataclass
class Importance:
    values: dict[str, float]  # param -> importance, most important first
    n_trials: int
    evaluator: str
    message: str | None = None  # why nothing is shown, or a caveat
    left_out: dict[str, str] = field(default_factory=dict)  # param -> why


def _distribution(spec: dict[str, Any] | None, seen: list[Any]) -> Any:
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    nums = [v for v in seen if isinstance(v, (int, float)) and not isinstance(v, bool)]
    kind = spec.get("kind") if spec else None
    if kind == "choice" or (kind is None and len(nums) < len(seen)):
        choices = list((spec or {}).get("values") or [])
        for v in seen:
            if v not in choices:
                choices.append(v)
        return CategoricalDistribution(choices)
    low = min([float((spec or {}).get("low", min(nums))), *nums])
    high = max([float((spec or {}).get("high", max(nums))), *nums])
    if kind == "int" or (kind is None and all(isinstance(v, int) for v in nums)):
        return IntDistribution(int(low), int(high))  # a step would reject observed values
    if high <= low:
        high = low + (abs(low) or 1.0) * 1e-6
    log = kind == "loguniform" or (kind is None and low > 0 and high / low >= 100)
    return FloatDistribution(low, high, log=log and low > 0)


def compute(exp: Experiment, entries: list[Entry], mode: str) -> Importance:
    """Importances from the ended trials; a message instead when there are too few."""
    import optuna

    ended = [
        e
        for e in entries
        if e.best is not None and e.outcome in ("finished", "stopped") and e.trial.params
    ]
    if len(ended) < MIN_TRIALS:
        return Importance(
            {},
            len(ended),
            "",
            f"not enough trials: {len(ended)} ended with a value, "
            f"importance needs at least {MIN_TRIALS}",
        )
    specs = {p["key"]: p for p in (exp.search or {}).get("params", []) if "key" in p}
    keys = sorted({k for e in ended for k in e.trial.params})
    dists = {
        k: _distribution(specs.get(k), [e.trial.params[k] for e in ended if k in e.trial.params])
        for k in keys
    }
    varying = [k for k in keys if len({repr(e.trial.params.get(k)) for e in ended}) > 1]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    for e in ended:
        p = {k: v for k, v in e.trial.params.items() if k in dists}
        study.add_trial(
            optuna.trial.create_trial(
                params=p, distributions={k: dists[k] for k in p}, value=e.best
            )
        )
    left_out = {k: "same value in every trial" for k in keys if k not in varying}
    caveats: list[str] = []
    evaluator = "PED-ANOVA (Optuna's default)"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            values = optuna.importance.get_param_importances(study, params=varying or None)
        caveats = sorted({str(w.message) for w in caught})
    except Exception as exc:  # evaluator limits: fall back to params present in all trials
        common = [k for k in varying if all(k in e.trial.params for e in ended)]
        left_out |= {k: "not in every trial" for k in varying if k not in common}
        try:
            values = optuna.importance.get_param_importances(study, params=common)
            evaluator += f", params present in every trial (first attempt: {exc})"
        except Exception as exc2:
            return Importance({}, len(ended), evaluator, f"importance failed: {exc2}", left_out)
    values = {k: float(v) for k, v in values.items() if math.isfinite(v)}
    msg = None
    if not values or all(v == 0 for v in values.values()):
        msg = "too few trials to tell the parameters apart"
    elif caveats:
        msg = "Optuna warns: " + " ".join(caveats)
    ordered = dict(sorted(values.items(), key=lambda kv: -kv[1]))
    return Importance(ordered, len(ended), evaluator, msg, left_out)
