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
import dataclasses
import os
import re
import sys
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from PIL import Image

from methods import Method, create_method, find_checkpoint, get_method_info, list_methods
from methods.weights import ENV_OFFLINE, ENV_WEIGHTS, find_file, search_dirs

from .environment import resolve_device
from .errors import EXIT_USAGE, EXPECTED_ERRORS, CLIError, format_error
from .images import ImageError, load_image_tensor, save_image
from .run import DEFAULT_METRICS, KNOWN_METRICS, RunConfig, execute_run, merge_shards, write_run_tables

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


_positive_int = _bounded(int, inclusive=False, what="a positive integer")
_non_negative_int = _bounded(int, inclusive=True, what="an integer ≥ 0")
_positive_float = _bounded(float, inclusive=False, what="a positive number")
_non_negative_float = _bounded(float, inclusive=True, what="a number ≥ 0")


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


def split_method_options(methods: Sequence[str], options: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``--option`` values shared by several methods → each method's own (the options it declares); an option no
    method declares is an error."""
    method_options = {name: {k: v for k, v in options.items() if k in get_method_info(name).options}
                      for name in methods}
    unused = [k for k in options if not any(k in o for o in method_options.values())]
    if unused:
        raise CLIError(f"option(s) {', '.join(unused)} belong to none of the methods {', '.join(methods)}")
    return method_options


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
# train
# ----------------------------------------------------------------------------------------------------------------------
_TRAIN_REQUIRED = ("method", "content_dir", "style_dir", "out")


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    parser = _add_parser(
        subparsers, "train",
        help="train a method on folders of content and style images (official recipe by default)",
        description="Train METHOD's trainable parts (the VGG encoder stays frozen) on CONTENT-DIR x STYLE-DIR with "
                    "the method's official recipe (see methods/recipes.py); --steps/--epochs and the 'recipe overrides' "
                    "options replace single recipe fields. Writes OUT/harness_checkpoint.pt (load it with "
                    "--weights OUT), OUT/training_state.pt (for --resume), OUT/loss_log.csv and "
                    "OUT/samples/step_*.png; StyA2K methods also get the official latest_net_*.pth files. Training "
                    "needs vgg_normalised.pth; --init random trains against a random encoder instead (smoke runs "
                    "only, flagged). Under `torchrun --nproc_per_node N -m harness train ...` it runs data-parallel "
                    "(--batch-size per process). --config FILE.yaml gives the same keys (dashes or underscores); "
                    "command-line values override it.",
        examples=[
            f"{PROG} train --method styA2K --content-dir coco/train2014 --style-dir wikiart --out runs/stya2k",
            f"{PROG} train --method adain --content-dir coco --style-dir wikiart --out runs/adain --steps 20000 "
            "--amp bf16",
            f"{PROG} train --method styA2K-noPA --config runs/base.yaml --out runs/nopa --steps 5000 --lr 1e-4",
            f"{PROG} train --out runs/stya2k --resume --steps 60000",
            "torchrun --standalone --nproc_per_node 4 -m harness train --method styA2K --content-dir coco "
            "--style-dir wikiart --out runs/ddp --device cuda",
        ],
    )
    parser.add_argument("--config", type=Path, metavar="FILE.yaml", default=None,
                        help="YAML file with any of these options as keys (e.g. `lr: 1e-4`, `content-dir: coco`)")
    parser.add_argument("--method", default=None, help="method name (see `methods`), case-insensitive")
    parser.add_argument("--content-dir", type=Path, metavar="DIR", default=None,
                        help="folder of content images, searched recursively (jpg, jpeg, png, webp, bmp, ppm)")
    parser.add_argument("--style-dir", type=Path, metavar="DIR", default=None, help="folder of style images")
    parser.add_argument("--out", type=Path, metavar="DIR", default=None, help="output folder of the run")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--steps", type=_positive_int, default=None, metavar="N",
                        help="optimiser steps in total (default: recipe; an epoch is still one pass over the content)")
    length.add_argument("--epochs", type=_positive_int, default=None, metavar="E",
                        help="passes over the content set (default: recipe)")
    group = parser.add_argument_group("recipe overrides (default: the method's recipe)")
    group.add_argument("--batch-size", type=_positive_int, default=None, metavar="B", help="images per step (per process)")
    group.add_argument("--crop", type=_positive_int, default=None, metavar="S", help="random crop side")
    group.add_argument("--load-size", type=_positive_int, default=None, metavar="S",
                       help="resize to S x S before the crop (must be ≥ --crop)")
    group.add_argument("--keep-aspect", action="store_true", default=None,
                       help="resize the shorter side to --load-size instead (keeps the aspect ratio)")
    group.add_argument("--lr", type=_positive_float, default=None, help="Adam learning rate")
    group.add_argument("--lambda-style", type=_non_negative_float, default=None, metavar="W",
                       help="weight of the global style loss (recipe key global_style, or style for adain)")
    group.add_argument("--lambda-a2k", type=_non_negative_float, default=None, metavar="W",
                       help="weight of the A2K* loss (styA2K, its ablations, all2all)")
    group.add_argument("--schedule", choices=("official", "paper", "inverse_time", "constant"), default=None,
                       help="LR schedule: official (x0.3 per epoch after 2), paper (linear to 0), inverse_time "
                            "(lr/(1+5e-5 step)), constant")
    group.add_argument("--workers", type=_non_negative_int, default=None, metavar="K", help="DataLoader workers")
    group.add_argument("--checkpoint-every", type=_positive_int, default=None, metavar="K",
                       help="write the checkpoint every K steps (and at the end)")
    run = parser.add_argument_group("run")
    run.add_argument("--amp", choices=("bf16", "fp16", "off"), default=None,
                     help="mixed precision: bf16 (CPU or CUDA), fp16 (CUDA, with a GradScaler) or off (default)")
    run.add_argument("--compile", action="store_true", default=None, help="torch.compile the loss computation")
    run.add_argument("--seed", type=int, default=None, help="seed of the init, the data order and the crops (default 0)")
    run.add_argument("--resume", action="store_true", default=None,
                     help="continue the run in --out exactly where its last checkpoint left it")
    run.add_argument("--log-every", type=_non_negative_int, default=None, metavar="K",
                     help="print/refresh the loss terms every K steps (default 50; loss_log.csv has every step)")
    run.add_argument("--sample-every", type=_non_negative_int, default=None, metavar="K",
                     help="save a content|style|output grid every K steps (default 1000; 0 = never)")
    run.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="tqdm progress bar (default: when stderr is a terminal)")
    weights = parser.add_argument_group("weights and device")
    weights.add_argument("--device", default=None, help="torch device: cpu (default), cuda, cuda:1, ...")
    add_weights_dir_argument(weights)
    weights.add_argument("--init", choices=("pretrained", "random"), default=None,
                         help="random: allow training against a random VGG encoder when vgg_normalised.pth is not "
                              "available (smoke runs only; flagged untrained_encoder). The trainable parts always "
                              "start from the method's seeded official initialisation")
    weights.add_argument("--no-download", action="store_true", default=None,
                         help=f"never download vgg_normalised.pth (also: {ENV_OFFLINE}=1)")
    weights.add_argument("--option", metavar="KEY=VALUE", action="append", default=None,
                         help="a method option, repeatable (see `methods --verbose`)")
    parser.set_defaults(handler=cmd_train, _train_parser=parser)
    return parser


def _yaml_value(action: argparse.Action, key: str, value: Any, source: Path) -> Any:
    """A YAML value converted and checked like the command-line option it stands for."""
    where = f"--config {source}: key {key!r}"
    if action.nargs == 0:  # store_true / BooleanOptionalAction
        if not isinstance(value, bool):
            raise CLIError(f"{where} expects true or false, got {value!r}")
        return (value or None) if action.dest == "no_download" else value
    if action.dest == "option":
        if isinstance(value, dict):
            return [f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in value.items()]
        items = value if isinstance(value, list) else [value]
        return [str(v) for v in items]
    if isinstance(value, (dict, list)):
        raise CLIError(f"{where} expects a single value, got {value!r}")
    if isinstance(value, bool):
        text = {"amp": "off" if not value else "on"}.get(action.dest, str(value).lower())
    else:
        text = str(value)
    try:
        converted = action.type(text) if action.type else text
    except (argparse.ArgumentTypeError, TypeError, ValueError) as exc:
        raise CLIError(f"{where}: {exc}") from None
    if action.choices is not None and converted not in action.choices:
        raise CLIError(f"{where}: {converted!r} is not one of {', '.join(map(str, action.choices))}")
    return converted


def load_train_config(path: Path, args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Fill the options ``args`` did not get on the command line from the YAML file ``path`` (in place)."""
    import yaml

    if not path.is_file():
        raise CLIError(f"--config {path}: no such file")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise CLIError(f"--config {path}: not a readable YAML file ({' '.join(str(exc).split())})") from None
    if data is None:
        return
    if not isinstance(data, dict):
        raise CLIError(f"--config {path}: expected a mapping of option: value, got {type(data).__name__}")
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    from_yaml = set()
    for key, value in data.items():
        dest = str(key).strip().lstrip("-").replace("-", "_")
        if dest not in actions:
            known = ", ".join(sorted(d.replace("_", "-") for d in actions))
            raise CLIError(f"--config {path}: unknown key {key!r} (known keys: {known})")
        if getattr(args, dest) is None:
            setattr(args, dest, _yaml_value(actions[dest], str(key), value, path))
            from_yaml.add(dest)
    if args.steps is not None and args.epochs is not None:
        if {"steps", "epochs"} <= from_yaml:
            raise CLIError(f"--config {path}: give one of steps and epochs, not both")
        setattr(args, "steps" if "steps" in from_yaml else "epochs", None)  # the command line's length wins


def cmd_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, TrainingDivergedError, train

    if args.config is not None:
        load_train_config(args.config, args, args._train_parser)
    missing = [name for name in _TRAIN_REQUIRED if getattr(args, name) is None]
    if args.resume and args.out is not None:
        missing = [m for m in missing if m == "out"]  # the rest comes from the run being resumed
    if missing:
        raise CLIError("train needs " + ", ".join("--" + m.replace("_", "-") for m in missing)
                       + " (on the command line or in --config)")
    config = TrainConfig(
        method=args.method, content_dir=args.content_dir, style_dir=args.style_dir, out=args.out,
        steps=args.steps, epochs=args.epochs, batch_size=args.batch_size, crop=args.crop, load_size=args.load_size,
        keep_aspect=args.keep_aspect, lr=args.lr, lambda_style=args.lambda_style, lambda_a2k=args.lambda_a2k,
        schedule=args.schedule, amp=args.amp, compile=args.compile, workers=args.workers, seed=args.seed,
        init=args.init, resume=bool(args.resume), log_every=args.log_every, sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every, device=args.device, weights_dir=args.weights_dir,
        download=False if args.no_download else None, options=parse_options(args.option or []),
        progress=args.progress,
    )
    try:
        summary = train(config)
    except TrainingDivergedError as exc:
        print(f"error: {format_error(exc)}", file=sys.stderr)
        return 1
    terms = ", ".join(f"{k} {v:.4g}" for k, v in summary["final_terms"].items()) or "none"
    skipped = summary["skipped_files"]
    lines = [
        f"trained {summary['method']}: {summary['steps']}/{summary['total_steps']} steps "
        f"({summary['steps_this_run']} in this run, {summary['seconds']:.1f} s, {summary['images_per_s']:.2f} img/s)"
        + (f" [{summary['flag']}]" if summary["flag"] else ""),
        f"final loss terms: {terms}",
        f"skipped unreadable images: {len(skipped)}" + (f" ({', '.join(skipped[:5])}{', ...' if len(skipped) > 5 else ''})" if skipped else ""),
        f"checkpoint: {summary['checkpoint']} (load with --weights {summary['out']})",
        f"training state: {summary['training_state']} (continue with --resume)",
        f"loss log: {summary['loss_log']}",
    ]
    if summary["samples"]:
        lines.append(f"samples: {summary['samples']}")
    if summary["official_files"]:
        lines.append("official files: " + ", ".join(Path(p).name for p in summary["official_files"]))
    if int(os.environ.get("RANK", "0")) == 0:
        print("\n".join(lines))
    return 0


# ----------------------------------------------------------------------------------------------------------------------
# Parser and entry point
# ----------------------------------------------------------------------------------------------------------------------
# ----------------------------------------------------------------------------------------------------------------------
# run, table, merge, tally
# ----------------------------------------------------------------------------------------------------------------------
def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _shard(text: str) -> tuple[int, int]:
    match = re.fullmatch(r"(\d+)/(\d+)", text.strip())
    if not match or not int(match[1]) < int(match[2]):
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n (e.g. 0/4), got {text!r}")
    return int(match[1]), int(match[2])


RUN_DEFAULTS: dict[str, Any] = {"size": 512, "seed": 0, "device": "cpu", "batch_size": 1, "pairs": None,
                                "metrics": list(DEFAULT_METRICS), "timing_repeats": 10, "lpips_net": "alex"}


def add_run_parser(subparsers) -> argparse.ArgumentParser:
    parser = _add_parser(
        subparsers, "run", help="the benchmark: methods × image pairs → images, metrics, timing, tables",
        description="Stylise every content × style pair with every method, save the images (one folder per method, "
                    "<content>__<style>.png), compute the metrics per pair into RUN_DIR/metrics.csv, time each "
                    "method apart from the metrics (timing.csv), and write table.csv/.md/.tex. Without --content/"
                    "--style, an embedded demo set (public-domain/CC0 photos, project-generated styles) is used. "
                    "Killed runs resume where they stopped; --force recomputes.",
        examples=[f"{PROG} run --methods styA2K,adain,all2all",
                  f"{PROG} run --methods styA2K,adain --content photos/ --style paintings/ --size 512 --out results/t1",
                  f"{PROG} run --methods adain --init random --size 128 --pairs 4   # smoke run, flagged UNTRAINED",
                  f"{PROG} run --config my_run.yaml --out results/mine"],
    )
    parser.add_argument("--methods", type=_comma_list, default=None, help="comma-separated method names")
    parser.add_argument("--content", nargs="+", metavar="DIR|FILE", default=None, help="content folder(s) or files")
    parser.add_argument("--style", nargs="+", metavar="DIR|FILE", default=None, help="style folder(s) or files")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--size", type=_positive_int, default=None,
                      help="resize both images to S×S (official protocol; default 512)")
    size.add_argument("--keep-size", action="store_true", help="use the images at their own sizes")
    parser.add_argument("--keep-aspect", action="store_true", help="resize the shorter side to S instead")
    parser.add_argument("--pairs", type=_positive_int, default=None, help="a seeded sample of N pairs (default: all)")
    parser.add_argument("--batch-size", type=_positive_int, default=None, help="pairs per forward (default 1)")
    parser.add_argument("--metrics", type=_comma_list, default=None,
                        help=f"comma-separated subset of {', '.join(KNOWN_METRICS)} (default: all)")
    parser.add_argument("--lpips-net", choices=("alex", "vgg"), default=None, help="LPIPS backbone (default alex)")
    parser.add_argument("--timing-repeats", type=_positive_int, default=None, help="timed runs per method (default 10)")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: results/run-<time>)")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE.yaml",
                        help="YAML file with these settings (command-line values win); the paper's tables are "
                             "studies: see `study`")
    parser.add_argument("--force", action="store_true", help="recompute pairs already in metrics.csv")
    parser.add_argument("--shard", type=_shard, default=None,
                        help="i/n: this process takes every n-th pair from i (default: torchrun's RANK/WORLD_SIZE)")
    parser.add_argument("--votes", type=Path, default=None, help="user-study votes CSV added to the tables")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_method_arguments(parser)
    parser.set_defaults(handler=cmd_run)
    return parser


RUN_CONFIG_KEYS = {f.name for f in dataclasses.fields(RunConfig)} - {"progress", "method_options", "download", "out"} | {
    "options", "keep_size", "out"}


def load_run_config(path: Path) -> dict[str, Any]:
    """A run config YAML (`run --config`): the run's settings under their option names (dashes or underscores); unknown keys are errors."""
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise CLIError(f"--config {path}: no such file") from None
    except yaml.YAMLError as exc:
        raise CLIError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise CLIError(f"{path}: a run config must be a mapping of settings, got {type(data).__name__}")
    out = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in RUN_CONFIG_KEYS:
            raise CLIError(f"{path}: unknown key {key!r}; known keys: {', '.join(sorted(RUN_CONFIG_KEYS))}")
        out[name] = value
    return out


def _listify(value: Any) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return _comma_list(value)
    return [str(v) for v in value]


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    if args.weights is not None:
        raise CLIError("--weights names one method's files; for a run put every method's files in one folder and "
                       "pass --weights-dir DIR (harness checkpoints go in DIR/<method>/harness_checkpoint.pt)")
    settings = load_run_config(args.config) if args.config else {}
    pick = lambda name, cli: cli if cli is not None else settings.get(name, RUN_DEFAULTS.get(name))  # noqa: E731
    methods = args.methods or _listify(settings.get("methods"))
    if not methods:
        raise CLIError("no methods: pass --methods styA2K,adain,all2all (or `methods:` in --config)")
    keep_size = args.keep_size or bool(settings.get("keep_size", False))
    size = None if keep_size else pick("size", args.size)
    options = parse_options(args.option)
    options.update(settings.get("options") or {})
    shard = args.shard or settings.get("shard")
    if shard is None and "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        shard = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))
    if isinstance(shard, str):
        shard = _shard(shard)
    out = args.out or (Path(settings["out"]) if settings.get("out") else
                       Path("results") / f"run-{time.strftime('%Y%m%d-%H%M%S')}")
    method_options = split_method_options(methods, options)
    return RunConfig(
        methods=methods, out=out,
        content=args.content or _listify(settings.get("content")), style=args.style or _listify(settings.get("style")),
        size=size, keep_aspect=args.keep_aspect or bool(settings.get("keep_aspect", False)),
        pairs=pick("pairs", args.pairs), seed=args.seed if args.seed != 0 else settings.get("seed", 0),
        device=str(resolve_device(args.device if args.device != "cpu" else settings.get("device", "cpu"))),
        batch_size=pick("batch_size", args.batch_size),
        weights_dir=str(_existing_path(args.weights_dir, "--weights-dir")) if args.weights_dir else settings.get("weights_dir"),
        init=args.init or settings.get("init"), download=False if args.no_download else None,
        metrics=args.metrics or _listify(settings.get("metrics")) or list(DEFAULT_METRICS),
        method_options=method_options, lpips_net=pick("lpips_net", args.lpips_net),
        timing_repeats=pick("timing_repeats", args.timing_repeats), force=args.force or bool(settings.get("force")),
        shard=tuple(shard) if shard else None, votes=str(args.votes) if args.votes else settings.get("votes"),
        progress=not args.no_progress,
    )


def cmd_run(args: argparse.Namespace) -> int:
    config = run_config_from_args(args)
    if config.init == "random":
        print("WARNING: --init random: every method runs with UNTRAINED weights; rows and tables are flagged and "
              "the numbers are meaningless (smoke and timing runs only)", file=sys.stderr)
    summary = execute_run(config, command=" ".join([PROG, *sys.argv[1:]]))
    seconds = summary["seconds"]
    print(f"run: {summary['computed']} pairs computed, {summary['skipped']} already done, in {config.out}")
    print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    for name, reason in summary["unavailable"].items():
        print(f"unavailable: {name}: {reason}", file=sys.stderr)
    if "tables" in summary:
        print(Path(summary["tables"]["md"]).read_text())
    else:
        print(f"shard done; combine the shards with `{PROG} merge {config.out}`")
    return 0


def add_table_parser(subparsers) -> argparse.ArgumentParser:
    parser = _add_parser(
        subparsers, "table", help="aggregate run directories into table.csv/.md/.tex",
        description="Mean ± std and 95% CI per method of one or more run directories, with timing and (with "
                    "--votes) user-study preference columns; the LaTeX table marks the best value of each column "
                    "in bold and the second underlined, like the paper's Table 1.",
        examples=[f"{PROG} table results/run-1", f"{PROG} table results/a results/b --out results/ab --votes votes.csv"],
    )
    parser.add_argument("runs", nargs="+", type=Path, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, default=None, help="where to write the tables (default: the first run)")
    parser.add_argument("--votes", type=Path, default=None, help="user-study votes CSV")
    parser.set_defaults(handler=cmd_table)
    return parser


def cmd_table(args: argparse.Namespace) -> int:
    for run_dir in args.runs:
        _existing_path(run_dir, "RUN_DIR")
    paths = write_run_tables(args.runs, args.out, votes=str(args.votes) if args.votes else None)
    print(paths["md"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_merge_parser(subparsers) -> argparse.ArgumentParser:
    parser = _add_parser(
        subparsers, "merge", help="combine the shards of a run directory (--shard i/n) and write its tables",
        description="Combine metrics.shard-I-of-N.csv and timing.shard-I-of-N.csv into metrics.csv and timing.csv "
                    "(rows de-duplicated), then write the tables.",
        examples=[f"{PROG} merge results/big-run"],
    )
    parser.add_argument("run", type=Path, metavar="RUN_DIR")
    parser.add_argument("--votes", type=Path, default=None, help="user-study votes CSV")
    parser.set_defaults(handler=cmd_merge)
    return parser


def cmd_merge(args: argparse.Namespace) -> int:
    counts = merge_shards(_existing_path(args.run, "RUN_DIR"))
    print("merged: " + ", ".join(f"{k}.csv {v} rows" for k, v in counts.items()))
    paths = write_run_tables([args.run], votes=str(args.votes) if args.votes else None)
    print(paths["md"].read_text())
    return 0


def add_tally_parser(subparsers) -> argparse.ArgumentParser:
    parser = _add_parser(
        subparsers, "tally", help="user-study votes → shares with 95%% Wilson intervals and tests",
        description="Read a votes CSV (participant,group,question,method; question in content/style/overall) and "
                    "print, per question, each method's share of the votes with its 95% Wilson interval, a "
                    "chi-square test against the uniform split and pairwise exact binomial tests (Holm-adjusted). "
                    "Invalid rows (unknown method, wrong question, duplicate vote) are listed with line numbers.",
        examples=[f"{PROG} tally votes.csv", f"{PROG} tally votes.csv --methods styA2K,adain,all2all --out results/study"],
    )
    parser.add_argument("votes", type=Path, metavar="VOTES.csv")
    parser.add_argument("--methods", type=_comma_list, default=None, help="the compared methods (others are invalid)")
    parser.add_argument("--out", type=Path, default=None, help="folder for tally.csv, chi_square.csv, pairwise.csv")
    parser.set_defaults(handler=cmd_tally)
    return parser


def cmd_tally(args: argparse.Namespace) -> int:
    from metrics.preference import chi_square_uniform, pairwise_binomial, read_votes, tally

    votes, problems = read_votes(args.votes, methods=args.methods)
    for problem in problems:
        print(f"warning: {args.votes}: {problem}", file=sys.stderr)
    tables = {"tally": tally(votes, methods=args.methods), "chi_square": chi_square_uniform(votes, methods=args.methods),
              "pairwise": pairwise_binomial(votes, methods=args.methods)}
    for name, frame in tables.items():
        print(f"\n{name}:\n{frame.to_string(index=False, float_format=lambda v: f'{v:.4g}')}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        for name, frame in tables.items():
            frame.to_csv(args.out / f"{name}.csv", index=False)
        print(f"\nwrote {args.out}/tally.csv, chi_square.csv, pairwise.csv")
    print(f"\n{len(votes)} valid votes, {len(problems)} invalid row(s)")
    return 0


def add_video_parser(subparsers) -> argparse.ArgumentParser:
    parser = _add_parser(
        subparsers, "video", help="stylise every frame of a clip and measure temporal consistency (paper Table 3)",
        description="Stylise every frame of a clip (a folder of frames, natural order, or an mp4/gif video) "
                    "independently with each method and one style (encoded once per method), write the frames and "
                    "mp4/gif previews, and measure the warping error of Lai et al. (2018): the previous stylised "
                    "frame warped to the current one with optical flow of the INPUT frames (OpenCV DIS or "
                    "Farnebäck, or .flo files), occlusions masked with Ruder et al.'s forward-backward check, mean "
                    "squared RGB error over the reliable pixels, averaged over frame pairs; also for the input "
                    "frames (a floor) and for frames t-k (long range). Writes OUT/temporal.csv/.md/.tex, "
                    "OUT/per_frame.csv, OUT/per_frame_error.png/.pdf and OUT/manifest.json. Frames already in OUT "
                    "are reused (--force recomputes).",
        examples=[
            f"{PROG} video --methods styA2K,all2all --frames clips/mountain_2 --style starry.png --out results/video",
            f"{PROG} video --methods adain --video clip.mp4 --style starry.png --size 256 --flow farneback",
            f"{PROG} video --methods adain,styA2K --frames clip/ --style s.png --size 64 --max-frames 4 --init random",
        ],
    )
    parser.add_argument("--methods", type=_comma_list, required=True, help="comma-separated method names")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--frames", type=Path, metavar="DIR", help="folder of frames (png, jpg, ppm, ...; natural order)")
    source.add_argument("--video", type=Path, metavar="FILE", help="video file (mp4 via OpenCV, gif via PIL)")
    parser.add_argument("--style", type=Path, required=True, metavar="FILE", help="style image")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--size", type=_positive_int, default=256, metavar="S",
                      help="resize frames so that the shorter side is S (aspect kept) and the style to SxS "
                           "(default 256)")
    size.add_argument("--keep-size", action="store_true", help="use the frames and the style at their own sizes")
    parser.add_argument("--max-frames", type=_positive_int, default=None, metavar="N", help="only the first N frames")
    parser.add_argument("--flow", default="dis", metavar="dis|farneback|DIR",
                        help="optical flow of the input frames: OpenCV dis (default) or farneback, or a folder of "
                             ".flo files backward_<t>_<t-1>.flo / forward_<t-1>_<t>.flo (1-based)")
    parser.add_argument("--long-range", type=_non_negative_int, default=5, metavar="K",
                        help="lag of the long-range error, pairs (t-K, t) (default 5; 0 disables)")
    parser.add_argument("--scale", type=_positive_float, default=1.0,
                        help="intensity scale of the error: 1 = images in [0, 1] (default), 255 = 8-bit units")
    parser.add_argument("--preview", choices=("mp4", "gif", "none"), default="mp4", help="preview videos (default mp4)")
    parser.add_argument("--fps", type=_positive_float, default=12.0, help="frame rate of the previews (default 12)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: results/video-<time>)")
    parser.add_argument("--force", action="store_true", help="re-stylise frames already in OUT")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_method_arguments(parser)
    parser.set_defaults(handler=cmd_video)
    return parser


def cmd_video(args: argparse.Namespace) -> int:
    from .video import VideoConfig, clip_name, run_video

    if args.weights is not None:
        raise CLIError("--weights names one method's files; for several methods put their files in one folder and "
                       "pass --weights-dir DIR")
    source = _existing_path(args.frames, "--frames") or _existing_path(args.video, "--video")
    if args.frames is not None and not args.frames.is_dir():
        raise CLIError(f"--frames {args.frames}: not a folder (use --video for a video file)")
    _existing_path(args.style, "--style")
    options = parse_options(args.option)
    method_options = split_method_options(args.methods, options)
    if args.flow not in ("dis", "farneback") and not Path(args.flow).is_dir():
        raise CLIError(f"--flow {args.flow}: expected dis, farneback or a folder of .flo files")
    if args.init == "random":
        print("WARNING: --init random: every method runs with UNTRAINED weights; frames and tables are flagged and "
              "the numbers are meaningless (smoke and timing runs only)", file=sys.stderr)
    config = VideoConfig(
        methods=args.methods, clips={clip_name(source): str(source)}, style=str(args.style),
        out=args.out or Path("results") / f"video-{time.strftime('%Y%m%d-%H%M%S')}",
        size=None if args.keep_size else args.size, max_frames=args.max_frames, flow=str(args.flow),
        long_range_k=args.long_range, scale=args.scale, preview=args.preview, fps=args.fps,
        device=str(resolve_device(args.device)), init=args.init, seed=args.seed,
        weights_dir=str(_existing_path(args.weights_dir, "--weights-dir")) if args.weights_dir else None,
        download=False if args.no_download else None, method_options=method_options, force=args.force,
        progress=not args.no_progress,
    )
    summary = run_video(config, command=" ".join([PROG, *sys.argv[1:]]))
    print(Path(summary["tables"]["md"]).read_text())
    for name, clip in summary["clips"].items():
        print(f"clip {name}: {clip['frames']} frames at {clip['size'][1]}x{clip['size'][0]}; "
              f"stylised {summary['frames_stylised']}, reused {summary['frames_reused']}")
    steps = summary["seconds_per_frame"]
    fmt = lambda v: "n/a" if v is None else f"{v:.3f} s"  # noqa: E731
    stylize = ", ".join(f"{m} {fmt(v)}" for m, v in steps["stylize"].items())
    print(f"seconds per frame: flow {fmt(steps['flow'])} (long range {fmt(steps['flow_long_range'])}), "
          f"stylisation {stylize}, metric {fmt(steps['metric'])}")
    for note in summary["notes"]:
        print(f"note: {note}", file=sys.stderr)
    print(f"wrote {config.out}/temporal.csv/.md/.tex, per_frame.csv, per_frame_error.png/.pdf, manifest.json")
    return 0


def add_study_parser(subparsers) -> argparse.ArgumentParser:
    parser = _add_parser(
        subparsers, "study", help="run a study YAML (the paper's tables) into results/<study>/ with tables and figures",
        description="Run a study file from studies/: a run study (methods × image pairs → metrics, tables, "
                    "comparison figures), a complexity sweep (latency, memory and FLOPs against image size) or a "
                    "video study (temporal consistency). Finished work in the results folder is reused, so an "
                    "interrupted study resumes where it stopped. `--check` only validates the file.",
        examples=[f"{PROG} study studies/smoke.yaml", f"{PROG} study studies/table1.yaml --weights-dir ~/weights",
                  f"{PROG} study studies/supp_lambda.yaml --train-missing",
                  f"{PROG} study studies/complexity.yaml --sizes 256,512 --max-memory-mib 8000",
                  f"{PROG} study --check studies/*.yaml"],
    )
    parser.add_argument("studies", nargs="+", type=Path, metavar="STUDY.yaml")
    parser.add_argument("--check", action="store_true", help="validate the study files and exit")
    parser.add_argument("--out", type=Path, default=None, help="results folder (default: results/<study name>)")
    parser.add_argument("--train-missing", action="store_true",
                        help="train the entries whose checkpoint is missing (through `harness train`) before running")
    parser.add_argument("--sizes", type=_comma_list, default=None, help="complexity studies: override the sizes")
    parser.add_argument("--max-memory-mib", type=_positive_int, default=None,
                        help="complexity studies: memory cap per measurement; a size above it is recorded as OOM")
    parser.add_argument("--votes", type=Path, default=None,
                        help="run studies: a user-study votes CSV whose preference shares join the table")
    parser.add_argument("--force", action="store_true", help="recompute what the results folder already has")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    add_method_arguments(parser)
    parser.set_defaults(handler=cmd_study)
    return parser


def cmd_study(args: argparse.Namespace) -> int:
    from .study import StudyOverrides, load_study_file, run_study

    if args.weights is not None or args.option:
        raise CLIError("a study names each method's weights and options in its file (methods: - {method: ..., "
                       "weights: ..., options: {...}}); on the command line only --weights-dir applies")
    studies = [load_study_file(path) for path in args.studies]  # every file validated before any work
    if args.check:
        for study in studies:
            print(f"{study.source}: ok ({study.kind} study {study.name!r})")
        return 0
    if args.out is not None and len(studies) > 1:
        raise CLIError("--out names one results folder; run one study at a time with --out")
    overrides = StudyOverrides(
        out=args.out, device=str(resolve_device(args.device)) if args.device != "cpu" else None, init=args.init,
        seed=args.seed if args.seed != 0 else None,
        weights_dir=str(_existing_path(args.weights_dir, "--weights-dir")) if args.weights_dir else None,
        download=False if args.no_download else None, train_missing=args.train_missing, votes=args.votes,
        sizes=[int(s) for s in args.sizes] if args.sizes else None, max_memory_mib=args.max_memory_mib,
        force=args.force, progress=not args.no_progress,
    )
    for study in studies:
        summary = run_study(study, overrides)
        print(summary.report())
    return 0


COMMANDS: list[Callable[[Any], argparse.ArgumentParser]] = [
    add_methods_parser,
    add_stylize_parser,
    add_run_parser,
    add_table_parser,
    add_merge_parser,
    add_tally_parser,
    add_train_parser,
    add_study_parser,
    add_video_parser,
]
"""Every subcommand's ``add_<name>_parser``, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_fill("Evaluation harness for arbitrary style transfer (StyA2K, its ablations, all-to-all "
                          "attention, AdaIN and plugin methods): benchmark methods on image pairs, train them, "
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
            print(f"error: {format_error(exc)}", file=sys.stderr)
            return EXIT_USAGE
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130
