"""The ``fashion-tune`` command: one Typer app joined from one module per command group."""

from __future__ import annotations

import typer
from rich.markup import escape

from fashion_tune.cli import data
from fashion_tune.cli.ablate import ablate
from fashion_tune.cli.common import err_console
from fashion_tune.cli.confirm import confirm
from fashion_tune.cli.evaluate import evaluate
from fashion_tune.cli.reference import reference_cmd
from fashion_tune.cli.report import report
from fashion_tune.cli.sample import sample
from fashion_tune.cli.search import search
from fashion_tune.cli.swap_test import swap_test
from fashion_tune.cli.trial import _config_epilog, trial
from fashion_tune.errors import FashionTuneError, Interrupted

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


def _help(fn: object) -> str:
    """A command's docstring with each paragraph on one line: Rich re-wraps it to the
    terminal (its "rich" markup mode keeps the docstring's own line breaks after the first
    paragraph, which wraps every line twice)."""
    import inspect

    text = inspect.getdoc(fn) or ""
    return "\n\n".join(" ".join(p.split()) for p in text.split("\n\n"))


data.app.command("reference")(reference_cmd)
app.add_typer(data.app, name="data")
app.command(epilog=_config_epilog(), help=_help(trial))(trial)
for _command in (search, confirm, ablate, sample, report, evaluate):
    app.command(help=_help(_command))(_command)
app.command("swap-test", help=_help(swap_test))(swap_test)


# Exit codes: 0 success, 1 a bug (traceback), 2 a user error (usage or bad input),
# 3 a trial that diverged, 130 interrupted (Ctrl-C).
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


def _error(message: str) -> None:
    """Print one ``error: ...`` line on stderr (newlines folded so it stays one line)."""
    text = "; ".join(part.strip() for part in str(message).splitlines() if part.strip())
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True)


def _usage_error(exc: typer.TyperException) -> int:
    """A parsing error from Typer: one line naming the command, its --help, and exit 2."""
    ctx = getattr(exc, "ctx", None)
    where = ctx.command_path if ctx is not None else "fashion-tune"
    if type(exc).__name__ == "NoArgsIsHelpError":  # Typer printed the help already
        names = ", ".join(sorted(getattr(ctx.command, "commands", {}) if ctx else []))
        _error(f"{where}: missing command" + (f" (one of: {names})" if names else ""))
        return EXIT_USAGE
    message = exc.format_message() or type(exc).__name__
    message = (message[0].lower() + message[1:]).rstrip(".")
    _error(f"{message} (see '{where} --help')")
    return EXIT_USAGE  # also for click's non-usage errors (FileError: exit 1 in click)


def main(argv: list[str] | None = None) -> int:
    """Console entry point; returns the exit code (the console script exits with it).

    Usage errors and :class:`FashionTuneError` become one ``error:`` line on stderr;
    anything else is a bug in fashion-tune and keeps its traceback.
    """
    try:
        rv = app(args=argv, standalone_mode=False, prog_name="fashion-tune")
    except Interrupted as exc:  # a command that knows how to pick up its partial work
        err_console.print(f"interrupted: {escape(str(exc))}", highlight=False, soft_wrap=True)
        return EXIT_INTERRUPTED
    except FashionTuneError as exc:
        _error(str(exc))
        return exc.exit_code
    except typer.TyperException as exc:  # typer's own click: UsageError, BadParameter, ...
        return _usage_error(exc)
    except OSError as exc:  # an object store (s3://, gs://) that is down, refuses or denies
        from fashion_tune.data.storage import remote_failure

        reason = remote_failure(exc)
        if reason is None:
            raise
        _error(f"object storage failed: {reason}")
        return EXIT_USAGE
    except (KeyboardInterrupt, typer.Abort):
        rv = EXIT_INTERRUPTED
    if rv == EXIT_INTERRUPTED:  # Typer turns Ctrl-C into Exit(130)
        err_console.print("interrupted", highlight=False)
        return EXIT_INTERRUPTED
    return rv if isinstance(rv, int) else 0


__all__ = ["app", "main"]
