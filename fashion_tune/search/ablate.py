"""Ablation of one setting, paired over seeds: does this setting matter beyond seed noise?

``fashion-tune ablate EXPERIMENT --vary loss.symmetry=none,consistency,adversarial,pixel
--seeds 5`` (or a space's ``ablate:`` section, run after the search and the confirmation)
takes one base config of a finished search (``best``: the leaderboard's #1 among trials at
the full budget; ``default``: the literature default, the space's first point), and
trains it once per value of the varied setting with the same S fresh seeds per value, at
the full budget (or ``--kimg``). Replica j of every value gets seed j: the design is paired
by seed, and ``report/ablate.py`` compares each value with the base's own value seed by
seed.

It is a nested experiment like the seed confirmation (``experiments.Nested``), in
``<experiment>/ablate_<base>_<setting>/`` (Ray's state, a folder per trial, the ledger and
``fashion_tune_ablate.json``, the plan): checkpoints each tick, retries from the last
checkpoint, and running it again resumes without training a finished run twice.

A value that needs a companion setting gets it: ``loss.symmetry=none`` turns its weight
(``loss.lambda_sym``) off; a symmetry variant takes the base's weight, or ``--set
loss.lambda_sym=W`` when the base has none.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any

from fashion_tune import experiment_layout as layout
from fashion_tune.config import ConfigError, TrialConfig, parse_overrides
from fashion_tune.data.storage import Store
from fashion_tune.errors import FashionTuneError
from fashion_tune.report import rank
from fashion_tune.report.ablate import KEY_INDEX, KEY_LABEL, KEY_REPLICA, KEY_VALUE
from fashion_tune.report.collect import Experiment
from fashion_tune.search.confirm import load_finished_search, seeds_used
from fashion_tune.search.experiments import Nested, RunOptions, fresh_seeds, plan_rows

logger = logging.getLogger("fashion_tune.search")
BASES = ("best", "default")
SEEDS_RANGE = (2, 100)
MAX_VALUES = 20
# value -> the settings it implies (a variant "off" also turns its weight off)
COMPANIONS: dict[str, dict[Any, dict[str, Any]]] = {
    "loss.symmetry": {"none": {"loss.lambda_sym": 0.0}},
}
# a value other than these needs a weight > 0 (from the base or --set)
WEIGHTS: dict[str, tuple[str, tuple[Any, ...]]] = {
    "loss.symmetry": ("loss.lambda_sym", ("none",)),
}
PLAN_KEYS = ("key", "values", "seeds", "base", "configs", "max_kimg", "metric", "mode")


def ablation(key: str, base: str) -> Nested:
    """The nested experiment of one (setting, base) pair."""
    return Nested(f"{layout.ABLATE_PREFIX}{base}_{key}", layout.ABLATE_FILE, "ablation", "ablate")


@dataclass(frozen=True)
class AblateOptions(RunOptions):
    key: str = ""
    values: tuple[Any, ...] = ()
    seeds: int = 5
    base: str = "best"
    sets: dict[str, Any] = field(default_factory=dict)
    kimg: float | None = None  # None: the search's full budget


def parse_vary(text: str) -> tuple[str, tuple[Any, ...]]:
    """``"loss.symmetry=none,pixel"`` -> (key, values): a known config key and >= 2
    distinct values (YAML scalars, as ``--set`` reads them)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or not raw.strip():
        raise FashionTuneError(
            f"--vary {text!r} is not KEY=V1,V2,... (e.g. loss.symmetry=none,consistency)"
        )
    values = tuple(
        parse_overrides([f"{key}={v.strip()}"])[key] for v in raw.split(",") if v.strip()
    )
    return key, check_values(key, values)


def check_values(key: str, values: tuple[Any, ...]) -> tuple[Any, ...]:
    known = TrialConfig().flat()
    if key not in known:
        TrialConfig().with_overrides({key: None})  # raises the "did you mean" error
    if key == "runtime.seed":
        raise FashionTuneError("--vary runtime.seed: the seeds are what an ablation pairs over")
    distinct: list[Any] = []
    for v in values:
        if v not in distinct:
            distinct.append(v)
    if not 1 <= len(distinct) <= MAX_VALUES:
        raise FashionTuneError(f"--vary {key} needs 1 to {MAX_VALUES} values, got {len(distinct)}")
    return tuple(distinct)


def check_options(opts: AblateOptions) -> None:
    lo, hi = SEEDS_RANGE
    if not lo <= opts.seeds <= hi:
        raise FashionTuneError(
            f"--seeds must be in [{lo}, {hi}] (a paired test needs 2 seeds), got {opts.seeds}"
        )
    if opts.base not in BASES:
        raise FashionTuneError(f"--base must be one of {', '.join(BASES)}, got {opts.base!r}")
    if opts.kimg is not None and not (opts.kimg > 0 and opts.kimg < 1e6):
        raise FashionTuneError(f"--kimg must be a positive number of kimg, got {opts.kimg!r}")
    if opts.key in opts.sets:
        raise FashionTuneError(f"--set {opts.key}=... is the varied setting: give it in --vary")


def base_config(exp: Experiment, base: str) -> tuple[str, str | None, dict[str, Any]]:
    """(label, source trial, params) of the base config."""
    search = exp.search or {}
    if base == "default":
        points = search.get("points") or []
        if not points:
            raise FashionTuneError(
                f"the space of {exp.location} has no points: there is no literature default "
                "to ablate (use --base best)"
            )
        return "literature default", None, dict(points[0])
    entries = rank.leaderboard(exp, exp.metric, exp.mode)
    finished = [e for e in entries if e.rank is not None and e.outcome == "finished"]
    if not finished:
        raise FashionTuneError(
            f"no trial of {exp.location} reached the full budget with a finite {exp.metric}: "
            "no best config to ablate (use --base default)"
        )
    top = finished[0]
    return f"search #{top.rank} ({top.name})", top.name, dict(top.trial.params)


def _config_for(
    key: str, value: Any, params: dict[str, Any], sets: dict[str, Any], fixed: dict[str, Any]
) -> dict[str, Any]:
    """The params of the base with ``key=value``, its companions and ``--set``; checked."""
    out = {**params, **sets, key: value}
    out.update(COMPANIONS.get(key, {}).get(value, {}))
    weight = WEIGHTS.get(key)
    full = {**fixed, **out}
    if weight is not None and value not in weight[1]:
        wkey = weight[0]
        w = full.get(wkey, TrialConfig().flat().get(wkey))
        if not isinstance(w, (int, float)) or w <= 0:
            raise FashionTuneError(
                f"{key}={value} needs a weight and the base has {wkey}={w}: give one with "
                f"--set {wkey}=W (e.g. 0.1)"
            )
        out[wkey] = w
    try:
        TrialConfig().with_overrides(full | out)
    except ConfigError as exc:
        raise FashionTuneError(f"{key}={value} on the base config: {exc}") from None
    return out


def make_plan(exp: Experiment, opts: AblateOptions) -> dict[str, Any]:
    """Which configs (the base with each value) and which seeds; checks every config."""
    search = exp.search or {}
    fixed = dict(search.get("fixed") or {})
    budget = opts.kimg if opts.kimg is not None else rank.max_kimg(exp)
    if budget is None:
        raise FashionTuneError(f"the full budget of {exp.location} is unknown: give --kimg")
    label, source, params = base_config(exp, opts.base)
    base_value = TrialConfig().with_overrides({**fixed, **params}).flat()[opts.key]
    values = [base_value, *[v for v in opts.values if v != base_value]]
    if len(values) < 2:
        raise FashionTuneError(
            f"--vary {opts.key} has no value other than the base's own ({base_value}): "
            "nothing to compare with"
        )
    sets = dict(opts.sets)
    if opts.kimg is not None:
        sets["schedule.total_kimg"] = float(opts.kimg)
    configs = [
        {
            "value": v,
            # short: Ray's live table cuts a value column to ~20 characters
            "label": f"{v}" + (" (base)" if i == 0 else ""),
            "params": _config_for(opts.key, v, params, sets, fixed),
        }
        for i, v in enumerate(values)
    ]
    domain = f"fashion-tune ablate {int(search.get('seed') or 0)} {opts.key} {opts.base}"
    return {
        "version": 1,
        "experiment": exp.name,
        "key": opts.key,
        "values": values,
        "base": opts.base,
        "base_label": label,
        "base_source": source,
        "base_params": params,
        "sets": dict(opts.sets),
        "seeds": fresh_seeds(domain, opts.seeds, seeds_used(exp)),
        "configs": configs,
        "metric": exp.metric,
        "mode": exp.mode,
        "max_kimg": float(budget),
    }


def _same_request(plan: dict[str, Any], opts: AblateOptions) -> bool:
    asked = [v for v in opts.values if v != plan["values"][0]]
    return (
        len(plan["seeds"]) == opts.seeds
        and (not opts.values or asked == list(plan["values"][1:]))
        and (opts.kimg is None or float(opts.kimg) == float(plan["max_kimg"]))
        and (not opts.sets or dict(opts.sets) == dict(plan.get("sets") or {}))
    )


def prepare(experiment: str, opts: AblateOptions) -> dict[str, Any]:
    """Every check, and the plan (the existing one, or a new one); writes nothing."""
    check_options(opts)
    exp = load_finished_search(experiment)
    nested = ablation(opts.key, opts.base)
    plan = nested.existing_plan(experiment, PLAN_KEYS)
    if plan is not None:
        if not _same_request(plan, opts):
            raise FashionTuneError(
                f"{nested.path(experiment)} already holds an ablation of {opts.key} "
                f"({', '.join(map(str, plan['values']))}; {len(plan['seeds'])} seeds, "
                f"{float(plan['max_kimg']):g} kimg): run it with the same --vary/--seeds/--kimg "
                "to finish it, or move that folder away to start another"
            )
        return plan
    return make_plan(exp, opts)


def run_ablation(experiment: str, plan: dict[str, Any], opts: AblateOptions) -> Any:
    """Run (or resume) the ablation of ``plan`` (Ray is running); its ResultGrid."""
    nested = ablation(str(plan["key"]), str(plan["base"]))
    nested.write_plan(experiment, plan)
    search = json.loads(Store.open(experiment).read_bytes(layout.SEARCH_FILE))
    rows = plan_rows(
        plan["configs"], plan["seeds"], dict(search["fixed"]), (KEY_VALUE, KEY_REPLICA, KEY_LABEL)
    )
    n, s = len(plan["configs"]), len(plan["seeds"])
    logger.info("ablation of %s: %d values x %d seeds = %d trials", plan["key"], n, s, n * s)
    tuner = nested.grid_tuner(
        experiment, rows, KEY_INDEX, str(plan["metric"]), str(plan["mode"]),
        float(plan["max_kimg"]), {KEY_LABEL: "value", "runtime.seed": "seed"}, opts,
    )  # fmt: skip
    return tuner.fit()
