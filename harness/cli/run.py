"""``run`` (the benchmark), ``table``, ``merge`` and ``tally``: run directories and user-study votes."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..run import RunConfig

from ..config import check_keys, check_type, listify, load_yaml_mapping
from ..errors import ConfigError
from ..run_settings import KNOWN_METRICS, RUN_SETTINGS, parse_shard
from .common import (PROG, CLIError, add_method_arguments, add_resume_arguments, add_parser, comma_list,
    existing_path, non_negative_float, non_negative_int, parse_options, positive_int)


def _shard(text: str) -> tuple[int, int]:
    try:
        return parse_shard(text)
    except ConfigError:
        raise argparse.ArgumentTypeError(f"expected i/n with 0 <= i < n (e.g. 0/4), got {text!r}") from None


def add_run_parser(subparsers) -> argparse.ArgumentParser:
    parser = add_parser(
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
    parser.add_argument("--methods", type=comma_list, default=None, help="comma-separated method names")
    parser.add_argument("--content", nargs="+", metavar="DIR|FILE", default=None, help="content folder(s) or files")
    parser.add_argument("--style", nargs="+", metavar="DIR|FILE", default=None, help="style folder(s) or files")
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--size", type=positive_int, default=None,
                      help="resize both images to S×S (official protocol; default 512)")
    size.add_argument("--keep-size", action="store_true", default=None, help="use the images at their own sizes")
    parser.add_argument("--keep-aspect", action="store_true", default=None, help="resize the shorter side to S instead")
    parser.add_argument("--pairs", type=positive_int, default=None, help="a seeded sample of N pairs (default: all)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="pairs per forward (default 1)")
    parser.add_argument("--metrics", type=comma_list, default=None,
                        help=f"comma-separated subset of {', '.join(KNOWN_METRICS)} (default: all)")
    parser.add_argument("--lpips-net", choices=("alex", "vgg"), default=None, help="LPIPS backbone (default alex)")
    parser.add_argument("--metric-option", action="append", default=[], metavar="METRIC.KEY=VALUE",
                        help="a metric's definitional option, repeatable: artfid.variant=styleid, fid.resize=antialias, "
                             "fid.style_set=unique, ssim.mode=rgb, gram_loss.variant=rt-games, fid.bootstrap=1000")
    parser.add_argument("--timing-repeats", type=positive_int, default=None, help="timed runs per method (default 10)")
    parser.add_argument("--feature-cache-mib", type=non_negative_float, default=None, metavar="MIB",
                        help="memory for encodings reused across pairs: each method encodes each content and style "
                             "once (default 1024; 0: per pair; outputs identical either way)")
    parser.add_argument("--metric-cache-mib", type=non_negative_float, default=None, metavar="MIB",
                        help="memory for the metrics' side of each input image (content features, style statistics, "
                             "LPIPS content features; ~21 MB per content at 512²), least recently used dropped "
                             "first (default 1024; 0: per pair; values identical either way)")
    parser.add_argument("--channels-last", action="store_true", default=None,
                        help="run the methods' convolutions in NHWC: 7-9 %% faster on a CPU here, values equal up to "
                             "float rounding (~1e-6 relative); recorded in the run's identity")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: results/run-<time>)")
    parser.add_argument("--config", type=Path, default=None, metavar="FILE.yaml",
                        help="YAML file with these settings (command-line values win); the paper's tables are "
                             "studies: see `study`")
    parser.add_argument("--shard", type=_shard, default=None,
                        help="i/n: this process takes every n-th pair from i (default: torchrun's RANK/WORLD_SIZE)")
    parser.add_argument("--votes", type=Path, default=None, help="user-study votes CSV added to the tables")
    parser.add_argument("--skip-unreadable", action="store_true", default=None,
                        help="leave out input images that cannot be decoded (listed, and recorded in the manifest) "
                             "instead of stopping before any work")
    parser.add_argument("--no-report", action="store_true", default=None,
                        help="do not write report.html (one self-contained page: table, figures, timing, manifest)")
    add_resume_arguments(parser, "recompute pairs already in metrics.csv")
    add_method_arguments(parser, per_method_init=True)
    parser.set_defaults(handler=cmd_run)
    return parser


RUN_CONFIG_KEYS = set(RUN_SETTINGS) - {"progress"}
"""Keys a ``run --config`` YAML file may set (dashes or underscores): the runner's settings."""


def load_run_config(path: Path) -> dict[str, Any]:
    """A run config YAML (``run --config``): the run's settings under their option names; unknown keys are errors."""
    data, _ = load_yaml_mapping(path, what="run config", error=CLIError)
    settings = check_keys(str(path), data, RUN_CONFIG_KEYS, error=CLIError)
    for key, value in settings.items():
        check_type(str(path), key, value, RUN_SETTINGS[key], error=CLIError)
    return settings


def _given(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings given on the command line (None: not given, so the config file's value or the default
    stays)."""
    shard = args.shard
    if shard is None and "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        shard = (int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]))
    return {
        "methods": args.methods, "out": args.out, "content": args.content, "style": args.style, "size": args.size,
        "keep_size": args.keep_size, "keep_aspect": args.keep_aspect, "pairs": args.pairs, "seed": args.seed,
        "device": args.device, "batch_size": args.batch_size,
        "weights_dir": existing_path(args.weights_dir, "--weights-dir"), "init": args.init,
        "download": False if args.no_download else None, "metrics": args.metrics, "lpips_net": args.lpips_net,
        "timing_repeats": args.timing_repeats, "force": args.force, "shard": shard, "votes": args.votes,
        "skip_unreadable": args.skip_unreadable, "progress": False if args.no_progress else None,
        "report": False if args.no_report else None, "feature_cache_mib": args.feature_cache_mib,
        "metric_cache_mib": args.metric_cache_mib,
        "channels_last": args.channels_last,
    }


def run_config_from_args(args: argparse.Namespace) -> RunConfig:
    """The run's config: the ``--config`` file's settings, then every value given on the command line (an explicit
    ``--seed 0`` or ``--device cpu`` wins over the file too), then the defaults of :class:`~harness.run.RunConfig`."""
    if args.weights is not None:
        raise CLIError("--weights names one method's files; for a run put every method's files in one folder and "
                       "pass --weights-dir DIR (harness checkpoints go in DIR/<method>/harness_checkpoint.pt)")
    settings = load_run_config(args.config) if args.config else {}
    options = {**(settings.get("options") or {}), **parse_options(args.option)}
    settings.update({k: v for k, v in _given(args).items() if v is not None})
    settings["options"] = options or None
    metric_options = {name: dict(values) for name, values in (settings.get("metric_options") or {}).items()}
    for name_key, value in parse_options(args.metric_option).items():
        name, dot, key = name_key.partition(".")
        if not dot or not key:
            raise CLIError(f"--metric-option expects METRIC.KEY=VALUE (e.g. artfid.variant=styleid), got {name_key!r}")
        metric_options.setdefault(name, {})[key] = value
    settings["metric_options"] = metric_options or None
    if not listify(settings.get("methods")):
        raise CLIError("no methods: pass --methods styA2K,adain,all2all (or `methods:` in --config)")
    from ..environment import resolve_device  # torch: imported once the command line is known to be well-formed
    from ..run import RunConfig

    config = RunConfig.from_settings(settings)
    config.device = str(resolve_device(config.device))
    return config


def cmd_run(args: argparse.Namespace) -> int:
    config = run_config_from_args(args)
    from ..run import execute_run

    if config.init == "random":
        print("WARNING: --init random: every method runs with UNTRAINED weights; rows and tables are flagged and "
              "the numbers are meaningless (smoke and timing runs only)", file=sys.stderr)
    untrained = [label for label, init in config.method_init.items() if init == "random"]
    if untrained:
        print(f"WARNING: --init: {', '.join(untrained)} run(s) with UNTRAINED weights; their rows are flagged † and "
              "their numbers are meaningless", file=sys.stderr)
    summary = execute_run(config, command=" ".join([PROG, *sys.argv[1:]]))
    for label, reason in summary.get("skipped_methods_flags", {}).items():
        print(f"skipped: {label}: {reason}", file=sys.stderr)
    seconds = summary["seconds"]
    print(f"run: {summary['computed']} pairs computed, {summary['skipped']} already done, in {config.out}")
    print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    for name, reason in summary["unavailable"].items():
        print(f"unavailable: {name}: {reason}", file=sys.stderr)
    if summary["unreadable"]:
        print(f"left out: {len(summary['unreadable'])} unreadable input image(s), listed in the manifest",
              file=sys.stderr)
    if "tables" in summary:
        print(Path(summary["tables"]["md"]).read_text())
        if summary.get("report"):
            print(f"report: {summary['report']}")
    else:
        print(f"shard done; combine the shards with `{PROG} merge {config.out}`")
    return 0


def add_report_parser(subparsers) -> argparse.ArgumentParser:
    parser = add_parser(
        subparsers, "report", help="one self-contained HTML page of a run directory (table, figures, manifest)",
        description="Write RUN_DIR/report.html: the table (↑/↓, best bold, second underlined, † untrained), the "
                    "comparison grid and metric bars (a study's own figures where it drew them), the timing, the "
                    "paper's numbers (a study's paper.md) and the manifest (versions, commit, device, weights with "
                    "their sha256, provenance flags). Images are embedded: the file is all one needs to send.",
        examples=[f"{PROG} report results/table1", f"{PROG} report results/run-1 --out run-1.html"],
    )
    parser.add_argument("run", type=Path, metavar="RUN_DIR")
    parser.add_argument("--out", type=Path, default=None, help="the HTML file (default RUN_DIR/report.html)")
    parser.add_argument("--max-rows", type=positive_int, default=6, help="pairs shown in the comparison grid")
    parser.set_defaults(handler=cmd_report)
    return parser


def cmd_report(args: argparse.Namespace) -> int:
    from ..report import write_report

    existing_path(args.run, "RUN_DIR")
    print(f"report: {write_report(args.run, args.out, max_rows=args.max_rows)}")
    return 0


def add_table_parser(subparsers) -> argparse.ArgumentParser:
    parser = add_parser(
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
    from ..rundir import write_run_tables

    for run_dir in args.runs:
        existing_path(run_dir, "RUN_DIR")
    paths = write_run_tables(args.runs, args.out, votes=str(args.votes) if args.votes else None)
    print(paths["md"].read_text())
    print("wrote " + ", ".join(str(p) for p in paths.values()))
    return 0


def add_merge_parser(subparsers) -> argparse.ArgumentParser:
    parser = add_parser(
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
    from ..rundir import merge_shards, write_run_tables

    counts = merge_shards(existing_path(args.run, "RUN_DIR"))
    print("merged: " + ", ".join(f"{k}.csv {v} rows" for k, v in counts.items()))
    paths = write_run_tables([args.run], votes=str(args.votes) if args.votes else None)
    print(paths["md"].read_text())
    return 0


def add_tally_parser(subparsers) -> argparse.ArgumentParser:
    parser = add_parser(
        subparsers, "tally", help="user-study votes → shares with 95%% intervals, tests, position bias, a figure",
        description="Read a votes CSV (participant,group,question,method; question in content/style/overall) and "
                    "print, per question, each method's share of the votes with its 95% Wilson interval and a "
                    "participant-level bootstrap interval (votes of one participant are not independent), a "
                    "chi-square test against the uniform split and pairwise exact binomial tests (Holm-adjusted). "
                    "With --positions (a survey's votes_detail.csv) also the share of votes by on-screen position. "
                    "Invalid rows (unknown method, wrong question, duplicate vote) are listed with line numbers.",
        examples=[f"{PROG} tally votes.csv", f"{PROG} tally votes.csv --methods styA2K,adain,all2all --out results/study",
                  f"{PROG} tally votes.csv --positions votes_detail.csv --out results/study"],
    )
    parser.add_argument("votes", type=Path, metavar="VOTES.csv")
    parser.add_argument("--methods", type=comma_list, default=None, help="the compared methods (others are invalid)")
    parser.add_argument("--out", type=Path, default=None,
                        help="folder for tally.csv, chi_square.csv, pairwise.csv (positions.csv) and preference.png/pdf")
    parser.add_argument("--bootstrap", type=non_negative_int, default=2000,
                        help="participant-level bootstrap resamples (default 2000; 0: none)")
    parser.add_argument("--positions", type=Path, default=None, metavar="DETAIL.csv",
                        help="votes with a position column (`survey export` writes votes_detail.csv): position bias")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    parser.set_defaults(handler=cmd_tally)
    return parser


def cmd_tally(args: argparse.Namespace) -> int:
    import pandas as pd

    from metrics.preference import chi_square_uniform, pairwise_binomial, participant_bootstrap, position_bias, tally

    from ..io import read_votes

    votes, problems = read_votes(args.votes, methods=args.methods)
    for problem in problems:
        print(f"warning: {args.votes}: {problem}", file=sys.stderr)
    shares = tally(votes, methods=args.methods)
    if args.bootstrap and len(votes):
        boot = participant_bootstrap(votes, methods=args.methods, resamples=args.bootstrap, seed=args.seed)
        shares = shares.merge(boot[["question", "method", "boot_low", "boot_high", "participants"]],
                              on=["question", "method"], how="left")
    tables = {"tally": shares, "chi_square": chi_square_uniform(votes, methods=args.methods),
              "pairwise": pairwise_binomial(votes, methods=args.methods)}
    if args.positions is not None:
        existing_path(args.positions, "--positions")
        try:
            tables["positions"] = position_bias(pd.read_csv(args.positions))
        except (ValueError, pd.errors.ParserError) as exc:
            raise CLIError(f"--positions {args.positions}: {' '.join(str(exc).split())}") from None
    for name, frame in tables.items():
        print(f"\n{name}:\n{frame.to_string(index=False, float_format=lambda v: f'{v:.4g}')}")
    if args.out:
        from ..figures import preference_figure, save_figure

        args.out.mkdir(parents=True, exist_ok=True)
        for name, frame in tables.items():
            frame.to_csv(args.out / f"{name}.csv", index=False)
        written = [f"{name}.csv" for name in tables]
        if len(votes):
            written += [p.name for p in save_figure(preference_figure(shares), args.out / "preference")]
        print(f"\nwrote {args.out}/: {', '.join(written)}")
    print(f"\n{len(votes)} valid votes, {len(problems)} invalid row(s)")
    return 0
