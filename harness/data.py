"""Training data: image folders, the official preprocessing, and a deterministic, resumable pairing of content and
style images (spec §6.1, §11).

Everything random here is a pure function of ``(seed, epoch, position)``, never of a generator's running state:

* which content/style images make up each step's batch (:class:`PairSchedule`);
* each image's random crop and flip (:class:`Preprocess`, seeded per sample).

So a run resumed at step k draws exactly the batches and crops an uninterrupted run draws from step k on, whatever
the number of DataLoader workers, and the "sampler state" to save is just the seed, the epoch and the position in it.

Pairings (``recipe.pairing``):

* ``random_style_per_content`` (StyA2K): epoch e visits a seeded permutation of the content set once; the image at
  position i is paired with a uniformly random style index (with replacement), seeded per epoch. ``drop_last=False``:
  the last batch of an epoch holds what is left, and a content folder smaller than a batch gives one short batch per
  epoch. Under DDP each rank takes every ``world_size``-th position of the epoch's permutation (padded by wrapping
  around, like ``DistributedSampler``), so all ranks run the same number of steps.
* ``independent`` (pytorch-AdaIN): content and style come from two infinite samplers, each an endless concatenation
  of seeded permutations of its folder; every batch is full. An "epoch" is ⌈N_content / B⌉ steps (schedule only).

Preprocessing, per image (official ``resize_and_crop``): RGB → resize to exactly ``load_size``×``load_size`` bicubic
(``keep_aspect``: shorter side = ``load_size``) → random ``crop``×``crop`` crop → random horizontal flip (p = 0.5) if
``hflip`` → float tensor in [0, 1]. The resize scales small images *up*, so every image is large enough for the crop
whenever ``load_size ≥ crop`` (checked); an image whose resized side would still be smaller than the crop is scaled
so that its shorter side equals the crop.

Unreadable or corrupt files are skipped: the draw moves on deterministically to the next index (``i + 1 mod N``) of
the same folder, and the skipped file is reported back with the batch (see :func:`collate`) so the training loop
can warn once per file and count it.
"""
from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from methods.errors import literal

from .errors import ImageError
from .images import image_to_tensor, list_images, load_image, resize_image

__all__ = [
    "TRAIN_EXTENSIONS",
    "PairDataset",
    "PairSchedule",
    "Preprocess",
    "StepBatchSampler",
    "collate",
    "folder_fingerprint",
    "list_training_images",
    "first_readable",
]

TRAIN_EXTENSIONS: frozenset[str] = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".ppm"})
"""Image suffixes a training folder is read for (case-insensitive)."""

SampleKey = tuple[int, int, int, int]
"""(content index, style index, epoch, position): everything one training sample depends on."""


def list_training_images(folder: str | Path, role: str) -> list[Path]:
    """The training images (``TRAIN_EXTENSIONS``) under ``folder``, recursively, in natural order.

    Raises :class:`ImageError` (one line naming the folder and ``role``, the setting, e.g. ``content_dir``) when the folder is
    missing, not a folder, or holds no training images.
    """
    folder = Path(folder)
    if not folder.exists():
        raise ImageError(f"{{{role}}} {literal(folder)}: no such folder", template=True)
    if not folder.is_dir():
        raise ImageError(f"{{{role}}} {literal(folder)}: not a folder (give a folder of training images)",
                         template=True)
    try:
        found = list_images(folder)
    except ImageError:  # an existing folder without any image
        found = []
    paths = [p for p in found if p.suffix.lower() in TRAIN_EXTENSIONS]
    if not paths:
        raise ImageError(
            f"{{{role}}} {literal(folder)}: no training images found (looked recursively for "
            f"{', '.join(sorted(TRAIN_EXTENSIONS))})", template=True
        )
    return paths


def folder_fingerprint(paths: Sequence[Path], root: Path) -> str:
    """sha256 of the relative paths (in order): the data order of a run depends on exactly this list."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(str(Path(path).relative_to(root)).encode("utf-8", "surrogateescape") + b"\0")
    return digest.hexdigest()


def first_readable(paths: Sequence[Path], role: str) -> tuple[int, list[tuple[str, str]]]:
    """Index of the first image that decodes, and the ``(path, reason)`` of the unreadable ones before it.

    Raises :class:`ImageError` when no image of the folder can be read (checked before any model is built).
    """
    skipped: list[tuple[str, str]] = []
    for index, path in enumerate(paths):
        try:
            load_image(path)
        except ImageError as exc:
            skipped.append((str(path), str(exc)))
            continue
        return index, skipped
    raise ImageError(f"{role}: none of the {len(paths)} image(s) can be read (first: {literal(skipped[0][1])})",
                     template=True)


# ----------------------------------------------------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Preprocess:
    """The official training transform (see the module docstring); ``rng`` makes the crop and flip reproducible."""

    load_size: int
    crop: int
    keep_aspect: bool = False
    hflip: bool = True

    def __post_init__(self) -> None:
        if self.crop < 1 or self.load_size < 1:
            raise ValueError(f"crop and load size must be positive, got crop {self.crop}, load size {self.load_size}")
        if self.load_size < self.crop:
            raise ValueError(
                f"the load size {self.load_size} is smaller than the crop {self.crop}: images are resized to the "
                "load size before cropping, so it must be at least the crop"
            )

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> torch.Tensor:
        """PIL RGB image → (3, crop, crop) float32 in [0, 1]."""
        image = resize_image(image, self.load_size, keep_aspect=self.keep_aspect)
        width, height = image.size
        if min(width, height) < self.crop:  # cannot happen when load_size ≥ crop; kept as a guarantee
            image = resize_image(image, self.crop, keep_aspect=True)
            width, height = image.size
        top = int(rng.integers(0, height - self.crop + 1))
        left = int(rng.integers(0, width - self.crop + 1))
        image = image.crop((left, top, left + self.crop, top + self.crop))
        if self.hflip and rng.random() < 0.5:
            image = image.transpose(Image.FLIP_LEFT_RIGHT)
        return image_to_tensor(image)[0]


def sample_rng(seed: int, epoch: int, position: int, role: int) -> np.random.Generator:
    """The generator of one image of one sample: a pure function of (seed, epoch, position, role)."""
    return np.random.default_rng([*_seed_words(seed), epoch, position, role, 0x5EED])


def _seed_words(seed: int) -> tuple[int, int]:
    """Any Python int seed (negative too) → two non-negative 32-bit words for ``np.random.default_rng``."""
    return seed & 0xFFFFFFFF, (seed >> 32) & 0xFFFFFFFF


# ----------------------------------------------------------------------------------------------------------------------
# Pairing / sampling
# ----------------------------------------------------------------------------------------------------------------------
class PairSchedule:
    """Which (content, style) pairs make up the batch of each global optimiser step, for one rank.

    Stateless: :meth:`batch` is a pure function of the step, so resuming needs only the step number.
    """

    _CONTENT, _STYLE = 1, 2

    def __init__(
        self,
        n_content: int,
        n_style: int,
        batch_size: int,
        seed: int,
        pairing: str = "random_style_per_content",
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if n_content < 1 or n_style < 1:
            raise ValueError("need at least one content and one style image")
        if pairing not in ("random_style_per_content", "independent"):
            raise ValueError(f"unknown pairing {pairing!r}; choose random_style_per_content or independent")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.n_content, self.n_style = n_content, n_style
        self.batch_size, self.seed, self.pairing = batch_size, seed, pairing
        self.rank, self.world_size = rank, world_size
        self.per_rank = math.ceil(n_content / world_size)
        self.steps_per_epoch = math.ceil(self.per_rank / batch_size)
        self._cache: dict[tuple, np.ndarray] = {}

    def state(self) -> dict:
        """What the sampler depends on (saved in the training state for checks and for the record)."""
        return {"pairing": self.pairing, "seed": self.seed, "n_content": self.n_content, "n_style": self.n_style,
                "batch_size": self.batch_size, "rank": self.rank, "world_size": self.world_size,
                "steps_per_epoch": self.steps_per_epoch}

    def _draw(self, key: tuple, make) -> np.ndarray:
        if key not in self._cache:
            if len(self._cache) > 8:
                self._cache.pop(next(iter(self._cache)))
            self._cache[key] = make(np.random.default_rng([*_seed_words(self.seed), *key]))
        return self._cache[key]

    def _epoch_arrays(self, epoch: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """This rank's (content indices, style indices, positions) in ``epoch`` (random_style_per_content)."""
        order = self._draw((epoch, self._CONTENT), lambda g: g.permutation(self.n_content))
        styles = self._draw((epoch, self._STYLE), lambda g: g.integers(0, self.n_style, size=self.n_content))
        positions = np.arange(self.per_rank * self.world_size) % self.n_content  # padded by wrapping around
        mine = positions[self.rank :: self.world_size]
        return order[mine], styles[mine], mine

    def _stream(self, sample: int, n: int, tag: int) -> int:
        cycle, offset = divmod(sample, n)
        return int(self._draw((cycle, tag, 0xC1C1E), lambda g: g.permutation(n))[offset])

    def epoch_of(self, step: int) -> int:
        return step // self.steps_per_epoch

    def batch(self, step: int) -> list[SampleKey]:
        """The sample keys of global optimiser step ``step`` (0-based) on this rank."""
        epoch, index = divmod(step, self.steps_per_epoch)
        if self.pairing == "random_style_per_content":
            contents, styles, positions = self._epoch_arrays(epoch)
            sl = slice(index * self.batch_size, (index + 1) * self.batch_size)
            return [(int(c), int(s), epoch, int(p)) for c, s, p in zip(contents[sl], styles[sl], positions[sl])]
        keys = []
        for j in range(self.batch_size):
            sample = (step * self.world_size + self.rank) * self.batch_size + j
            keys.append((self._stream(sample, self.n_content, self._CONTENT),
                         self._stream(sample, self.n_style, self._STYLE), epoch, sample))
        return keys


class StepBatchSampler:
    """A DataLoader ``batch_sampler`` yielding the sample keys of steps ``start`` … ``stop - 1``."""

    def __init__(self, schedule: PairSchedule, start: int, stop: int) -> None:
        self.schedule, self.start, self.stop = schedule, start, stop

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[SampleKey]]:
        for step in range(self.start, self.stop):
            yield self.schedule.batch(step)


# ----------------------------------------------------------------------------------------------------------------------
# Dataset
# ----------------------------------------------------------------------------------------------------------------------
class PairDataset(Dataset):
    """Maps a :data:`SampleKey` to ``(content, style, skipped)``: two (3, crop, crop) tensors and the
    ``(path, reason)`` of every unreadable file hit on the way (replaced by the next index of the same folder)."""

    def __init__(self, content: Sequence[Path], style: Sequence[Path], preprocess: Preprocess, seed: int) -> None:
        self.content = [Path(p) for p in content]
        self.style = [Path(p) for p in style]
        self.preprocess = preprocess
        self.seed = seed
        self._bad: set[Path] = set()  # per process (each worker has its own copy); only saves repeated decodes

    def __len__(self) -> int:
        return len(self.content)

    def _load(self, paths: list[Path], index: int, rng_key: tuple[int, int, int], skipped: list) -> torch.Tensor:
        for attempt in range(len(paths)):
            path = paths[(index + attempt) % len(paths)]
            if path in self._bad:
                continue
            try:
                image = load_image(path)
            except ImageError as exc:
                self._bad.add(path)
                skipped.append((str(path), str(exc)))
                continue
            return self.preprocess(image, sample_rng(self.seed, *rng_key))
        raise ImageError(f"none of the {len(paths)} image(s) under {paths[0].parent} can be read any more")

    def __getitem__(self, key: SampleKey):
        content_index, style_index, epoch, position = key
        skipped: list[tuple[str, str]] = []
        content = self._load(self.content, content_index, (epoch, position, 0), skipped)
        style = self._load(self.style, style_index, (epoch, position, 1), skipped)
        return content, style, skipped


def collate(items) -> dict:
    """Batch of :class:`PairDataset` items → ``{"content": (B,3,h,w), "style": (B,3,h,w), "skipped": [...]}``."""
    contents, styles, skipped = zip(*items)
    return {
        "content": torch.stack(contents),
        "style": torch.stack(styles),
        "skipped": [entry for group in skipped for entry in group],
    }
