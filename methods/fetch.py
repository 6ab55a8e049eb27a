"""Fetching and verifying weight files: checksums (sha256, git blob id), downloads by URL (any urllib scheme) and from
Google Drive (through ``gdown``), and members of release archives — each written atomically (a temporary file next to
the destination, verified, then moved into place), so nothing half-written is ever left where a file is expected."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

from .errors import ChecksumError, WeightsError

_CHUNK = 1 << 20
_MAX_NAMES = 5
DOWNLOAD_TIMEOUT_S = 60


def sha256_file(path: str | os.PathLike) -> str:
    """Hex sha256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_blob_sha1_file(path: str | os.PathLike) -> str:
    """Git blob id of a file: sha1 of ``b"blob <size>\\0"`` followed by its bytes."""
    digest = hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksum_mismatches(
    path: Path, actual_sha256: str, sha256: str | None, git_blob_sha1: str | None
) -> list[str]:
    """Descriptions of the known checksums that ``path`` fails (empty when all match)."""
    problems = []
    if sha256:
        expected = sha256.lower()
        if len(expected) < len(actual_sha256):  # a published prefix (torchvision file names carry 8 hex digits)
            if not actual_sha256.startswith(expected):
                problems.append(f"sha256 expected {expected}... (a prefix), got {actual_sha256}")
        elif actual_sha256 != expected:
            problems.append(f"sha256 expected {expected}, got {actual_sha256}")
    if git_blob_sha1:
        actual = git_blob_sha1_file(path)
        if actual != git_blob_sha1.lower():
            problems.append(f"git blob sha1 expected {git_blob_sha1.lower()}, got {actual}")
    return problems


@contextmanager
def _verified_replace(dest: Path, origin: str, sha256: str | None, git_blob_sha1: str | None
                      ) -> Iterator[tuple[Path, dict[str, str]]]:
    """The one atomic, verified write of every fetch: yields a temporary file next to ``dest`` (and a dict that gets
    ``"sha256"``); when the body is done, every known checksum is checked (``ChecksumError`` naming ``origin``) and
    the file moved onto ``dest``. Whatever happens, no temporary file is left behind."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp, result = Path(tmp_name), {}
    try:
        yield tmp, result
        actual = sha256_file(tmp)
        problems = checksum_mismatches(tmp, actual, sha256, git_blob_sha1)
        if problems:
            raise ChecksumError(f"checksum mismatch for {origin}: {'; '.join(problems)}")
        os.replace(tmp, dest)
        result["sha256"] = actual
    finally:
        tmp.unlink(missing_ok=True)


def _download(
    url: str,
    dest: Path,
    sha256: str | None,
    git_blob_sha1: str | None,
    progress: bool,
) -> str:
    """Download ``url`` atomically onto ``dest``; return its sha256."""
    with _verified_replace(dest, f"{dest.name} downloaded from {url}", sha256, git_blob_sha1) as (tmp, result):
        with open(tmp, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, desc=dest.name,
                      disable=not progress, leave=False) as bar:
                for chunk in iter(lambda: resp.read(_CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
    return result["sha256"]


def download(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    git_blob_sha1: str | None = None,
    progress: bool = True,
) -> Path:
    """Download ``url`` to ``dest`` (any urllib scheme, including ``file://``).

    The data is streamed into a temporary file next to ``dest`` (tqdm progress
    bar unless ``progress=False``), every known checksum is verified, and the
    file is then moved onto ``dest`` atomically. On a checksum mismatch the
    temporary file is deleted and :class:`ChecksumError` is raised; nothing
    half-written is ever left at ``dest``. Network errors propagate
    (``urllib.error.URLError``, ``TimeoutError``, ``OSError``).
    """
    dest = Path(dest)
    _download(url, dest, sha256, git_blob_sha1, progress)
    return dest


def download_google_drive(file_id: str, dest: str | os.PathLike, *, sha256: str | None = None,
                          progress: bool = True) -> Path:
    """Download a Google Drive file (by id) to ``dest`` through ``gdown`` (it handles Drive's confirmation pages),
    into a temporary file next to ``dest``, verified and then moved into place atomically."""
    try:
        import gdown
    except ImportError as exc:  # a declared dependency; a broken environment gets a clear line
        raise WeightsError(f"downloading Google Drive file {file_id} needs the gdown package (pip install gdown)") from exc
    dest = Path(dest)
    with _verified_replace(dest, f"{dest.name} downloaded from Google Drive file {file_id}", sha256, None) as (tmp, _):
        result = gdown.download(id=file_id, output=str(tmp), quiet=not progress)
        if result is None or not tmp.is_file() or tmp.stat().st_size == 0:
            raise OSError(f"Google Drive file {file_id} could not be downloaded (gdown returned nothing)")
    return dest


def extract_member(archive_path: str | os.PathLike, member: str, dest: str | os.PathLike, *,
                   sha256: str | None = None, git_blob_sha1: str | None = None) -> str:
    """Extract ``member`` of the zip ``archive_path`` onto ``dest`` atomically (temporary file, checksums verified,
    then moved into place); return its sha256. A missing member or a damaged zip is a :class:`WeightsError` naming
    the archive; a checksum mismatch a :class:`ChecksumError` (nothing is left at ``dest``)."""
    archive_path, dest = Path(archive_path), Path(dest)
    try:
        with zipfile.ZipFile(archive_path) as zf:
            names = zf.namelist()
            if member not in names:
                shown = ", ".join(n for n in names[:_MAX_NAMES])
                raise WeightsError(f"archive {archive_path} has no member {member!r} (it holds {len(names)}: "
                                   f"{shown}{', ...' if len(names) > _MAX_NAMES else ''})")
            with _verified_replace(dest, f"{member} in {archive_path}", sha256, git_blob_sha1) as (tmp, result):
                with open(tmp, "wb") as out, zf.open(member) as src:
                    shutil.copyfileobj(src, out, _CHUNK)
            return result["sha256"]
    except zipfile.BadZipFile as exc:
        raise WeightsError(f"archive {archive_path} is not a readable zip file ({exc}); delete it and download it "
                           "again") from exc
