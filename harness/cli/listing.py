"""``methods``: the registered methods, their options and whether their official weights are here."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from methods.weights import Loading, find_file, search_dirs

from .common import PROG, CLIError, add_parser, add_weights_dir_argument, existing_path, format_table


def add_methods_parser(subparsers) -> argparse.ArgumentParser:
    parser = add_parser(
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
    from methods import find_checkpoint

    files = [(spec, (find_file(spec, dirs) or (None, None))[1]) for spec in info.weight_files()]
    if not info.has_official_weights:
        return ("checkpoint found" if find_checkpoint(info, Loading(weights_dir=weights_dir)) else "none (train it)"), files
    missing = [spec.filename for spec, path in files if path is None]
    return ("missing: " + ", ".join(missing)) if missing else "found", files


def cmd_methods(args: argparse.Namespace) -> int:
    from methods import get_method_info, list_methods

    weights_dir = existing_path(args.weights_dir, "--weights-dir")
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
                note = info.option_notes.get(key)
                print(f"    {key} = {default!r}" + (f"  ({note})" if note else ""))
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
