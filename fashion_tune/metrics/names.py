"""The names of the scores every tick reports, their direction, and the objective.

Defined once, here, without heavy imports: the search-space schema, the trainer, the
live table and the report all read them.
"""

from __future__ import annotations

OBJECTIVE = "fd"  # what every shipped search space optimizes (lower is better)
# every number a tick reports about image quality -> True when lower is better
SCORES: dict[str, bool] = {
    "fd": True,
    "kid": True,
    "precision": False,
    "recall": False,
    "density": False,
    "coverage": False,
    "diversity": False,
    "sym_excess": True,
    "sym_gap": True,
    "sym_asym": True,
}
RULER = "metric_ref"  # the hash of the metric reference + settings that scored a tick


def nan_scores() -> dict[str, float]:
    """The scores of an image set that cannot be scored (non-finite pixels, diverged)."""
    return {name: float("nan") for name in SCORES}
