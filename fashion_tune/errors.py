"""User-facing errors.

Anything a user can cause (bad input, a missing file, a corrupt shard) raises
:class:`FashionTuneError` with a one-line message saying what is wrong and how
to fix it. The CLI prints it as ``error: ...`` and exits non-zero; every other
exception is a bug in fashion-tune and keeps its traceback.
"""

from __future__ import annotations


class FashionTuneError(Exception):
    """An error caused by the user's input or environment, shown as one line."""

    exit_code = 2


class DataError(FashionTuneError):
    """A data set, annotation file or shard is missing, malformed or inconsistent."""


class ConfigError(FashionTuneError):
    """A trial config, override or search space is invalid."""


class Interrupted(FashionTuneError):
    """The user pressed Ctrl-C; the message says how to pick up the work left behind."""

    exit_code = 130
