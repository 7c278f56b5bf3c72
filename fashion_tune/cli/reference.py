"""``fashion-tune data reference``: make a shard set's metric reference, once, up front."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from fashion_tune.cli.common import console, progress_bar


def ensure_reference(
    data: str,
    location: str | None = None,
    *,
    fallback: str | None = None,
    force: bool = False,
    quiet: bool = False,
) -> tuple[str, dict[str, Any]]:
    """Make the reference unless a current one is stored, with a progress bar; return
    (where it lives, its index)."""
    from fashion_tune.metrics import reference

    with progress_bar("metric reference") as bar:
        task = bar.tasks[0].id

        def on_progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, extra="training the feature net")

        loc, index, built = reference.ensure(
            data,
            location,
            fallback=fallback,
            log=lambda _: None,
            progress=on_progress,
            force=force,
        )
        if not built:
            bar.update(task, completed=1, total=1, extra="already made")
    if built and not quiet:
        console.print(
            f"made the metric reference {index['hash']} of {data} in "
            f"{index['build_seconds']:.0f} s (feature net held-out accuracy "
            f"{index['accuracy']:.3f}); stored in {reference.reference_store(loc).location}"
        )
    return loc, index


def reference_cmd(
    data: Annotated[str, typer.Argument(help="Shard set folder or URI.")],
    out: Annotated[
        str | None,
        typer.Option(
            "--out",
            help="Where to store it (folder or URI); default: SHARDS/_reference. Trials then "
            "need --set metrics.reference=OUT.",
        ),
    ] = None,
    force: Annotated[bool, typer.Option(help="Make it again even if a current one exists.")] = (
        False
    ),
) -> None:
    """Make the metric reference of a shard set: the feature net and real statistics every
    trial scores against. Done once, before any trial; prepare and search do it for you."""
    loc, index = ensure_reference(data, out, force=force, quiet=True)
    from fashion_tune.metrics.reference import reference_store

    console.print(
        f"metric reference {index['hash']} ({index['task']} + instance discrimination, held-out "
        f"accuracy {index['accuracy']:.3f}) in {reference_store(loc).location}"
    )
