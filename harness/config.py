"""One YAML loader and one key check for every settings file: ``run --config``, ``train --config`` and study files.

Keys may be written with dashes or underscores (``batch-size`` = ``batch_size``); an unknown key, a wrong type or an
unset ``${VAR}`` is one error line naming the file and the key. ``error`` is the exception type raised (a study file
raises :class:`~harness.errors.StudyError`, the others :class:`~harness.errors.ConfigError`).
"""
from __future__ import annotations

import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

__all__ = ["check_keys", "check_type", "expand_variables", "listify", "load_yaml_mapping"]

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^${}]*))?\}")  # innermost first: defaults may nest
_TYPE_NAMES = {int: "an integer", str: "a string", bool: "true/false", dict: "a mapping", list: "a list",
               float: "a number"}


def load_yaml_mapping(path: str | os.PathLike, *, what: str = "settings file", missing_hint: str = "",
                      error: type[Exception] = ConfigError) -> tuple[dict[str, Any], str]:
    """The mapping a YAML file holds (``{}`` for an empty file) and the file's text (for its hash)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: no such {what}{missing_hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise error(f"{path}: cannot read the {what} ({' '.join(str(exc).split())})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise error(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
    if data is None:
        return {}, text
    if not isinstance(data, dict):
        raise error(f"{path}: a {what} is a mapping of key: value, got {type(data).__name__}")
    return data, text


def check_keys(where: str, data: Any, known: Collection[str], section: str = "",
               error: type[Exception] = ConfigError) -> dict[str, Any]:
    """``data`` (a mapping) with its keys normalised (dashes → underscores); an unknown key is an error listing the
    known ones."""
    label = f"{section}: " if section else ""
    if not isinstance(data, dict):
        raise error(f"{where}: {label}expected a mapping, got {type(data).__name__}")
    normalised = {}
    for key, value in data.items():
        name = str(key).strip().lstrip("-").replace("-", "_")
        if name not in known:
            raise error(f"{where}: unknown key {key!r}{' in ' + section if section else ''}; known keys: "
                        f"{', '.join(sorted(known))}")
        normalised[name] = value
    return normalised


def check_type(where: str, key: str, value: Any, types: tuple[type, ...], error: type[Exception] = ConfigError) -> None:
    """``value`` is None or of one of ``types`` (a bool is not an int; an int is a float)."""
    if value is None:
        return
    if isinstance(value, bool) and bool not in types:
        ok = False
    else:
        ok = isinstance(value, types) or (float in types and isinstance(value, int))
    if not ok:
        raise error(f"{where}: key {key!r} must be {' or '.join(_TYPE_NAMES[t] for t in types)}, got {value!r}")


def expand_variables(value: Any, where: str, error: type[Exception] = ConfigError) -> Any:
    """``${VAR}`` and ``${VAR:-default}`` in every string of ``value`` (recursively); an unset variable without a
    default is an error naming it."""
    if isinstance(value, str):
        def substitute(match: re.Match) -> str:
            name, default = match.group(1), match.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is None:
                raise error(f"{where}: ${{{name}}} is not set (set it, or write ${{{name}:-default}})")
            return default
        for _ in range(16):  # nested defaults expand innermost first; a bound against self-referencing values
            expanded = _VARIABLE.sub(substitute, value)
            if expanded == value:
                break
            value = expanded
        return value
    if isinstance(value, list):
        return [expand_variables(v, where, error) for v in value]
    if isinstance(value, dict):
        return {k: expand_variables(v, where, error) for k, v in value.items()}
    return value


def listify(value: Any) -> list[str] | None:
    """A list setting given as a list or as a comma-separated string (``"a,b"``); None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return [str(v) for v in value]
