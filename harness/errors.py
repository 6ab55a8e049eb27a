"""The errors the command line treats as *expected* bad input: one ``error: <message>`` line on stderr, exit code 2.

Everything else is a bug and keeps its traceback (exit code 1). The mapping itself lives in
:func:`harness.cli.main`; this module only lists the exception types and formats their messages, so that new
subcommands (and tests) share one definition.
"""
from __future__ import annotations

from methods import InputError, OptionError, UnknownMethodError
from methods.weights import WeightsError
from metrics.preference import VotesError

from .images import ImageError
from .run import RunError
from .study import StudyError
from .tables import TableError

__all__ = ["EXIT_USAGE", "EXPECTED_ERRORS", "CLIError", "format_error"]

EXIT_USAGE = 2


class CLIError(ValueError):
    """A bad command-line value that argparse cannot check by itself (e.g. ``--mix`` weights that do not match the
    ``--style`` count, a malformed ``--option``); the message is one line naming the option."""


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    CLIError,
    ImageError,
    WeightsError,  # MissingWeightsError, ChecksumError, StateDictMismatchError, ...
    UnknownMethodError,
    OptionError,
    InputError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    RunError,
    StudyError,
    TableError,
    VotesError,
)


def format_error(exc: BaseException) -> str:
    """A one-line message: ``<path>: <reason>`` for OS errors about a path, else ``str(exc)`` with whitespace collapsed."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())
