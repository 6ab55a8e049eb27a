"""Running a validated study: a run study (train the missing checkpoints, the runner, the paper comparison, the
figures), a complexity sweep or a video study; each writes ``study.json``."""
from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd
from tqdm import tqdm

from methods.checkpoint import holds_checkpoint
from methods.errors import literal

from ..atomic import write_json_atomic, write_text_atomic
from ..complexity import ComplexityConfig, run_complexity
from ..environment import git_commit, versions
from ..errors import ConfigError, StudyError
from ..run import RunConfig, execute_run
from ..tables import markdown_table
from ..train import TrainConfig, train
from ..video import VideoConfig, run_video
from .figures import FIGURES, FigureContext
from .model import Study, StudyEntry, StudyOverrides, StudySummary
from .schema import load_study_file


def _resolved_out(study: Study, overrides: StudyOverrides) -> Path:
    return overrides.out if overrides.out is not None else Path("results") / study.name


def _train_entry(study: Study, entry: StudyEntry, overrides: StudyOverrides) -> None:
    """Train ``entry``'s missing checkpoint into its ``weights`` folder with :func:`harness.train.train` (the study's
    ``training:`` settings, then the entry's ``train:``), resuming a partial training."""
    folder = Path(entry.weights)
    settings: dict[str, Any] = {"method": entry.method, **study.training, **(entry.train or {})}
    settings["options"] = {**entry.options, **(settings.get("options") or {})}
    for key in ("device", "init", "seed", "weights_dir", "download"):
        value = getattr(overrides, key)
        if value is not None:
            settings[key] = value
    settings.setdefault("progress", overrides.progress)
    for key in ("content_dir", "style_dir", "weights_dir"):
        if settings.get(key) is not None:
            settings[key] = Path(settings[key])
    config = TrainConfig(out=folder, resume=(folder / "training_state.pt").exists(),
                         **{"content_dir": None, "style_dir": None, **settings})
    print(f"training {entry.label!r} into {folder}" + (" (resuming)" if config.resume else ""), flush=True)
    try:
        train(config)
    except Exception as exc:
        raise StudyError(f"{study.source}: training {entry.label!r} into {folder} failed: {exc}; fix it and rerun "
                         "(the training resumes)") from exc


def _prepare_entries(study: Study, overrides: StudyOverrides) -> dict[str, str]:
    """The weights of each entry that names some, training the missing ones with ``train_missing``."""
    weights: dict[str, str] = {}
    missing = [e for e in study.entries if e.weights and not holds_checkpoint(e.weights)]
    if missing and overrides.train_missing:
        untrainable = [e.label for e in missing if e.train is None and not study.training]
        if untrainable:
            raise StudyError(f"{study.source}: {{train_missing}}: entries {', '.join(untrainable)} have no 'train:' "
                         f"settings (and the study no 'training:' section)", template=True)
        for entry in missing:
            _train_entry(study, entry, overrides)
        missing = [e for e in missing if not holds_checkpoint(e.weights)]
    random_init = (overrides.init or study.run.get("init")) == "random"
    if missing and not random_init:
        names = "; ".join(f"{e.label!r} → {e.weights}" for e in missing)
        hint = " run with {train_missing} to train them" if any(e.train is not None for e in missing) or \
            study.training else " put the checkpoints there"
        raise StudyError(f"{literal(study.source)}: missing checkpoint(s): {literal(names)};{hint}, or use "
                         "{init=\"random\"} for an untrained smoke run", template=True)
    for entry in missing:
        warnings.warn(f"{entry.label}: no checkpoint at {entry.weights}; init random: UNTRAINED weights")
    for entry in study.entries:
        if entry.weights and entry not in missing:
            weights[entry.label] = entry.weights
    return weights


def run_config_for(study: Study, overrides: StudyOverrides, out: Path | None = None) -> RunConfig:
    """The runner configuration of a run study (file values, then the command line's overrides)."""
    given = {"out": out or _resolved_out(study, overrides), "seed": overrides.seed, "device": overrides.device,
             "weights_dir": overrides.weights_dir, "init": overrides.init, "download": overrides.download,
             "force": overrides.force, "votes": str(overrides.votes) if overrides.votes else None,
             "progress": overrides.progress}
    settings = {**study.run, **{k: v for k, v in given.items() if v is not None}}
    entries = {e.label: (e.method, e.options) for e in study.entries}
    try:
        return RunConfig.from_settings(settings, entries)
    except ConfigError as exc:
        raise StudyError(f"{literal(study.source)}: run: {exc.template}", template=True) from None


def write_paper_comparison(study: Study, out: Path, ours: Callable[[str, str], str | None]) -> Path | None:
    """``paper.md``: the paper's reference table, and for every entry with a reference row its numbers beside ours
    (``ours(label, column)`` → formatted value or None)."""
    ref = study.reference
    if ref is None:
        return None
    rows = [[label, *("–" if v is None else f"{v:g}" for v in values)] for label, values in ref.rows.items()]
    text = [f"# {study.title or study.name}: the paper's numbers beside ours\n",
            f"Source: {study.paper or 'the paper'}." + (f" {ref.note}" if ref.note else "") + "\n",
            "## Reported in the paper\n", markdown_table(["row", *ref.columns], rows) + "\n"]
    paired = []
    for entry in study.entries:
        paper_label = entry.paper_label or entry.label
        if ref._row(paper_label) is None:
            continue
        for column in ref.columns:
            value = ref.value(paper_label, column)
            mine = ours(entry.label, column)
            if value is not None or mine is not None:
                paired.append([entry.label, paper_label, column, "–" if value is None else f"{value:g}", mine or "–"])
    if paired:
        text += ["\n## Paper vs this run\n", markdown_table(["ours", "paper row", "column", "paper", "this run"], paired) + "\n"]
    return write_text_atomic(out / "paper.md", "\n".join(text))


def _study_manifest(study: Study, overrides: StudyOverrides, out: Path, started: str, command: str,
                    extra: dict[str, Any]) -> None:
    payload = {
        "study": study.name, "kind": study.kind, "title": study.title, "paper": study.paper,
        "file": str(study.source), "file_resolved": str(Path(study.source).resolve()), "file_sha256": study.sha256, "command": command or " ".join(sys.argv),
        "overrides": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(overrides).items()},
        "started": started, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(), "git_commit": git_commit(), **extra,
    }
    write_json_atomic(out / "study.json", payload)


def _run_study_run(study: Study, overrides: StudyOverrides, summary: StudySummary) -> None:
    out = summary.out
    config = run_config_for(study, overrides, out)
    config.method_weights = _prepare_entries(study, overrides)
    report, config.report = config.report, False  # the study's report comes after its figures, which it embeds
    result = execute_run(config, command=summary.command)
    summary.lines.append(f"pairs: {result['computed']} computed, {result['skipped']} already done "
                         f"({result['pairs']} pairs × {len(result['methods'])} methods)")
    for name, reason in result["unavailable"].items():
        summary.lines.append(f"unavailable: {name}: {reason}")
    for name, reason in result.get("skipped_methods", {}).items():
        summary.lines.append(f"skipped: {name}: {reason}")
    tables = result.get("tables", {})
    summary.files += [Path(p) for p in tables.values()]
    if tables.get("md"):
        summary.lines.append(Path(tables["md"]).read_text().rstrip())
    summary.files += [p for p in [write_paper_comparison(study, out, table_lookup(read_table(out)))] if p]
    files, problems = write_study_figures(study, out, config=config)
    summary.files += files
    summary.lines += [f"figure {name}: not drawn ({reason})" for name, reason in problems.items()]
    if report and tables:
        from ..report import write_report

        summary.files.append(write_report(out))
        summary.lines.append(f"report: {summary.files[-1]}")


def write_study_figures(study: Study, results: Path, figure_root: Path | None = None, config: RunConfig | None = None,
                        overrides: StudyOverrides | None = None) -> tuple[list[Path], dict[str, str]]:
    """Draw the study's ``figures:`` from its results folder (into ``figure_root``, default ``results/figures``).
    Returns the files written and, per figure that could not be drawn (no values, no training log, ...), why."""
    config = config or run_config_for(study, overrides or StudyOverrides(), results)
    context = FigureContext(study=study, out=results, config=config, table=read_table(results), figure_root=figure_root)
    files, problems = [], {}
    for name, params in tqdm(study.figures.items(), total=len(study.figures), desc="figures", unit="figure",
                             disable=not config.progress or not study.figures):
        try:
            files += FIGURES[name](context, **params)
        except StudyError:
            raise
        except (OSError, ValueError) as exc:  # a figure that cannot be drawn is reported, not fatal
            problems[name] = " ".join(str(exc).split())
    return files, problems


def study_of_results(results: str | os.PathLike, studies_dir: str | os.PathLike | None = None) -> Study:
    """The study a results folder was made by (its ``study.json``): the file it names if it is still there, else
    ``studies/<name>.yaml``; a file changed since the run is used with a warning."""
    results = Path(results)
    try:
        manifest = json.loads((results / "study.json").read_text())
    except FileNotFoundError:
        raise StudyError(f"{results}: no study.json (not the results folder of a study)") from None
    candidates = [manifest.get("file_resolved"), manifest.get("file")]
    default_dir = Path(studies_dir) if studies_dir else Path(__file__).resolve().parents[2] / "studies"
    candidates.append(str(default_dir / f"{manifest['study']}.yaml"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            study = load_study_file(candidate)
            if study.sha256 != manifest.get("file_sha256"):
                warnings.warn(f"{candidate} changed since {results} was made (sha256 differs)")
            return study
    raise StudyError(f"{results}: the study file {manifest.get('file')} is gone (looked in {default_dir} too)")


def read_table(out: Path):
    path = out / "table.csv"
    return pd.read_csv(path) if path.exists() else None


def table_lookup(table) -> Callable[[str, str], str | None]:
    def lookup(label: str, column: str) -> str | None:
        if table is None or f"{column}_mean" not in table.columns:
            return None
        row = table[table["method"] == label]
        if row.empty or row[f"{column}_mean"].isna().all():
            return None
        mean = float(row[f"{column}_mean"].iloc[0])
        ci = row.get(f"{column}_ci95")
        ci = float(ci.iloc[0]) if ci is not None and not ci.isna().all() else None
        untrained = "untrained" in row.columns and str(row["untrained"].iloc[0]).lower() == "true"
        return f"{mean:.4g}" + (f" ± {ci:.3g}" if ci else "") + (" † untrained" if untrained else "")
    return lookup


def _run_study_complexity(study: Study, overrides: StudyOverrides, summary: StudySummary) -> None:
    section = dict(study.complexity)
    if overrides.sizes:
        section["sizes"] = list(overrides.sizes)
    if overrides.max_memory_mib is not None:
        section["max_memory_mib"] = overrides.max_memory_mib
    given = {"out": summary.out, "device": overrides.device, "seed": overrides.seed, "progress": overrides.progress,
             "force": overrides.force}
    names = {f.name for f in dataclasses.fields(ComplexityConfig)}
    config = ComplexityConfig(**section, **{k: v for k, v in given.items() if k in names and v is not None})
    frame = run_complexity(config)
    summary.lines.append(f"cells: {len(frame)} ({', '.join(f'{k} {v}' for k, v in frame['status'].value_counts().items())})")
    summary.files += sorted(p for p in summary.out.iterdir() if p.is_file() and not p.name.startswith("."))
    if study.reference is not None:
        write_paper_comparison(study, summary.out, lambda label, column: None)


def _run_study_video(study: Study, overrides: StudyOverrides, summary: StudySummary) -> None:
    names = {f.name for f in dataclasses.fields(VideoConfig)}
    given = {"out": summary.out, "device": overrides.device, "init": overrides.init, "seed": overrides.seed,
             "weights_dir": overrides.weights_dir, "download": overrides.download, "progress": overrides.progress,
             "force": overrides.force}
    config = VideoConfig(**study.video, **{k: v for k, v in given.items() if k in names and v is not None})
    result = run_video(config)
    table = summary.out / "temporal.md"
    if table.exists():
        summary.lines.append(table.read_text().rstrip())
    summary.files += sorted(p for p in summary.out.iterdir() if p.is_file() and not p.name.startswith("."))
    if study.reference is not None:
        write_paper_comparison(study, summary.out, lambda label, column: None)
    if isinstance(result, dict) and result.get("seconds_per_frame"):
        summary.lines.append("seconds per frame: " + ", ".join(
            f"{k} {v:.3g}" for k, v in result["seconds_per_frame"].items() if isinstance(v, (int, float))))


def run_study(study: Study, overrides: StudyOverrides | None = None, command: str = "") -> StudySummary:
    """Run a validated study into ``overrides.out`` (default ``results/<study name>``); ``command``: what started
    it, for the manifests (default: this process's arguments)."""
    overrides = overrides or StudyOverrides()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    out = _resolved_out(study, overrides)
    created = [p for p in (out, *out.parents) if not p.exists()]  # the folders this call makes, deepest first
    out.mkdir(parents=True, exist_ok=True)
    summary = StudySummary(study=study, out=out, command=command or " ".join(sys.argv))
    try:
        {"run": _run_study_run, "complexity": _run_study_complexity, "video": _run_study_video}[study.kind](
            study, overrides, summary)
    except BaseException:
        for folder in created:  # a study that failed before writing anything leaves no empty folders behind
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    summary.lines.append(f"time: {time.perf_counter() - start:.1f} s")
    _study_manifest(study, overrides, out, started, summary.command, {"files": sorted({str(p) for p in summary.files})})
    return summary


# ----------------------------------------------------------------------------------------------------------------------
# Figures of a run study (parameters come from the study file's `figures:` mapping)
# ----------------------------------------------------------------------------------------------------------------------
