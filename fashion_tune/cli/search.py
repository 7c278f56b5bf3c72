"""``fashion-tune search``: many GAN trials on Ray Tune, with ASHA and Optuna."""

from __future__ import annotations

from typing import Annotated

import typer

from fashion_tune.cli.common import AddressOption, MaxFailuresOption, console


def search(
    space: Annotated[
        str, typer.Argument(help="Search-space YAML (see search_spaces/).")
    ] = "search_spaces/quick.yaml",
    data: Annotated[
        str | None, typer.Option(help="Shard set folder or URI (default: the space's data.path).")
    ] = None,
    address: AddressOption = None,
    storage: Annotated[
        str, typer.Option(help="Where results live: a path (shared on clusters) or s3:// / gs://.")
    ] = "results",
    name: Annotated[
        str | None, typer.Option(help="Experiment name (default: the space's name).")
    ] = None,
    num_samples: Annotated[int | None, typer.Option(help="Number of trials.")] = None,
    max_concurrent: Annotated[int | None, typer.Option(help="Trials running at once.")] = None,
    gpus_per_trial: Annotated[
        float | None, typer.Option(help="GPUs per trial (fractions share a GPU).")
    ] = None,
    cpus_per_trial: Annotated[float | None, typer.Option(help="CPUs per trial.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Finish an interrupted experiment (same --storage / --name).")
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(help="Print the resolved space and one sampled trial config; run nothing."),
    ] = False,
    max_failures: MaxFailuresOption = 3,
    autoscaling: Annotated[
        bool,
        typer.Option(
            help="The cluster's autoscaler adds nodes: do not fail when no node fits a trial "
            "yet (assumed on clusters made by Ray's launcher)."
        ),
    ] = False,
) -> None:
    """Launch a hyperparameter search: Optuna proposes, ASHA early-stops, Ray schedules.

    Every trial checkpoints each tick to --storage; a trial whose worker or node dies is
    retried from its checkpoint, and --resume finishes an interrupted experiment without
    re-running finished trials.
    """
    from fashion_tune.search.space import load_space
    from fashion_tune.search.tuner import (
        SearchOptions,
        check_before_ray,
        experiment_path,
        resolve_fixed,
    )

    sp = load_space(
        space,
        num_samples=num_samples,
        max_concurrent=max_concurrent,
        gpus_per_trial=gpus_per_trial,
        cpus_per_trial=cpus_per_trial,
    )
    opts = SearchOptions(
        storage=storage,
        name=name,
        address=address,
        data=data,
        resume=resume,
        max_failures=max_failures,
        autoscaling=autoscaling,
    )
    _, _, exp = experiment_path(sp, opts)
    check_before_ray(sp, opts)  # --dry-run checks all it can, and neither writes anything
    if dry_run:
        console.print(f"[bold]space[/] {sp.path} ({sp.name}): {sp.description}")
        console.print(
            f"objective: {sp.mode} {sp.metric}; searcher {sp.searcher} (seed {sp.seed}); "
            f"{sp.num_samples} trials, {sp.max_concurrent or 'auto'} at once; "
            f"{sp.cpus_per_trial:g} CPU + {sp.gpus_per_trial:g} GPU per trial"
        )
        sch = sp.scheduler
        unit = (
            "compute units (kimg of the first point's FLOPs)" if sch.budget == "compute" else "kimg"
        )
        line = f"scheduler: {sch.type}, max {sp.max_kimg:g} kimg per trial"
        if sch.type != "fifo":
            line += (
                f"; budget in {unit}: grace {sch.grace_kimg:g}, reduction factor "
                f"{sch.reduction_factor:g}, {sch.brackets} bracket(s)"
            )
        if sch.type == "asha":
            line += f", rung value = mean of the last {sch.smooth} evaluation(s)"
        console.print(line)
        if sp.confirm:
            console.print(
                f"confirm: top {sp.confirm.top_k} + the literature default, "
                f"{sp.confirm.seeds} fresh seeds each, after the search"
            )
        for p in sp.params:
            when = f" when {dict(p.when)}" if p.when else ""
            rng = list(p.values) if p.kind == "choice" else [p.low, p.high]
            console.print(f"  {p.key}: {p.kind} {rng}{when}", highlight=False)
        console.print(f"experiment: {exp}")
        point = sp.sample(sp.seed)
        console.print(f"sampled point: {point}", highlight=False)
        cfg = sp.config_for(point).with_overrides(
            {"data.path": resolve_fixed(sp, opts)["data.path"]}
        )
        console.print_json(cfg.to_json())
        return
    from fashion_tune.cli.reference import ensure_reference
    from fashion_tune.search.pipeline import run

    # the metric reference is made here, once, before any trial: trials only load it
    data_path = resolve_fixed(sp, opts)["data.path"]
    ref_loc, _ = ensure_reference(
        data_path,
        sp.fixed.get("metrics.reference") or None,
        fallback=f"{exp.rstrip('/')}/_reference",
    )
    if ref_loc != data_path:  # a read-only set: the reference lives in the experiment
        sp.fixed["metrics.reference"] = ref_loc
    grid = run(sp, opts)
    errors = sum(1 for r in grid if r.error)
    console.print(f"experiment: {exp} ({len(grid)} trials, {errors} errored)")
    try:
        best = grid.get_best_result(sp.metric, sp.mode, scope="all")
        where = f"{exp.rstrip('/')}/{best.path.rstrip('/').rpartition('/')[2]}"  # Ray drops s3://
        df = best.metrics_dataframe  # scope="all" picks by the best tick, not the last
        values = df[sp.metric].dropna() if df is not None and sp.metric in df else None
        value = best.metrics.get(sp.metric)
        if values is not None and len(values):
            value = values.min() if sp.mode == "min" else values.max()
        shown = f"{value:.4g}" if isinstance(value, (int, float)) else value
        console.print(f"best {sp.metric}: {shown} ({where})")
    except RuntimeError:
        pass
    console.print(f"next: fashion-tune report {exp}")
