"""Every error the methods package raises on bad input; each ``str()`` is one line saying what was expected.

A leaf module: it imports nothing from the project, so any module (and the harness's error mapping) can use it.

Messages name settings, never command-line flags. A message may be a *template* in which a setting stands as
``{name}`` or ``{name=value}`` (``{weights_dir=DIR}``, ``{init="random"}``, ``{download=False}``);
:func:`spell_settings` writes it for a library user (``weights_dir=DIR``, ``init="random"``) or, with ``flags=True``,
for the command line (``--weights-dir DIR``, ``--init random``, ``--no-download``). ``str(error)`` is the library
spelling; a front end calls ``error.render(flags=True)``.
"""
from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

__all__ = [
    "ChecksumError", "InputError", "MissingWeightsError", "NoWeightsError", "OptionError", "StateDictMismatchError",
    "SettingsMessage", "UnknownMethodError", "WeightsError", "literal", "one_line", "spell_settings",
]

_SETTING = re.compile(r"\{\{|\}\}|\{([a-z][a-z0-9_]*)(?:=([^{}]*))?\}")


def one_line(text: object) -> str:
    """``str(text)`` with whitespace collapsed (and ANSI colour codes stripped) into a single line."""
    return " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(text)).split())


def spell_settings(template: str, flags: bool = False) -> str:
    """``template`` with every ``{name}`` / ``{name=value}`` written as a library argument (``name``,
    ``name=value``) or, with ``flags``, as a command-line flag (``--name``, ``--name value``; ``{name=False}`` →
    ``--no-name``, ``{name=True}`` → ``--name``)."""

    def spell(match: re.Match) -> str:
        if match.group(1) is None:  # an escaped brace ({{ or }}, see literal)
            return match.group(0)[0]
        name, value = match.group(1), match.group(2)
        if not flags:
            return name if value is None else f"{name}={value}"
        flag = "--" + name.replace("_", "-")
        if value is None or value == "True":
            return flag
        if value == "False":
            return "--no-" + name.replace("_", "-")
        return f"{flag} {value.strip(chr(34) + chr(39))}"

    return _SETTING.sub(spell, template)


def literal(text: object) -> str:
    """``text`` (a path, a value) escaped for a settings template: its braces stay braces."""
    return str(text).replace("{", "{{").replace("}", "}}")


class SettingsMessage:
    """Mixin of errors whose message is a settings template (see the module docstring)."""

    template: str = ""

    def render(self, flags: bool = False) -> str:
        return one_line(spell_settings(self.template, flags))


class InputError(ValueError):
    """Input tensors of the wrong shape, type, range or size; the message is one line saying what was expected."""


class UnknownMethodError(ValueError):
    """An unknown method name; the message lists the known names and suggests the closest one."""


class OptionError(ValueError):
    """An unknown or invalid method option; the message lists the method's options."""


class WeightsError(SettingsMessage, Exception):
    """Base class for weight problems; ``str()`` is a single line (the message may name settings as a template)."""

    def __init__(self, message: str, *, template: bool = False) -> None:
        self.template = message if template else literal(message)
        super().__init__(self.render())


class _NamedFile(Protocol):
    filename: str
    url: str | None


class MissingWeightsError(WeightsError):
    """Some weight files could not be found nor downloaded.

    ``missing`` lists every missing weight file; ``searched`` the ``(source, folder)`` pairs that were looked in;
    ``reasons`` maps a file name to the reason its download failed (when one was attempted); ``cache`` is the cache
    folder a user may copy the files into; ``methods`` the method each missing file belongs to, where known.

    The message has one line per missing file (a headline, the files, then where they were looked for and what to
    do); :meth:`combine` merges the errors of several methods into one such message.
    """

    multiline = True

    def __init__(
        self,
        missing: Sequence[_NamedFile],
        searched: Sequence[tuple[str, Path]],
        *,
        cache: Path,
        subdir: str | None = None,
        reasons: Mapping[str, str] | None = None,
        downloads_enabled: bool = True,
        env_weights: str = "HARNESS_WEIGHTS",
        env_offline: str = "HARNESS_OFFLINE",
        methods: Sequence[str | None] | None = None,
    ) -> None:
        self.missing = list(missing)
        self.searched = list(searched)
        self.reasons = dict(reasons or {})
        self.methods = list(methods) if methods is not None else [None] * len(self.missing)
        self._settings = dict(cache=cache, subdir=subdir, downloads_enabled=downloads_enabled,
                              env_weights=env_weights, env_offline=env_offline)
        named = [m for m in dict.fromkeys(self.methods) if m]
        lines = []
        for spec, method in zip(self.missing, self.methods):
            origin = getattr(spec, "origin", spec.url)
            where = f"from {literal(origin)}" if origin else "no public source"
            if spec.filename in self.reasons:
                where += f"; download failed: {literal(self.reasons[spec.filename])}"
            elif getattr(spec, "downloadable", bool(spec.url)) and not downloads_enabled:
                where += "; not downloaded: downloads disabled"
            label = f"{literal(method)}: " if method and len(named) > 1 else ""
            lines.append(f"  - {label}{literal(spec.filename)} ({where})")
        folders = ", ".join(f"{src} {literal(d)}" for src, d in self.searched) or "none"
        if len(named) > 1 or (named and subdir is None):
            place = "<DIR>/<method>/<file> or <DIR>/<file>"
        else:
            place = f"<DIR>/{subdir}/<file> or <DIR>/<file>" if subdir else "<DIR>/<file>"
        offline = "" if downloads_enabled else f" (downloads are off: {{download=False}} or ${env_offline} set)"
        head = (f"missing weight file(s) of {', '.join(literal(m) for m in named)}:" if named
                else "missing weight file(s):")
        super().__init__(
            "\n".join([head, *lines,
                       f"Searched folders: {folders}.",
                       f"To use them offline, download them and place them as {place} where DIR is given with "
                       f"{{weights_dir=DIR}} or {env_weights}=DIR, or is the cache folder {literal(cache)}{offline}. "
                       f"Or use {{init=\"random\"}} for an untrained smoke or timing run (its outputs are "
                       f"meaningless)."]), template=True
        )

    def render(self, flags: bool = False) -> str:
        """The message with settings spelt for a library user or (``flags``) a command line; one line per file."""
        return "\n".join(one_line(line) if not line.startswith("  - ") else "  - " + one_line(line[4:])
                         for line in spell_settings(self.template, flags).split("\n"))

    @classmethod
    def combine(cls, errors: Mapping[str, MissingWeightsError]) -> MissingWeightsError:
        """One error listing every file of every method (``errors``: method label → its error)."""
        missing, methods, reasons, searched = [], [], {}, []
        for label, error in errors.items():
            missing += error.missing
            methods += [label] * len(error.missing)
            reasons.update(error.reasons)
            searched += [d for d in error.searched if d not in searched]
        first = next(iter(errors.values()))
        settings = {**first._settings, "subdir": None}
        return cls(missing, searched, reasons=reasons, methods=methods, **settings)


class NoWeightsError(WeightsError):
    """A method without released weights (e.g. ``all2all``) and no harness checkpoint found: train it first, or
    build it untrained on purpose."""


class ChecksumError(WeightsError):
    """A downloaded file did not match its published checksum."""


class StateDictMismatchError(WeightsError):
    """A state dict does not match a module's keys or shapes."""
