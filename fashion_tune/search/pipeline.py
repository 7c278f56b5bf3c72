"""What ``fashion-tune search`` runs: the search, then the experiments its space asks for
after it, each nested in the search's folder (``experiments.py``).

Today that is the seed confirmation (the space's ``confirm:`` section), then each of its
``ablate:`` entries, in file order (``ablate.py``). Each follow-up is
resumed when it exists, and what stops one (e.g. no trial reached the full budget) is a
warning, not a failed search: the search's results stand on their own.
"""

from __future__ import annotations

import logging
from typing import Any

from fashion_tune.errors import FashionTuneError
from fashion_tune.search import ablate as ablate_mod
from fashion_tune.search.ablate import AblateOptions
from fashion_tune.search.confirm import ConfirmOptions, prepare, run_confirmation
from fashion_tune.search.space import Ablate, Space
from fashion_tune.search.tuner import SearchOptions, experiment_path, run_search

logger = logging.getLogger("fashion_tune.search")


def run(space: Space, opts: SearchOptions) -> Any:
    """Run (or resume) the search and its follow-ups; returns the search's ResultGrid."""
    grid = run_search(space, opts)
    experiment = experiment_path(space, opts)[2]
    if space.confirm is not None:
        confirm_after_search(space, experiment, opts)
    for spec in space.ablate:
        ablate_after_search(space, spec, experiment, opts)
    return grid


def confirm_after_search(space: Space, experiment: str, opts: SearchOptions) -> None:
    """The space's ``confirm:`` section, once the search ended: run or resume the
    confirmation with the search's resources and retry settings."""
    assert space.confirm is not None
    copts = ConfirmOptions(
        default_counts=(space.confirm.top_k, space.confirm.seeds), **_run_options(space, opts)
    )
    try:
        plan = prepare(experiment, copts)
    except FashionTuneError as exc:
        logger.warning("seed confirmation skipped: %s", exc)
        return
    run_confirmation(experiment, plan, copts)


def ablate_after_search(space: Space, spec: Ablate, experiment: str, opts: SearchOptions) -> None:
    """One entry of the space's ``ablate:`` section, once the search (and its
    confirmation) ended: run or resume it with the search's resources and retries."""
    aopts = AblateOptions(
        key=spec.key,
        values=spec.values,
        seeds=spec.seeds,
        base=spec.base,
        sets=dict(spec.sets),
        kimg=spec.kimg,
        **_run_options(space, opts),
    )
    try:
        plan = ablate_mod.prepare(experiment, aopts)
    except FashionTuneError as exc:
        logger.warning("ablation of %s skipped: %s", spec.key, exc)
        return
    ablate_mod.run_ablation(experiment, plan, aopts)


def _run_options(space: Space, opts: SearchOptions) -> dict[str, Any]:
    """A follow-up's trials run as the search's did: resources, retries, actor reuse."""
    return {
        "max_failures": opts.max_failures,
        "cpus_per_trial": space.cpus_per_trial,
        "gpus_per_trial": space.gpus_per_trial,
        "max_concurrent": space.max_concurrent or 0,
        "verbose": opts.verbose,
        "reuse_actors": opts.reuse_actors,
    }
