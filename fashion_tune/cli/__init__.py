"""The ``fashion-tune`` command: one Typer app joined from one module per command group."""

from __future__ import annotations

import sys

import typer

from fashion_tune.cli import data
from fashion_tune.cli.common import console, err_console
from fashion_tune.cli.report import report
from fashion_tune.cli.sample import sample
from fashion_tune.cli.search import search
from fashion_tune.cli.trial import _config_epilog, trial
from fashion_tune.errors import FashionTuneError

app = typer.Typer(
    name="fashion-tune",
    help=(
        "Tune fashion-image GANs at scale: prepare Arrow shards, run one trial locally, "
        "search on Ray Tune with ASHA + Optuna, and report the winners."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.add_typer(data.app, name="data")
app.command(epilog=_config_epilog())(trial)
app.command()(search)
app.command()(sample)
app.command()(report)


def main() -> None:
    """Console entry point: user errors become one line and a non-zero exit."""
    try:
        app(standalone_mode=False)
    except FashionTuneError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(130)
    except Exception as exc:
        import click

        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    _ = console


__all__ = ["app", "main"]
