"""A built report -> ``index.html`` (jinja2, autoescaped), ``report.md``, CSV and JSON.

Every user-controlled string (trial names, params, config values, paths, error text)
reaches the HTML only through jinja2's autoescaping, and the Markdown only through
:func:`md`. CSV and JSON keep full-precision numbers; the page rounds to 4 digits.
"""

from __future__ import annotations

import csv
import json
import math
import shlex
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from fashion_tune.report import ablate as ablate_mod
from fashion_tune.report import confirm as confirm_mod
from fashion_tune.report.model import Report, TopTrial
from fashion_tune.report.plots import MANY_CURVES, curve_counts
from fashion_tune.report.rank import Entry, finite, symmetry_metric

# shown beside the ranking metric: quality, fidelity / diversity, symmetry (sym_gap for
# experiments made before sym_excess existed)
SIDE = (
    "fd", "kid", "precision", "recall", "coverage", "diversity", "sym_excess", "sym_gap",
    "shape_iou", "fabric_top1", "texture_top1",  # fashiongan: sketch fidelity, the swap test
)  # fmt: skip


def fmt(v: Any) -> str:
    if v is None:
        return "–"
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else f"{v:.4g}"
    return str(v)


def shown(row: dict[str, Any], key: str) -> str:
    """A metric of a tick for display: 'missing' when the tick never reported it (a trial
    scored before the metric existed), never a made-up zero."""
    return fmt(row.get(key)) if key in row else "missing"


def outcome_text(e: Entry) -> str:
    if e.outcome == "stopped":
        return f"stopped at {e.kimg:g} kimg"
    if e.outcome == "unfinished":
        return f"unfinished ({e.trial.status})"
    if e.outcome == "diverged":
        return f"diverged at {e.kimg:g} kimg"
    return e.outcome


def side_metrics(report: Report) -> list[str]:
    have = {k for e in report.entries for r in e.trial.rows for k in r}
    side = [m for m in SIDE if m != report.metric and m in have]
    if "sym_excess" in side and "sym_gap" in side:
        side.remove("sym_gap")
    return side


def param_keys(report: Report) -> list[str]:
    return sorted({k for e in report.entries for k in e.trial.params})


def command(top: TopTrial) -> str:
    assert top.export is not None
    png = f"samples-{top.export.name}.png"
    return f"fashion-tune sample {shlex.quote(str(top.export))} --out {png}"


# -- CSV / JSON ----------------------------------------------------------------------------
def records(report: Report) -> list[dict[str, Any]]:
    exported = {t.entry.trial.trial_id: t.export for t in report.top}
    side = side_metrics(report)  # once: it reads every row of every trial
    out = []
    for e in report.entries:
        row = e.best_row or {}
        exp_dir = exported.get(e.trial.trial_id)
        rec: dict[str, Any] = {
            "rank": e.rank,
            "trial_id": e.trial.trial_id,
            "trial": e.name,
            "status": e.trial.status,
            "outcome": e.outcome,
            "metric": report.metric,
            "best": e.best,
            "best_kimg": finite(row.get("kimg")),
            "best_tick": row.get("tick"),
            "last": e.last,
            "kimg": e.kimg,
            "ticks": len(e.trial.rows),
        }
        for m in side:
            rec[f"{m}_at_best"] = finite(row.get(m))
        rec["best_checkpoint"] = e.checkpoint.name if e.checkpoint else None
        rec["exported_checkpoint"] = (
            str(exp_dir.relative_to(report.out)) if exp_dir is not None else None
        )
        rec["error"] = e.trial.error.splitlines()[-1][:300] if e.trial.error else None
        rec["params"] = dict(e.trial.params)
        out.append(rec)
    return out


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what spreadsheets read as a formula


def _csv_cell(v: Any) -> Any:
    if isinstance(v, str) and v[:1] in FORMULA_STARTS:
        return "'" + v  # a spreadsheet must not run it as a formula (OWASP CSV injection)
    return "" if v is None else v


def write_csv(report: Report, recs: list[dict[str, Any]]) -> None:
    keys = param_keys(report)
    with open(report.folder / "leaderboard.csv", "w", newline="") as f:
        w = csv.writer(f)
        head = [k for k in recs[0] if k != "params"] if recs else ["rank"]
        w.writerow(head + keys)
        for r in recs:
            cells = [r[k] for k in head] + [r["params"].get(k) for k in keys]
            w.writerow([_csv_cell(c) for c in cells])


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v if isinstance(v, (str, int, float, bool)) or v is None else str(v)


def document(report: Report, recs: list[dict[str, Any]]) -> dict[str, Any]:
    a, imp = report.asha, report.importance
    return _clean(
        {
            "experiment": report.exp.location,
            "name": report.exp.name,
            "metric": report.metric,
            "mode": report.mode,
            "created": report.created,
            "trials": recs,
            "pareto": {"quality": report.quality, "front": report.pareto_front},
            "importance": {
                "values": imp.values, "n_trials": imp.n_trials, "evaluator": imp.evaluator,
                "message": imp.message, "left_out": imp.left_out,
            },
            "asha": {
                "scheduler": a.scheduler, "max_kimg": a.max_kimg, "grace_kimg": a.grace_kimg,
                "reduction_factor": a.reduction_factor,
                "rungs": [{"kimg": r.kimg, "level": r.kimg, "bracket": r.bracket,
                           "reached": r.reached, "promoted": r.promoted, "stopped": r.stopped}
                          for r in a.rungs],
                "finished": a.finished, "other": a.other, "trials": a.trials,
                "used_kimg": a.used_kimg, "full_kimg": a.full_kimg, "savings": a.savings,
                "unit": a.unit, "used": a.used, "full": a.full, "promotions": a.promotions,
                "events": a.events, "optuna_states": a.optuna_states,
            },
            "confirmation": confirm_mod.document(report.confirm),
            "ablations": [ablate_mod.document(a) for a in report.ablations],
            "warnings": report.warnings,
        }
    )  # fmt: skip


# -- HTML ----------------------------------------------------------------------------------
def _board(report: Report, side: list[str], keys: list[str]) -> list[dict[str, Any]]:
    anchors = {t.entry.trial.trial_id: t.anchor for t in report.top}
    board = []
    for e in report.entries:
        row = e.best_row or {}
        board.append(
            {
                "rank": e.rank or "–",
                "name": e.name,
                "top": e.trial.trial_id in anchors,
                "anchor": anchors.get(e.trial.trial_id, ""),
                "outcome": outcome_text(e),
                "outcome_kind": e.outcome,
                "outcome_class": e.outcome.replace(" ", "-"),
                "best": fmt(e.best),
                "best_kimg": fmt(finite(row.get("kimg"))),
                "last": fmt(e.last),
                "side": [shown(row, m) for m in side],
                "kimg": fmt(e.kimg),
                "params": [fmt(e.trial.params.get(k)) for k in keys],
            }
        )
    return board


def _top(report: Report, t: TopTrial, side: list[str]) -> dict[str, Any]:
    e, row = t.entry, t.entry.best_row or {}
    numbers = [
        (f"best {report.metric}", fmt(e.best)),
        ("at kimg / tick", f"{fmt(row.get('kimg'))} / {fmt(row.get('tick'))}"),
        *[(f"{m} at best tick", shown(row, m)) for m in side],
        (f"last {report.metric}", fmt(e.last)),
        ("kimg run", fmt(e.kimg)),
    ]
    return {
        "rank": e.rank,
        "name": e.name,
        "anchor": t.anchor,
        "best": fmt(e.best),
        "best_kimg": fmt(row.get("kimg")),
        "outcome": outcome_text(e),
        "outcome_class": e.outcome.replace(" ", "-"),
        "samples": t.samples,
        "samples_msg": t.samples_msg,
        "real": t.real,
        "real_msg": t.real_msg,
        "checkpoint": e.checkpoint.name if e.checkpoint else "",
        # fashiongan: the grid is a swap sheet (sketches x fabrics), no noise seed
        "paired": ((e.trial.config or {}).get("model") or {}).get("arch") == "fashiongan",
        "numbers": numbers,
        "params": [(k, fmt(v)) for k, v in sorted(e.trial.params.items())],
        "curves": t.curves,
        "export": str(t.export) if t.export else None,
        "export_msg": t.export_msg,
        "checkpoint_note": t.checkpoint_note,
        "command": command(t) if t.export else "",
        "config": json.dumps(e.trial.config, indent=1) if e.trial.config else "(none)",
    }


SCHEDULER_NAMES = {
    "asha": "promotion ASHA (trials pause at rungs, the best are resumed)",
    "asha-stop": "Ray's stopping ASHA",
    "fifo": "FIFO (every trial to its full budget)",
}


def _asha(report: Report) -> dict[str, Any]:
    a = report.asha
    saved = f"{a.savings:.0%}" if a.savings is not None else None
    unit = "compute units" if a.unit == "compute" else "kimg"
    rows = [("scheduler", SCHEDULER_NAMES.get(a.scheduler, a.scheduler))]
    rows.append(("budget unit", "compute (training FLOPs)" if a.unit == "compute" else "kimg"))
    if a.grace_kimg is not None:
        rows.append(
            ("grace, reduction factor", f"{a.grace_kimg:g} {unit}, {fmt(a.reduction_factor)}")
        )
    if a.brackets > 1:
        rows.append(("brackets", str(a.brackets)))
    rows += [
        ("max kimg per trial", fmt(a.max_kimg)),
        ("trials that trained", str(a.trials)),
        ("ran the whole budget", str(a.finished)),
    ]
    if a.promotions:
        at_once, resumed = a.promotions.get("at once", 0), a.promotions.get("resumed", 0)
        rows.append(
            (
                "promotions",
                f"{at_once + resumed} ({at_once} at once, {resumed} resumed from a pause)",
            )
        )
    rows += [
        (f"{unit} used", f"{a.used:.4g}"),
        (f"{unit} if all ran to the full budget", f"{a.full:.4g}"),
        ("saved", saved or "–"),
    ]
    if a.unit == "compute":
        ks = a.kimg_savings
        rows.append(
            (
                "kimg used / if all ran",
                f"{a.used_kimg:.4g} / {a.full_kimg:.4g}"
                + (f" (saved {ks:.0%})" if ks is not None else ""),
            )
        )
    if a.optuna_states:
        rows.append(
            (
                "Optuna trial states (journal)",
                ", ".join(f"{k} {v}" for k, v in sorted(a.optuna_states.items())),
            )
        )
    rungs = [
        (
            f"{r.kimg:.3g}" + (f" (bracket {r.bracket})" if a.brackets > 1 else ""),
            r.reached,
            r.promoted,
            r.stopped,
        )
        for r in a.rungs
    ]
    notes = list(a.notes) + ([a.unit_note] if a.unit_note else [])
    return {"rows": rows, "notes": notes, "savings": saved, "rungs": rungs, "unit": unit,
            "promotion": a.scheduler == "asha"}  # fmt: skip


def _level(level: float, bracket: int, brackets: int) -> str:
    return f"{level:.3g}" + (f" (bracket {bracket})" if brackets > 1 else "")


def _importance(report: Report) -> dict[str, Any]:
    imp = report.importance
    about = (
        f"{imp.evaluator} over {imp.n_trials} ended trials, each with its best {report.metric}."
        if imp.evaluator
        else ""
    )
    return {
        "scores": [(k, f"{v:.3f}") for k, v in imp.values.items()],
        "about": about,
        "message": imp.message,
        "left_out": sorted(imp.left_out.items()),
    }


def html_context(report: Report) -> dict[str, Any]:
    """Display strings for the template and the Markdown (escaping is theirs)."""
    side, keys = side_metrics(report), param_keys(report)
    counts: dict[str, int] = {}
    for e in report.entries:
        counts[e.outcome] = counts.get(e.outcome, 0) + 1
    pts = {n: (q, g) for n, q, g in report.pareto_points}
    ranks = {e.name: e.rank for e in report.entries if e.rank}
    front = [(ranks.get(n, "–"), n, fmt(pts[n][0]), fmt(pts[n][1])) for n in report.pareto_front]
    drawn, top_drawn = curve_counts(report.entries, report.metric, report.top_k)
    curves = {"drawn": drawn, "top": top_drawn, "many": MANY_CURVES}
    return {
        "name": report.exp.name,
        "location": report.exp.location,
        "metric": report.metric,
        "mode": report.mode,
        "created": report.created,
        "seed": report.seed,
        "n_trials": len(report.entries),
        "outcomes": sorted(counts.items()),
        "warnings": report.warnings,
        "side_metrics": side,
        "param_keys": keys,
        "board": _board(report, side, keys),
        "top": [_top(report, t, side) for t in report.top],
        "quality": report.quality,
        "symmetry": symmetry_metric(report.entries),
        "front": front,
        "importance": _importance(report),
        "asha": _asha(report),
        "curves_all": report.figures.get("curves_all"),
        "curves": curves,
        "pareto_img": report.figures.get("pareto"),
        "importance_img": report.figures.get("importance"),
        "asha_img": report.figures.get("asha"),
        "errors": [
            (e.name, e.trial.error.strip().splitlines()[-1][:200], e.trial.error)
            for e in report.entries
            if e.trial.error and e.trial.error.strip()
        ],
        "search_yaml": (report.exp.search or {}).get("space_yaml"),
        "confirm": confirm_mod.context(report.confirm, report.exp.location),
        "ablations": [
            {**ablate_mod.context(a), "figures": f}
            for a, f in zip(report.ablations, report.ablation_figures, strict=False)
        ],
        "ablate_command": f"fashion-tune ablate {report.exp.location} "
        "--vary loss.symmetry=none,consistency,adversarial,pixel --seeds 5",
    }


def write_html(report: Report) -> None:
    env = Environment(
        loader=PackageLoader("fashion_tune.report", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    html = env.get_template("index.html.j2").render(r=html_context(report))
    (report.folder / "index.html").write_text(html, encoding="utf-8")


def write_all(report: Report) -> None:
    from fashion_tune.report.markdown import write_markdown

    recs = records(report)
    write_csv(report, recs)
    (report.folder / "leaderboard.json").write_text(
        json.dumps(document(report, recs), indent=1, allow_nan=False)
    )
    write_markdown(report, html_context(report))
    write_html(report)
