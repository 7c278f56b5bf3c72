"""``fashion-tune trial``: one trial in-process, without Ray, through the search's code path."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fashion_tune.cli.common import console, err_console


def _config_epilog() -> str:
    from fashion_tune.config import fields_help

    lines = ["Config keys for --set (key: default, meaning):", ""]
    for key, _tp, default, meaning in fields_help():
        lines.append(f"  {key} = {default!r}: {meaning}")
    return "\n\n".join(lines)


def trial(
    data: Annotated[
        str | None, typer.Option(help="Shard set folder or URI (default: data.path in the config).")
    ] = None,
    config: Annotated[
        str | None, typer.Option("--config", "-c", help="YAML/JSON file of config settings.")
    ] = None,
    space: Annotated[
        str | None,
        typer.Option(help="Search-space YAML: apply its fixed settings and first point."),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", "-s", help="Override a config key, e.g. --set model.arch=resnet (repeatable)."
        ),
    ] = None,
    kimg: Annotated[
        float | None, typer.Option(help="Training length in kimg (schedule.total_kimg).")
    ] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda (runtime.device).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Run directory.")] = Path("runs/trial"),
    resume: Annotated[
        str | None, typer.Option(help="Continue from a checkpoint folder (or a run dir).")
    ] = None,
    print_config: Annotated[
        bool, typer.Option("--print-config", help="Print the resolved config and exit.")
    ] = False,
) -> None:
    """Train one GAN locally (no Ray) with a progress bar, then print its metrics.

    Uses the same config, training loop, metrics and checkpoints as a search trial, so a
    trial that misbehaves in a search can be replayed and stepped through here.
    """
    from fashion_tune.checkpoint import load as load_ckpt
    from fashion_tune.config import TrialConfig, load_config, parse_overrides

    overrides = parse_overrides(set_ or [])
    if kimg is not None:
        overrides["schedule.total_kimg"] = kimg
    if device is not None:
        overrides["runtime.device"] = device
    if data is not None:
        overrides["data.path"] = data
    if resume and not (config or space):
        _, base = load_ckpt(resume)  # the checkpoint's own config, then the overrides
        cfg: TrialConfig = base.with_overrides(overrides)
    elif space:
        from fashion_tune.search.space import load_space

        cfg = load_space(space).first_config(overrides)
    else:
        cfg = load_config(config, overrides)
    if print_config:
        console.print_json(cfg.to_json())
        return

    from fashion_tune.cli.common import progress_bar
    from fashion_tune.training import train

    with progress_bar("trial") as bar:
        task = bar.tasks[0].id

        def on_progress(done: float, total: float, metrics: dict) -> None:
            extra = ""
            if metrics:
                extra = (
                    f"kid {metrics['kid']:.4f}  fd {metrics['fd']:.2f}  "
                    f"{metrics['img_per_s']:.0f} img/s"
                )
            bar.update(task, completed=round(done, 1), total=total, extra=extra)

        result = train(
            cfg, out, resume=resume, progress=on_progress, log=lambda m: err_console.print(m)
        )
    table = Table(title=f"trial {result.status}", show_header=True)
    table.add_column("metric")
    table.add_column("last", justify="right")
    table.add_column("best (by kid)", justify="right")
    for key in ("kimg", "kid", "fd", "sym_gap", "img_per_s", "eval_frac"):
        if key in result.metrics:
            last, best = result.metrics[key], result.best.get(key, math.nan)
            table.add_row(key, f"{last:.4g}", f"{best:.4g}")
    console.print(table)
    console.print(f"run directory: {result.run_dir}")
    if result.samples:
        console.print(f"samples:       {result.samples}")
    if result.checkpoint:
        console.print(f"checkpoint:    {result.checkpoint}")
    console.print(f"tensorboard:   tensorboard --logdir {result.run_dir / 'tb'}")
    if result.status == "diverged":
        raise typer.Exit(3)
