"""``study``: a study YAML (one of the paper's tables) into ``results/<study>/`` with its tables and figures."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .common import (PROG, CLIError, add_method_arguments, add_parser, add_resume_arguments, comma_list,
    existing_path, positive_int)


def add_study_parser(subparsers) -> argparse.ArgumentParser:
    parser = add_parser(
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
                        help="train the entries whose checkpoint is missing (with their `train:` settings) before running")
    parser.add_argument("--sizes", type=comma_list, default=None, help="complexity studies: override the sizes")
    parser.add_argument("--max-memory-mib", type=positive_int, default=None,
                        help="complexity studies: memory cap per measurement; a size above it is recorded as OOM")
    parser.add_argument("--votes", type=Path, default=None,
                        help="run studies: a user-study votes CSV whose preference shares join the table")
    add_resume_arguments(parser, "recompute what the results folder already has")
    add_method_arguments(parser, per_method_init=True)
    parser.set_defaults(handler=cmd_study)
    return parser


def cmd_study(args: argparse.Namespace) -> int:
    from ..environment import resolve_device
    from ..study import StudyOverrides, load_study_file, run_study

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
        out=args.out, device=str(resolve_device(args.device)) if args.device is not None else None, init=args.init,
        seed=args.seed,
        weights_dir=str(existing_path(args.weights_dir, "--weights-dir")) if args.weights_dir else None,
        download=False if args.no_download else None, train_missing=args.train_missing, votes=args.votes,
        sizes=[int(s) for s in args.sizes] if args.sizes else None, max_memory_mib=args.max_memory_mib,
        force=bool(args.force), progress=not args.no_progress,
    )
    for study in studies:
        summary = run_study(study, overrides, command=" ".join([PROG, *sys.argv[1:]]))
        print(summary.report())
    return 0
