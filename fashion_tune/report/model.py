"""What a report holds once built: the records the renderers turn into HTML, Markdown, CSV, JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fashion_tune.report.ablate import Ablation
from fashion_tune.report.asha import AshaSummary
from fashion_tune.report.collect import Experiment
from fashion_tune.report.confirm import Confirmation
from fashion_tune.report.importance import Importance
from fashion_tune.report.rank import Entry


@dataclass
class TopTrial:
    entry: Entry
    anchor: str  # HTML id
    curves: str  # figure, relative to the report folder
    samples: str | None = None  # generated grid (relative); None: see samples_msg
    samples_msg: str = ""
    real: str | None = None  # real-image grid (relative); None: see real_msg
    real_msg: str = ""
    export: Path | None = None  # exported checkpoint folder
    export_msg: str = ""
    checkpoint_note: str = ""  # which checkpoint, at which tick, with which value


@dataclass
class Report:
    exp: Experiment
    out: Path
    metric: str
    mode: str
    top_k: int
    seed: int
    entries: list[Entry]  # the leaderboard, ranked first
    top: list[TopTrial]
    asha: AshaSummary
    importance: Importance
    quality: str  # the quality axis of the Pareto plot
    pareto_points: list[tuple[str, float, float]]  # (trial, quality, sym_gap)
    pareto_front: list[str]
    figures: dict[str, str | None]  # curves_all / pareto / importance / asha -> relative path
    created: str
    warnings: list[str] = field(default_factory=list)
    work: Path | None = None  # the temporary folder files go to while building (None: out)
    confirm: Confirmation | None = None  # the seed confirmation (None: not read)
    ablations: list[Ablation] = field(default_factory=list)
    ablation_figures: list[dict] = field(default_factory=list)  # per ablation, its figures

    @property
    def folder(self) -> Path:
        """Where the report's files are written now (``out`` once it is in place)."""
        return self.work or self.out
