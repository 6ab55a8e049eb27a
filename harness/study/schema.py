"""Reading and validating a study file (the schema is in :mod:`harness.study`): every key checked before any work,
one :class:`~harness.errors.StudyError` line naming the file and the key."""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import os
import re
from pathlib import Path
from typing import Any

import torch

from methods import UnknownMethodError, get_method_info

from ..complexity import ComplexityConfig
from ..config import check_keys, check_type, expand_variables, listify, load_yaml_mapping
from ..errors import ConfigError, StudyError
from ..run import KNOWN_METRICS, RUN_SETTINGS
from ..run_methods import parse_init
from ..train import TrainConfig
from ..video import VideoConfig
from .figures import FIGURES
from .model import Reference, Study, StudyEntry

KINDS = ("run", "complexity", "video")
SECTIONS = {
    "run": {"run", "methods", "training", "figures", "reference"},
    "complexity": {"complexity", "reference"},
    "video": {"video", "reference"},
}
COMMON_KEYS = {"study", "kind", "title", "paper", "description"}
NAME = re.compile(r"[A-Za-z0-9_.-]+")
RUN_KEYS: dict[str, tuple[type, ...]] = {k: v for k, v in RUN_SETTINGS.items()
                                         if k not in ("methods", "out", "force", "shard", "progress", "download")}
"""Keys of a run study's ``run:`` section and their YAML types (null is allowed for every key): the runner's
settings (:data:`harness.run.RUN_SETTINGS`) but those the study or the command line supplies."""
ENTRY_KEYS = {"label", "method", "options", "weights", "train", "paper_label"}
TRAIN_EXCLUDED = {"out", "resume", "command_line", "progress"}
"""TrainConfig fields a study cannot set (the entry's ``weights`` folder is the output; resuming is automatic)."""
OVERRIDDEN = {"out", "device", "init", "seed", "weights_dir", "download", "progress", "force"}
"""Fields of the complexity / video configs that the study command supplies."""


def _check_keys(where: str, data: Any, known, section: str = "") -> dict[str, Any]:
    return check_keys(where, data, known, section, error=StudyError)


def _check_type(where: str, key: str, value: Any, types: tuple[type, ...]) -> None:
    check_type(where, key, value, types, error=StudyError)


def _config_fields(config: type) -> dict[str, Any]:
    """Fields of a complexity / video config a study may set."""
    return {f.name: f for f in dataclasses.fields(config) if f.name not in OVERRIDDEN}


def _train_keys() -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig)} - TRAIN_EXCLUDED


def _parse_entries(where: str, raw: Any) -> list[StudyEntry]:
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


def _check_run(where: str, run: dict[str, Any], entries: list[StudyEntry]) -> None:
    """What a run study needs that its types do not say: a valid ``init`` (per row too), options each network
    accepts (built on the meta device: no memory, no weights), and content / style paths that exist."""
    try:
        parse_init(run.get("init"), [e.label for e in entries])
    except ConfigError as exc:
        raise StudyError(f"{where}: run.{exc.render()}") from None
    shared = run.get("options") or {}
    for i, entry in enumerate(entries):
        info = get_method_info(entry.method)
        options = {**{k: v for k, v in shared.items() if k in info.options}, **entry.options}
        try:
            with torch.device("meta"):
                info.factory(**{**info.options, **options})
        except (ValueError, TypeError) as exc:
            raise StudyError(f"{where}: methods[{i}] ({entry.label}): invalid options: {' '.join(str(exc).split())}"
                             ) from None
    for key in ("content", "style", "votes"):
        for value in listify(run.get(key)) or []:
            if not Path(str(value)).expanduser().exists():
                raise StudyError(f"{where}: run.{key}: {value} does not exist (paths are relative to the folder the "
                                 "study runs from)")


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
    data, text = load_yaml_mapping(path, what="study file", missing_hint=" (the bundled ones are in studies/)",
                                   error=StudyError)
    if not data:
        raise StudyError(f"{where}: a study file is a mapping (study:, kind:, ...), got an empty file")
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
    data = expand_variables(data, where, error=StudyError)
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
            metrics = run["metrics"] if isinstance(run["metrics"], list) else run["metrics"].split(",")
            unknown = [m for m in metrics if str(m).strip() not in KNOWN_METRICS]
            if unknown:
                raise StudyError(f"{where}: run.metrics: unknown metric(s) {', '.join(map(str, unknown))}; known: "
                                 f"{', '.join(KNOWN_METRICS)}")
        if run.get("lpips_net") not in (None, "alex", "vgg"):
            raise StudyError(f"{where}: run.lpips_net must be alex or vgg, got {run['lpips_net']!r}")
        study.run = run
        if "methods" not in data:
            raise StudyError(f"{where}: a run study needs 'methods' (the table's rows)")
        study.entries = _parse_entries(where, data["methods"])
        _check_run(where, run, study.entries)
        if data.get("training") is not None:
            study.training = _check_keys(where, data["training"], _train_keys(), "training")
        study.figures = _parse_figures(where, data.get("figures"))
    else:
        section = data.get(kind)
        if section is None:
            raise StudyError(f"{where}: a {kind} study needs a '{kind}:' section")
        fields = _config_fields({"complexity": ComplexityConfig, "video": VideoConfig}[kind])
        section = _check_keys(where, section, set(fields), kind)
        required = [n for n, f in fields.items() if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING and n not in section]
        if required:
            raise StudyError(f"{where}: {kind}: missing key(s) {', '.join(required)}")
        setattr(study, kind, section)
    return study
