"""The command line: ``python -m harness <command> ...`` (or the ``harness`` script).

Thin by design: each command parses its arguments, calls the library (:mod:`methods`, :mod:`harness.run`, ...)
and prints. The library never imports this package.

Adding a command: write a module here with ``add_<name>_parser(subparsers)`` (which builds the sub-parser and calls
``parser.set_defaults(handler=cmd_<name>)``) and ``cmd_<name>(args) -> int``, then append the ``add_`` function to
:data:`COMMANDS`. Method-using commands call :func:`~harness.cli.common.add_method_arguments` and build their model
with :func:`~harness.cli.common.build_method`. Expected bad input is raised as one of
:data:`harness.errors.EXPECTED_ERRORS` (:class:`~harness.cli.common.CLIError` for option values argparse cannot
check); :func:`main` turns it into one ``error: ...`` line on stderr, with the settings it names spelt as flags, and
exit code 2.
"""
from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import EXIT_USAGE, EXPECTED_ERRORS, format_error
from ..version import __version__
from .common import PROG, CLIError, _fill, _HelpFormatter, parse_options, parse_value
from .listing import add_methods_parser
from .run import add_merge_parser, add_report_parser, add_run_parser, add_table_parser, add_tally_parser
from .study import add_study_parser
from .survey import add_survey_parser
from .stylize import add_stylize_parser
from .train import add_train_parser
from .video import add_video_parser

__all__ = ["COMMANDS", "PROG", "CLIError", "build_parser", "main", "parse_options", "parse_value"]

COMMANDS: list[Callable[[Any], argparse.ArgumentParser]] = [
    add_methods_parser,
    add_stylize_parser,
    add_run_parser,
    add_table_parser,
    add_report_parser,
    add_merge_parser,
    add_tally_parser,
    add_survey_parser,
    add_train_parser,
    add_study_parser,
    add_video_parser,
]
"""Every subcommand's ``add_<name>_parser``, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_fill("Evaluation harness for arbitrary style transfer (StyA2K, its ablations, all-to-all "
                          "attention, AdaAttN, SANet, StyTr², MicroAST, AdaIN and plugin methods): benchmark methods "
                          "on image pairs, train them, "
                          "stylise images, tabulate runs and user studies."),
        epilog="examples:\n"
               f"  {PROG} run --methods styA2K,adain,all2all\n"
               f"  {PROG} methods --verbose\n"
               f"  {PROG} stylize --method styA2K --content photo.jpg --style starry.png\n\n"
               f"Run `{PROG} <command> --help` for a command's options.",
        formatter_class=_HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="<command>", title="commands", required=True)
    for add in COMMANDS:
        add(subparsers)
    return parser


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"warning: {' '.join(str(message).split())}", file=file or sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 bad input or usage; bugs raise with their traceback)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors (argparse exits with 2)
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    with warnings.catch_warnings():
        warnings.showwarning = _one_line_warning
        try:
            return int(args.handler(args) or 0)
        except EXPECTED_ERRORS as exc:
            print(f"error: {format_error(exc, flags=True)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
