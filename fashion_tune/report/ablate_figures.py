"""The Ablation section's figures: paired differences, speed curves, samples side by side."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.ticker import NullFormatter, ScalarFormatter

from fashion_tune.report.ablate import Ablation
from fashion_tune.report.collect import Experiment, sub_store
from fashion_tune.report.plots import _save, plt

SAMPLES_FILE = "samples.png"  # train() writes the newest sample grid here each tick


def paired_plot(abl: Ablation, path: Path) -> Path | None:
    """One panel per value: each seed a line from its base value to its variant value."""
    others = [v for v in abl.values[1:] if v.vs_base is not None and v.vs_base.n]
    if not others:
        return None
    base = {r.seed: r.final.value for r in abl.values[0].runs if r.final.value is not None}
    fig, axes = plt.subplots(1, len(others), figsize=(2.6 * len(others) + 0.6, 3.4), sharey=True)
    axes = np.atleast_1d(axes)
    cmap = plt.get_cmap("tab10")
    for ax, v in zip(axes, others, strict=True):
        for j, r in enumerate(v.runs):
            if r.final.value is None or r.seed not in base:
                continue
            ax.plot([0, 1], [base[r.seed], r.final.value], "-o", color=cmap(j % 10), ms=4, lw=1.2)
        p = v.vs_base
        ax.set_xticks([0, 1], [str(abl.values[0].value), str(v.value)])
        ax.set_xlim(-0.3, 1.3)
        if p is not None and p.mean_diff is not None:
            ax.set_title(f"{v.value}: {p.mean_diff:+.3g}", fontsize=9)
        else:
            ax.set_title(str(v.value), fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{abl.metric} at {abl.budget:g} kimg")
    fig.suptitle(f"{abl.key}, paired by seed (improvement > 0 is better)", fontsize=10)
    return _save(fig, path)


def speed_plot(abl: Ablation, path: Path) -> Path | None:
    """The objective vs kimg per value: mean over seeds at each tick and a min-max band."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    cmap = plt.get_cmap("tab10")
    drawn = False
    for i, v in enumerate(abl.values):
        by_kimg: dict[float, list[float]] = {}
        for r in v.runs:
            for k, y in r.curve:
                by_kimg.setdefault(round(k, 3), []).append(y)
        if not by_kimg:
            continue
        xs = sorted(by_kimg)
        ys = [by_kimg[x] for x in xs]
        mean = [float(np.mean(y)) for y in ys]
        ax.plot(xs, mean, color=cmap(i % 10), lw=1.8, label=f"{v.value} (n={len(v.runs)})")
        ax.fill_between(xs, [min(y) for y in ys], [max(y) for y in ys], color=cmap(i % 10),
                        alpha=0.15, lw=0)  # fmt: skip
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    if abl.threshold is not None:
        ax.axhline(abl.threshold, color="black", ls="--", lw=0.8, label="speed threshold")
    ax.set_xlabel("kimg")
    ax.set_ylabel(abl.metric)
    if abl.mode == "min" and all(y > 0 for v in abl.values for r in v.runs for _, y in r.curve):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(ScalarFormatter())  # 2, 4, 10 rather than 2x10^0
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, title=abl.key, title_fontsize=8)
    return _save(fig, path)


def sample_grids(exp: Experiment, abl: Ablation, folder: Path) -> list[tuple[str, str | None]]:
    """(value, file in ``folder``) per value: the last sample grid of its run with the
    first seed that has one (every value the same seed when it can)."""
    store = sub_store(exp.store, abl.folder)
    pick = next(
        (
            j
            for j in range(len(abl.seeds))
            if all(j < len(v.runs) and v.runs[j].final.trial for v in abl.values)
        ),
        0,
    )
    out: list[tuple[str, str | None]] = []
    folder.mkdir(parents=True, exist_ok=True)
    for i, v in enumerate(abl.values):
        run = v.runs[pick] if pick < len(v.runs) else None
        name = None
        if run is not None and run.final.trial:
            try:
                data = store.read_bytes(f"{run.final.trial}/{SAMPLES_FILE}")
                name = f"value{i}.png"
                (folder / name).write_bytes(data)
            except OSError as exc:
                logging.getLogger("fashion_tune.report").info("no samples: %s", exc)
        out.append((f"{v.value} (seed {run.seed if run else '–'})", name))
    return out


def figures(exp: Experiment, abl: Ablation, images: Path, rel: str) -> dict[str, Any]:
    """Every figure of one ablation under ``images`` (paths returned relative, ``rel/``)."""
    images.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    p = paired_plot(abl, images / "paired.png")
    out["paired"] = f"{rel}/paired.png" if p else None
    s = speed_plot(abl, images / "speed.png")
    out["speed"] = f"{rel}/speed.png" if s else None
    out["samples"] = [
        (label, f"{rel}/{name}" if name else None) for label, name in sample_grids(exp, abl, images)
    ]
    return out
