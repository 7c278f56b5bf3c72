"""The report's figures (matplotlib, Agg backend), each written as a PNG file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from fashion_tune.report.asha import AshaSummary
from fashion_tune.report.importance import Importance
from fashion_tune.report.rank import Entry, finite

DPI = 100
GREY = "#b0b0b0"


def _save(fig: Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def colours(entries: list[Entry], top_k: int) -> dict[str, Any]:
    """A colour per top-k trial (by rank), grey for the rest."""
    cmap = plt.get_cmap("tab10")
    out: dict[str, Any] = {}
    for e in entries:
        out[e.trial.trial_id] = cmap((e.rank - 1) % 10) if e.rank and e.rank <= top_k else GREY
    return out


def _text(s: str) -> str:
    """A user string as literal text for matplotlib (no mathtext between dollar signs)."""
    return s.replace("$", r"\$")


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for r in rows:
        x, y = finite(r.get("kimg")), finite(r.get(key))
        if x is not None and y is not None:
            xs.append(x)
            ys.append(y)
    return xs, ys


MANY_CURVES = 100  # above this many curves the other trials are drawn thin and faint


def curve_counts(entries: list[Entry], metric: str, top_k: int) -> tuple[int, int]:
    """How many trials :func:`metric_vs_kimg` draws (those with a finite point), and how
    many of them are in the top k."""
    drawn = [e for e in entries if _series(e.trial.rows, metric)[0]]
    return len(drawn), sum(1 for e in drawn if e.rank is not None and e.rank <= top_k)


def metric_vs_kimg(
    entries: list[Entry],
    metric: str,
    top_k: int,
    rungs: list[float],
    budget: float | None,
    path: Path,
) -> Path:
    """Every trial's curve; where a line ends before the budget, ASHA (or an error) stopped it.

    Up to :data:`MANY_CURVES` curves every trial is drawn with its points. Above, the
    trials outside the top k are one faint collection of thin lines without points (and
    small, faint end marks), so the top trials stay readable on top of hundreds of
    others, and drawing stays fast.
    """
    fig, ax = plt.subplots(figsize=(9, 4.6))
    col = colours(entries, top_k)
    for r in rungs:
        ax.axvline(r, color="#dddddd", lw=1, ls="--", zorder=0)
    end = {"stopped": ("x", "black"), "diverged": ("X", "red"), "errored": ("X", "red")}
    series = [(e, *_series(e.trial.rows, metric)) for e in entries]
    series = [(e, xs, ys) for e, xs, ys in series if xs]
    many = len(series) > MANY_CURVES
    rest: list[list[tuple[float, float]]] = []
    rest_ends: dict[tuple[str, str], tuple[list[float], list[float]]] = {}
    for e, xs, ys in reversed(series):  # the best drawn last, on top
        top = e.rank is not None and e.rank <= top_k
        c = col[e.trial.trial_id]
        marker, mc = end.get(e.outcome, ("o", c))
        if many and not top:
            rest.append(list(zip(xs, ys)))
            ex, ey = rest_ends.setdefault((marker, mc), ([], []))
            ex.append(xs[-1])
            ey.append(ys[-1])
            continue
        label = _text(f"#{e.rank} {e.name}") if top else None
        z = 5 if many else 3
        ax.plot(xs, ys, color=c, lw=2 if top else 1, marker=".", label=label, zorder=z)
        ax.plot(xs[-1], ys[-1], marker=marker, color=mc, ms=8, mew=2, zorder=z + 1, ls="none")
    if rest:
        alpha = min(0.35, max(0.08, 30 / len(rest)))
        ax.add_collection(
            LineCollection(rest, colors="#808080", linewidths=0.6, alpha=alpha, zorder=2)
        )
        for (marker, mc), (ex, ey) in rest_ends.items():
            red = mc == "red"  # diverged / errored: drawn over the many stopped marks
            ax.plot(
                ex,
                ey,
                marker=marker,
                color=mc if red or mc == "black" else "#808080",
                ms=5 if red else 4,
                mew=1,
                alpha=0.7 if red else 0.35,
                ls="none",
                zorder=2.2 if red else 2.1,
            )
        ax.autoscale_view()
    handles, labels = ax.get_legend_handles_labels()
    order = sorted(range(len(labels)), key=lambda i: int(labels[i][1:].split()[0]))
    handles, labels = [handles[i] for i in order], [labels[i] for i in order]
    if rest:
        handles.append(Line2D([], [], color="#808080", lw=1))
        labels.append(f"the other {len(rest):,} trials")
    handles += [
        Line2D([], [], marker="x", color="black", ms=8, mew=2, ls="none"),
        Line2D([], [], marker="X", color="red", ms=8, ls="none"),
    ]
    labels += ["ended early by ASHA", "diverged / errored"]
    if budget:
        ax.axvline(budget, color="#888888", lw=1, zorder=0)
    ax.set_xlabel("kimg (thousands of real images shown to D)")
    ax.set_ylabel(_text(metric))
    dashed = " (dashed: ASHA rungs)" if rungs else ""
    ax.set_title(_text(f"{metric} vs kimg, all trials{dashed}"))
    ax.grid(alpha=0.3)
    ax.legend(
        handles, labels, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False
    )
    return _save(fig, path)


def trial_curves(entry: Entry, metric: str, colour: Any, path: Path) -> Path:
    """One trial: its objectives and losses per tick, the best tick marked."""
    keys = [metric] + [m for m in ("fd", "recall", "diversity", "sym_excess") if m != metric]
    keys = [k for k in keys if _series(entry.trial.rows, k)[0]]
    panels = [*keys, "losses"]
    fig, axes = plt.subplots(1, len(panels), figsize=(3.0 * len(panels), 2.6), squeeze=False)
    best_kimg = finite((entry.best_row or {}).get("kimg"))
    for ax, key in zip(axes[0], panels):
        if key == "losses":
            for k, c in (("loss/d", "#1f77b4"), ("loss/g", "#ff7f0e"), ("loss/sym", "#2ca02c")):
                xs, ys = _series(entry.trial.rows, k)
                if xs and any(ys):
                    ax.plot(xs, ys, marker=".", color=c, label=k.split("/")[1])
            ax.legend(fontsize=7, frameon=False)
        else:
            xs, ys = _series(entry.trial.rows, key)
            ax.plot(xs, ys, marker=".", color=colour)
            if key == metric and best_kimg is not None and entry.best is not None:
                ax.plot(best_kimg, entry.best, "*", color="gold", mec="black", ms=14, zorder=5)
        ax.set_title(_text(key), fontsize=10)
        ax.set_xlabel("kimg", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    return _save(fig, path)


def pareto(
    points: list[tuple[str, float, float]],
    front: list[str],
    quality: str,
    ranks: dict[str, int],
    path: Path,
    symmetry: str = "sym_excess",
) -> Path:
    """Quality vs symmetry at each competitive trial's best tick; the Pareto front joined."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    on = [p for p in points if p[0] in front]
    off = [p for p in points if p[0] not in front]
    ax.scatter([p[1] for p in off], [p[2] for p in off], color=GREY, s=40, label="trial")
    on.sort(key=lambda p: p[1])
    ax.plot(
        [p[1] for p in on],
        [p[2] for p in on],
        "-o",
        color="#d62728",
        ms=8,
        drawstyle="steps-post",
        label="Pareto front",
    )
    for name, x, y in points:
        tag = f"#{ranks[name]}" if name in ranks else ""
        ax.annotate(tag, (x, y), textcoords="offset points", xytext=(5, 5), fontsize=8)
    ax.set_xlabel(_text(f"{quality} at its best tick"))
    ax.set_ylabel(
        "sym_excess (0 = as symmetric as real garments)"
        if symmetry == "sym_excess"
        else "sym_gap (0 = perfectly symmetric, 1 = as real garments)"
    )
    ax.set_title("Quality vs symmetry")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, frameon=False)
    return _save(fig, path)


def importance_bars(imp: Importance, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * max(1, len(imp.values))))
    names = list(imp.values)[::-1]
    ax.barh([_text(n) for n in names], [imp.values[n] for n in names], color="#1f77b4")
    ax.set_xlim(0, 1)
    ax.set_xlabel("importance (sums to 1)")
    ax.set_title(f"Parameter importance ({imp.n_trials} trials)")
    ax.grid(alpha=0.3, axis="x")
    return _save(fig, path)


def asha_bars(summary: AshaSummary, path: Path) -> Path:
    """Trials stopped at each rung, and trials that ran the whole budget."""
    labels = [f"{r.kimg:.3g}" for r in summary.rungs]
    counts = [r.stopped for r in summary.rungs]
    colors = ["#ff7f0e"] * len(counts)
    if summary.unit == "kimg" and summary.max_kimg:
        labels.append(f"{summary.max_kimg:g}\n(finished)")
    else:  # in compute units each config's full budget differs
        labels.append("full budget\n(finished)")
    counts.append(summary.finished)
    colors.append("#2ca02c")
    for k, n in summary.other.items():
        labels.append(k)
        counts.append(n)
        colors.append("#d62728")
    fig, ax = plt.subplots(figsize=(6.4, 3.4))
    bars = ax.bar(range(len(counts)), counts, color=colors)
    ax.bar_label(bars, fontsize=8)
    ax.set_xticks(range(len(labels)), labels, fontsize=8)
    unit = "compute units" if summary.unit == "compute" else "kimg"
    ax.set_xlabel(f"rung ({unit}) where trials ended")
    ax.set_ylabel("trials")
    ax.set_title("Where trials ended")
    return _save(fig, path)
