"""``stylize``: one content image with one style, or a weighted mix of styles."""
from __future__ import annotations

import argparse
import time
from pathlib import Path

from typing import TYPE_CHECKING

from ..errors import ImageError

if TYPE_CHECKING:
    import torch
from .common import PROG, CLIError, add_method_arguments, add_parser, build_method, positive_int


def add_stylize_parser(subparsers) -> argparse.ArgumentParser:
    parser = add_parser(
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
    size.add_argument("--size", type=positive_int, default=None, metavar="S",
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
    from PIL import Image

    if path.suffix.lower() not in Image.registered_extensions():
        raise CLIError(f"--output {path}: cannot tell the image format from the suffix {path.suffix!r} "
                       "(use .png or .jpg)")


def _load(path: Path, role: str, size: int | None, keep_aspect: bool) -> torch.Tensor:
    from ..images import load_image_tensor

    try:
        return load_image_tensor(path, size, keep_aspect)
    except ImageError as exc:
        raise ImageError(f"{role} image {exc}") from exc


def cmd_stylize(args: argparse.Namespace) -> int:
    import torch

    from methods import get_method_info

    from ..images import save_image

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
