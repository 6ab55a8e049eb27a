"""``video``: every frame of a clip stylised, and its temporal consistency measured (paper Table 3)."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import (PROG, CLIError, add_method_arguments, add_resume_arguments, add_parser, comma_list,
    existing_path, non_negative_int, parse_options, positive_float, positive_int, split_method_options)


def add_video_parser(subparsers) -> argparse.ArgumentParser:
    parser = add_parser(
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
    parser.add_argument("--methods", type=comma_list, required=True, help="comma-separated method names")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--frames", type=Path, metavar="DIR", help="folder of frames (png, jpg, ppm, ...; natural order)")
    source.add_argument("--video", type=Path, metavar="FILE", help="video file (mp4 via OpenCV, gif via PIL)")
    parser.add_argument("--style", type=Path, required=True, metavar="FILE", help="style image")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--size", type=positive_int, default=256, metavar="S",
                      help="resize frames so that the shorter side is S (aspect kept) and the style to SxS "
                           "(default 256)")
    size.add_argument("--keep-size", action="store_true", help="use the frames and the style at their own sizes")
    parser.add_argument("--max-frames", type=positive_int, default=None, metavar="N", help="only the first N frames")
    parser.add_argument("--flow", default="dis", metavar="dis|farneback|DIR",
                        help="optical flow of the input frames: OpenCV dis (default) or farneback, or a folder of "
                             ".flo files backward_<t>_<t-1>.flo / forward_<t-1>_<t>.flo (1-based)")
    parser.add_argument("--long-range", type=non_negative_int, default=5, metavar="K",
                        help="lag of the long-range error, pairs (t-K, t) (default 5; 0 disables)")
    parser.add_argument("--scale", type=positive_float, default=1.0,
                        help="intensity scale of the error: 1 = images in [0, 1] (default), 255 = 8-bit units")
    parser.add_argument("--definition", choices=("lai2018", "ruder2016"), default="lai2018",
                        help="warping-error definition: lai2018 = Lai et al.'s released code (default: forward flow, "
                             "mean over RGB, border samples kept), ruder2016 = backward flow, Ruder's mask, sum over "
                             "RGB (3x lai2018's channel mean)")
    parser.add_argument("--preview", choices=("mp4", "gif", "none"), default="mp4", help="preview videos (default mp4)")
    parser.add_argument("--fps", type=positive_float, default=12.0, help="frame rate of the previews (default 12)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default: results/video-<time>)")
    add_resume_arguments(parser, "re-stylise frames already in OUT")
    add_method_arguments(parser)
    parser.set_defaults(handler=cmd_video)
    return parser


def cmd_video(args: argparse.Namespace) -> int:
    from ..environment import resolve_device
    from ..io import clip_name
    from ..video import VideoConfig, run_video

    if args.weights is not None:
        raise CLIError("--weights names one method's files; for several methods put their files in one folder and "
                       "pass --weights-dir DIR")
    source = existing_path(args.frames, "--frames") or existing_path(args.video, "--video")
    if args.frames is not None and not args.frames.is_dir():
        raise CLIError(f"--frames {args.frames}: not a folder (use --video for a video file)")
    existing_path(args.style, "--style")
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
        long_range_k=args.long_range, scale=args.scale, definition=args.definition, preview=args.preview, fps=args.fps,
        device=str(resolve_device(args.device or "cpu")), init=args.init, seed=0 if args.seed is None else args.seed,
        weights_dir=str(existing_path(args.weights_dir, "--weights-dir")) if args.weights_dir else None,
        download=False if args.no_download else None, method_options=method_options, force=bool(args.force),
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
