"""Seed confirmation: retrain the search's top-k configs and the literature default with
fresh seeds at the full budget, as Tune trials of the same experiment.

The confirmation is a Ray Tune experiment of its own, nested in the search's folder
(``<experiment>/confirm/``: Ray's state, one folder per trial, the finished-trial ledger,
and ``fashion_tune_confirm.json``, the plan). Its trials run through the search's
trainable (``run_trial``, with the search's resolved fixed settings), so they checkpoint
each tick, retry from their checkpoint after a failure (``--max-failures``), show in the
live table, and a restored confirmation never trains a finished trial again (the
``FinishedLedger``).

Which configs: the top-k of the leaderboard the report shows (``report.rank``: best
value over all ticks) among the trials that reached the full budget, plus the
literature default (the space's first point) when it is not among them. Which seeds:
S seeds derived from the search's seed and the replica index, none of them a seed the
search used; replica j of every config gets the same seed (common random numbers).
The plan is written before the first trial and read back on every resume, so a resumed
confirmation retrains exactly what it set out to. The machinery (plan file, grid of planned
rows, trainable, resume) is ``experiments.Nested``'s, shared with the other experiments
nested in a search.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from fashion_tune import experiment_layout as layout
from fashion_tune.config import TrialConfig
from fashion_tune.data.storage import Store
from fashion_tune.errors import FashionTuneError
from fashion_tune.report import rank
from fashion_tune.report.collect import Experiment, load_experiment
from fashion_tune.report.confirm import KEY_CONFIG, KEY_INDEX, KEY_LABEL, KEY_REPLICA
from fashion_tune.search.experiments import Nested, Pick, RunOptions, fresh_seeds, plan_rows

logger = logging.getLogger("fashion_tune.search")
TOP_K_RANGE = (1, 100)  # as the space schema's confirm section
SEEDS_RANGE = (2, 100)
DEFAULT_TOP_K = DEFAULT_SEEDS = 3
UNFINISHED = ("PENDING", "RUNNING", "PAUSED")


CONFIRMATION = Nested(layout.CONFIRM_DIR, layout.CONFIRM_FILE, "confirmation", "confirm")
_Pick = Pick  # confirmations saved before experiments.py name this class in their state


@dataclass(frozen=True)
class ConfirmOptions(RunOptions):
    top_k: int | None = None  # asked for (--top-k); None: see ``default_counts``
    seeds: int | None = None
    default_counts: tuple[int, int] | None = None  # the space's section (None: 3 and 3)


def confirm_path(experiment: str) -> str:
    return CONFIRMATION.path(experiment)


def check_counts(top_k: int, seeds: int) -> None:
    lo, hi = TOP_K_RANGE
    if not lo <= top_k <= hi:
        raise FashionTuneError(f"--top-k must be in [{lo}, {hi}], got {top_k}")
    lo, hi = SEEDS_RANGE
    if not lo <= seeds <= hi:
        raise FashionTuneError(
            f"--seeds must be in [{lo}, {hi}] (a mean and interval need 2 seeds), got {seeds}"
        )


def existing_plan(experiment: str) -> dict[str, Any] | None:
    return CONFIRMATION.existing_plan(experiment, ("configs", "seeds", "top_k"))


def resolve_counts(
    experiment: str,
    plan: dict[str, Any] | None,
    top_k: int | None,
    seeds: int | None,
    default: tuple[int, int] | None = None,
) -> tuple[int, int]:
    """K and S: as asked, else the existing confirmation's, else ``default`` (the space's
    section), else 3 and 3. Asking an existing confirmation for other counts is refused
    (it would mix two plans)."""
    if plan is not None:
        have_k, have_s = int(plan["top_k"]), len(plan["seeds"])
        if (top_k is not None and top_k != have_k) or (seeds is not None and seeds != have_s):
            raise FashionTuneError(
                f"{confirm_path(experiment)} already holds a confirmation with top-k {have_k} "
                f"and {have_s} seeds: run `fashion-tune confirm {experiment}` without "
                "--top-k/--seeds to finish it, or move that folder away to start one with "
                f"top-k {top_k if top_k is not None else have_k} and "
                f"{seeds if seeds is not None else have_s} seeds"
            )
        return have_k, have_s
    dk, ds = default or (DEFAULT_TOP_K, DEFAULT_SEEDS)
    k = top_k if top_k is not None else dk
    s = seeds if seeds is not None else ds
    check_counts(k, s)
    return k, s


@dataclass(frozen=True)
class SpaceSettings:
    """What a confirmation takes from the search's saved space file (its text, as run)."""

    confirm: tuple[int, int] | None = None  # (top_k, seeds) of its confirm section
    cpus_per_trial: float = 1.0
    gpus_per_trial: float = 0.0
    max_concurrent: int = 0


def space_settings(search: dict[str, Any]) -> SpaceSettings:
    """The saved space's confirm section and resources (defaults when unreadable;
    command-line overrides the search had are not recorded)."""
    import yaml

    from fashion_tune.search.space_schema import SpaceFile

    try:
        doc = SpaceFile.model_validate(yaml.safe_load(str(search.get("space_yaml") or "")) or {})
    except Exception:  # an older schema, or no file text: run with the defaults
        return SpaceSettings()
    return SpaceSettings(
        (int(doc.confirm.top_k), int(doc.confirm.seeds)) if doc.confirm else None,
        float(doc.resources.cpu),
        float(doc.resources.gpu),
        int(doc.max_concurrent),
    )


def load_finished_search(experiment: str) -> Experiment:
    """The experiment, which must be a fashion-tune search whose every trial ended."""
    exp = load_experiment(experiment)  # missing / not an experiment: ReportError
    if exp.search is None:
        raise FashionTuneError(
            f"{experiment} is not a fashion-tune search (no {layout.SEARCH_FILE}): "
            "only experiments made by `fashion-tune search` can be confirmed"
        )
    busy = [t for t in exp.trials if t.status in UNFINISHED]
    planned = int(exp.search.get("num_samples") or 0)
    if busy or len(exp.trials) < planned:
        left = len(busy) + max(0, planned - len(exp.trials))
        raise FashionTuneError(
            f"the search in {experiment} has not finished ({left} of {planned} trials still to "
            "run, or it is running now): finish it with `fashion-tune search SPACE --resume` "
            "(same --storage and --name) first"
        )
    return exp


def _fresh_seeds(search_seed: int, n: int, used: set[int]) -> list[int]:
    """n distinct seeds from the search seed and the replica index, none of them used."""
    return fresh_seeds(f"fashion-tune confirm {search_seed}", n, used)


def seeds_used(exp: Experiment) -> set[int]:
    """Every seed the search trained with (fresh seeds of a nested experiment avoid them)."""
    fixed = (exp.search or {}).get("fixed") or {}
    used = {int(fixed.get("runtime.seed", TrialConfig().runtime.seed))}
    for t in exp.trials:
        seed = ((t.config or {}).get("runtime") or {}).get("seed", t.params.get("runtime.seed"))
        if isinstance(seed, int):
            used.add(seed)
    return used


def make_plan(exp: Experiment, top_k: int, n_seeds: int) -> dict[str, Any]:
    """Which configs (top-k finished + the literature default) and which seeds."""
    search = exp.search or {}
    budget = rank.max_kimg(exp)
    if budget is None:
        raise FashionTuneError(f"the full budget of {exp.location} is unknown: nothing to confirm")
    entries = rank.leaderboard(exp, exp.metric, exp.mode)
    finished = [e for e in entries if e.rank is not None and e.outcome == "finished"]
    if not finished:
        raise FashionTuneError(
            f"no trial of {exp.location} reached the full budget ({budget:g} kimg) with a "
            f"finite {exp.metric}: nothing to confirm"
        )
    top = finished[:top_k]
    notes = []
    if len(top) < top_k:
        notes.append(
            f"only {len(top)} trial(s) reached the full budget: confirming {len(top)} instead "
            f"of the top {top_k}"
        )
        logger.warning("seed confirmation: %s", notes[-1])
    points = search.get("points") or []
    default = dict(points[0]) if points else None
    configs: list[dict[str, Any]] = []
    for e in top:
        is_default = default is not None and dict(e.trial.params) == default
        configs.append(
            {
                "label": f"search #{e.rank}" + (", literature default" if is_default else ""),
                "source": e.name,
                "search_rank": e.rank,
                "search_best": e.best,
                "default": is_default,
                "params": dict(e.trial.params),
            }
        )
    if default is not None and not any(c["default"] for c in configs):
        src = next((e for e in entries if dict(e.trial.params) == default), None)
        configs.append(
            {
                "label": "literature default",
                "source": src.name if src else None,
                "search_rank": src.rank if src else None,
                "search_best": src.best if src else None,
                "default": True,
                "params": default,
            }
        )
    if default is None:
        notes.append("the space has no points: there is no literature default to compare with")
    seeds = _fresh_seeds(int(search.get("seed") or 0), n_seeds, seeds_used(exp))
    return {
        "version": 1,
        "experiment": exp.name,
        "metric": exp.metric,
        "mode": exp.mode,
        "max_kimg": budget,
        "top_k": top_k,
        "search_seed": int(search.get("seed") or 0),
        "seeds": seeds,
        "configs": configs,
        "notes": notes,
    }


def trial_rows(plan: dict[str, Any], fixed: dict[str, Any]) -> list[dict[str, Any]]:
    """One Tune config per confirmation trial (``experiments.plan_rows``)."""
    return plan_rows(plan["configs"], plan["seeds"], fixed, (KEY_CONFIG, KEY_REPLICA, KEY_LABEL))


def build_tuner(experiment: str, plan: dict[str, Any], opts: ConfirmOptions) -> Any:
    """A new confirmation Tuner, or the restored one when ``confirm/tuner.pkl`` exists."""
    search = json.loads(Store.open(experiment).read_bytes(layout.SEARCH_FILE))
    return CONFIRMATION.grid_tuner(
        experiment,
        trial_rows(plan, dict(search["fixed"])),
        KEY_INDEX,
        str(plan["metric"]),
        str(plan["mode"]),
        float(plan["max_kimg"]),
        {KEY_LABEL: "config", "runtime.seed": "seed"},
        opts,
    )


def prepare(experiment: str, opts: ConfirmOptions) -> dict[str, Any]:
    """Every check, and the plan (the existing one, or a new one); writes nothing."""
    exp = load_finished_search(experiment)
    plan = existing_plan(experiment)
    top_k, seeds = resolve_counts(experiment, plan, opts.top_k, opts.seeds, opts.default_counts)
    return plan if plan is not None else make_plan(exp, top_k, seeds)


def run_confirmation(experiment: str, plan: dict[str, Any], opts: ConfirmOptions) -> Any:
    """Run (or resume) the confirmation of ``plan`` (Ray is running); its ResultGrid."""
    CONFIRMATION.write_plan(experiment, plan)
    k, s = len(plan["configs"]), len(plan["seeds"])
    logger.info("seed confirmation: %d configs x %d seeds = %d trials", k, s, k * s)
    return build_tuner(experiment, plan, opts).fit()
