"""Atomic file writes: a hidden temporary file next to the target, moved into place with :func:`os.replace`, so a
crash or a kill never leaves a half-written table, manifest, image, checkpoint or log behind (readers see the old
file or the new one). Every writer of the harness goes through :func:`atomic_path`."""
from __future__ import annotations

import contextlib
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["atomic_path", "temporary_path", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]


def temporary_path(final: str | os.PathLike) -> Path:
    """A hidden, unique temporary name next to ``final`` (same folder, so ``os.replace`` is atomic), ending in
    ``final``'s suffix so that writers which pick the format from the suffix (PIL, matplotlib, OpenCV) still can."""
    final = Path(final)
    return final.with_name(f".{final.stem}.{os.getpid()}.{secrets.token_hex(4)}.tmp{final.suffix}")


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike, *, make_parents: bool = False) -> Iterator[Path]:
    """``with atomic_path(p) as tmp: write(tmp)``: on success ``tmp`` replaces ``p``; on any error (or interrupt)
    ``tmp`` is removed and ``p`` is untouched."""
    final = Path(final)
    if make_parents:
        final.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(final)
    try:
        yield tmp
        os.replace(tmp, final)
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
