"""``fashion-tune report``: read an experiment folder, rank its trials, write a report folder.

Modules, one concern each: ``collect`` (folder -> records), ``rank`` (best-over-all-ticks
leaderboard, Pareto front), ``asha`` (rung summary), ``importance`` (Optuna), ``plots``
(matplotlib), ``images`` (sample and real grids), ``export`` (checkpoints), ``render`` and
``markdown`` (the files), ``build`` (the steps in order).
"""

from fashion_tune.report.build import build_report
from fashion_tune.report.collect import ReportError, load_experiment

__all__ = ["ReportError", "build_report", "load_experiment"]
