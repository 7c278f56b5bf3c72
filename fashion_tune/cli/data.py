"""``fashion-tune data``: prepare shard sets and inspect them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from fashion_tune.cli.common import check_image_out, console, progress_bar
from fashion_tune.errors import Interrupted

app = typer.Typer(
    help="Prepare Arrow shard sets (Fashion-MNIST, DeepFashion, an image folder) and inspect them.",
    no_args_is_help=True,
)


@app.command()
def prepare(
    source: Annotated[
        str,
        typer.Argument(
            help="Data source: fashion-mnist, deepfashion or folder; or fabric-mnist "
            "(Fashion-MNIST garments made of procedural colour fabrics, with the fabric kind "
            "per garment: for tests and benchmarks of FashionGAN only, not real garments)."
        ),
    ],
    path: Annotated[
        str | None,
        typer.Argument(
            help="Source folder. fashion-mnist (and fabric-mnist): the four IDX .gz files "
            "(default: Debian's "
            "/usr/share/datasets/fashion-mnist, else a download). deepfashion: the benchmark "
            "root holding Anno/ and Eval/ (Category-and-Attribute or In-shop). folder: "
            "ROOT/<class>/<image>."
        ),
    ] = None,
    out: Annotated[
        str, typer.Option("--out", "-o", help="Output folder or URI (s3://, gs://, file://).")
    ] = "data/shards",
    size: Annotated[int, typer.Option(help="Square image size in px: 32, 64 or 128.")] = 32,
    channels: Annotated[
        int | None, typer.Option(help="1 (grayscale) or 3 (RGB); default: the source's own.")
    ] = None,
    margin: Annotated[
        float, typer.Option(help="DeepFashion: grow each bbox by this fraction before cropping.")
    ] = 0.1,
    category_type: Annotated[
        list[str] | None,
        typer.Option(help="DeepFashion: keep upper / lower / full garments (repeatable)."),
    ] = None,
    category: Annotated[
        list[str] | None, typer.Option(help="Keep only these class names (repeatable).")
    ] = None,
    view: Annotated[
        list[str] | None,
        typer.Option(help="DeepFashion In-shop: keep these views, e.g. front (repeatable)."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(min=1, help="Keep only the first N selected images (quick tries)."),
    ] = None,
    shard_mb: Annotated[float, typer.Option(help="Upper bound on one shard file, MiB.")] = 256,
    max_skip_frac: Annotated[
        float,
        typer.Option(help="Fail if more than this fraction of listed images is missing/corrupt."),
    ] = 0.01,
    workers: Annotated[
        int | None,
        typer.Option(min=1, max=256, help="Decode processes (default: CPU count, at most 8)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option(help="Replace a different or unfinished set in --out.")
    ] = False,
    reference: Annotated[
        bool,
        typer.Option(
            help="Then make the set's metric reference (the feature net every trial scores "
            "with; a few CPU minutes). --no-reference leaves it to search / data reference."
        ),
    ] = True,
    pairs: Annotated[
        bool,
        typer.Option(
            "--pairs",
            help="Also store a sketch (garment outline + inner edges) and a fabric patch "
            "(a crop inside the garment, S/4 px) per image: the inputs of model.arch=fashiongan.",
        ),
    ] = False,
) -> None:
    """Write a shard set: pre-resized uint8 images in Arrow IPC files plus a manifest.

    Re-running the same command resumes an interrupted prepare; a finished set is left as
    is. Then the set's metric reference is made once (see `fashion-tune data reference`).
    """
    from fashion_tune.data.prepare import prepare as run_prepare
    from fashion_tune.data.sources import SourceOptions

    options = SourceOptions(
        size=size,
        channels=channels,
        margin=margin,
        category_types=tuple(category_type or ()),
        categories=tuple(category or ()),
        views=tuple(view or ()),
        limit=limit,
    )
    try:
        with progress_bar(f"prepare {source}") as bar:
            task = bar.tasks[0].id

            def on_progress(done: int, total: int) -> None:
                bar.update(task, completed=done, total=total)

            result = run_prepare(
                source,
                path,
                out,
                options,
                shard_mb=shard_mb,
                max_skip_frac=max_skip_frac,
                workers=workers,
                overwrite=overwrite,
                progress=on_progress,
                pairs=pairs,
            )
    except KeyboardInterrupt:
        raise Interrupted(
            f"the finished shards in {out} are kept; run the same command again to resume"
        ) from None
    m = result.manifest
    if result.already_complete:
        console.print(f"{result.location} already holds this set; nothing to do.")
    elif result.resumed_shards:
        console.print(f"resumed after {result.resumed_shards} finished shard(s)")
    console.print(
        f"wrote {m.rows:,} images ({len(m.shards)} shards, {len(m.skipped)} skipped) "
        f"to {result.location}"
    )
    if reference:
        from fashion_tune.cli.reference import ensure_reference

        ensure_reference(out)
    console.print(f"next: fashion-tune data inspect {out}")


@app.command()
def inspect(
    location: Annotated[str, typer.Argument(help="Shard set folder or URI.")],
    grid: Annotated[
        Path | None,
        typer.Option(help="Where to write the per-class sample grid (default: DIR/samples.png)."),
    ] = None,
    per_class: Annotated[
        int, typer.Option(min=1, max=64, help="Samples per class in the grid.")
    ] = 8,
    verify: Annotated[
        bool, typer.Option(help="Re-check every shard's SHA-256 (default: once per node).")
    ] = False,
) -> None:
    """Print a shard set's manifest summary and write a PNG grid of real samples per class."""
    from fashion_tune.data.inspect import summary_rows, write_grid
    from fashion_tune.data.reader import ShardSet

    if grid is not None:
        check_image_out(grid, "--grid")
    shards = ShardSet(location, verify="full" if verify else "auto")
    table = Table(show_header=False, box=None)
    for key, value in summary_rows(shards):
        table.add_row(f"[bold]{key}[/]", value)
    console.print(table)
    skipped = shards.manifest.skipped
    for s in skipped[:5]:
        console.print(f"  skipped {s.source_id}: {s.reason}", highlight=False)
    if len(skipped) > 5:
        console.print(f"  ... and {len(skipped) - 5} more (see manifest.json)")
    note = ""
    if grid is None:
        local = shards.folder == Path(shards.location).expanduser().resolve()
        if local and os.access(shards.folder, os.W_OK):
            grid = shards.folder / "samples.png"
        else:  # a remote or read-only set is left untouched
            grid = Path("samples.png")
            note = " (the shard set is remote or read-only: written here instead)"
        check_image_out(grid, "the sample grid")
    console.print(f"sample grid: {write_grid(shards, grid, per_class)}{note}")
    if shards.has_pairs:  # sketch | fabric | garment, next to the class grid
        from fashion_tune.data.inspect import write_pairs_grid

        pairs_out = grid.with_name(grid.stem + "-pairs.png")
        console.print(
            f"pairs grid (sketch | fabric | garment): {write_pairs_grid(shards, pairs_out)}"
        )
