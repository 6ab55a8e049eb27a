"""Reading, converting, resizing and saving images for the evaluation harness.

Every image that enters the harness goes through :func:`load_image`, which always
returns a fully decoded 8-bit ``"RGB"`` :class:`PIL.Image.Image` (EXIF orientation
applied, transparency composited over white, 16/32-bit and float grey levels scaled
to 0..255) or raises :class:`ImageError` with a one-line message naming the file.

Tensors follow the torchvision convention: ``(1, 3, H, W)`` (or ``(3, H, W)``)
``float32`` with values in ``[0, 1]``.  :func:`tensor_to_image` converts back with the
truncating ``(x.clamp(0, 1) * 255).to(uint8)`` rule of the official StyA2K / AdaIN
test code, so saved outputs match theirs bit for bit.
"""

from __future__ import annotations

import os
import re
import struct
import warnings
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from .atomic import atomic_path
from .errors import ImageError, ImageWarning

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageError",
    "load_image",
    "image_to_tensor",
    "resize_image",
    "load_image_tensor",
    "tensor_to_image",
    "save_image",
    "list_images",
    "natural_key",
]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".ppm", ".pgm", ".pbm", ".tif", ".tiff", ".gif"}
)

_EXTENSIONS_TEXT = ", ".join(sorted(IMAGE_EXTENSIONS))
_ALPHA_MODES = frozenset({"LA", "La", "PA", "RGBA", "RGBa"})
_WHITE = (255, 255, 255)


def _one_line(text: object) -> str:
    """Collapse all whitespace runs (newlines included) into single spaces."""
    return " ".join(str(text).split())


def _error(path: str | os.PathLike, problem: str) -> ImageError:
    """Build the one-line ``ImageError("<path>: <problem>")``."""
    return ImageError(_one_line(f"{os.fspath(path)}: {problem}"))


# --------------------------------------------------------------------------- loading


def load_image(path: str | os.PathLike) -> Image.Image:
    """Open and fully decode an image file as an 8-bit ``"RGB"`` PIL image.

    EXIF orientation is applied; for multi-frame files (GIF, TIFF) the first frame is
    used.  Mode handling (see :func:`_to_rgb`): transparency is composited over white,
    16-bit grey keeps its high byte (65535 -> 255, 32768 -> 128, as PIL does for
    16-bit RGB), float grey is read as 0..1 when its maximum is <= 1, else 0..255.

    Truncated files are only detected while ``PIL.ImageFile.LOAD_TRUNCATED_IMAGES``
    keeps its default ``False``; this module never changes it.

    Warns (:class:`~harness.errors.ImageWarning`, naming the file) where the pixels decode but the file may be
    damaged or hostile: a PNG chunk whose CRC does not match (PIL does not check the image-data chunks' CRCs), or
    an image above PIL's decompression-bomb warning size (``MAX_IMAGE_PIXELS``; twice that is an error).

    Raises:
        ImageError: the path is missing, a folder, unreadable, not an image,
            truncated/corrupt, of an unconvertible mode, or larger than
            ``PIL.Image.MAX_IMAGE_PIXELS`` allows.
    """
    p = Path(path)
    if not p.exists():
        raise _error(p, "no such file")
    if p.is_dir():
        raise _error(p, "is a folder, not an image file (use list_images() to read a folder)")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with Image.open(p) as img:
                img.load()  # full decode now: truncation/corruption surfaces here, not later
                is_png = img.format == "PNG"
                img = ImageOps.exif_transpose(img)  # returns a detached copy
        _reissue(caught, p)
    except Image.DecompressionBombError as e:
        raise _error(
            p,
            f"image is too large to decode safely ({_one_line(e)}); if the file is trusted, "
            "raise PIL.Image.MAX_IMAGE_PIXELS",
        ) from e
    except UnidentifiedImageError as e:
        raise _error(p, "not a recognised image file (PIL cannot identify its format)") from e
    except PermissionError as e:
        raise _error(p, f"cannot read the file ({e.strerror or 'permission denied'})") from e
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, KeyError, TypeError) as e:
        # PIL reports truncated / corrupt data with a zoo of exception types.
        raise _error(
            p,
            f"cannot decode the image, the file is truncated or corrupt ({type(e).__name__}: "
            f"{_one_line(e) or 'no details'}); re-download or re-export it",
        ) from e
    problem = png_checksum_problem(p) if is_png else None
    if problem is not None:
        warnings.warn(f"{p}: PNG checksum mismatch ({problem}); the pixels decoded, but the file may be damaged: "
                      "re-export or re-download it", ImageWarning, stacklevel=2)
    try:
        return _to_rgb(img)
    except (ValueError, OSError) as e:
        raise _error(p, f"cannot convert image mode {img.mode!r} to RGB ({_one_line(e)})") from e


def _reissue(caught: list[warnings.WarningMessage], path: Path) -> None:
    """Warnings PIL gave while decoding ``path``, again: its decompression-bomb warning naming the file (PIL's
    does not), any other as it was."""
    for w in caught:
        if issubclass(w.category, Image.DecompressionBombWarning):
            warnings.warn(_one_line(f"{path}: {w.message}; decoded anyway (it is below twice the limit), check that "
                                    "the file is what you expect"), ImageWarning, stacklevel=3)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def png_checksum_problem(path: str | os.PathLike) -> str | None:
    """The first PNG chunk of ``path`` whose stored CRC-32 differs from its data's (``"chunk IDAT #2: stored CRC
    0x..., computed 0x..."``), ``None`` where every chunk checks out or the file is not a PNG."""
    data = Path(path).read_bytes()
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    offset, seen = 8, {}
    while offset + 12 <= len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        kind = data[offset + 4:offset + 8]
        end = offset + 8 + length
        if end + 4 > len(data):
            return None  # truncated: PIL reports it while decoding
        (stored,) = struct.unpack_from(">I", data, end)
        computed = zlib.crc32(data[offset + 4:end]) & 0xFFFFFFFF
        seen[kind] = seen.get(kind, 0) + 1
        if stored != computed:
            name = kind.decode("latin-1")
            return f"chunk {name} #{seen[kind]}: stored CRC 0x{stored:08x}, computed 0x{computed:08x}"
        if kind == b"IEND":
            return None
        offset = end + 4
    return None


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert a PIL image of any supported mode to 8-bit ``"RGB"``.

    * ``"RGB"``: unchanged (a 16-bit RGB PNG is already reduced to it by PIL).
    * ``"1"``, ``"L"``, ``"P"``, ``"CMYK"``, ``"YCbCr"``, ...: PIL's ``convert("RGB")``.
    * alpha (``"LA"``, ``"PA"``, ``"RGBA"``, palette or colour-key transparency):
      composited over white.
    * ``"I;16*"``: high byte of the 16-bit value (``v >> 8``).
    * ``"I"`` (32-bit signed): negatives -> 0; if all values fit in 0..65535 it is
      16-bit data (``v >> 8``), otherwise the 0..2**31-1 range is mapped to 0..255.
    * ``"F"``: NaN -> 0; 0..1 if the maximum is <= 1, else 0..255; clipped, rounded.
    """
    mode = img.mode
    if mode.startswith("I;16"):
        grey = (np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if mode == "I":
        values = np.clip(np.asarray(img, dtype=np.int64), 0, None)
        shift = 8 if values.size == 0 or values.max() <= 0xFFFF else 23
        return Image.fromarray((values >> shift).astype(np.uint8), mode="L").convert("RGB")
    if mode == "F":
        values = np.nan_to_num(np.asarray(img, dtype=np.float64), nan=0.0)
        scale = 255.0 if values.size == 0 or values.max() <= 1.0 else 1.0
        grey = np.floor(np.clip(values * scale, 0.0, 255.0) + 0.5).astype(np.uint8)
        return Image.fromarray(grey, mode="L").convert("RGB")
    if _has_alpha(img):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img if mode == "RGB" else img.convert("RGB")


def _has_alpha(img: Image.Image) -> bool:
    """True for alpha modes, palette/colour-key transparency, or an RGBA palette."""
    if img.mode in _ALPHA_MODES or "transparency" in img.info:
        return True
    return getattr(img, "has_transparency_data", False) is True  # property in Pillow >= 10.1


def image_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> ``(1, 3, H, W)`` float32 tensor in ``[0, 1]`` (= ``ToTensor()`` + batch dim).

    Non-RGB images are first converted with the same rules as :func:`load_image`.
    """
    array = np.asarray(_to_rgb(img), dtype=np.uint8)  # (H, W, 3)
    tensor = torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
    return tensor.to(torch.float32).div_(255.0).unsqueeze(0)


def resize_image(
    img: Image.Image, size: int | tuple[int, int] | None, keep_aspect: bool = False
) -> Image.Image:
    """Resize with bicubic interpolation (``PIL.Image.BICUBIC``, as torchvision's ``Resize``).

    Args:
        img: any PIL image.
        size: ``None`` -> returned unchanged; an ``int`` -> ``size x size`` (aspect
            ratio NOT preserved: the official StyA2K/AdaIN test protocol) unless
            ``keep_aspect``; an ``(h, w)`` tuple -> exactly ``h x w`` (``keep_aspect``
            is ignored).
        keep_aspect: with an ``int`` size, the shorter side becomes ``size`` and the
            other ``max(1, round(other * size / shorter))``.
    """
    if size is None:
        return img
    if isinstance(size, int) and not isinstance(size, bool):
        if size < 1:
            raise ValueError(f"resize size must be >= 1, got {size}")
        if not keep_aspect:
            return img.resize((size, size), Image.BICUBIC)
        w, h = img.size
        if w <= h:
            target = (size, max(1, round(h * size / w)))
        else:
            target = (max(1, round(w * size / h)), size)
        return img.resize(target, Image.BICUBIC)
    if isinstance(size, Sequence) and len(size) == 2 and all(isinstance(s, int) and s >= 1 for s in size):
        h, w = size
        return img.resize((w, h), Image.BICUBIC)
    raise ValueError(f"resize size must be None, a positive int or an (h, w) pair of positive ints, got {size!r}")


def load_image_tensor(
    path: str | os.PathLike, size: int | tuple[int, int] | None = None, keep_aspect: bool = False
) -> torch.Tensor:
    """:func:`load_image` -> :func:`resize_image` -> :func:`image_to_tensor`.

    Returns a ``(1, 3, H, W)`` float32 tensor in ``[0, 1]``; raises :class:`ImageError`.
    """
    return image_to_tensor(resize_image(load_image(path), size, keep_aspect))


# --------------------------------------------------------------------------- saving


def tensor_to_image(t: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` or ``(1, 3, H, W)`` float tensor -> 8-bit ``"RGB"`` PIL image.

    Values are clamped to ``[0, 1]``, multiplied by 255 and TRUNCATED (not rounded):
    the ``(x.clamp(0, 1) * 255).to(uint8)`` rule of the official test code, computed
    in float32 (0.5 -> 127, 0.999 -> 254, 1.0 -> 255).  NaN becomes 0.

    Raises:
        ValueError: wrong shape (batch > 1, not 3 channels) or a non-float dtype.
    """
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(t).__name__}")
    shape = tuple(t.shape)
    if t.dim() == 4 and shape[0] == 1:
        t = t[0]
    if t.dim() != 3 or t.shape[0] != 3:
        raise ValueError(f"expected an image tensor of shape (3, H, W) or (1, 3, H, W), got {shape}")
    if not t.is_floating_point():
        raise ValueError(f"expected a float image tensor in [0, 1], got dtype {t.dtype} (shape {shape})")
    x = torch.nan_to_num(t.detach().to("cpu", torch.float32), nan=0.0)
    array = (x.clamp(0.0, 1.0) * 255.0).to(torch.uint8).permute(1, 2, 0).contiguous().numpy()
    return Image.fromarray(array, mode="RGB")


def save_image(t_or_img: torch.Tensor | Image.Image, path: str | os.PathLike) -> Path:
    """Save a tensor (see :func:`tensor_to_image`) or a PIL image atomically; return the path.

    The image is written to a hidden temporary file with the same suffix in the same
    folder and then moved onto ``path`` with :func:`os.replace`, so readers never see a
    partial file.  The parent folder is created.  The format comes from the suffix;
    JPEG is saved with quality 95 (after conversion to RGB if needed).
    """
    final = Path(path)
    fmt = Image.registered_extensions().get(final.suffix.lower())
    if fmt is None:
        raise ValueError(f"{final}: cannot tell the image format from the suffix {final.suffix!r} (use .png or .jpg)")
    img = tensor_to_image(t_or_img) if isinstance(t_or_img, torch.Tensor) else t_or_img
    if not isinstance(img, Image.Image):
        raise TypeError(f"expected a torch.Tensor or PIL image, got {type(t_or_img).__name__}")
    options: dict[str, object] = {}
    if fmt == "JPEG":
        options["quality"] = 95
        if img.mode not in ("RGB", "L", "CMYK"):
            img = _to_rgb(img)

    with atomic_path(final, make_parents=True) as tmp:
        img.save(tmp, format=fmt, **options)
    return final


# --------------------------------------------------------------------------- listing

_DIGITS = re.compile(r"([0-9]+)")


def natural_key(s: str) -> tuple:
    """Natural, case-insensitive sort key: ``"frame2" < "frame10" < "Frame11"``.

    Returns ``(chunks, s)`` where ``chunks`` alternates text (casefolded) and integers,
    always starting with text, so keys of any two strings compare without type
    errors; the original string breaks ties (``"f02"`` vs ``"f2"``) deterministically.
    """
    parts = _DIGITS.split(s)
    chunks = tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts))
    return (chunks, s)


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _list_folder(folder: Path, recursive: bool) -> list[Path]:
    """Image files under ``folder`` (hidden entries skipped), natural order of relative path."""
    found: list[Path] = []
    seen_dirs: set[str] = set()
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen_dirs:  # symlink loop
            dirs[:] = []
            continue
        seen_dirs.add(real)
        dirs[:] = [d for d in dirs if not d.startswith(".")] if recursive else []
        root_path = Path(root)
        found.extend(
            root_path / f for f in files if not f.startswith(".") and _is_image_name(f) and (root_path / f).is_file()
        )
    found.sort(key=lambda p: tuple(natural_key(part) for part in p.relative_to(folder).parts))
    return found


def list_images(
    source: str | os.PathLike | Sequence[str | os.PathLike], recursive: bool = True
) -> list[Path]:
    """Expand a folder, an image file, or a sequence of them into a list of image paths.

    Folders are walked (recursively unless ``recursive=False``) for files whose suffix
    (case-insensitive) is in :data:`IMAGE_EXTENSIONS`, skipping hidden files and
    folders, and listed in natural order of their relative path (``frame2 < frame10``).
    A sequence is expanded item by item and concatenated in the given order.

    Raises:
        ImageError: a path does not exist, a folder holds no images, a file has an
            unsupported suffix, or the sequence is empty.
    """
    if isinstance(source, (str, os.PathLike)):
        items: list[str | os.PathLike] = [source]
    else:
        items = list(source)
        if not items:
            raise ImageError("list_images: an empty list of images/folders was given")
    result: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            images = _list_folder(p, recursive)
            if not images:
                where = "" if recursive else " (top level only)"
                raise _error(p, f"no images found{where} (looked for {_EXTENSIONS_TEXT})")
            result.extend(images)
        elif p.is_file():
            if not _is_image_name(p.name):
                raise _error(p, f"unsupported file type {p.suffix or '(no suffix)'!r} (supported: {_EXTENSIONS_TEXT})")
            result.append(p)
        elif p.exists() or p.is_symlink():
            raise _error(p, "not a regular file or folder (broken link?)")
        else:
            raise _error(p, "no such file or folder")
    return result
