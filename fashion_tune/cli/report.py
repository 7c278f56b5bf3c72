"""``fashion-tune report``: a self-contained HTML / Markdown / CSV / JSON experiment report."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from fashion_tune.cli.common import console, err_console


def report(
    experiment: Annotated[
        str,
        typer.Argument(help="Experiment folder or URI (what `fashion-tune search` printed)."),
    ],
    top_k: Annotated[
        int, typer.Option("--top-k", "-k", help="Trials shown in detail and exported.")
    ] = 5,
    metric: Annotated[
        str | None,
        typer.Option(help="Metric to rank by (default: the search's objective)."),
    ] = None,
    mode: Annotated[
        str | None,
        typer.Option(
            help="min or max (default: the search's mode; min for fd, kid, sym_excess; "
            "max for precision, recall, density, coverage, diversity)."
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Report folder (default: reports/<experiment name>)."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Noise seed of the sample grids.")] = 0,
) -> None:
    """Rank an experiment's trials by their best value over all ticks and write a report.

    Reads the experiment as it is on storage (finished, unfinished or partly failed)
    and re-runs nothing. Writes OUT/index.html (open it from disk; it needs no
    network), report.md, leaderboard.csv and leaderboard.json; for each top-k trial its
    metric curves, a fixed-seed sample grid beside real images, and its best
    checkpoint exported to OUT/checkpoints/ (for `fashion-tune sample`).
    """
    from rich.markup import escape
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from fashion_tune.data.storage import is_uri
    from fashion_tune.report import build_report

    # the experiment's own folder name ("." and ".." resolved): reports/<name>
    last = experiment.rstrip("/").rsplit("/", 1)[-1] if is_uri(experiment) else ""
    name = last or Path(experiment).expanduser().resolve().name or "experiment"
    folder = out if out is not None else Path("reports") / name
    with Progress(
        SpinnerColumn(),
        TextColumn("[bold]report[/] {task.description}"),
        TimeElapsedColumn(),
        console=err_console,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None)
        result = build_report(
            experiment,
            folder,
            top_k=top_k,
            metric=metric,
            mode=mode,
            seed=seed,
            step=lambda text: bar.update(task, description=text),
        )
    for w in result.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False, soft_wrap=True)
    ranked = [e for e in result.entries if e.rank]
    better = "lower" if result.mode == "min" else "higher"
    console.print(
        f"{len(result.entries)} trials, {len(ranked)} ranked by best {result.metric} "
        f"({better} is better)",
        highlight=False,
        markup=False,
    )
    for t in result.top:
        e = t.entry
        where = f" at {e.best_row.get('kimg')} kimg" if e.best_row else ""
        ck = f" -> {t.export}" if t.export else f" (no export: {t.export_msg})"
        line = f"  #{e.rank} {e.name}: {result.metric} {e.best:.4g}{where}{ck}"
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    console.print(f"report: {folder / 'index.html'}", highlight=False, markup=False, soft_wrap=True)
