"""Atomic file writes: a hidden temporary file next to the target, moved into place with :func:`os.replace`, so a
crash or a kill never leaves a half-written table, manifest or log behind (readers see the old file or the new one)."""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

__all__ = ["temporary_path", "write_json_atomic", "write_text_atomic"]


def temporary_path(final: str | os.PathLike) -> Path:
    """A hidden, unique temporary name next to ``final`` (same folder, so ``os.replace`` is atomic)."""
    final = Path(final)
    return final.with_name(f".{final.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8, ``\\n`` line ends, flushed to disk) to ``path`` atomically; returns ``path``."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_json_atomic(path: str | os.PathLike, payload: Any) -> Path:
    """``payload`` as indented JSON (non-JSON values through ``str``), written atomically."""
    return write_text_atomic(path, json.dumps(payload, indent=2, default=str))
