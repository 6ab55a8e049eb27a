"""``train``: a method on folders of content and style images (its official recipe by default)."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from methods.weights import ENV_OFFLINE

from ..config import check_keys, load_yaml_mapping
from ..errors import TrainingDivergedError, format_error
from .common import (PROG, CLIError, add_parser, add_weights_dir_argument, non_negative_float, non_negative_int,
    parse_options, positive_float, positive_int)

_TRAIN_REQUIRED = ("method", "content_dir", "style_dir", "out")


def add_train_parser(subparsers) -> argparse.ArgumentParser:
    parser = add_parser(
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
    length.add_argument("--steps", type=positive_int, default=None, metavar="N",
                        help="optimiser steps in total (default: recipe; an epoch is still one pass over the content)")
    length.add_argument("--epochs", type=positive_int, default=None, metavar="E",
                        help="passes over the content set (default: recipe)")
    group = parser.add_argument_group("recipe overrides (default: the method's recipe)")
    group.add_argument("--batch-size", type=positive_int, default=None, metavar="B", help="images per step (per process)")
    group.add_argument("--crop", type=positive_int, default=None, metavar="S", help="random crop side")
    group.add_argument("--load-size", type=positive_int, default=None, metavar="S",
                       help="resize to S x S before the crop (must be ≥ --crop)")
    group.add_argument("--keep-aspect", action="store_true", default=None,
                       help="resize the shorter side to --load-size instead (keeps the aspect ratio)")
    group.add_argument("--lr", type=positive_float, default=None, help="Adam learning rate")
    group.add_argument("--lambda-style", type=non_negative_float, default=None, metavar="W",
                       help="weight of the global style loss (recipe key global_style, or style for adain)")
    group.add_argument("--lambda-a2k", type=non_negative_float, default=None, metavar="W",
                       help="weight of the A2K* loss (styA2K, its ablations, all2all)")
    group.add_argument("--schedule", choices=("official", "paper", "inverse_time", "constant"), default=None,
                       help="LR schedule: official (x0.3 per epoch after 2), paper (linear to 0), inverse_time "
                            "(lr/(1+5e-5 step)), constant")
    group.add_argument("--workers", type=non_negative_int, default=None, metavar="K", help="DataLoader workers")
    group.add_argument("--checkpoint-every", type=positive_int, default=None, metavar="K",
                       help="write the checkpoint every K steps (and at the end)")
    run = parser.add_argument_group("run")
    run.add_argument("--amp", choices=("bf16", "fp16", "off"), default=None,
                     help="mixed precision: bf16 (CPU or CUDA), fp16 (CUDA, with a GradScaler) or off (default)")
    run.add_argument("--compile", action="store_true", default=None, help="torch.compile the loss computation")
    run.add_argument("--seed", type=int, default=None, help="seed of the init, the data order and the crops (default 0)")
    run.add_argument("--resume", action="store_true", default=None,
                     help="continue the run in --out exactly where its last checkpoint left it")
    run.add_argument("--log-every", type=non_negative_int, default=None, metavar="K",
                     help="print/refresh the loss terms every K steps (default 50; loss_log.csv has every step)")
    run.add_argument("--sample-every", type=non_negative_int, default=None, metavar="K",
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
    data, _ = load_yaml_mapping(path, what="training config", error=CLIError)
    actions = {a.dest: a for a in parser._actions if a.option_strings and a.dest not in ("help", "config")}
    original = {str(k).strip().lstrip("-").replace("-", "_"): str(k) for k in data}
    from_yaml = set()
    for dest, value in check_keys(f"--config {path}", data, set(actions), error=CLIError).items():
        if getattr(args, dest) is None:
            setattr(args, dest, _yaml_value(actions[dest], original[dest], value, path))
            from_yaml.add(dest)
    if args.steps is not None and args.epochs is not None:
        if {"steps", "epochs"} <= from_yaml:
            raise CLIError(f"--config {path}: give one of steps and epochs, not both")
        setattr(args, "steps" if "steps" in from_yaml else "epochs", None)  # the command line's length wins


def cmd_train(args: argparse.Namespace) -> int:
    from ..train import TrainConfig, train

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
        print(f"error: {format_error(exc, flags=True)}", file=sys.stderr)
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
