"""What the commands share: the help formatter, bounded number types, the method and weights options, option
parsing, building a method from them, plain-text tables, and the one-line error of bad command-line values.

Library errors name settings (``{weights_dir=DIR}``); :func:`harness.errors.format_error` with ``flags=True`` spells
them as this command line's flags (``--weights-dir DIR``).
"""
from __future__ import annotations

import argparse
import re
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from methods.weights import ENV_OFFLINE, ENV_WEIGHTS, Loading

from ..errors import ConfigError

if TYPE_CHECKING:
    from methods import Method

PROG = "python -m harness"


class CLIError(ConfigError):
    """A bad command-line value that argparse cannot check by itself (e.g. ``--mix`` weights that do not match the
    ``--style`` count, a malformed ``--option``); the message is one line naming the option."""

    always_template = False


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and epilogs (the example lines)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)


def add_parser(subparsers, name: str, *, help: str, description: str, examples: Sequence[str]) -> argparse.ArgumentParser:
    """A sub-parser with the shared formatter and an ``examples:`` epilog."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return subparsers.add_parser(
        name, help=help, description=_fill(description), epilog=epilog, formatter_class=_HelpFormatter
    )


def _fill(text: str) -> str:
    return textwrap.fill(text, width=100)


def _bounded(cast: Callable[[str], Any], *, inclusive: bool, what: str) -> Callable[[str], Any]:
    """An argparse type: ``cast(text)`` that must be > 0 (or ≥ 0 with ``inclusive``) and finite."""

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if not (value > 0 or (inclusive and value == 0)) or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value

    return parse


positive_int = _bounded(int, inclusive=False, what="a positive integer")
non_negative_int = _bounded(int, inclusive=True, what="an integer ≥ 0")
positive_float = _bounded(float, inclusive=False, what="a positive number")
non_negative_float = _bounded(float, inclusive=True, what="a number ≥ 0")


def comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_resume_arguments(parser: argparse.ArgumentParser, force_help: str) -> None:
    """``--force`` (recompute what the output folder already has; default: resume) and ``--no-progress``."""
    parser.add_argument("--force", action="store_true", default=None, help=force_help)
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def add_weights_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights-dir", metavar="DIR", type=Path, default=None,
        help=f"folder holding official weight files (default: ${ENV_WEIGHTS}; the cache is searched after it)",
    )


def add_method_arguments(parser: argparse.ArgumentParser, per_method_init: bool = False) -> None:
    """The options every method-using command shares: device, weights, init, seed, downloads, method options
    (``per_method_init``: ``--init`` also takes METHOD=random, for commands that run several methods)."""
    group = parser.add_argument_group("method and weights")
    group.add_argument("--device", default=None, help="torch device: cpu (default), cuda, cuda:1, ...")
    add_weights_dir_argument(group)
    group.add_argument(
        "--weights", metavar="PATH", type=Path, default=None,
        help="this method's weights: a folder with its official files, or a harness checkpoint (file or folder "
             "with harness_checkpoint.pt); searched before --weights-dir",
    )
    group.add_argument(
        "--init", default=None,
        **(dict(metavar="INIT") if per_method_init else dict(choices=("pretrained", "random"))),
        help="pretrained (default: load weights, missing ones are an error) or random (seeded UNTRAINED weights "
             "for smoke and timing runs; outputs are flagged and meaningless)"
             + ("; per method: all2all=random (that row untrained and flagged †, the others pretrained), "
                "comma-separated for several" if per_method_init else ""),
    )
    group.add_argument("--seed", type=int, default=None, help="seed of --init random (default: 0)")
    group.add_argument(
        "--no-download", action="store_true", default=None,
        help=f"never download missing official weights (also: {ENV_OFFLINE}=1)",
    )
    group.add_argument(
        "--option", metavar="KEY=VALUE", action="append", default=[],
        help="a method option, repeatable (see `methods --verbose`); VALUE is parsed as int, float, "
             "true/false, none, a comma-separated tuple (8,8,4) or a string",
    )


_INT = re.compile(r"[+-]?\d+")
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_BOOLS = {"true": True, "false": False, "yes": True, "no": False, "on": True, "off": False}


def parse_value(text: str) -> Any:
    """``"1"`` → 1, ``"0.5"`` → 0.5, ``"true"`` → True, ``"none"`` → None, ``"8,8,4"`` → (8, 8, 4), else the string."""
    text = text.strip()
    if "," in text:
        return tuple(parse_value(part) for part in text.split(",") if part.strip())
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    if text.lower() in _BOOLS:
        return _BOOLS[text.lower()]
    if text.lower() in ("none", "null"):
        return None
    return text


def parse_options(items: Sequence[str]) -> dict[str, Any]:
    """``["heads=1", "block_sides=8,8,4"]`` → ``{"heads": 1, "block_sides": (8, 8, 4)}``; malformed → CLIError."""
    options: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise CLIError(f"--option expects KEY=VALUE (e.g. --option heads=1), got {item!r}")
        if key in options:
            raise CLIError(f"--option {key} is given twice")
        options[key] = parse_value(value)
    return options


def split_method_options(methods: Sequence[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``--option`` values shared by several methods → each method's own (the options it declares); an option no
    method declares is an error."""
    from methods import get_method_info

    method_options = {name: {k: v for k, v in options.items() if k in get_method_info(name).options}
                      for name in methods}
    unused = [k for k in options if not any(k in o for o in method_options.values())]
    if unused:
        raise CLIError(f"option(s) {', '.join(unused)} belong to none of the methods {', '.join(methods)}")
    return method_options


def existing_path(path: Path | None, option: str) -> Path | None:
    if path is not None and not path.exists():
        raise CLIError(f"{option} {path}: no such file or folder")
    return path


def loading_from_args(args: argparse.Namespace, weights: Path | None = None) -> Loading:
    """The weight arguments of :func:`add_method_arguments` as a :class:`~methods.Loading` (None: not given)."""
    from ..environment import resolve_device

    return Loading(
        weights=existing_path(weights, "--weights"),
        weights_dir=existing_path(args.weights_dir, "--weights-dir"),
        init=args.init,
        device=resolve_device(args.device or "cpu"),
        seed=0 if args.seed is None else args.seed,
        download=False if args.no_download else None,
    )


def warn_untrained(method: Method) -> None:
    flag = method.provenance.flag()
    if flag:
        print(f"WARNING: {method.name} runs with {flag} weights: the results are untrained and meaningless "
              "(smoke and timing runs only)", file=sys.stderr)


def build_method(args: argparse.Namespace, name: str) -> Method:
    """The method with the shared options of :func:`add_method_arguments`; warns loudly when untrained."""
    from methods import load_method

    method = load_method(name, loading_from_args(args, args.weights), **parse_options(args.option))
    warn_untrained(method)
    return method


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain-text table with left-aligned columns (the last column is not padded)."""
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [c.ljust(w) for c, w in zip(row[:-1], widths)] + [row[-1]]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)
