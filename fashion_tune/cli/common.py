"""Shared CLI pieces: consoles, progress bars, checked image outputs."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

if TYPE_CHECKING:
    from PIL.Image import Image

console = Console()
err_console = Console(stderr=True)


@contextmanager
def progress_bar(description: str) -> Iterator[Progress]:
    """A rich progress bar on stderr (hidden when stderr is not a terminal)."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[extra]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=False,
    ) as bar:
        bar.add_task(description, total=None, extra="")
        yield bar


def check_image_out(path: Path, what: str) -> Path:
    """An image file the user asked for: a suffix PIL can write, not a folder, in a place we
    can write. Checked before any work (creating nothing) so a bad path fails at once."""
    from PIL import Image

    from fashion_tune.errors import FashionTuneError

    ext = path.suffix.lower()
    formats = Image.registered_extensions()
    if path.is_dir():
        raise FashionTuneError(f"{what} {path} is a folder; give a file name such as grid.png")
    if ext not in formats or formats[ext] not in Image.SAVE:
        raise FashionTuneError(
            f"{what} {path} has {'no suffix' if not ext else f'suffix {ext!r}'}: "
            "give an image file name ending in .png (or .jpg, .webp)"
        )
    # the nearest folder that exists must take the new file (or the folders leading to it)
    base = path.absolute().parent
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir() or not os.access(base, os.W_OK | os.X_OK):
        raise FashionTuneError(f"cannot write {what} {path}: {base} is not a writable folder")
    return path


def save_image(image: Image, path: Path) -> Path:
    """Save a PIL image atomically; an OS failure (full disk, ...) is one clear line."""
    from fashion_tune.atomic import atomic_path
    from fashion_tune.errors import FashionTuneError

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            image.save(tmp)
    except OSError as exc:
        raise FashionTuneError(f"cannot write {path}: {exc.strerror or exc}") from None
    return path


# options several commands share (search, confirm, ablate)
AddressOption = Annotated[
    str | None,
    typer.Option(help="Ray cluster: 'auto' or ray://HOST:10001. Default: an embedded local Ray."),
]
MaxFailuresOption = Annotated[
    int, typer.Option(help="Retries of a failed trial, each from its last checkpoint.")
]


def experiment_location(arg: str) -> str:
    """An experiment argument as Ray wants it: a URI as given, a local path made absolute
    (Ray Tune refuses a relative storage path; `confirm results/quick` failed so)."""
    from fashion_tune.data.storage import is_uri

    return arg if is_uri(arg) else str(Path(arg).expanduser().resolve())
