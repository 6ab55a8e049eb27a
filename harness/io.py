"""Reading and writing the harness's files: user-study vote CSVs, Middlebury ``.flo`` flows, harness checkpoints,
training states, video clips and their previews. Every write is atomic (:mod:`harness.atomic`); every read error is
one line naming the file (:mod:`harness.errors`). The tensors and tables these files hold are computed elsewhere
(:mod:`metrics.preference`, :mod:`metrics.temporal`, :mod:`methods.checkpoint`).
"""
from __future__ import annotations

import csv
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor
from PIL import Image, ImageSequence

from methods import Method, checkpoint_payload
from metrics.preference import COLUMNS as VOTE_COLUMNS
from metrics.preference import VoteProblem, votes_frame
from metrics.temporal import FLOW_BACKENDS, estimate_flow, flow_to_array, flow_to_tensor, resize_flow

from .atomic import atomic_path, write_bytes_atomic
from .errors import FlowFileError, ImageError, VideoError, VotesError
from .images import IMAGE_EXTENSIONS, list_images, load_image, resize_image

__all__ = [
    "FLO_TAG", "VIDEO_SUFFIXES", "Clip", "check_frame_sequence", "clip_name", "read_clip", "read_flo", "read_votes",
    "FlowSource", "save_checkpoint", "save_torch", "write_flo", "write_preview",
]


# ----------------------------------------------------------------------------------------------------------------------
# Votes (user studies)
# ----------------------------------------------------------------------------------------------------------------------
_VOTES_HEADER = ",".join(VOTE_COLUMNS)


def _vote_rows(reader, path: Path) -> Iterator[tuple[int, list[str]]]:
    """``(line, fields)`` of every non-blank row after the header, fields in :data:`VOTE_COLUMNS` order when the row
    has that many (``line``: the 1-based line where the row starts, multi-line quoted fields included)."""
    expected = f"expected the header {_VOTES_HEADER!r}"
    order: list[int] | None = None
    previous_end = 0
    for row in reader:
        line, previous_end = previous_end + 1, reader.line_num
        if not row or (len(row) == 1 and not row[0].strip()):  # blank line
            continue
        if order is None:
            header = [c.strip().casefold() for c in row]
            if sorted(header) != sorted(VOTE_COLUMNS) or len(set(header)) != len(header):
                raise VotesError(f"{path}: {expected}, found {','.join(c.strip() for c in row)!r}")
            order = [header.index(c) for c in VOTE_COLUMNS]
            continue
        yield line, [row[i] for i in order] if len(row) == len(VOTE_COLUMNS) else row
    if order is None:
        raise VotesError(f"{path}: the votes file is empty ({expected})")


def read_votes(path: str | os.PathLike, methods: Sequence[str] | None = None) -> tuple[pd.DataFrame, list[VoteProblem]]:
    """Read a votes CSV (header ``participant,group,question,method`` in any order and case, UTF-8 with or without
    a BOM) and validate it with :func:`metrics.preference.votes_frame`; returns ``(votes, problems)``.

    Raises :class:`~harness.errors.VotesError` (a ``ValueError``) when the file is missing or unreadable, empty, not
    UTF-8, malformed CSV, or its header is not those four columns (none missing, none extra).
    """
    path = Path(path)
    expected = f"expected the header {_VOTES_HEADER!r}"
    try:
        handle = open(path, newline="", encoding="utf-8-sig")
    except FileNotFoundError:
        raise VotesError(f"{path}: votes file not found ({expected})") from None
    except OSError as exc:
        raise VotesError(f"{path}: cannot read the votes file: {exc.strerror or exc} ({expected})") from None
    with handle:
        reader = csv.reader(handle)
        try:
            rows = list(_vote_rows(reader, path))
        except UnicodeDecodeError as exc:
            raise VotesError(f"{path}: not a UTF-8 text file ({exc.reason}) ({expected})") from None
        except csv.Error as exc:
            raise VotesError(f"{path}: line {reader.line_num}: malformed CSV ({exc})") from None
    return votes_frame(rows, methods, source=str(path))


# ----------------------------------------------------------------------------------------------------------------------
# Optical flow (.flo, Middlebury)
# ----------------------------------------------------------------------------------------------------------------------
FLO_TAG = 202021.25
"""The float32 magic number that opens a Middlebury ``.flo`` file (the bytes ``PIEH``)."""


def read_flo(path: str | os.PathLike) -> np.ndarray:
    """Read a Middlebury ``.flo`` file → ``(H, W, 2)`` float32 array (``[..., 0]`` = u, ``[..., 1]`` = v).

    Layout (little-endian): float32 tag 202021.25, int32 width, int32 height, then ``H·W`` interleaved float32
    ``(u, v)`` pairs in row-major order. Raises :class:`FlowFileError` (one line naming the file) when the file is
    missing, has a wrong tag, non-positive size or a byte count other than ``12 + 8·W·H``.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise FlowFileError(f"{p}: no such flow file") from None
    except IsADirectoryError:
        raise FlowFileError(f"{p}: is a folder, not a .flo file") from None
    except OSError as exc:
        raise FlowFileError(f"{p}: cannot read the flow file ({exc.strerror or exc})") from None
    if len(data) < 12:
        raise FlowFileError(f"{p}: not a .flo file (only {len(data)} bytes, the header alone has 12)")
    tag = float(np.frombuffer(data[:4], "<f4")[0])
    width, height = (int(v) for v in np.frombuffer(data[4:12], "<i4"))
    if tag != FLO_TAG:
        raise FlowFileError(f"{p}: not a .flo file (tag {tag!r}, expected {FLO_TAG})")
    if width < 1 or height < 1:
        raise FlowFileError(f"{p}: bad .flo size {width}x{height}")
    expected = 12 + 8 * width * height
    if len(data) != expected:
        raise FlowFileError(f"{p}: truncated or corrupt .flo file ({len(data)} bytes, {width}x{height} needs {expected})")
    return np.frombuffer(data[12:], "<f4").reshape(height, width, 2).astype(np.float32)


def write_flo(path: str | os.PathLike, flow: np.ndarray | Tensor) -> Path:
    """Write ``flow`` — ``(H, W, 2)`` array or ``(2, H, W)`` / ``(1, 2, H, W)`` tensor — as a ``.flo`` file, atomically
    (:func:`harness.atomic.write_bytes_atomic`); the parent folder is created. Returns the path."""
    array = flow_to_array(flow)
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    height, width = array.shape[:2]
    payload = (
        np.array([FLO_TAG], "<f4").tobytes()
        + np.array([width, height], "<i4").tobytes()
        + np.ascontiguousarray(array, dtype="<f4").tobytes()
    )
    return write_bytes_atomic(final, payload)


# ----------------------------------------------------------------------------------------------------------------------
# Checkpoints and training states
# ----------------------------------------------------------------------------------------------------------------------
def save_torch(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj)`` onto ``path`` atomically (the folder is created)."""
    path = Path(path)
    with atomic_path(path, make_parents=True) as tmp:
        torch.save(obj, tmp)
    return path


def save_checkpoint(method: Method, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``method``'s trainable state, options and metadata as a harness checkpoint
    (:func:`methods.checkpoint_payload`), atomically; ``create_method(name, weights=path)`` loads it."""
    return save_torch(checkpoint_payload(method, metadata), path)


# ----------------------------------------------------------------------------------------------------------------------
# Video clips and previews
# ----------------------------------------------------------------------------------------------------------------------
VIDEO_SUFFIXES: frozenset[str] = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".gif"})
"""Clip sources read as video files (``.gif`` with PIL, the others with OpenCV's ``VideoCapture``)."""
_GENERIC_FOLDER_NAMES = frozenset({"frames", "images", "rgb", "png", "jpg", "input", "content"})


def clip_name(source: str | os.PathLike) -> str:
    """A clip's name from its source: a video file's stem, a frames folder's name — or its parent's name when the
    folder has a generic name such as ``frames`` (``video/marple8/frames`` → ``marple8``)."""
    path = Path(source)
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return path.stem
    name = path.name or path.resolve().name
    if name.lower() in _GENERIC_FOLDER_NAMES and path.resolve().parent.name:
        return path.resolve().parent.name
    return name


@dataclass
class Clip:
    """A clip at the processing resolution: ``frames`` (N, H, W, 3) uint8 RGB, the source's frame names and sizes."""

    name: str
    source: Path
    frame_names: list[str]
    frames: np.ndarray
    native_size: tuple[int, int]  # (H, W) before resizing

    @property
    def size(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def tensor(self, index: int) -> torch.Tensor:
        """Frame ``index`` (0-based) as a ``(1, 3, H, W)`` float32 tensor in [0, 1]."""
        return frame_to_tensor(self.frames[index])


def frame_to_tensor(frame: np.ndarray) -> torch.Tensor:
    """``(H, W, 3)`` uint8 → ``(1, 3, H, W)`` float32 in [0, 1] (= ToTensor)."""
    return torch.from_numpy(np.array(frame, dtype=np.uint8)).permute(2, 0, 1).unsqueeze(0).to(torch.float32).div_(255.0)


_TRAILING_NUMBER = re.compile(r"^(.*?)(\d+)$")


def check_frame_sequence(paths: Sequence[Path]) -> None:
    """When every frame name is ``<common prefix><number>``, the numbers must advance by a constant step (the
    smallest one): a jump means a frame is missing → :class:`ImageError` naming the gap. Otherwise nothing is
    checked."""
    matches = [_TRAILING_NUMBER.match(p.stem) for p in paths]
    if len(paths) < 2 or not all(matches) or len({m.group(1) for m in matches}) != 1:  # type: ignore[union-attr]
        return
    numbers = np.array([int(m.group(2)) for m in matches])  # type: ignore[union-attr]
    steps = np.diff(numbers)
    step = int(steps.min())
    if step <= 0:
        return
    bad = np.flatnonzero(steps != step)
    if bad.size:
        i = int(bad[0])
        missing = numbers[i] + step
        raise ImageError(f"{paths[i].parent}: frame {missing} is missing ({paths[i].name} is followed by "
                         f"{paths[i + 1].name}, step {step})")


def _resize_frame(img: Image.Image, size: int | None) -> np.ndarray:
    return np.asarray(resize_image(img, size, keep_aspect=True), dtype=np.uint8)


def _read_video_file(path: Path, max_frames: int | None) -> tuple[list[str], list[Image.Image]]:
    """Decode a video file: GIF with PIL, anything else with OpenCV; frames named ``<file>#<i>`` (1-based)."""
    images: list[Image.Image] = []
    if path.suffix.lower() == ".gif":
        try:
            with Image.open(path) as gif:
                for frame in ImageSequence.Iterator(gif):
                    images.append(frame.convert("RGB"))
                    if max_frames is not None and len(images) >= max_frames:
                        break
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ImageError(f"{path}: cannot decode the GIF ({type(exc).__name__}: {' '.join(str(exc).split())})") from None
    else:
        import cv2

        capture = cv2.VideoCapture(str(path))
        try:
            if not capture.isOpened():
                raise ImageError(f"{path}: cannot open the video (not a video file, or a codec OpenCV lacks)")
            while max_frames is None or len(images) < max_frames:
                ok, bgr = capture.read()
                if not ok:
                    break
                images.append(Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
        finally:
            capture.release()
    return [f"{path.name}#{i + 1}" for i in range(len(images))], images


def read_clip(name: str, source: str | os.PathLike, size: int | None = None, max_frames: int | None = None) -> Clip:
    """Read a clip — a folder of frames (png, jpg, ppm, …; natural sort order, top level only) or a video file
    (:data:`VIDEO_SUFFIXES`) — and resize every frame so that its shorter side is ``size`` (None: native).

    Every frame is decoded here, so a missing, corrupt or odd-sized frame stops the run before any work with one
    :class:`ImageError` line naming the file; a clip needs at least 2 frames (:class:`VideoError`).
    """
    path = Path(source)
    if not path.exists():
        raise ImageError(f"{path}: no such frames folder or video file (clip {name!r})")
    if path.is_dir():
        paths = list_images(path, recursive=False)
        check_frame_sequence(paths)
        if max_frames is not None:
            paths = paths[:max_frames]
        names = [p.name for p in paths]
        images = [load_image(p) for p in paths]
    elif path.suffix.lower() in VIDEO_SUFFIXES:
        names, images = _read_video_file(path, max_frames)
    elif path.suffix.lower() in IMAGE_EXTENSIONS:
        raise VideoError(f"{path}: a single image is not a clip; give the folder of frames")
    else:
        raise ImageError(f"{path}: unsupported clip source (a frames folder or a video file "
                         f"{', '.join(sorted(VIDEO_SUFFIXES))})")
    if len(images) < 2:
        raise VideoError(f"{path}: clip {name!r} has {len(images)} frame(s); the temporal error needs at least 2")
    native = images[0].size
    for frame_name, img in zip(names, images):
        if img.size != native:
            raise ImageError(f"{path / frame_name if path.is_dir() else frame_name}: frame is {img.size[0]}x"
                             f"{img.size[1]} but the clip's first frame is {native[0]}x{native[1]}")
    frames = np.stack([_resize_frame(img, size) for img in images])
    return Clip(name, path, names, frames, (native[1], native[0]))


class _NoVideo(Exception):
    """OpenCV could not write the mp4 (no encoder for ``mp4v``)."""


def _write_gif(frames: np.ndarray, final: Path, fps: float) -> Path:
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(final) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=max(1, round(1000.0 / fps)), loop=0)
    return final


def write_preview(frames: np.ndarray, path_stem: str | os.PathLike, fmt: str = "mp4", fps: float = 12.0
                  ) -> tuple[Path | None, str | None]:
    """Write ``frames`` (N, H, W, 3) uint8 RGB as ``<path_stem>.mp4`` (OpenCV ``VideoWriter``, fourcc ``mp4v``) or
    ``.gif`` (PIL), atomically. Returns ``(path or None, note)``: when OpenCV cannot write the mp4, a GIF is written
    instead and ``note`` says so; ``fmt="none"`` writes nothing."""
    if fmt == "none":
        return None, None
    stem = Path(path_stem)
    stem.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "gif":
        return _write_gif(frames, stem.with_suffix(".gif"), fps), None
    import cv2

    final = stem.with_suffix(".mp4")
    height, width = frames.shape[1:3]
    try:
        with atomic_path(final) as tmp:
            writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), (int(width), int(height)))
            try:
                if writer.isOpened():
                    for frame in frames:
                        writer.write(cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2BGR))
            finally:
                writer.release()
            if not (tmp.is_file() and tmp.stat().st_size > 0):
                raise _NoVideo
        return final, None
    except _NoVideo:
        pass
    gif = _write_gif(frames, stem.with_suffix(".gif"), fps)
    return gif, f"{final}: OpenCV could not write an mp4 (codec mp4v unavailable); wrote {gif.name} instead"


# ----------------------------------------------------------------------------------------------------------------------
# The flows of a clip
# ----------------------------------------------------------------------------------------------------------------------
class FlowSource:
    """Backward and forward flow between two frames of a clip: estimated with OpenCV on the input frames, or read
    from ``.flo`` files (resampled to the frames' size with :func:`metrics.temporal.resize_flow`)."""

    def __init__(self, flow: str, clip: Clip, n_clips: int) -> None:
        self.backend = flow if flow in FLOW_BACKENDS else None
        self.folder: Path | None = None
        if self.backend is None:
            folder = Path(flow)
            self.folder = folder / clip.name if (folder / clip.name).is_dir() else folder
            if n_clips > 1 and self.folder == folder:
                raise VideoError(f"flow folder {folder}: with several clips it needs one subfolder per clip "
                                 f"(missing {folder / clip.name})")
        self.clip = clip

    def paths(self, t: int, s: int) -> tuple[Path, Path]:
        """``backward_<t>_<s>.flo`` and ``forward_<s>_<t>.flo`` for 0-based frames t, s (1-based in the names)."""
        assert self.folder is not None
        return self.folder / f"backward_{t + 1}_{s + 1}.flo", self.folder / f"forward_{s + 1}_{t + 1}.flo"

    def available(self, t: int, s: int) -> bool:
        return self.backend is not None or all(p.is_file() for p in self.paths(t, s))

    def __call__(self, t: int, s: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``(w_{t→s}, w_{s→t})`` as ``(1, 2, H, W)`` float32 tensors at the clip's processing size."""
        if self.backend is not None:
            frames = self.clip.frames
            backward = estimate_flow(frames[t], frames[s], self.backend)
            forward = estimate_flow(frames[s], frames[t], self.backend)
            return flow_to_tensor(backward), flow_to_tensor(forward)
        backward_path, forward_path = self.paths(t, s)
        return tuple(resize_flow(flow_to_tensor(read_flo(p)), self.clip.size) for p in (backward_path, forward_path))
