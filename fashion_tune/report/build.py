"""``build_report``: an experiment folder -> a report folder, re-running nothing.

Steps: read the experiment; rank trials by their best value; draw the experiment's
figures; for each top-k trial export its best checkpoint and sample a fixed-seed grid
from it beside real images; compute importance, the ASHA summary and the seed
confirmation's statistics; write ``index.html``, ``report.md``, ``leaderboard.csv``
and ``leaderboard.json``. A missing piece (a checkpoint, the data set, results)
becomes a warning and a note in the page, never a failed report.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from fashion_tune.atomic import atomic_dir
from fashion_tune.errors import FashionTuneError
from fashion_tune.report import ablate as ablate_mod
from fashion_tune.report import ablate_figures, plots, rank
from fashion_tune.report import asha as asha_mod
from fashion_tune.report import confirm as confirm_mod
from fashion_tune.report import importance as imp_mod
from fashion_tune.report.collect import Experiment, ReportError, load_experiment
from fashion_tune.report.export import export_checkpoint, safe_name
from fashion_tune.report.model import Report, TopTrial
from fashion_tune.report.render import write_all

Step = Callable[[str], None]  # told the description of each step as it starts
MAX_SEED = 2**32 - 1  # what NumPy / torch generators accept
MARKER = ".fashion-tune-report"


def _check_out(out: Path) -> None:
    """Refuse an --out that is a file or someone else's folder (writes nothing).

    A marker file says a folder is ours: any other non-empty folder is refused, so a
    mistyped --out never loses files.
    """
    if out.is_symlink() or (out.exists() and not out.is_dir()):
        raise ReportError(f"--out {out} is a file or a link; give a folder")
    try:
        foreign = out.is_dir() and any(out.iterdir()) and not (out / MARKER).exists()
    except OSError as exc:
        raise ReportError(f"--out {out} cannot be read ({exc.strerror})") from None
    if foreign:
        raise ReportError(f"--out {out} is a non-empty folder that holds no report; give another")


def _start(work: Path) -> None:
    (work / MARKER).write_text(
        "written by fashion-tune report; it may replace this folder's files\n"
    )
    (work / "images").mkdir()


def _real_grid(
    top: TopTrial,
    data: str | None,
    classes: list[str],
    seed: int,
    out: Path,
    cache: dict[str, str | Exception],
) -> None:
    from fashion_tune.report.images import real_grid

    if not data:
        top.real_msg = "the trial config names no data set"
        return
    key = f"{data}|{','.join(classes)}"
    if key not in cache:
        try:
            rel = f"images/real-{len(cache)}.png"
            real_grid(data, classes, seed).save(out / rel)
            cache[key] = rel
        except (FashionTuneError, OSError) as exc:
            cache[key] = exc
    got = cache[key]
    if isinstance(got, str):
        top.real = got
    else:
        top.real_msg = f"the data set {data} cannot be read here ({got})"


def _top_trial(report: Report, e: rank.Entry, cache: dict[str, str | Exception]) -> TopTrial:
    from fashion_tune.report.images import sample_grid

    out, exp = report.folder, report.exp
    slug = f"{e.rank}-{safe_name(e.name)}"
    top = TopTrial(e, f"trial-{slug}", f"images/curves-{slug}.png")
    colour = plots.colours(report.entries, report.top_k)[e.trial.trial_id]
    plots.trial_curves(e, report.metric, colour, out / top.curves)
    ck = e.checkpoint
    if ck is None:
        top.samples_msg = top.export_msg = "no checkpoint of this trial is left in its folder"
        return top
    value = rank.finite((ck.metrics or {}).get(report.metric))
    tick = (ck.metrics or {}).get("tick", "?")
    top.checkpoint_note = f"{ck.name}, tick {tick}, {report.metric} " + (
        f"{value:.4g}" if value is not None else "unknown"
    )
    if value is not None and e.best is not None and value != e.best:
        top.checkpoint_note += f"; the best tick ({e.best:.4g}) was not kept"
    try:
        exported = export_checkpoint(
            exp, e.trial, ck, out / "checkpoints" / slug,
            {"rank": e.rank, "metric": report.metric, "best_value": e.best},
        )  # fmt: skip
        grid, classes = sample_grid(exported, report.seed)
    except (FashionTuneError, OSError) as exc:
        msg = f"{ck.name} cannot be loaded: {exc}"
        top.samples_msg = top.export_msg = msg
        report.warnings.append(f"{e.name} (#{e.rank}): {msg}")
        return top
    top.export = report.out / "checkpoints" / slug  # where it is once the report is in place
    top.samples = f"images/samples-{slug}.png"
    grid.save(out / top.samples)
    data = ((e.trial.config or {}).get("data") or {}).get("path")
    _real_grid(top, data, classes, report.seed, out, cache)
    return top


def build_report(
    location: str,
    out: Path,
    *,
    top_k: int = 5,
    metric: str | None = None,
    mode: str | None = None,
    seed: int = 0,
    step: Step = lambda _: None,
) -> Report:
    """Write the report of experiment ``location`` into folder ``out``.

    The report is built in a temporary folder beside ``out`` and swapped in at the end:
    a report that fails leaves the previous one as it was.
    """
    if top_k < 1:
        raise ReportError("--top-k must be at least 1")
    if not 0 <= seed <= MAX_SEED:
        raise ReportError(f"--seed must be in [0, {MAX_SEED}], got {seed}")
    step("reading the experiment")
    exp = load_experiment(location)
    metric, mode = rank.resolve_metric(exp, metric, mode)
    _check_out(out)
    try:
        with atomic_dir(out) as work:
            _start(work)
            report = _build(exp, out, work, metric, mode, top_k, seed, step)
    except OSError as exc:
        where = exc.filename or out
        raise ReportError(
            f"cannot write the report to {out}: {exc.strerror or exc} ({where}); "
            "any previous report there is unchanged"
        ) from None
    report.work = None
    return report


def _build(
    exp: Experiment, out: Path, work: Path, metric: str, mode: str, top_k: int, seed: int,
    step: Step,
) -> Report:  # fmt: skip
    entries = rank.leaderboard(exp, metric, mode)
    quality = rank.quality_metric(exp, metric)
    q_mode = mode if quality == metric else exp.mode if quality == exp.metric else "min"
    points, front = rank.quality_vs_symmetry(entries, quality, q_mode)
    step("ASHA summary and parameter importance")
    summary = asha_mod.summarize(exp, entries)
    importance = imp_mod.compute(exp, entries, mode)
    report = Report(
        exp, out, metric, mode, top_k, seed, entries, [], summary, importance, quality,
        points, front, {}, time.strftime("%Y-%m-%d %H:%M"), list(exp.warnings), work,
    )  # fmt: skip
    if not any(e.rank for e in entries):
        report.warnings.append(f"no trial reported a finite {metric}: nothing to rank")
    step("experiment figures")
    img = work / "images"
    report.figures["curves_all"] = "images/metric-vs-kimg.png"
    plots.metric_vs_kimg(
        entries, metric, top_k, [r.kimg for r in summary.rungs] if summary.unit == "kimg" else [],
        summary.max_kimg,
        img / "metric-vs-kimg.png",
    )  # fmt: skip
    ranks = {e.name: e.rank for e in entries if e.rank}
    if points:
        report.figures["pareto"] = "images/pareto.png"
        plots.pareto(
            points, front, quality, ranks, img / "pareto.png", rank.symmetry_metric(entries)
        )
    if importance.values:
        report.figures["importance"] = "images/importance.png"
        plots.importance_bars(importance, img / "importance.png")
    report.figures["asha"] = "images/asha.png"
    plots.asha_bars(summary, img / "asha.png")
    step("seed confirmation")
    report.confirm = confirm_mod.read_confirmation(exp)
    report.ablations = ablate_mod.read_ablations(exp)
    for i, abl in enumerate(report.ablations):
        step(f"ablation of {abl.key} ({abl.base})")
        rel = f"images/ablation{i}"
        report.ablation_figures.append(ablate_figures.figures(exp, abl, work / rel, rel))
    cache: dict[str, str | Exception] = {}
    for e in [e for e in entries if e.rank and e.rank <= top_k]:
        step(f"top {e.rank}: {e.name} (export, samples)")
        report.top.append(_top_trial(report, e, cache))
    step("writing index.html, report.md, leaderboard.csv/json")
    write_all(report)
    return report
