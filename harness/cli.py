"""The command line: ``python -m harness <command> ...`` (or the ``harness`` script).

Thin by design: each command parses its arguments, calls the library (:mod:`methods`, :mod:`harness.images`, ...)
and prints. The library never imports this module.

Adding a command: write ``add_<name>_parser(subparsers)`` (which builds the sub-parser and calls
``parser.set_defaults(handler=cmd_<name>)``) and ``cmd_<name>(args) -> int``, then append the ``add_`` function to
:data:`COMMANDS`. Method-using commands call :func:`add_method_arguments` and build their model with
:func:`build_method`. Expected bad input is raised as one of :data:`harness.errors.EXPECTED_ERRORS` (use
:class:`~harness.errors.CLIError` for option values argparse cannot check); :func:`main` turns it into one
``error: ...`` line on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import re
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from methods import Method, create_method, find_checkpoint, get_method_info, list_methods
from methods.weights import ENV_OFFLINE, ENV_WEIGHTS, find_file, search_dirs

from .errors import EXIT_USAGE, EXPECTED_ERRORS, CLIError, format_error
from .images import ImageError, load_image_tensor, save_image

PROG = "python -m harness"


class _HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the line breaks of descriptions and epilogs (the example lines)."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=30)


def _add_parser(subparsers, name: str, *, help: str, description: str, examples: Sequence[str]) -> argparse.ArgumentParser:
    """A sub-parser with the shared formatter and an ``examples:`` epilog."""
    epilog = "examples:\n" + "\n".join(f"  {line}" for line in examples)
    return subparsers.add_parser(
        name, help=help, description=_fill(description), epilog=epilog, formatter_class=_HelpFormatter
    )


def _fill(text: str) -> str:
    return textwrap.fill(text, width=100)


# ----------------------------------------------------------------------------------------------------------------------
# Shared pieces for commands that build a method
# ----------------------------------------------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return value


def add_weights_dir_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--weights-dir", metavar="DIR", type=Path, default=None,
        help=f"folder holding official weight files (default: ${ENV_WEIGHTS}; the cache is searched after it)",
    )


def add_method_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every method-using command shares: device, weights, init, seed, downloads, method options."""
    group = parser.add_argument_group("method and weights")
    group.add_argument("--device", default="cpu", help="torch device: cpu (default), cuda, cuda:1, ...")
    add_weights_dir_argument(group)
    group.add_argument(
        "--weights", metavar="PATH", type=Path, default=None,
        help="this method's weights: a folder with its official files, or a harness checkpoint (file or folder "
             "with harness_checkpoint.pt); searched before --weights-dir",
    )
    group.add_argument(
        "--init", choices=("pretrained", "random"), default=None,
        help="pretrained (default: load weights, missing ones are an error) or random (seeded UNTRAINED weights "
             "for smoke and timing runs; outputs are flagged and meaningless)",
    )
    group.add_argument("--seed", type=int, default=0, help="seed of --init random (default: 0)")
    group.add_argument(
        "--no-download", action="store_true",
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


def resolve_device(name: str) -> torch.device:
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise CLIError(f"--device {name!r} is not a torch device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise CLIError(f"--device {name}: CUDA is not available here (torch.cuda.is_available() is False); "
                       "use --device cpu")
    return device


def _existing_path(path: Path | None, option: str) -> Path | None:
    if path is not None and not path.exists():
        raise CLIError(f"{option} {path}: no such file or folder")
    return path


def build_method(args: argparse.Namespace, name: str) -> Method:
    """``create_method`` with the shared options of :func:`add_method_arguments`; warns loudly when untrained."""
    options = parse_options(args.option)
    device = resolve_device(args.device)
    method = create_method(
        name,
        weights=_existing_path(args.weights, "--weights"),
        init=args.init,
        device=device,
        weights_dir=_existing_path(args.weights_dir, "--weights-dir"),
        seed=args.seed,
        download=False if args.no_download else None,
        **options,
    )
    flag = method.provenance.flag()
    if flag:
        print(
            f"WARNING: {method.name} runs with {flag} weights: the results are untrained and meaningless "
            "(smoke and timing runs only)",
            file=sys.stderr,
        )
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


# ----------------------------------------------------------------------------------------------------------------------
# methods
# ----------------------------------------------------------------------------------------------------------------------
def add_methods_parser(subparsers) -> argparse.ArgumentParser:
    parser = _add_parser(
        subparsers, "methods",
        help="list the registered methods and whether their official weights are present",
        description="List the registered style-transfer methods (built-ins and plugins) with their default size, "
                    "VGG encoder layers and whether their official weight files are present locally "
                    "(--weights-dir, $HARNESS_WEIGHTS, the cache). Nothing is downloaded.",
        examples=[
            f"{PROG} methods",
            f"{PROG} methods --verbose --weights-dir ~/weights 'stya2k*'",
        ],
    )
    parser.add_argument("pattern", nargs="?", default="*", help="shell-style name filter (default: all)")
    parser.add_argument("-v", "--verbose", action="store_true",
                        help="also print each method's options with defaults, and its official files with URLs")
    add_weights_dir_argument(parser)
    parser.set_defaults(handler=cmd_methods)
    return parser


def _weights_status(info, dirs, weights_dir) -> tuple[str, list[tuple[Any, Path | None]]]:
    """("found" | "missing: a, b" | "checkpoint found" | "none (train it)", [(WeightFile, path or None), ...]),
    without downloading."""
    files = [(spec, (find_file(spec, dirs) or (None, None))[1]) for spec in info.weight_files()]
    if not info.has_official_weights:
        return ("checkpoint found" if find_checkpoint(info, None, weights_dir) else "none (train it)"), files
    missing = [spec.filename for spec, path in files if path is None]
    return ("missing: " + ", ".join(missing)) if missing else "found", files


def cmd_methods(args: argparse.Namespace) -> int:
    weights_dir = _existing_path(args.weights_dir, "--weights-dir")
    dirs = search_dirs(None, weights_dir)
    names = list_methods(args.pattern)
    if not names:
        raise CLIError(f"no method matches {args.pattern!r}; known methods: {', '.join(list_methods())}")
    rows, details = [], []
    for name in names:
        info = get_method_info(name)
        status, files = _weights_status(info, dirs, weights_dir)
        rows.append((info.name, "yes" if info.trainable else "no", info.default_size,
                     ",".join(info.encoder_layers) or "-", status, info.summary))
        details.append((info, files))
    print(format_table(("METHOD", "TRAINABLE", "SIZE", "ENCODER LAYERS", "OFFICIAL WEIGHTS", "SUMMARY"), rows))
    if args.verbose:
        for info, files in details:
            print(f"\n{info.name}")
            for label, value in (("paper", info.paper), ("code", info.code_url), ("licence", info.licence),
                                 ("plugin", info.plugin)):
                if value:
                    print(f"  {label}: {value}")
            print("  options:" if info.options else "  options: none")
            for key, default in info.options.items():
                print(f"    {key} = {default!r}")
            print("  files:" if files else "  files: none")
            for spec, path in files:
                where = f"found at {path}" if path is not None else "missing"
                print(f"    {spec.filename}: {where}")
                print(f"      url: {spec.url or 'no public source'}")
                if spec.description:
                    print(f"      {spec.description}")
        searched = ", ".join(f"{source} {folder}" for source, folder in dirs)
        print(f"\nsearched: {searched}")
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# stylize
# ----------------------------------------------------------------------------------------------------------------------
def add_stylize_parser(subparsers) -> argparse.ArgumentParser:
    parser = _add_parser(
        subparsers, "stylize",
        help="stylise one content image with one style (or a weighted mix of styles)",
        description="Stylise CONTENT with STYLE and save the result. By default both images are resized to "
                    "SIZE x SIZE (the official test protocol; SIZE is the method's default, 512). With several "
                    "--style images the styles are blended in feature space with the --mix weights "
                    "(equal weights when --mix is not given).",
        examples=[
            f"{PROG} stylize --method styA2K --content photo.jpg --style starry.png --output out.png",
            f"{PROG} stylize --method adain --content photo.jpg --style a.png --style b.png --mix 0.3,0.7 --keep-size",
            f"{PROG} stylize --method all2all --init random --size 64 --content photo.jpg --style a.png",
        ],
    )
    parser.add_argument("--method", required=True, help="method name (see `methods`), case-insensitive")
    parser.add_argument("--content", required=True, type=Path, metavar="FILE", help="content image")
    parser.add_argument("--style", required=True, type=Path, metavar="FILE", action="append",
                        help="style image; repeat it to mix several styles")
    parser.add_argument("--mix", metavar="W1,W2,...", default=None,
                        help="interpolation weights, one per --style (non-negative, normalised to sum 1)")
    parser.add_argument("--alpha", type=float, default=1.0,
                        help="content-style trade-off in [0, 1]: 1 = full style (default), 0 = content")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--size", type=_positive_int, default=None, metavar="S",
                      help="resize both images to S x S (default: the method's default size)")
    size.add_argument("--keep-size", action="store_true",
                      help="use the images at their own sizes (content and style may differ)")
    parser.add_argument("--keep-aspect", action="store_true",
                        help="resize the shorter side to S instead (keeps the aspect ratio)")
    parser.add_argument("--output", "-o", type=Path, default=None, metavar="FILE",
                        help="output image, .png or .jpg (default: <content stem>__<style stem>.png here)")
    add_method_arguments(parser)
    parser.set_defaults(handler=cmd_stylize)
    return parser


def parse_mix(text: str | None, n_styles: int) -> list[float]:
    """``--mix`` → one float weight per style (equal weights when not given)."""
    if text is None:
        return [1.0 / n_styles] * n_styles
    try:
        weights = [float(part) for part in text.split(",")]
    except ValueError:
        raise CLIError(f"--mix expects comma-separated numbers (e.g. 0.3,0.7), got {text!r}") from None
    if len(weights) != n_styles:
        raise CLIError(f"--mix has {len(weights)} weight(s) ({text}) but {n_styles} --style image(s) were given; "
                       "give one weight per style")
    return weights


def _check_output_suffix(path: Path) -> None:
    if path.suffix.lower() not in Image.registered_extensions():
        raise CLIError(f"--output {path}: cannot tell the image format from the suffix {path.suffix!r} "
                       "(use .png or .jpg)")


def _load(path: Path, role: str, size: int | None, keep_aspect: bool) -> torch.Tensor:
    try:
        return load_image_tensor(path, size, keep_aspect)
    except ImageError as exc:
        raise ImageError(f"{role} image {exc}") from exc


def cmd_stylize(args: argparse.Namespace) -> int:
    if args.keep_aspect and args.keep_size:
        raise CLIError("--keep-aspect needs a size to resize to; it cannot be combined with --keep-size")
    weights = parse_mix(args.mix, len(args.style))
    output = args.output or Path(f"{args.content.stem}__{'+'.join(s.stem for s in args.style)}.png")
    _check_output_suffix(output)
    info = get_method_info(args.method)
    size = None if args.keep_size else (args.size or info.default_size)

    content = _load(args.content, "content", size, args.keep_aspect)
    styles = [_load(path, "style", size, args.keep_aspect) for path in args.style]
    method = build_method(args, info.name)

    start = time.perf_counter()
    if len(styles) == 1 and args.mix is None:
        result = method.stylize(content, styles[0], alpha=args.alpha)
    else:
        result = method.interpolate(content, styles, weights, alpha=args.alpha)
    if result.is_cuda:
        torch.cuda.synchronize(result.device)
    elapsed = time.perf_counter() - start

    saved = save_image(result, output)
    height, width = result.shape[-2:]
    mix = f", mix {','.join(f'{w:g}' for w in weights)}" if len(styles) > 1 or args.mix is not None else ""
    flag = method.provenance.flag()
    print(f"wrote {saved} ({width}x{height}, {method.name}{mix}, {elapsed:.2f} s)" + (f" [{flag}]" if flag else ""))
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# Parser and entry point
# ----------------------------------------------------------------------------------------------------------------------
COMMANDS: list[Callable[[Any], argparse.ArgumentParser]] = [
    add_methods_parser,
    add_stylize_parser,
]
"""Every subcommand's ``add_<name>_parser``, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_fill("Evaluation harness for arbitrary style transfer (StyA2K, its ablations, all-to-all "
                          "attention, AdaIN and plugin methods): list methods and stylise images."),
        epilog="examples:\n"
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
            print(f"error: {format_error(exc)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
