"""Atomic file writes: a hidden temporary file next to the target, moved into place with :func:`os.replace`, so a
crash or a kill never leaves a half-written table, manifest, image, checkpoint or log behind (readers see the old
file or the new one). Every writer of the harness goes through :func:`atomic_path`."""
from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .errors import write_failed

__all__ = [
    "atomic_path", "process_alive", "remove_stale_temporaries", "temporary_path", "write_bytes_atomic",
    "write_json_atomic", "write_text_atomic",
]

_TEMPORARY = re.compile(r"^\..+\.(\d+)\.[0-9a-f]{8}\.tmp(\.[^.]+)?$")


def temporary_path(final: str | os.PathLike) -> Path:
    """A hidden, unique temporary name next to ``final`` (same folder, so ``os.replace`` is atomic), ending in
    ``final``'s suffix so that writers which pick the format from the suffix (PIL, matplotlib, OpenCV) still can."""
    final = Path(final)
    return final.with_name(f".{final.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{final.suffix}")


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete the temporary files (:func:`temporary_path`) in ``folder`` whose writer process is gone (a kill
    between writing and moving into place leaves them; a training checkpoint's can be 100+ MB). Returns how many."""
    removed = 0
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        match = _TEMPORARY.match(entry.name)
        if match is None or not entry.is_file(follow_symlinks=False):
            continue
        pid = int(match.group(1))
        if pid == os.getpid() or process_alive(pid):
            continue
        Path(entry.path).unlink(missing_ok=True)
        removed += 1
    return removed


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, make_parents: bool = False) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write(tmp)``: on success ``tmp`` replaces ``p``; on any error (or interrupt)
    ``tmp`` is removed and ``p`` is untouched. A full device is a :class:`~harness.errors.DiskFullError` and a
    refused write (permissions, a missing or read-only folder) an :class:`~harness.errors.UnwritableError`, both
    naming ``p``, never the temporary file."""
    final = Path(final)
    try:
        if make_parents:
            final.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failed(exc, final) from exc
    tmp = temporary_path(final)
    try:
        yield tmp
        os.replace(tmp, final)
    except OSError as exc:
        about_this_file = exc.filename in (None, os.fspath(tmp), os.fspath(final))
        raise (write_failed(exc, final) if about_this_file else exc) from exc
    finally:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically, flushed to disk; returns ``path``."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends, flushed to disk) to ``path`` atomically; returns ``path``."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """``payload`` as indented JSON (non-JSON values through ``str``), written atomically."""
    return write_text_atomic(path, json.dumps(payload, indent=2, default=str))
