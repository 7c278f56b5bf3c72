"""``fashion-tune trial``: one trial in-process, without Ray, through the search's code path."""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from fashion_tune.cli.common import console, err_console
from fashion_tune.errors import FashionTuneError, Interrupted

if TYPE_CHECKING:
    from fashion_tune.config import TrialConfig
    from fashion_tune.training import TrialResult


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
    overwrite: Annotated[
        bool, typer.Option(help="Replace the run already in --out (its checkpoints are lost).")
    ] = False,
) -> None:
    """Train one GAN locally (no Ray) with a progress bar, then print its metrics.

    Uses the same config, training loop, metrics and checkpoints as a search trial, so a
    trial that misbehaves in a search can be replayed and stepped through here.
    """
    from fashion_tune.checkpoint import load as load_ckpt
    from fashion_tune.config import load_config, parse_overrides

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
        _check_same_model(base, cfg)
    elif space:
        from fashion_tune.search.space import load_space

        cfg = load_space(space).first_config(overrides)
    else:
        cfg = load_config(config, overrides)
    if print_config:
        console.print_json(cfg.to_json())
        return

    created = _prepare_out(out, resume, overwrite)
    try:
        result = _run(cfg, out, resume)
    except BaseException as exc:
        if created is not None:  # a trial that failed before writing anything leaves no folder
            _remove_empty(out, created)
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(
                f"the checkpoints written so far are in {out}; continue with: "
                f"fashion-tune trial --resume {out} --out {out}"
            ) from None
        raise
    table = Table(title=f"trial {result.status}", show_header=True)
    table.add_column("metric")
    table.add_column("last", justify="right")
    table.add_column("best (by fd)", justify="right")
    keys = ("kimg", "fd", "kid", "precision", "recall", "diversity", "sym_excess")
    for key in (*keys, "img_per_s", "eval_frac"):
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


def _run(cfg: TrialConfig, out: Path, resume: str | None) -> TrialResult:
    """``train()`` behind a progress bar showing kimg and the latest kid / fd / speed."""
    from fashion_tune.cli.common import progress_bar
    from fashion_tune.cli.reference import ensure_reference
    from fashion_tune.training import train

    # made once per shard set (a trial itself only loads it); on a laptop, made here
    ensure_reference(cfg.data.path, cfg.metrics.reference or None)
    with progress_bar("trial") as bar:
        task = bar.tasks[0].id

        def on_progress(done: float, total: float, metrics: dict) -> None:
            extra = ""
            if metrics:
                extra = (
                    f"fd {metrics.get('fd', math.nan):.3f}  "
                    f"recall {metrics.get('recall', math.nan):.2f}  "
                    f"{metrics['img_per_s']:.0f} img/s"
                )
            bar.update(task, completed=round(done, 1), total=total, extra=extra)

        return train(
            cfg, out, resume=resume, progress=on_progress, log=lambda m: err_console.print(m)
        )


RUN_FILES = ("config.json", "metrics.jsonl", "checkpoints")


def _remove_empty(out: Path, top: Path) -> None:
    """Remove ``out`` and its parents up to ``top`` while they are empty."""
    folder = out
    while folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        if folder == top:
            break
        folder = folder.parent


def _prepare_out(out: Path, resume: str | None, overwrite: bool) -> Path | None:
    """Refuse to mix two runs in one folder: ``--out`` may be new, empty, the run being
    resumed, or (with ``--overwrite``) a run folder to replace. Creates it (so a place that
    cannot be written fails now, not after the data is loaded); returns the topmost folder
    it created, or None."""
    if not out.exists():
        top = out
        while not top.parent.exists() and top.parent != top:
            top = top.parent
        try:
            out.mkdir(parents=True)
        except OSError as exc:
            raise FashionTuneError(f"cannot create --out {out}: {exc.strerror or exc}") from None
        return top
    if not out.is_dir():
        raise FashionTuneError(f"--out {out} is a file; give a folder for the run")
    held = [name for name in RUN_FILES if (out / name).exists()]
    if not held:
        if overwrite and any(out.iterdir()):
            raise FashionTuneError(
                f"--out {out} is not empty and holds no run; --overwrite replaces only a run "
                "folder: choose an empty or new --out"
            )
        return None
    inside = False
    if resume:
        from fashion_tune.checkpoint import resolve

        src = resolve(resume).resolve()
        inside = out.resolve() in (src, *src.parents)
    if inside and overwrite:
        raise FashionTuneError(
            f"--overwrite would delete the checkpoint --resume {resume} continues from; drop one"
        )
    if inside:
        return None
    if not overwrite:
        raise FashionTuneError(
            f"--out {out} already holds a run ({', '.join(held)}); continue it with "
            f"--resume {out}, pick another --out, or replace it with --overwrite"
        )
    shutil.rmtree(out)
    out.mkdir()
    return None


def _check_same_model(base: TrialConfig, cfg: TrialConfig) -> None:
    """A resumed trial keeps the checkpoint's model shape; say which key changed."""
    changed = [
        f"model.{k} {v!r} -> {getattr(cfg.model, k)!r}"
        for k, v in vars(base.model).items()
        if getattr(cfg.model, k) != v
    ]
    if changed:
        raise FashionTuneError(
            "--resume keeps the checkpoint's model; these settings change it: "
            f"{', '.join(changed)} (start a new trial with another --out instead)"
        )
