"""``fashion-tune confirm``: retrain a finished search's winners with fresh seeds."""

from __future__ import annotations

from typing import Annotated

import typer

from fashion_tune.cli.common import (
    AddressOption,
    MaxFailuresOption,
    console,
    experiment_location,
)


def confirm(
    experiment: Annotated[
        str,
        typer.Argument(help="Experiment folder or URI (what `fashion-tune search` printed)."),
    ],
    top_k: Annotated[
        int | None,
        typer.Option(
            "--top-k",
            "-k",
            help="Configs to confirm, best first (default: the space's confirm.top_k, else 3).",
        ),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option(help="Fresh seeds per config, 2-100 (default: confirm.seeds, else 3)."),
    ] = None,
    address: AddressOption = None,
    max_failures: MaxFailuresOption = 3,
) -> None:
    """Retrain the top-k configs of a finished search and its literature default (the
    space's first point) with fresh seeds at the full budget.

    Cost: (top-k + 1) configs x seeds trials, each trained to the search's full budget
    (top-k if the default is among the top-k). The trials are Ray Tune trials of the
    experiment, in EXPERIMENT/confirm/ (one folder per trial, checkpoints each tick,
    fashion_tune_confirm.json holds the plan); a failed trial retries from its
    checkpoint, and running the command again resumes an interrupted confirmation
    without training a finished trial twice. `fashion-tune report EXPERIMENT` then shows
    every seed's value, each config's mean with a 95% interval, and whether #1 beats
    the literature default beyond seed noise.
    """
    from rich.markup import escape

    from fashion_tune.report.collect import load_experiment
    from fashion_tune.report.confirm import interval_text, read_confirmation, seed_text
    from fashion_tune.search import preflight
    from fashion_tune.search.confirm import (
        ConfirmOptions,
        prepare,
        run_confirmation,
        space_settings,
    )
    from fashion_tune.search.tuner import init_ray

    preflight.check_max_failures(max_failures)
    experiment = experiment_location(experiment)
    exp = load_experiment(experiment)  # missing / not an experiment: one error line
    settings = space_settings(exp.search or {})
    opts = ConfirmOptions(
        top_k=top_k,
        seeds=seeds,
        default_counts=settings.confirm,
        max_failures=max_failures,
        cpus_per_trial=settings.cpus_per_trial,
        gpus_per_trial=settings.gpus_per_trial,
        max_concurrent=settings.max_concurrent,
    )
    plan = prepare(experiment, opts)  # every check; writes nothing
    k, s = len(plan["configs"]), len(plan["seeds"])
    console.print(
        f"seed confirmation: {k} configs x {s} seeds = {k * s} trials at "
        f"{plan['max_kimg']:g} kimg -> {experiment.rstrip('/')}/confirm",
        highlight=False,
        markup=False,
    )
    init_ray(address)
    run_confirmation(experiment, plan, opts)

    conf = read_confirmation(load_experiment(experiment))
    for c in conf.configs:
        values = ", ".join(seed_text(v) for v in c.seeds)
        mean = f"{c.stats.mean:.4g}" if c.stats else "–"
        line = (
            f"  {c.rank or '–'}. {c.label}: mean {conf.metric} {mean} "
            f"{interval_text(c.stats)} (seeds: {values})"
        )
        console.print(escape(line), highlight=False, soft_wrap=True)
    console.print(escape(conf.verdict), highlight=False, soft_wrap=True)
    console.print(f"next: fashion-tune report {experiment}", highlight=False, markup=False)
