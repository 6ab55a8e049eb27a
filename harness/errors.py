"""Every error the harness raises for bad input, in one leaf module (it imports only :mod:`methods.errors`).

Each ``str()`` is one line naming the thing and the problem. :data:`EXPECTED_ERRORS` are the types a front end
(the command line) reports as ``error: <message>`` with exit code 2; everything else is a bug and keeps its
traceback. Messages name settings as templates (``{steps}``, ``{weights_dir=DIR}``, ``{init="random"}``; see
:mod:`methods.errors`), never as command-line flags: ``str()`` spells them as library arguments, and the command line
spells them as flags where it prints them.
"""
from __future__ import annotations

import errno

from methods.errors import InputError, OptionError, SettingsMessage, UnknownMethodError, WeightsError, literal

__all__ = [
    "EXIT_USAGE", "EXPECTED_ERRORS", "ComplexityError", "ConfigError", "DiskFullError", "FlowFileError", "ImageError",
    "ImageWarning", "RunError", "SettingsMessage", "StudyError", "TableError", "TrainingDivergedError", "UnwritableError",
    "SurveyError", "VideoError", "VotesError", "format_error", "write_failed",
]

EXIT_USAGE = 2


class _Templated(SettingsMessage):
    """An error whose message may name settings as ``{name}`` / ``{name=value}`` (:func:`~methods.errors.spell_settings`):
    ``str()`` spells them as library arguments, ``render(flags=True)`` as command-line flags."""

    always_template = False

    def __init__(self, message: str, *, template: bool | None = None) -> None:
        as_template = self.always_template if template is None else template
        self.template = str(message) if as_template else literal(message)
        super().__init__(self.render())


class ConfigError(_Templated, ValueError):
    """A bad setting (of a run, a training, a study, a sweep): one line naming the setting, e.g.
    ``"{load_size} 32 is smaller than {crop} 64"`` (always a template: paths in it go through
    :func:`~methods.errors.literal`)."""

    always_template = True


class ImageError(_Templated, ValueError):
    """A bad image input (missing, unreadable, corrupt or unsupported file or folder).

    ``str(err)`` is a single line ``"<path>: <problem>[; <what to do>]"``.
    """


class RunError(_Templated, ValueError):
    """A run that cannot start or continue (bad inputs, a run directory made with other settings, ...)."""


class VideoError(RunError):
    """A clip or video run that cannot be processed (no frames, mismatched frame sizes, unreadable video)."""


class ComplexityError(RunError):
    """A complexity sweep that cannot run (bad sizes, unknown methods, a results file of other settings)."""


class StudyError(_Templated, ValueError):
    """A bad study file or a study that cannot run (missing checkpoint, failed training): one line naming the file."""


class TableError(ValueError):
    """Rows that cannot be tabulated (missing columns, unknown metrics)."""


class VotesError(ValueError):
    """A votes file that cannot be read at all (missing, empty, wrong header); one line naming the file."""


class SurveyError(ValueError):
    """A survey that cannot be created, loaded or served (a run without outputs, a bad survey.yaml, an unusable
    database URL): one line naming the file or setting."""


class FlowFileError(InputError):
    """A missing, truncated or malformed ``.flo`` file; one line naming the file."""


class DiskFullError(OSError):
    """No space left on the device while writing a file: one line naming the file (what was written before stays
    whole: every writer is atomic or appends flushed rows)."""


class UnwritableError(OSError):
    """A file that cannot be written (its folder is missing, read-only, or a file stands where a folder should be):
    one line naming the file the user asked for, never the hidden temporary file it is written through."""


class ImageWarning(UserWarning):
    """An image that decoded but may be damaged or hostile (a wrong PNG checksum, a decompression-bomb-sized
    image): one line naming the file."""


class TrainingDivergedError(_Templated, RuntimeError):
    """The loss became NaN/inf; the message names the step, the terms and the last good checkpoint."""

    always_template = True


EXPECTED_ERRORS: tuple[type[BaseException], ...] = (
    ConfigError,
    ImageError,
    WeightsError,  # MissingWeightsError, ChecksumError, StateDictMismatchError, ...
    UnknownMethodError,
    OptionError,
    InputError,  # FlowFileError
    DiskFullError,
    UnwritableError,
    FileExistsError,
    FileNotFoundError,
    IsADirectoryError,
    NotADirectoryError,
    PermissionError,
    RunError,  # VideoError, ComplexityError
    StudyError,
    TableError,
    VotesError,
    SurveyError,
)


def write_failed(exc: OSError, path: object) -> OSError:
    """``exc``, raised while writing ``path``, as one line naming ``path``: a :class:`DiskFullError` when the device
    is full (ENOSPC, EDQUOT), an :class:`UnwritableError` for other file-system refusals (permissions, a read-only or
    missing folder, a file where a folder should be), else ``exc`` as is."""
    if isinstance(exc, (DiskFullError, UnwritableError)):
        return exc
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFullError(f"no space left on device writing {path}; free some space and rerun (the files written "
                             "before are whole and are reused)")
    if exc.errno in (errno.EEXIST, errno.ENOTDIR):
        return UnwritableError(f"cannot write {path}: a file stands where a folder of that path should be; give "
                               "another path")
    if exc.errno is not None and exc.strerror:
        return UnwritableError(f"cannot write {path}: {exc.strerror.lower()}; check that its folder exists and is "
                               "writable, or give another path")
    return exc


def format_error(exc: BaseException, flags: bool = False) -> str:
    """A one-line message: ``<path>: <reason>`` for OS errors about a path, else the message with whitespace
    collapsed; settings named in it are spelt as flags with ``flags`` (what a command line prints)."""
    if isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}"
    elif isinstance(exc, SettingsMessage):
        text = exc.render(flags)
        if getattr(exc, "multiline", False):  # one line per item (e.g. per missing weight file), each collapsed
            return "\n".join(line.rstrip() for line in text.split("\n") if line.strip())
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.split())
