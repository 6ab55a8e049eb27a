"""Studies: the paper's tables and figures as YAML files that one command runs, validates and resumes.

``python -m harness study studies/table1.yaml`` → ``results/table1/`` (or ``--out``). A study file is a mapping:

.. code-block:: yaml

    study: table1                 # name: [A-Za-z0-9_.-]+, the default results folder results/<name>
    kind: run                     # run | complexity | video
    title: "..."                  # one line, printed and written to the study manifest
    paper: "StyA2K (ICCV 2023) Table 1"
    description: >                # free text
      ...
    run:                          # kind run: the runner's settings (harness.run.RunConfig), see RUN_KEYS
      content: [...]              # folders or files; strings may use ${VAR} and ${VAR:-default}
      size: 512
      metrics: [content_loss, style_loss, lpips, timing]
    methods:                      # kind run: the table's rows, in order
      - styA2K                    # a registered method name, or a mapping:
      - label: "λ2=0.5"           #   the row label (default: the method name)
        method: styA2K            #   the registered method
        options: {heads: 8}       #   method options (`methods --verbose` lists them)
        weights: checkpoints/x    #   a harness checkpoint or a folder of official files (loaded even under --init random)
        train: {lambda_a2k: 0.5}  #   with --train-missing: train the missing checkpoint with `training:` + these
        paper_label: StyA2K       #   the row of `reference` it corresponds to (default: the label)
    training: {...}               # TrainConfig fields shared by the entries' `train:` (content_dir, style_dir, steps, ...)
    figures: [comparison, bars]   # names, or a mapping name → parameters (see FIGURES)
    reference:                    # the paper's numbers, written beside ours (paper.md) and drawn on the bar charts
      columns: [content_loss, style_loss, lpips]
      rows: {StyA2K: [0.55, 1.04, 0.52]}
      note: "..."
    complexity: {...}             # kind complexity: harness.complexity.ComplexityConfig fields
    video: {...}                  # kind video: harness.video.VideoConfig fields

Every key is checked when the file is loaded, before any work: an unknown key, a wrong type, an unknown method,
option or figure is one :class:`StudyError` line naming the file and the key. Relative paths are relative to the
working folder (run studies from the repository root); ``${HARNESS_ASSETS:-../shared/assets}`` is how the bundled
studies find the shared test images. Settings given on the command line (``--device``, ``--init``, ``--seed``,
``--weights-dir``, ``--no-download``, ``--sizes``, ``--max-memory-mib``) override the file.

A study resumes: the runner skips pairs already in ``metrics.csv``, the complexity sweep skips measured cells, the
video study reuses written frames, training resumes from ``training_state.pt``; ``--force`` recomputes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from .environment import git_commit, versions
from .atomic import write_json_atomic, write_text_atomic
from .run import RunConfig, execute_run

__all__ = [
    "FIGURES",
    "KINDS",
    "Reference",
    "Study",
    "StudyEntry",
    "StudyError",
    "StudyOverrides",
    "StudySummary",
    "expand_variables",
    "load_study_file",
    "read_table",
    "run_config_for",
    "run_study",
    "study_of_results",
    "table_lookup",
    "write_paper_comparison",
    "write_study_figures",
]

KINDS = ("run", "complexity", "video")
SECTIONS = {
    "run": {"run", "methods", "training", "figures", "reference"},
    "complexity": {"complexity", "reference"},
    "video": {"video", "reference"},
}
COMMON_KEYS = {"study", "kind", "title", "paper", "description"}
NAME = re.compile(r"[A-Za-z0-9_.-]+")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^${}]*))?\}")  # innermost first: defaults may nest

_LIST = (list, str)
RUN_KEYS: dict[str, tuple[type, ...]] = {
    "content": _LIST, "style": _LIST, "size": (int,), "keep_size": (bool,), "keep_aspect": (bool,),
    "pairs": (int,), "seed": (int,), "batch_size": (int,), "metrics": _LIST, "lpips_net": (str,),
    "timing_repeats": (int,), "timing_warmup": (int,), "votes": (str,), "options": (dict,), "init": (str,),
    "device": (str,), "weights_dir": (str,),
}
"""Keys of a run study's ``run:`` section and their YAML types (null is allowed for every key)."""
ENTRY_KEYS = {"label", "method", "options", "weights", "train", "paper_label"}
TRAIN_EXCLUDED = {"out", "resume", "command_line", "progress"}
"""TrainConfig fields a study cannot set (the entry's ``weights`` folder is the output; resuming is automatic)."""
OVERRIDDEN = {"out", "device", "init", "seed", "weights_dir", "download", "progress", "force"}
"""Fields of the complexity / video configs that the study command supplies."""


class StudyError(ValueError):
    """A bad study file or a study that cannot run (missing checkpoint, failed training): one line naming the file."""


# ----------------------------------------------------------------------------------------------------------------------
# The schema
# ----------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Reference:
    """Numbers reported in the paper: ``rows[label][i]`` is the value of ``columns[i]`` (None: not reported)."""

    columns: list[str]
    rows: dict[str, list[float | None]]
    note: str = ""

    def value(self, label: str, column: str) -> float | None:
        row = self._row(label)
        return None if row is None or column not in self.columns else row[self.columns.index(column)]

    def _row(self, label: str) -> list[float | None] | None:
        for name, row in self.rows.items():
            if name.lower() == label.lower():
                return row
        return None

    def by_label(self, labels: Mapping[str, str]) -> dict[str, dict[str, float]]:
        """``{our label: {column: paper value}}`` for the entries that have a reference row (``labels``: our label →
        its paper label)."""
        out = {}
        for ours, paper in labels.items():
            row = self._row(paper)
            if row is not None:
                out[ours] = {c: v for c, v in zip(self.columns, row) if v is not None}
        return out


@dataclass(frozen=True)
class StudyEntry:
    """One row of a run study's table."""

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    train: dict[str, Any] | None = None
    paper_label: str | None = None


@dataclass
class Study:
    """A validated study file (variables expanded)."""

    name: str
    kind: str
    source: Path
    sha256: str
    title: str = ""
    paper: str = ""
    description: str = ""
    run: dict[str, Any] = field(default_factory=dict)
    entries: list[StudyEntry] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: Reference | None = None
    complexity: dict[str, Any] = field(default_factory=dict)
    video: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.entries]


@dataclass
class StudyOverrides:
    """What the command line sets for every study it runs (None: keep the file's value or the default)."""

    out: Path | None = None
    device: str | None = None
    init: str | None = None
    seed: int | None = None
    weights_dir: str | None = None
    download: bool | None = None
    train_missing: bool = False
    sizes: list[int] | None = None
    max_memory_mib: int | None = None
    votes: Path | None = None
    force: bool = False
    progress: bool = True


@dataclass
class StudySummary:
    study: Study
    out: Path
    lines: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def report(self) -> str:
        head = f"study {self.study.name} ({self.study.kind}): {self.study.title}".rstrip(": ")
        return "\n".join([head, *self.lines, f"results: {self.out}"])


def expand_variables(value: Any, where: str) -> Any:
    """``${VAR}`` and ``${VAR:-default}`` in every string of ``value`` (recursively); an unset variable without a
    default is an error naming it."""
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is None:
                raise StudyError(f"{where}: ${{{name}}} is not set (set it, or write ${{{name}:-default}})")
            return default
        for _ in range(16):  # nested defaults expand innermost first; a bound against self-referencing values
            expanded = _VARIABLE.sub(substitute, value)
            if expanded == value:
                break
            value = expanded
        return value
    if isinstance(value, list):
        return [expand_variables(v, where) for v in value]
    if isinstance(value, dict):
        return {k: expand_variables(v, where) for k, v in value.items()}
    return value


def _type_name(types: tuple[type, ...]) -> str:
    return " or ".join({int: "an integer", str: "a string", bool: "true/false", dict: "a mapping",
                        list: "a list", float: "a number"}[t] for t in types)


def _check_type(where: str, key: str, value: Any, types: tuple[type, ...]) -> None:
    if value is None:
        return
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types) or (float in types and isinstance(value, int))
    if not ok:
        raise StudyError(f"{where}: key {key!r} must be {_type_name(types)}, got {value!r}")


def _check_keys(where: str, data: Any, known: set[str], section: str = "") -> dict[str, Any]:
    label = f"{section}: " if section else ""
    if not isinstance(data, dict):
        raise StudyError(f"{where}: {label}expected a mapping, got {type(data).__name__}")
    normalised = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise StudyError(f"{where}: unknown key {key!r}{' in ' + section if section else ''}; known keys: "
                             f"{', '.join(sorted(known))}")
        normalised[name] = value
    return normalised


def _config_fields(module: str, cls: str) -> dict[str, Any]:
    """Fields of ``harness.<module>.<cls>`` a study may set (imported lazily: only studies of that kind need it)."""
    import importlib

    config = getattr(importlib.import_module(f"harness.{module}"), cls)
    return {f.name: f for f in dataclasses.fields(config) if f.name not in OVERRIDDEN}


def _train_keys() -> set[str]:
    from .train import TrainConfig

    return {f.name for f in dataclasses.fields(TrainConfig)} - TRAIN_EXCLUDED


def _parse_entries(where: str, raw: Any) -> list[StudyEntry]:
    from methods import get_method_info
    from methods.registry import UnknownMethodError

    if not isinstance(raw, list) or not raw:
        raise StudyError(f"{where}: 'methods' must be a non-empty list of method names or entries")
    entries = []
    for i, item in enumerate(raw):
        at = f"{where}: methods[{i}]"
        if isinstance(item, str):
            item = {"method": item}
        data = _check_keys(where, item, ENTRY_KEYS, f"methods[{i}]")
        if not isinstance(data.get("method"), str):
            raise StudyError(f"{at}: needs 'method: NAME' (a registered method)")
        try:
            info = get_method_info(data["method"])
        except UnknownMethodError as exc:
            raise StudyError(f"{at}: {exc}") from None
        options = data.get("options") or {}
        _check_type(at, "options", options, (dict,))
        unknown = sorted(set(options) - set(info.options))
        if unknown:
            raise StudyError(f"{at}: {info.name} has no option(s) {', '.join(unknown)}; its options: "
                             f"{', '.join(sorted(info.options))}")
        for key in ("label", "weights", "paper_label"):
            _check_type(at, key, data.get(key), (str,))
        train = data.get("train")
        if train is True:
            train = {}
        if train is not None:
            train = _check_keys(where, train, _train_keys(), f"methods[{i}].train")
        entries.append(StudyEntry(label=data.get("label") or data["method"], method=info.name,
                                  options=dict(options), weights=data.get("weights"), train=train,
                                  paper_label=data.get("paper_label")))
    labels = [e.label for e in entries]
    dupes = sorted({x for x in labels if labels.count(x) > 1})
    if dupes:
        raise StudyError(f"{where}: methods: label(s) {', '.join(dupes)} used twice; give each entry its own 'label'")
    return entries


def _parse_reference(where: str, raw: Any) -> Reference:
    data = _check_keys(where, raw, {"columns", "rows", "note"}, "reference")
    columns, rows = data.get("columns"), data.get("rows")
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise StudyError(f"{where}: reference: 'columns' must be a non-empty list of column names")
    if not isinstance(rows, dict) or not rows:
        raise StudyError(f"{where}: reference: 'rows' must map a row label to a list of {len(columns)} values")
    parsed = {}
    for label, values in rows.items():
        if not isinstance(values, list) or len(values) != len(columns):
            raise StudyError(f"{where}: reference row {label!r} must list {len(columns)} values "
                             f"({', '.join(columns)}), got {values!r}")
        for v in values:
            _check_type(f"{where}: reference row {label!r}", "value", v, (float,))
        parsed[str(label)] = [None if v is None else float(v) for v in values]
    _check_type(where, "reference.note", data.get("note"), (str,))
    return Reference(columns=list(columns), rows=parsed, note=data.get("note") or "")


def _parse_figures(where: str, raw: Any) -> dict[str, dict[str, Any]]:
    if raw is None:
        return {}
    if isinstance(raw, list):
        raw = {str(name): {} for name in raw}
    figures = _check_keys(where, raw, set(FIGURES), "figures")
    out = {}
    for name, params in figures.items():
        params = params or {}
        _check_type(where, f"figures.{name}", params, (dict,))
        accepted = [p for p in inspect.signature(FIGURES[name]).parameters if p not in ("context",)]
        unknown = sorted(set(params) - set(accepted))
        if unknown:
            raise StudyError(f"{where}: figure {name!r} has no parameter(s) {', '.join(unknown)}; parameters: "
                             f"{', '.join(accepted) or 'none'}")
        out[name] = dict(params)
    return out


def load_study_file(path: str | os.PathLike) -> Study:
    """Read and validate a study file (see the module docstring); raises :class:`StudyError` with one line."""
    path = Path(path)
    where = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StudyError(f"{where}: no such study file (the bundled ones are in studies/)") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise StudyError(f"{where}: cannot read the study file ({exc})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise StudyError(f"{where}: not valid YAML ({' '.join(str(exc).split())})") from None
    if not isinstance(data, dict):
        raise StudyError(f"{where}: a study file is a mapping (study:, kind:, ...), got {type(data).__name__}")
    kind = data.get("kind")
    if kind not in KINDS:
        raise StudyError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {kind!r}")
    data = _check_keys(where, data, COMMON_KEYS | SECTIONS[kind])
    name = data.get("study")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise StudyError(f"{where}: 'study' must be a name of letters, digits, '_', '.', '-' (the results folder), "
                         f"got {name!r}")
    for key in ("title", "paper", "description"):
        _check_type(where, key, data.get(key), (str,))
    data = expand_variables(data, where)
    study = Study(name=name, kind=kind, source=path, sha256=hashlib.sha256(text.encode()).hexdigest(),
                  title=(data.get("title") or "").strip(), paper=(data.get("paper") or "").strip(),
                  description=" ".join((data.get("description") or "").split()))
    if data.get("reference") is not None:
        study.reference = _parse_reference(where, data["reference"])
    if kind == "run":
        run = _check_keys(where, data.get("run") or {}, set(RUN_KEYS), "run")
        for key, value in run.items():
            _check_type(where, f"run.{key}", value, RUN_KEYS[key])
        if isinstance(run.get("metrics"), list) or isinstance(run.get("metrics"), str):
            from .run import KNOWN_METRICS

            metrics = run["metrics"] if isinstance(run["metrics"], list) else run["metrics"].split(",")
            unknown = [m for m in metrics if str(m).strip() not in KNOWN_METRICS]
            if unknown:
                raise StudyError(f"{where}: run.metrics: unknown metric(s) {', '.join(map(str, unknown))}; known: "
                                 f"{', '.join(KNOWN_METRICS)}")
        if run.get("init") not in (None, "pretrained", "random"):
            raise StudyError(f"{where}: run.init must be pretrained or random, got {run['init']!r}")
        if run.get("lpips_net") not in (None, "alex", "vgg"):
            raise StudyError(f"{where}: run.lpips_net must be alex or vgg, got {run['lpips_net']!r}")
        study.run = run
        if "methods" not in data:
            raise StudyError(f"{where}: a run study needs 'methods' (the table's rows)")
        study.entries = _parse_entries(where, data["methods"])
        if data.get("training") is not None:
            study.training = _check_keys(where, data["training"], _train_keys(), "training")
        study.figures = _parse_figures(where, data.get("figures"))
    else:
        section = data.get(kind)
        if section is None:
            raise StudyError(f"{where}: a {kind} study needs a '{kind}:' section")
        fields = _config_fields(kind, {"complexity": "ComplexityConfig", "video": "VideoConfig"}[kind])
        section = _check_keys(where, section, set(fields), kind)
        required = [n for n, f in fields.items() if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING and n not in section]
        if required:
            raise StudyError(f"{where}: {kind}: missing key(s) {', '.join(required)}")
        setattr(study, kind, section)
    return study


# ----------------------------------------------------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------------------------------------------------
def _resolved_out(study: Study, overrides: StudyOverrides) -> Path:
    return overrides.out if overrides.out is not None else Path("results") / study.name


def _checkpoint_found(weights: str) -> bool:
    from methods.registry import CHECKPOINT_NAME

    path = Path(weights)
    return path.is_file() or (path.is_dir() and (any(path.glob("*.pth")) or (path / CHECKPOINT_NAME).is_file()))


def _train_entry(study: Study, entry: StudyEntry, overrides: StudyOverrides) -> None:
    """Train ``entry``'s missing checkpoint through ``python -m harness train`` (resuming a partial training)."""
    folder = Path(entry.weights)
    folder.mkdir(parents=True, exist_ok=True)
    settings = {"method": entry.method, **study.training, **(entry.train or {})}
    options = {**entry.options, **(settings.pop("options", None) or {})}
    if options:
        settings["option"] = {k: ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v
                              for k, v in options.items()}
    for key in ("device", "init", "seed", "weights_dir"):
        value = getattr(overrides, key)
        if value is not None:
            settings[key] = value
    if overrides.download is False:
        settings["no_download"] = True
    settings.setdefault("progress", overrides.progress)
    config_path = folder / "study_train.yaml"
    tmp = config_path.with_name(f".{config_path.name}.tmp-{os.getpid()}")
    tmp.write_text(yaml.safe_dump({k.replace("_", "-"): (str(v) if isinstance(v, Path) else v)
                                   for k, v in settings.items()}, sort_keys=False))
    os.replace(tmp, config_path)
    command = [sys.executable, "-m", "harness", "train", "--config", str(config_path), "--out", str(folder)]
    if (folder / "training_state.pt").exists():
        command.append("--resume")
    print(f"training {entry.label!r}: {' '.join(command[1:])}", flush=True)
    result = subprocess.run(command, env={**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)})
    if result.returncode != 0:
        raise StudyError(f"{study.source}: training {entry.label!r} into {folder} failed (exit {result.returncode}); "
                         f"see the messages above, fix and rerun (it resumes)")


def _prepare_entries(study: Study, overrides: StudyOverrides) -> dict[str, str]:
    """The weights of each entry that names some, training the missing ones with ``--train-missing``."""
    weights: dict[str, str] = {}
    missing = [e for e in study.entries if e.weights and not _checkpoint_found(e.weights)]
    if missing and overrides.train_missing:
        untrainable = [e.label for e in missing if e.train is None and not study.training]
        if untrainable:
            raise StudyError(f"{study.source}: --train-missing: entries {', '.join(untrainable)} have no 'train:' "
                             f"settings (and the study no 'training:' section)")
        for entry in missing:
            _train_entry(study, entry, overrides)
        missing = [e for e in missing if not _checkpoint_found(e.weights)]
    random_init = (overrides.init or study.run.get("init")) == "random"
    if missing and not random_init:
        names = "; ".join(f"{e.label!r} → {e.weights}" for e in missing)
        hint = " run with --train-missing to train them" if any(e.train is not None for e in missing) or \
            study.training else " put the checkpoints there"
        raise StudyError(f"{study.source}: missing checkpoint(s): {names};{hint}, or use --init random for an "
                         f"untrained smoke run")
    for entry in missing:
        warnings.warn(f"{entry.label}: no checkpoint at {entry.weights}; --init random: UNTRAINED weights")
    for entry in study.entries:
        if entry.weights and entry not in missing:
            weights[entry.label] = entry.weights
    return weights


def run_config_for(study: Study, overrides: StudyOverrides, out: Path | None = None) -> RunConfig:
    """The runner configuration of a run study (file values, then the command line's overrides)."""
    run = dict(study.run)
    listify = lambda v: None if v is None else ([s.strip() for s in v.split(",") if s.strip()]  # noqa: E731
                                                 if isinstance(v, str) else [str(x) for x in v])
    keep_size = bool(run.pop("keep_size", False))
    shared_options = run.pop("options", None) or {}
    method_options = {}
    from methods import get_method_info

    for entry in study.entries:
        known = get_method_info(entry.method).options
        method_options[entry.label] = {**{k: v for k, v in shared_options.items() if k in known}, **entry.options}
    unused = [k for k in shared_options if not any(k in get_method_info(e.method).options for e in study.entries)]
    if unused:
        raise StudyError(f"{study.source}: run.options: {', '.join(unused)} belong to none of the methods")
    config = RunConfig(
        methods=study.labels, out=out or _resolved_out(study, overrides),
        content=listify(run.get("content")), style=listify(run.get("style")),
        size=None if keep_size else run.get("size", 512), keep_aspect=bool(run.get("keep_aspect", False)),
        pairs=run.get("pairs"),
        seed=overrides.seed if overrides.seed is not None else run.get("seed", 0),
        device=overrides.device or run.get("device") or "cpu", batch_size=run.get("batch_size") or 1,
        weights_dir=overrides.weights_dir or run.get("weights_dir"), init=overrides.init or run.get("init"),
        download=overrides.download,
        metrics=listify(run.get("metrics")) or list(RunConfig.__dataclass_fields__["metrics"].default_factory()),
        method_options=method_options,
        method_names={e.label: e.method for e in study.entries if e.label != e.method},
        lpips_net=run.get("lpips_net") or "alex", timing_repeats=run.get("timing_repeats") or 10,
        timing_warmup=run.get("timing_warmup") if run.get("timing_warmup") is not None else 2,
        force=overrides.force, votes=str(overrides.votes) if overrides.votes else run.get("votes"),
        progress=overrides.progress,
    )
    return config


def _markdown(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(map(str, headers)) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def write_paper_comparison(study: Study, out: Path, ours: Callable[[str, str], str | None]) -> Path | None:
    """``paper.md``: the paper's reference table, and for every entry with a reference row its numbers beside ours
    (``ours(label, column)`` → formatted value or None)."""
    ref = study.reference
    if ref is None:
        return None
    rows = [[label, *("–" if v is None else f"{v:g}" for v in values)] for label, values in ref.rows.items()]
    text = [f"# {study.title or study.name}: the paper's numbers beside ours\n",
            f"Source: {study.paper or 'the paper'}." + (f" {ref.note}" if ref.note else "") + "\n",
            "## Reported in the paper\n", _markdown(["row", *ref.columns], rows)]
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
        text += ["\n## Paper vs this run\n", _markdown(["ours", "paper row", "column", "paper", "this run"], paired)]
    return write_text_atomic(out / "paper.md", "\n".join(text))


def _study_manifest(study: Study, overrides: StudyOverrides, out: Path, started: str, extra: dict[str, Any]) -> None:
    payload = {
        "study": study.name, "kind": study.kind, "title": study.title, "paper": study.paper,
        "file": str(study.source), "file_resolved": str(Path(study.source).resolve()), "file_sha256": study.sha256, "command": " ".join(["python -m harness", *sys.argv[1:]]),
        "overrides": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(overrides).items()},
        "started": started, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": versions(), "git_commit": git_commit(), **extra,
    }
    write_json_atomic(out / "study.json", payload)


def _run_study_run(study: Study, overrides: StudyOverrides, summary: StudySummary) -> None:
    out = summary.out
    config = run_config_for(study, overrides, out)
    config.method_weights = _prepare_entries(study, overrides)
    result = execute_run(config, command=" ".join(["python -m harness study", str(study.source)]))
    summary.lines.append(f"pairs: {result['computed']} computed, {result['skipped']} already done "
                         f"({result['pairs']} pairs × {len(result['methods'])} methods)")
    for name, reason in result["unavailable"].items():
        summary.lines.append(f"unavailable: {name}: {reason}")
    tables = result.get("tables", {})
    summary.files += [Path(p) for p in tables.values()]
    if tables.get("md"):
        summary.lines.append(Path(tables["md"]).read_text().rstrip())
    summary.files += [p for p in [write_paper_comparison(study, out, table_lookup(read_table(out)))] if p]
    files, problems = write_study_figures(study, out, config=config)
    summary.files += files
    summary.lines += [f"figure {name}: not drawn ({reason})" for name, reason in problems.items()]


def write_study_figures(study: Study, results: Path, figure_root: Path | None = None, config: RunConfig | None = None,
                        overrides: StudyOverrides | None = None) -> tuple[list[Path], dict[str, str]]:
    """Draw the study's ``figures:`` from its results folder (into ``figure_root``, default ``results/figures``).
    Returns the files written and, per figure that could not be drawn (no values, no training log, ...), why."""
    config = config or run_config_for(study, overrides or StudyOverrides(), results)
    context = FigureContext(study=study, out=results, config=config, table=read_table(results), figure_root=figure_root)
    files, problems = [], {}
    for name, params in study.figures.items():
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
    import json

    results = Path(results)
    try:
        manifest = json.loads((results / "study.json").read_text())
    except FileNotFoundError:
        raise StudyError(f"{results}: no study.json (not the results folder of `harness study`)") from None
    candidates = [manifest.get("file_resolved"), manifest.get("file")]
    default_dir = Path(studies_dir) if studies_dir else Path(__file__).resolve().parents[1] / "studies"
    candidates.append(str(default_dir / f"{manifest['study']}.yaml"))
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            study = load_study_file(candidate)
            if study.sha256 != manifest.get("file_sha256"):
                warnings.warn(f"{candidate} changed since {results} was made (sha256 differs)")
            return study
    raise StudyError(f"{results}: the study file {manifest.get('file')} is gone (looked in {default_dir} too)")


def read_table(out: Path):
    import pandas as pd

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
    from .complexity import ComplexityConfig, run_complexity

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
    from .video import VideoConfig, run_video

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


def run_study(study: Study, overrides: StudyOverrides | None = None) -> StudySummary:
    """Run a validated study into ``overrides.out`` (default ``results/<study name>``)."""
    overrides = overrides or StudyOverrides()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    start = time.perf_counter()
    out = _resolved_out(study, overrides)
    out.mkdir(parents=True, exist_ok=True)
    summary = StudySummary(study=study, out=out)
    {"run": _run_study_run, "complexity": _run_study_complexity, "video": _run_study_video}[study.kind](
        study, overrides, summary)
    summary.lines.append(f"time: {time.perf_counter() - start:.1f} s")
    _study_manifest(study, overrides, out, started, {"files": sorted({str(p) for p in summary.files})})
    return summary


# ----------------------------------------------------------------------------------------------------------------------
# Figures of a run study (parameters come from the study file's `figures:` mapping)
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class FigureContext:
    study: Study
    out: Path
    config: RunConfig
    table: Any = None
    figure_root: Path | None = None
    """Where the figures go (default ``out/figures``; the notebooks regenerate them elsewhere)."""

    @property
    def figure_dir(self) -> Path:
        path = self.figure_root or self.out / "figures"
        path.mkdir(parents=True, exist_ok=True)
        return path


FIGURES: dict[str, Callable[..., list[Path]]] = {}


def _figure(name: str):
    def register(fn):
        FIGURES[name] = fn
        return fn
    return register


def _entry(context: FigureContext, label: str | None) -> StudyEntry:
    entries = context.study.entries
    if label is None:
        return entries[0]
    for entry in entries:
        if entry.label == label:
            return entry
    raise StudyError(f"{context.study.source}: figures: {label!r} is not one of the study's methods "
                     f"({', '.join(context.study.labels)})")


def _method(context: FigureContext, label: str):
    from .run import build_methods

    return build_methods(dataclasses.replace(context.config, methods=[label]))[label]


def _image(context: FigureContext, path: str | None, role: str, index: int = 0):
    """The study's ``role`` image ``path`` (default: the run's ``index``-th one), prepared as the runner does."""
    from .run import ImageCache, resolve_pairs

    if path is None:
        contents, styles, _ = resolve_pairs(dataclasses.replace(context.config, pairs=None, shard=None))
        pool = contents if role == "content" else styles
        path = pool[min(index, len(pool) - 1)]
    return ImageCache(context.config.size, context.config.keep_aspect)(Path(path))


def _display_labels(context: FigureContext, paper: bool) -> dict[str, str]:
    return {e.label: (e.paper_label or e.label) if paper else e.label for e in context.study.entries}


@_figure("comparison")
def figure_comparison(context: FigureContext, max_rows: int = 6, methods: list[str] | None = None) -> list[Path]:
    """Paper Fig. 9: rows = pairs; columns = content, style, each method."""
    from .figures import comparison_grid_from_run, save_figure

    fig = comparison_grid_from_run(context.out, methods=methods, max_rows=max_rows)
    return save_figure(fig, context.figure_dir / "comparison")


@_figure("ablation")
def figure_ablation(context: FigureContext, max_rows: int = 4, methods: list[str] | None = None) -> list[Path]:
    """Paper Fig. 10: the comparison grid of the ablation variants, titled with the paper's names."""
    from .figures import comparison_grid_from_run, save_figure

    fig = comparison_grid_from_run(context.out, methods=methods, max_rows=max_rows,
                                   labels=_display_labels(context, paper=True))
    return save_figure(fig, context.figure_dir / "ablation")


@_figure("bars")
def figure_bars(context: FigureContext, metrics: list[str] | None = None) -> list[Path]:
    """Metric bar charts with 95 % CIs; the paper's numbers (``reference``) as markers."""
    from .figures import metric_bars, save_figure

    if context.table is None:
        raise StudyError(f"{context.out}: no table.csv to draw the bars from")
    available = [m for m in (metrics or ["content_loss", "style_loss", "lpips", "latency_ms"])
                 if f"{m}_mean" in context.table.columns and context.table[f"{m}_mean"].notna().any()]
    if not available:
        raise ValueError("none of the metrics has values")
    reference = None
    if context.study.reference is not None:
        reference = context.study.reference.by_label(
            {e.label: e.paper_label or e.label for e in context.study.entries}) or None
    fig = metric_bars(context.table, metrics=available, reference=reference)
    return save_figure(fig, context.figure_dir / "metrics")


@_figure("interpolation")
def figure_interpolation(context: FigureContext, method: str | None = None, content: str | None = None,
                         styles: list[str] | None = None, steps: int = 5) -> list[Path]:
    """Paper Fig. 11: content | style A | the blends (1 − t)·A + t·B | style B."""
    from .figures import interpolation_strip, save_figure

    entry = _entry(context, method)
    if styles is not None and len(styles) != 2:
        raise StudyError(f"{context.study.source}: figures.interpolation.styles: give two style images")
    style_a = _image(context, styles[0] if styles else None, "style", 0)
    style_b = _image(context, styles[1] if styles else None, "style", 1)
    fig = interpolation_strip(_method(context, entry.label), _image(context, content, "content"),
                              (style_a, style_b), steps=steps)
    return save_figure(fig, context.figure_dir / f"interpolation_{_slug(entry.label)}")


@_figure("attention")
def figure_attention(context: FigureContext, method: str | None = None, content: str | None = None,
                     style: str | None = None, point: list[int] | None = None, layer: str = "relu3_1",
                     head: int | None = None) -> list[Path]:
    """Paper Fig. 6: for one content point, all-to-all attention, DA block scores, PA's block and fine attention."""
    from methods.attention_maps import attention_maps

    from .figures import attention_figure, save_figure

    entry = _entry(context, method)
    content_image, style_image = _image(context, content, "content"), _image(context, style, "style")
    if point is None:
        point = [content_image.shape[-2] // 2, content_image.shape[-1] // 2]
    maps = attention_maps(_method(context, entry.label), content_image, style_image, tuple(point), layer=layer,
                          head=head)
    fig = attention_figure(maps, content_image, style_image)
    return save_figure(fig, context.figure_dir / f"attention_{_slug(entry.label)}")


@_figure("loss_curves")
def figure_loss_curves(context: FigureContext, logs: list[str] | None = None) -> list[Path]:
    """Loss curves of the entries' trainings (``<weights>/loss_log.csv``) or of the given logs."""
    from .figures import loss_curves, save_figure

    paths = [Path(p) for p in logs] if logs else [
        Path(e.weights) / "loss_log.csv" for e in context.study.entries if e.weights]
    written = []
    for path in paths:
        if not path.is_file():
            continue
        written += save_figure(loss_curves(path), context.figure_dir / f"loss_{_slug(path.parent.name)}")
    if not written:
        raise ValueError("no training log found (loss_log.csv next to the entries' checkpoints)")
    return written


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_") or "x"
