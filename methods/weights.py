"""Weights resolver shared by every style-transfer method (and the metrics).

Each pretrained weight file is described by a :class:`WeightFile` carrying its
*official* file name (e.g. ``vgg_normalised.pth`` from the pytorch-AdaIN
release ``v0.0.0``, or ``latest_net_A2K.pth`` from the StyA2K repository), its
official download URL and, when published, its checksums.

:func:`resolve_files` looks for every file, in this order:

1. the explicit ``weights`` folder (one method's files);
2. ``weights_dir`` (every method's files), or else ``$HARNESS_WEIGHTS``;
3. the cache folder (:func:`cache_dir`);
4. a download into the cache folder, unless downloads are disabled
   (``download=False`` or ``$HARNESS_OFFLINE=1``) or there is no public URL.

Inside each folder, ``<dir>/<subdir>/<filename>`` is preferred over
``<dir>/<filename>``. Whatever is still missing at the end is reported in ONE
:class:`MissingWeightsError` that says what is missing, where to get it, where
to put it, and that ``init="random"`` exists for smoke or timing runs. A missing
weight never silently becomes a random one.

:func:`load_state_dict` / :func:`check_state_dict` / :func:`load_into` load
checkpoints safely (``weights_only=True``) and strictly, with errors that name
the file and the first mismatching keys.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.request
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

from .errors import ChecksumError, MissingWeightsError, StateDictMismatchError, WeightsError
from .fetch import (_download, checksum_mismatches, download, download_google_drive,
                    extract_member, git_blob_sha1_file, sha256_file)
from .errors import one_line as _one_line

if TYPE_CHECKING:  # torch is imported where a file is loaded, so that the command line's --help needs none
    import torch

__all__ = [
    "Archive",
    "ENV_CACHE",
    "ENV_OFFLINE",
    "ENV_WEIGHTS",
    "Loading",
    "ChecksumError",
    "MissingWeightsError",
    "ResolvedFile",
    "StateDictMismatchError",
    "WeightFile",
    "WeightsError",
    "cache_dir",
    "check_state_dict",
    "download",
    "download_google_drive",
    "extract_member",
    "find_file",
    "git_blob_sha1_file",
    "load_into",
    "load_state_dict",
    "resolve_files",
    "resolve_for_init",
    "search_dirs",
    "sha256_file",
]

ENV_WEIGHTS = "HARNESS_WEIGHTS"
ENV_CACHE = "HARNESS_CACHE"
ENV_OFFLINE = "HARNESS_OFFLINE"

_MAX_KEYS = 5


# --------------------------------------------------------------------------- #
# Data types and errors
# --------------------------------------------------------------------------- #
@dataclass(frozen=True)
class WeightFile:
    """One pretrained weight file, identified by its official file name.

    ``sha256`` is the file's hex sha256, or a shorter hex *prefix* of it (e.g. the 8 digits torchvision puts in its
    file names, ``alexnet-owt-7be5be79.pth``), which then only has to match the start of the actual digest.
    """

    filename: str
    url: str | None = None
    sha256: str | None = None
    git_blob_sha1: str | None = None
    description: str = ""
    archive: Archive | None = None
    member: str | None = None
    page: str | None = None
    """A page to download the file from by hand (a file-sharing page that no program can fetch), where no URL is."""
    google_drive_id: str | None = None
    """A Google Drive file id, downloaded through ``gdown`` where no URL is."""

    def __post_init__(self) -> None:
        if (self.archive is None) != (self.member is None):
            raise ValueError(f"{self.filename}: give both archive= and member= (a file inside a released archive)")

    @property
    def origin(self) -> str | None:
        """Where the file comes from, for messages: its URL, or the archive member and the archive's source."""
        if self.archive is not None:
            return f"member {self.member} of {self.archive.filename} ({self.archive.origin})"
        if self.url is None and self.google_drive_id:
            return f"https://drive.google.com/file/d/{self.google_drive_id}"
        if self.url is None and self.page:
            return f"{self.page}, by hand"
        return self.url

    @property
    def downloadable(self) -> bool:
        """Whether the resolver can fetch the file itself (a URL, or an archive it can download)."""
        return bool(self.url or self.google_drive_id) or (self.archive is not None and self.archive.downloadable)


@dataclass(frozen=True)
class Archive:
    """A released archive (a zip) holding weight files, downloaded from ``url`` or a Google Drive file id (through
    the ``gdown`` library). ``sha256`` where the archive's digest is known; each member is verified on its own."""

    filename: str
    url: str | None = None
    google_drive_id: str | None = None
    sha256: str | None = None
    description: str = ""

    @property
    def origin(self) -> str:
        if self.url:
            return self.url
        if self.google_drive_id:
            return f"https://drive.google.com/file/d/{self.google_drive_id}"
        return "no public source"

    @property
    def downloadable(self) -> bool:
        return bool(self.url or self.google_drive_id)


@dataclass(frozen=True)
class Loading:
    """How a network gets its weights: the resolver's arguments in one value.

    ``weights``: one method's folder of files or checkpoint, searched first; ``weights_dir``: a folder of every
    method's files (else ``$HARNESS_WEIGHTS``); ``init``: ``None``/``"pretrained"`` (missing files are an error) or
    ``"random"`` (seeded untrained weights, flagged); ``device``: where the network lives; ``seed``: the seed of
    ``init="random"``; ``download``: allow downloads (``None``: yes unless ``$HARNESS_OFFLINE`` is set).
    """

    weights: str | os.PathLike | None = None
    weights_dir: str | os.PathLike | None = None
    init: str | None = None
    device: str | torch.device = "cpu"
    seed: int = 0
    download: bool | None = None

    @property
    def random(self) -> bool:
        return self.init == "random"


@dataclass(frozen=True)
class ResolvedFile:
    """A weight file found locally or downloaded.

    ``source`` is one of ``"explicit"``, ``"weights_dir"``, ``"env"``,
    ``"cache"``, ``"download"``, ``"archive"`` (extracted from a release archive). ``verified`` is True when a known checksum
    matched, False when a known checksum did not match (local files only; a
    warning was issued), None when no checksum was known.
    """

    spec: WeightFile
    path: Path
    source: str
    sha256: str
    verified: bool | None


# --------------------------------------------------------------------------- #
# Folders and lookup
# --------------------------------------------------------------------------- #
def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser() if value else None


def _offline() -> bool:
    return os.environ.get(ENV_OFFLINE, "").strip().lower() in {"1", "true", "yes", "on"}


def cache_dir() -> Path:
    """The weights cache folder (not created here).

    ``$HARNESS_CACHE``, else ``$XDG_CACHE_HOME/ast-harness/weights``, else
    ``~/.cache/ast-harness/weights``.
    """
    explicit = _env_path(ENV_CACHE)
    if explicit is not None:
        return explicit
    xdg = _env_path("XDG_CACHE_HOME")
    base = xdg if xdg is not None else Path.home() / ".cache"
    return base / "ast-harness" / "weights"


def search_dirs(
    weights: str | os.PathLike | None = None,
    weights_dir: str | os.PathLike | None = None,
) -> list[tuple[str, Path]]:
    """Ordered ``(source, folder)`` pairs to look in.

    ``("explicit", weights)`` if given; ``("weights_dir", weights_dir)`` if
    given, else ``("env", $HARNESS_WEIGHTS)`` if set; then ``("cache",
    cache_dir())``. Folders that do not exist are kept (they appear in error
    messages) and simply contain nothing.
    """
    dirs: list[tuple[str, Path]] = []
    if weights is not None:
        dirs.append(("explicit", Path(weights).expanduser()))
    if weights_dir is not None:
        dirs.append(("weights_dir", Path(weights_dir).expanduser()))
    else:
        env = _env_path(ENV_WEIGHTS)
        if env is not None:
            dirs.append(("env", env))
    dirs.append(("cache", cache_dir()))
    return dirs


def find_file(
    spec: WeightFile, dirs: list[tuple[str, Path]], subdir: str | None = None, method_dir: str | None = None
) -> tuple[str, Path] | None:
    """First existing file: for each folder in order, ``dir/subdir/filename``, then ``dir/<method_dir>/filename``
    (the method's registered name, e.g. ``MicroAST``, or its lower-case spelling), then ``dir/filename``."""
    names = [subdir] if subdir else []
    if method_dir:
        names += [method_dir, method_dir.lower()]
    names = list(dict.fromkeys(names))
    for source, folder in dirs:
        candidates = [folder / name / spec.filename for name in names]
        candidates.append(folder / spec.filename)
        for path in candidates:
            if path.is_file():
                return source, path
    return None


class _Archives:
    """The release archives of one :func:`resolve_files` call: each looked up (or downloaded) once, whatever the
    number of its members, and its members extracted into the cache, verified."""

    def __init__(self, dirs: list[tuple[str, Path]], subdir: str | None, method_dir: str | None,
                 allow_download: bool, progress: bool) -> None:
        self.dirs, self.subdir, self.method_dir = dirs, subdir, method_dir
        self.allow_download, self.progress = allow_download, progress
        self.paths: dict[str, Path | None] = {}
        self.failures: dict[str, str] = {}
        self.reported: dict[str, str] = {}

    def _locate(self, archive: Archive) -> Path | None:
        """The archive on disk (in the search folders, or downloaded into the cache), or None."""
        found = find_file(WeightFile(archive.filename, sha256=archive.sha256), self.dirs, self.subdir, self.method_dir)
        if found is not None:
            return found[1]
        if not (self.allow_download and archive.downloadable):
            return None
        dest = cache_dir() / archive.filename
        if archive.url:
            _download(archive.url, dest, archive.sha256, None, self.progress)
        else:
            download_google_drive(archive.google_drive_id, dest, sha256=archive.sha256, progress=self.progress)
        return dest

    def path(self, archive: Archive) -> Path | None:
        if archive.filename not in self.paths:
            try:
                self.paths[archive.filename] = self._locate(archive)
            except ChecksumError:
                raise
            except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
                self.paths[archive.filename] = None
                self.failures[archive.filename] = _one_line(f"{type(exc).__name__}: {exc}")
        return self.paths[archive.filename]

    def member(self, spec: WeightFile) -> ResolvedFile | None:
        """``spec`` extracted from its archive into the cache (verified), or None when the archive is unavailable."""
        archive = self.path(spec.archive)
        if archive is None:
            return None
        folder = self.subdir or self.method_dir
        dest = (cache_dir() / folder if folder else cache_dir()) / spec.filename
        actual = extract_member(archive, spec.member, dest, sha256=spec.sha256, git_blob_sha1=spec.git_blob_sha1)
        return ResolvedFile(spec, dest, "archive", actual, True if (spec.sha256 or spec.git_blob_sha1) else None)

    def failure(self, spec: WeightFile) -> str | None:
        """Why the archive of ``spec`` could not be had: in full on its first missing member, else a reference."""
        key = spec.archive.filename
        if key not in self.failures:
            return None
        first = self.reported.setdefault(key, spec.filename)
        return self.failures[key] if first == spec.filename else f"see {first}"


# --------------------------------------------------------------------------- #
# Resolution
# --------------------------------------------------------------------------- #
def resolve_for_init(spec: WeightFile, loading: Loading) -> ResolvedFile | None:
    """The file ``spec`` of a network built with ``loading`` (:func:`resolve_files` for one file).

    ``init`` None/``"pretrained"``: found or downloaded (per ``download``), else :class:`MissingWeightsError`.
    ``"random"``: a file already on disk is still used, but downloaded only when ``download=True`` is explicit;
    ``None`` when not found (the caller then seeds a random network and flags it)."""
    download = bool(loading.download) if loading.random else loading.download
    try:
        return resolve_files([spec], weights=loading.weights, weights_dir=loading.weights_dir,
                             download=download)[spec.filename]
    except MissingWeightsError:
        if loading.random:
            return None
        raise


def _local_file(spec: WeightFile, source: str, path: Path) -> ResolvedFile:
    """A file found on disk, checked against its published checksums (a mismatch warns, ``verified=False``)."""
    actual = sha256_file(path)
    verified: bool | None = None
    if spec.sha256 or spec.git_blob_sha1:
        problems = checksum_mismatches(path, actual, spec.sha256, spec.git_blob_sha1)
        verified = not problems
        if problems:
            warnings.warn(f"weight file {path} does not match the official {spec.filename} "
                          f"({'; '.join(problems)}); using it anyway", stacklevel=3)
    return ResolvedFile(spec, path, source, actual, verified)


def resolve_files(
    files: Sequence[WeightFile],
    *,
    weights: str | os.PathLike | None = None,
    weights_dir: str | os.PathLike | None = None,
    subdir: str | None = None,
    method_dir: str | None = None,
    download: bool | None = None,
    progress: bool = True,
) -> dict[str, ResolvedFile]:
    """Find (or download) every file; return them keyed by file name.

    Order per file: explicit ``weights`` folder > ``weights_dir`` (or
    ``$HARNESS_WEIGHTS``) > cache > download into ``cache_dir()/subdir`` (only
    when ``download`` is True, or None and ``$HARNESS_OFFLINE`` is unset, and the
    file has a URL). Inside each folder, ``subdir`` and then ``method_dir`` (a method's own folder, e.g.
    ``<weights dir>/MicroAST/``) are looked in before the folder itself. Local files whose known checksum differs produce a warning
    and ``verified=False`` (one may keep an older release under the official
    name). Failed downloads count as missing. If anything is missing, ONE
    :class:`MissingWeightsError` lists all of it. A download whose checksum does
    not match raises :class:`ChecksumError`.
    """
    allow_download = (not _offline()) if download is None else bool(download)
    dirs = search_dirs(weights, weights_dir)
    resolved: dict[str, ResolvedFile] = {}
    missing: list[WeightFile] = []
    reasons: dict[str, str] = {}
    archives = _Archives(dirs, subdir, method_dir, allow_download, progress)

    for spec in files:
        found = find_file(spec, dirs, subdir, method_dir)
        if found is not None:
            resolved[spec.filename] = _local_file(spec, *found)
            continue

        if spec.archive is not None:
            record = archives.member(spec)
            if record is not None:
                resolved[spec.filename] = record
            else:
                missing.append(spec)
                if archives.failure(spec):
                    reasons[spec.filename] = archives.failure(spec)
            continue

        if allow_download and (spec.url or spec.google_drive_id):
            base = cache_dir()
            dest = (base / subdir if subdir else base) / spec.filename
            try:
                if spec.url:
                    actual = _download(spec.url, dest, spec.sha256, spec.git_blob_sha1, progress)
                else:
                    actual = sha256_file(download_google_drive(spec.google_drive_id, dest, sha256=spec.sha256,
                                                               progress=progress))
            except ChecksumError:
                raise
            except (urllib.error.URLError, TimeoutError, OSError, ValueError) as exc:
                reasons[spec.filename] = _one_line(f"{type(exc).__name__}: {exc}")
            else:
                verified = True if (spec.sha256 or spec.git_blob_sha1) else None
                resolved[spec.filename] = ResolvedFile(spec, dest, "download", actual, verified)
                continue
        missing.append(spec)

    if missing:
        raise MissingWeightsError(
            missing, dirs, cache=cache_dir(), subdir=subdir or method_dir, reasons=reasons,
            methods=[method_dir] * len(missing) if method_dir else None, downloads_enabled=allow_download,
            env_weights=ENV_WEIGHTS, env_offline=ENV_OFFLINE,
        )
    return resolved


# --------------------------------------------------------------------------- #
# State dicts
# --------------------------------------------------------------------------- #
def _is_tensor_dict(obj: object) -> bool:
    import torch
    return isinstance(obj, Mapping) and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items())


def _load_reason(exc: Exception) -> str:
    """A short one-line reason from a ``torch.load`` failure."""
    text = str(exc)
    marker = "WeightsUnpickler error:"
    if marker in text:
        tail = text.split(marker, 1)[1].split("Check the documentation", 1)[0]
        tail = _one_line(tail).split(" Please use", 1)[0]
        if "Unsupported global" in tail:
            return f"it holds pickled Python objects that torch.load(weights_only=True) refuses ({tail})"
        return f"not a readable torch file ({tail})"
    reason = _one_line(text) or "no details"
    return f"{type(exc).__name__}: {reason[:300]}"


def load_state_dict(path: str | os.PathLike, *, strip_prefix: str = "module.") -> dict[str, torch.Tensor]:
    """Load a state dict safely (``weights_only=True``) onto the CPU.

    Accepts a plain mapping of tensors, or a dict whose tensor mapping sits
    under ``"state_dict"`` or ``"model"``. A leading ``strip_prefix`` (e.g. the
    ``module.`` added by ``DataParallel``) is removed from every key that has
    it. Raises :class:`WeightsError` naming the file when it cannot be loaded
    or does not hold a mapping of str to Tensor.
    """
    import torch
    path = Path(path)
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, not a torch file, refused pickle, I/O error
        raise WeightsError(f"cannot load weight file {path}: {_load_reason(exc)}") from exc

    if isinstance(obj, Mapping) and not _is_tensor_dict(obj):
        for key in ("state_dict", "model"):
            if _is_tensor_dict(obj.get(key)):
                obj = obj[key]
                break
    if not _is_tensor_dict(obj):
        raise WeightsError(
            f"weight file {path} does not hold a state dict (a mapping of str to Tensor, "
            f"possibly under 'state_dict' or 'model'); got {type(obj).__name__}"
        )
    if strip_prefix:
        n = len(strip_prefix)
        return {(k[n:] if k.startswith(strip_prefix) else k): v for k, v in obj.items()}
    return dict(obj)


def _first(items: list[str]) -> str:
    shown = ", ".join(items[:_MAX_KEYS])
    return shown + (", ..." if len(items) > _MAX_KEYS else "")


def check_state_dict(
    module: torch.nn.Module | Mapping[str, torch.Tensor], state: Mapping[str, torch.Tensor], source: str
) -> None:
    """Raise :class:`StateDictMismatchError` unless ``state`` has exactly the
    keys and shapes of ``module.state_dict()`` (parameters and persistent buffers),
    or of ``module`` itself when it is already a mapping of expected tensors."""
    expected = module if isinstance(module, Mapping) else module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: file {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if not (missing or unexpected or shapes):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing key(s): {_first(missing)}")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected key(s): {_first(unexpected)}")
    if shapes:
        parts.append(f"{len(shapes)} shape mismatch(es): {_first(shapes)}")
    raise StateDictMismatchError(
        f"weight file {source} does not match "
        f"{'the model' if isinstance(module, Mapping) else type(module).__name__}: {'; '.join(parts)}"
    )


def load_into(
    module: torch.nn.Module,
    path_or_state: str | os.PathLike | Mapping[str, torch.Tensor],
    source: str | None = None,
) -> None:
    """Strictly load a file or state dict into ``module`` (values are copied
    and converted to the module's dtypes) after :func:`check_state_dict`."""
    if isinstance(path_or_state, Mapping):
        state = path_or_state
        source = source or "<state dict>"
    else:
        state = load_state_dict(path_or_state)
        source = source or str(path_or_state)
    check_state_dict(module, state, source)
    module.load_state_dict(state, strict=True)
