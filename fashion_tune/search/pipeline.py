"""What ``fashion-tune search`` runs: the search, then the experiments its space asks for
after it, each nested in the search's folder (``experiments.py``).

Today that is the seed confirmation (the space's ``confirm:`` section). Each follow-up is
resumed when it exists, and what stops one (e.g. no trial reached the full budget) is a
warning, not a failed search: the search's results stand on their own.
"""

from __future__ import annotations

import logging
from typing import Any

from fashion_tune.errors import FashionTuneError
from fashion_tune.search.confirm import ConfirmOptions, prepare, run_confirmation
from fashion_tune.search.space import Space
from fashion_tune.search.tuner import SearchOptions, experiment_path, run_search

logger = logging.getLogger("fashion_tune.search")


def run(space: Space, opts: SearchOptions) -> Any:
    """Run (or resume) the search and its follow-ups; returns the search's ResultGrid."""
    grid = run_search(space, opts)
    if space.confirm is not None:
        confirm_after_search(space, experiment_path(space, opts)[2], opts)
    return grid


def confirm_after_search(space: Space, experiment: str, opts: SearchOptions) -> None:
    """The space's ``confirm:`` section, once the search ended: run or resume the
    confirmation with the search's resources and retry settings."""
    assert space.confirm is not None
    copts = ConfirmOptions(
        default_counts=(space.confirm.top_k, space.confirm.seeds),
        max_failures=opts.max_failures,
        cpus_per_trial=space.cpus_per_trial,
        gpus_per_trial=space.gpus_per_trial,
        max_concurrent=space.max_concurrent or 0,
        verbose=opts.verbose,
        reuse_actors=opts.reuse_actors,
    )
    try:
        plan = prepare(experiment, copts)
    except FashionTuneError as exc:
        logger.warning("seed confirmation skipped: %s", exc)
        return
    run_confirmation(experiment, plan, copts)
