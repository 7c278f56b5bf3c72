"""``fashion-tune ablate``: vary one setting of a finished search's config, paired over seeds."""

from __future__ import annotations

from typing import Annotated

import typer

from fashion_tune.cli.common import (
    AddressOption,
    MaxFailuresOption,
    console,
    experiment_location,
)


def ablate(
    experiment: Annotated[
        str,
        typer.Argument(help="Experiment folder or URI (what `fashion-tune search` printed)."),
    ],
    vary: Annotated[
        str,
        typer.Option(
            help="The setting and its values, KEY=V1,V2,... e.g. "
            "loss.symmetry=none,consistency,adversarial,pixel (the base's own value is "
            "always included, first)."
        ),
    ],
    seeds: Annotated[
        int, typer.Option(help="Fresh seeds per value, 2-100 (the same seeds for every value).")
    ] = 5,
    base: Annotated[
        str,
        typer.Option(
            help="The config to vary: 'best' (the leaderboard's #1 at the full budget) or "
            "'default' (the space's first point, the literature default)."
        ),
    ] = "best",
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="KEY=VALUE for every run (repeatable), e.g. loss.lambda_sym=0.1: the weight "
            "a symmetry variant takes when the base has none.",
        ),
    ] = None,
    kimg: Annotated[
        float | None,
        typer.Option(help="Train each run to this many kimg (default: the search's budget)."),
    ] = None,
    address: AddressOption = None,
    max_failures: MaxFailuresOption = 3,
) -> None:
    """Train one config of a finished search once per value of one setting, with the same
    fresh seeds per value, and say whether the setting matters beyond seed noise.

    Cost: (values + 1 if the base's own value is not listed) x seeds runs, each to the
    full budget (or --kimg). The runs are Ray Tune trials in
    EXPERIMENT/ablate_<base>_<setting>/ (checkpoints each tick, fashion_tune_ablate.json
    holds the plan); a failed run retries from its checkpoint, and running the same
    command again resumes without training a finished run twice. It prints, per value,
    the mean objective with a 95% interval and the difference from the base's value
    paired by seed (paired t-test and Wilcoxon, Holm-corrected);
    `fashion-tune report EXPERIMENT` adds an Ablation section with plots and samples.
    """
    from rich.markup import escape

    from fashion_tune.config import parse_overrides
    from fashion_tune.report.ablate import ablation_of
    from fashion_tune.report.collect import load_experiment
    from fashion_tune.search import preflight
    from fashion_tune.search.ablate import AblateOptions, parse_vary, prepare, run_ablation
    from fashion_tune.search.confirm import space_settings
    from fashion_tune.search.tuner import init_ray

    preflight.check_max_failures(max_failures)
    experiment = experiment_location(experiment)
    key, values = parse_vary(vary)
    sets = parse_overrides(list(set_ or []))
    exp = load_experiment(experiment)  # missing / not an experiment: one error line
    settings = space_settings(exp.search or {})
    opts = AblateOptions(
        key=key, values=values, seeds=seeds, base=base, sets=sets, kimg=kimg,
        max_failures=max_failures, cpus_per_trial=settings.cpus_per_trial,
        gpus_per_trial=settings.gpus_per_trial, max_concurrent=settings.max_concurrent,
    )  # fmt: skip
    plan = prepare(experiment, opts)  # every check; writes nothing
    n, s = len(plan["configs"]), len(plan["seeds"])
    console.print(
        f"ablation of {key} from {plan['base_label']}: {n} values x {s} seeds = {n * s} runs "
        f"at {plan['max_kimg']:g} kimg -> {experiment.rstrip('/')}/"
        f"{plan_folder(plan)}",
        highlight=False,
        markup=False,
    )
    init_ray(address)
    run_ablation(experiment, plan, opts)

    abl = ablation_of(load_experiment(experiment), plan_folder(plan))
    if abl is None:
        return
    for v in abl.values:
        mean = f"{v.stats.mean:.4g}" if v.stats else "–"
        line = f"  {v.label}: mean {abl.metric} {mean}"
        if v.sentence:
            line += f"; {v.sentence}"
        console.print(escape(line), highlight=False, soft_wrap=True)
    console.print(f"next: fashion-tune report {experiment}", highlight=False, markup=False)


def plan_folder(plan: dict) -> str:
    from fashion_tune import experiment_layout as layout

    return f"{layout.ABLATE_PREFIX}{plan['base']}_{plan['key']}"
