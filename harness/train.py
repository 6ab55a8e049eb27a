"""Training: ``train(TrainConfig) -> summary``, the library behind ``python -m harness train`` (spec §6, §11).

Defaults come from the method's :class:`~methods.recipes.TrainingRecipe` (``method.info.recipe``); a config value
that is not ``None`` overrides the recipe field (``dataclasses.replace``). The loop:

* data: :mod:`harness.data` (official preprocessing, seeded pairing, deterministic per-sample crops);
* model: ``create_method(name, init="random", seed=...)`` — the trainable parts get the method's official seeded
  init, the frozen VGG comes from the weights resolver. A random VGG (not found, not downloadable) is refused unless
  ``init="random"`` was asked for explicitly; the run is then flagged ``untrained_encoder`` everywhere;
* loss: ``model.training_loss(content, style, weights)`` → unweighted terms + ``"loss"`` (the weighted total);
* optimiser: Adam(lr, betas = recipe.betas) over the parameters with ``requires_grad`` (the encoder is frozen);
* LR: ``recipe.lr · lr_factor(recipe, epoch, step, total_epochs)``, set on the param group before every step (so
  per epoch for ``official``/``paper``, per step for ``inverse_time``). With a step budget (``steps``) on an
  epoch-based recipe an epoch is still one pass over the content set (:attr:`PairSchedule.steps_per_epoch` steps)
  and the schedule is kept, so short runs decay fast under ``official``; use ``schedule="constant"`` for those.
  ``paper`` depends on the total length, so extending a ``paper`` run with ``--resume --steps`` changes its
  remaining LRs;
* AMP: ``bf16`` (CPU or CUDA autocast) or ``fp16`` (CUDA autocast + GradScaler);
* DDP under ``torchrun`` (``RANK``/``WORLD_SIZE`` set): gloo on CPU, nccl on CUDA; every rank runs
  ``--batch-size`` images per step on its share of the data (effective batch = world size × batch size); the
  loss terms are averaged over ranks for logging; rank 0 alone writes logs, samples and checkpoints.

Outputs in ``out``:

* ``harness_checkpoint.pt`` (:func:`methods.save_checkpoint`; ``create_method(NAME, weights=out)`` loads it — the
  frozen VGG is *not* in it and is resolved again at load time, so a checkpoint trained against a random encoder
  (``untrained_encoder: true`` in its metadata) only reproduces its training outputs with that same encoder);
* ``training_state.pt``: everything ``resume`` needs (model + optimizer + scaler state, step, epoch, position,
  RNG states, sampler state, config, recipe, skipped files, data fingerprints) — self-contained, so a crash between
  writing it and the checkpoint cannot make a run unresumable;
* for StyA2K methods also the official ``latest_net_A2K.pth``, ``latest_net_transform.pth``,
  ``latest_net_decoder.pth`` (state dicts of ``model.A2K``, ``model.transform``, ``model.decoder``);
* ``loss_log.csv``: one row per step, ``step, epoch, lr, <terms>, loss`` (``step`` = optimiser steps done,
  ``epoch`` 1-based, floats written with ``repr`` so equal values give equal text);
* ``samples/step_000123.png``: content | style | output (clamped) for the first ≤ 4 pairs of the batch.

Every file is written atomically (temporary file + ``os.replace``).
"""
from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as _dt
import hashlib
import io
import math
import os
import random
import shlex
import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm import tqdm

from methods import Method, create_method, get_method_info
from methods.recipes import TrainingRecipe, lr_factor
from methods.registry import CHECKPOINT_NAME, save_checkpoint
from methods.weights import ENV_OFFLINE, ENV_WEIGHTS, cache_dir

from .atomic import write_text_atomic
from .data import (
    PairDataset,
    PairSchedule,
    Preprocess,
    StepBatchSampler,
    collate,
    first_readable,
    folder_fingerprint,
    list_training_images,
)
from .environment import resolve_device
from .environment import versions as environment_versions
from .errors import CLIError
from .images import save_image

__all__ = [
    "LOSS_LOG_NAME",
    "OFFICIAL_STYA2K_FILES",
    "STATE_NAME",
    "TrainConfig",
    "TrainingDivergedError",
    "lr_at",
    "train",
]

STATE_NAME = "training_state.pt"
STATE_FORMAT = "ast-harness/training-state-v1"
LOSS_LOG_NAME = "loss_log.csv"
SAMPLES_DIR = "samples"
OFFICIAL_STYA2K_FILES = {"A2K": "latest_net_A2K.pth", "transform": "latest_net_transform.pth",
                         "decoder": "latest_net_decoder.pth"}
AMP_CHOICES = ("off", "bf16", "fp16")
SCHEDULES = ("official", "paper", "inverse_time", "constant")


class TrainingDivergedError(RuntimeError):
    """The loss (or the weights) became NaN/inf; the message names the step and the terms."""


# ----------------------------------------------------------------------------------------------------------------------
# Configuration
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class TrainConfig:
    """One training run. ``None`` means "not given": recipe fields then come from the method's recipe, the others
    from the defaults below (or, with ``resume``, from the run being resumed)."""

    method: str
    content_dir: Path
    style_dir: Path
    out: Path
    steps: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    crop: int | None = None
    load_size: int | None = None
    keep_aspect: bool | None = None
    lr: float | None = None
    lambda_style: float | None = None
    lambda_a2k: float | None = None
    schedule: str | None = None
    amp: str | None = None  # default "off"
    compile: bool | None = None  # default False
    workers: int | None = None
    seed: int | None = None  # default 0
    init: str | None = None  # "random" allows a random VGG encoder
    resume: bool = False
    log_every: int | None = None  # default 50
    sample_every: int | None = None  # default 1000; 0 = never
    checkpoint_every: int | None = None
    device: str | None = None  # default "cpu"
    weights_dir: Path | None = None
    download: bool | None = None  # default: True unless $HARNESS_OFFLINE
    options: dict[str, Any] = field(default_factory=dict)
    progress: bool | None = None  # tqdm bar; default: when stderr is a terminal
    command_line: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain types only (str paths), for ``torch.save(weights_only)`` and the metadata."""
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Path):
                value = str(value)
            elif isinstance(value, dict):
                value = {k: (list(v) if isinstance(v, tuple) else v) for k, v in value.items()}
            out[f.name] = value
        return out


_PATH_FIELDS = ("content_dir", "style_dir", "out", "weights_dir")
_RESUME_FREE = {"steps", "epochs", "log_every", "sample_every", "checkpoint_every", "workers", "device", "compile",
                "download", "weights_dir", "progress", "command_line", "resume", "content_dir", "style_dir", "out"}
"""Fields a resumed run may change; every other field given again must equal the saved one."""
_DEFAULTS = {"amp": "off", "compile": False, "seed": 0, "log_every": 50, "sample_every": 1000, "device": "cpu"}


def _merge_resumed(config: TrainConfig, saved: Mapping[str, Any], state_path: Path) -> TrainConfig:
    """The saved run's config, with the fields this invocation gave; a changed locked field is an error."""
    merged = dict(saved)
    given = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    if given["steps"] is not None or given["epochs"] is not None:
        merged["steps"], merged["epochs"] = given["steps"], given["epochs"]
    conflicts = []
    for name, value in given.items():
        if name in ("steps", "epochs") or value is None or (name == "options" and not value):
            continue
        if name in _RESUME_FREE:
            merged[name] = value
            continue
        old = saved.get(name)
        same = (str(value).lower() == str(old).lower()) if name == "method" else _plain(value) == _plain(old)
        if not same:
            conflicts.append(f"{name.replace('_', '-')} {_plain(value)!r} (the run used {_plain(old)!r})")
    if conflicts:
        raise CLIError(f"--resume: {state_path} was trained with other settings: {'; '.join(conflicts)}; resume "
                       "with the same values (or leave them out), or start a new run in another --out folder")
    merged["resume"] = True
    for name in _PATH_FIELDS:
        if merged.get(name) is not None:
            merged[name] = Path(merged[name])
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in merged.items() if k in known})


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _style_key(recipe: TrainingRecipe) -> str | None:
    for key in ("global_style", "style"):
        if key in recipe.loss_weights:
            return key
    return None


def build_recipe(base: TrainingRecipe, config: TrainConfig, method_name: str) -> TrainingRecipe:
    """The method's recipe with the config's overrides; bad values → :class:`CLIError` naming the option."""
    overrides: dict[str, Any] = {}
    for name in ("lr", "batch_size", "load_size", "crop", "keep_aspect", "schedule", "checkpoint_every", "workers"):
        value = getattr(config, name)
        if value is not None:
            overrides[name] = value
    if config.steps is not None and config.epochs is not None:
        raise CLIError("--steps and --epochs cannot be combined; give one training length")
    if config.steps is not None:
        overrides.update(steps=config.steps, epochs=None)
    elif config.epochs is not None:
        overrides.update(epochs=config.epochs, steps=None)
    weights = dict(base.loss_weights)
    terms = ", ".join(weights) or "none"
    if config.lambda_style is not None:
        key = _style_key(base)
        if key is None:
            raise CLIError(f"--lambda-style: method {method_name!r} has no style loss weight (its terms: {terms})")
        weights[key] = float(config.lambda_style)
    if config.lambda_a2k is not None:
        if "a2k" not in weights:
            raise CLIError(f"--lambda-a2k: method {method_name!r} has no A2K loss (its loss terms: {terms}); "
                           "it applies to styA2K, its ablations and all2all")
        weights["a2k"] = float(config.lambda_a2k)
    overrides["loss_weights"] = weights
    recipe = replace(base, **overrides)

    checks = [
        (recipe.lr > 0 and math.isfinite(recipe.lr), f"--lr must be a positive number, got {recipe.lr}"),
        (recipe.batch_size >= 1, f"--batch-size must be at least 1, got {recipe.batch_size}"),
        (recipe.crop >= 1, f"--crop must be at least 1, got {recipe.crop}"),
        (recipe.load_size >= recipe.crop,
         f"--load-size {recipe.load_size} is smaller than --crop {recipe.crop}: images are resized to the load size "
         "and then cropped, so the load size must be at least the crop"),
        (recipe.schedule in SCHEDULES, f"--schedule {recipe.schedule!r}: choose one of {', '.join(SCHEDULES)}"),
        (recipe.checkpoint_every >= 1, f"--checkpoint-every must be at least 1, got {recipe.checkpoint_every}"),
        (recipe.workers >= 0, f"--workers must be 0 or more, got {recipe.workers}"),
        (recipe.steps is not None or recipe.epochs is not None,
         f"method {method_name!r}: its recipe sets no training length; give --steps or --epochs"),
        (recipe.steps is None or recipe.steps >= 1, f"--steps must be at least 1, got {recipe.steps}"),
        (recipe.epochs is None or recipe.epochs >= 1, f"--epochs must be at least 1, got {recipe.epochs}"),
        (all(w >= 0 and math.isfinite(w) for w in weights.values()),
         f"loss weights must be non-negative numbers, got {weights}"),
    ]
    for ok, message in checks:
        if not ok:
            raise CLIError(message)
    return recipe


def lr_at(recipe: TrainingRecipe, step: int, steps_per_epoch: int, total_epochs: int) -> float:
    """The learning rate of 0-based optimiser ``step``: ``recipe.lr · lr_factor(recipe, epoch, step, total)``."""
    return recipe.lr * lr_factor(recipe, step // steps_per_epoch, step, total_epochs)


# ----------------------------------------------------------------------------------------------------------------------
# Distributed
# ----------------------------------------------------------------------------------------------------------------------
class Distributed:
    """torchrun's environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a no-op for a single process."""

    def __init__(self) -> None:
        env = os.environ
        self.world_size = int(env.get("WORLD_SIZE", "1"))
        self.enabled = "RANK" in env and self.world_size > 1
        self.rank = int(env.get("RANK", "0")) if self.enabled else 0
        self.local_rank = int(env.get("LOCAL_RANK", "0")) if self.enabled else 0
        self.world_size = self.world_size if self.enabled else 1
        self._initialised_here = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, requested: torch.device) -> torch.device:
        if self.enabled and requested.type == "cuda":
            return torch.device("cuda", self.local_rank)
        return requested

    def init(self, device: torch.device) -> None:
        if not self.enabled:
            return
        import torch.distributed as dist

        if device.type == "cuda":
            torch.cuda.set_device(device)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
            self._initialised_here = True

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def mean(self, values: Tensor) -> Tensor:
        if self.enabled:
            import torch.distributed as dist

            dist.all_reduce(values)
            values /= self.world_size
        return values

    def gather(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def close(self) -> None:
        if self._initialised_here:
            import torch.distributed as dist

            dist.destroy_process_group()
            self._initialised_here = False


class LossModule(nn.Module):
    """``forward(content, style)`` → the method's loss dict: the unit DDP wraps and ``torch.compile`` compiles."""

    def __init__(self, model: nn.Module, weights: Mapping[str, float]) -> None:
        super().__init__()
        self.model = model
        self.weights = dict(weights)

    def forward(self, content: Tensor, style: Tensor) -> dict[str, Tensor]:
        return self.model.training_loss(content, style, dict(self.weights))


# ----------------------------------------------------------------------------------------------------------------------
# Files
# ----------------------------------------------------------------------------------------------------------------------
def _atomic_torch_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class LossLog:
    """``loss_log.csv``: header ``step, epoch, lr, <terms>, loss``; one flushed row per step.

    On resume the rows after the resumed step are dropped (a crash after the last checkpoint leaves rows the
    resumed run will write again), so the log never has duplicates."""

    def __init__(self, path: Path, resume_step: int | None) -> None:
        self.path = path
        self.columns: list[str] | None = None
        if resume_step is not None and path.is_file():
            with open(path, newline="", encoding="utf-8") as fh:
                rows = list(csv.reader(fh))
            if rows:
                self.columns = rows[0]
                kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= resume_step]
                buffer = io.StringIO()
                csv.writer(buffer, lineterminator="\n").writerows(kept)
                write_text_atomic(path, buffer.getvalue())
        else:
            path.unlink(missing_ok=True)
        self._fh = None

    def write(self, row: Mapping[str, Any]) -> None:
        columns = list(row)
        if self._fh is None:
            new = not self.path.is_file() or self.path.stat().st_size == 0
            if self.columns is not None and not new and self.columns != columns:
                raise RuntimeError(f"{self.path}: its columns {self.columns} differ from this run's {columns}")
            self._fh = open(self.path, "a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._fh, lineterminator="\n")
            if new:
                self._writer.writerow(columns)
            self.columns = columns
        self._writer.writerow([repr(v) if isinstance(v, float) else v for v in row.values()])
        self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def save_sample_grid(path: Path, content: Tensor, style: Tensor, output: Tensor) -> Path:
    """A PNG grid: one row per pair (≤ 4), columns content | style | output (clamped to [0, 1])."""
    n = min(4, content.shape[0])
    rows = [torch.cat([content[i], style[i], output[i].clamp(0.0, 1.0)], dim=2) for i in range(n)]
    return save_image(torch.cat(rows, dim=1).float().cpu(), path)


def _rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]), int(np_state[3]),
                  float(np_state[4])],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    py = state["python"]
    random.setstate((py[0], tuple(py[1]), py[2]))
    if "cuda" in state and torch.cuda.is_available():
        with contextlib.suppress(Exception):
            torch.cuda.set_rng_state_all(state["cuda"])


def _tensor_digest(state: Mapping[str, Tensor]) -> str:
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


# ----------------------------------------------------------------------------------------------------------------------
# The run
# ----------------------------------------------------------------------------------------------------------------------
def _autocast(amp: str, device: torch.device):
    if amp == "off":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16 if amp == "bf16" else torch.float16)


def _downloads_allowed(config: TrainConfig) -> bool:
    if config.download is not None:
        return config.download
    return os.environ.get(ENV_OFFLINE, "").strip().lower() not in {"1", "true", "yes", "on"}


def _refuse_random_encoder(method: Method, download: bool) -> None:
    spec = method.info.encoder_weights
    how = "downloads are off (--no-download or $HARNESS_OFFLINE)" if not download else "its download failed"
    raise CLIError(
        f"training {method.name} needs the pretrained VGG-19 encoder {spec.filename}, which was not found and "
        f"{how}: get it from {spec.url} and put it in --weights-dir DIR, ${ENV_WEIGHTS}=DIR or the cache folder "
        f"{cache_dir()}; or pass --init random to train against a random encoder (smoke runs only: the "
        "checkpoint is flagged untrained_encoder and its losses are meaningless)"
    )


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training; returns a summary dict (see the module docstring for the files written).

    Raises :class:`CLIError` / :class:`~harness.images.ImageError` / method errors for bad input (before any model is
    built when it is the data), and :class:`TrainingDivergedError` when the loss becomes NaN/inf.
    """
    dist_ctx = Distributed()
    try:
        return _train(config, dist_ctx)
    finally:
        dist_ctx.close()


def _train(config: TrainConfig, dist_ctx: Distributed) -> dict[str, Any]:
    config = replace(config, options=dict(config.options or {}))  # filled in below; the caller's object stays as is
    out = Path(config.out)
    state_path = out / STATE_NAME
    saved_state = None
    if config.resume:
        if not state_path.is_file():
            raise CLIError(f"--resume: {state_path} does not exist; nothing to resume (start without --resume)")
        saved_state = torch.load(state_path, map_location="cpu", weights_only=True)
        if not isinstance(saved_state, dict) or saved_state.get("format") != STATE_FORMAT:
            raise CLIError(f"--resume: {state_path} is not a harness training state ({STATE_FORMAT})")
        config = _merge_resumed(config, saved_state["config"], state_path)
    elif state_path.exists() or (out / CHECKPOINT_NAME).exists():
        raise CLIError(f"--out {out} already holds a training run ({STATE_NAME} / {CHECKPOINT_NAME}); pass --resume "
                       "to continue it, or choose another --out folder")
    for name, value in _DEFAULTS.items():
        if getattr(config, name) is None:
            setattr(config, name, value)
    if config.amp not in AMP_CHOICES:
        raise CLIError(f"--amp {config.amp!r}: choose one of {', '.join(AMP_CHOICES)}")
    for name in ("log_every", "sample_every"):
        if getattr(config, name) < 0:
            raise CLIError(f"--{name.replace('_', '-')} must be 0 or more, got {getattr(config, name)}")

    info = get_method_info(config.method)
    if info.recipe is None or not info.trainable:
        raise CLIError(f"method {info.name!r} is not trainable in the harness (it has no training recipe)")
    recipe = build_recipe(info.recipe, config, info.name)
    device = dist_ctx.device(resolve_device(config.device))
    if config.amp == "fp16" and device.type != "cuda":
        raise CLIError("--amp fp16 needs a CUDA device (fp16 autocast with a GradScaler); on CPU use --amp bf16")
    seed = int(config.seed)

    # -- data (all checks before any model is built) ------------------------------------------------------------------
    content_paths = list_training_images(config.content_dir, "--content-dir")
    style_paths = list_training_images(config.style_dir, "--style-dir")
    skipped: dict[str, str] = {}
    for paths, role, folder in ((content_paths, "--content-dir", config.content_dir),
                                (style_paths, "--style-dir", config.style_dir)):
        _, bad = first_readable(paths, f"{role} {folder}")
        skipped.update(bad)
    fingerprints = {
        "content": {"count": len(content_paths), "sha256": folder_fingerprint(content_paths, Path(config.content_dir))},
        "style": {"count": len(style_paths), "sha256": folder_fingerprint(style_paths, Path(config.style_dir))},
    }
    if saved_state is not None:
        for role, now in fingerprints.items():
            then = saved_state["data"][role]
            if then != now:
                raise CLIError(
                    f"--resume: the {role} folder changed since the run started ({then['count']} images then, "
                    f"{now['count']} now, or other names): resuming would not reproduce the data order"
                )
    preprocess = Preprocess(recipe.load_size, recipe.crop, recipe.keep_aspect, recipe.hflip)
    schedule = PairSchedule(len(content_paths), len(style_paths), recipe.batch_size, seed, recipe.pairing,
                            dist_ctx.rank, dist_ctx.world_size)
    spe = schedule.steps_per_epoch
    total_steps = recipe.steps if recipe.steps is not None else recipe.epochs * spe
    total_epochs = math.ceil(total_steps / spe)

    # -- model ---------------------------------------------------------------------------------------------------------
    dist_ctx.init(device)
    download = _downloads_allowed(config)
    method = create_method(info.name, init="random", device=device, weights_dir=config.weights_dir, seed=seed,
                           download=download, **config.options)
    untrained_encoder = not method.provenance.encoder_pretrained
    if untrained_encoder and config.init != "random":
        _refuse_random_encoder(method, download)
    model = method.model
    model.train()
    model.encoder.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise CLIError(f"method {info.name!r} has no trainable parameters")
    encoder_digest = _tensor_digest(model.encoder.state_dict())
    optimizer = torch.optim.Adam(params, lr=recipe.lr, betas=tuple(recipe.betas))
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    weights = dict(recipe.loss_weights)

    start_step = 0
    if saved_state is not None:
        start_step = int(saved_state["step"])
        if start_step > total_steps:
            raise CLIError(f"--resume: the run in {out} has already done {start_step} steps, more than the "
                           f"{total_steps} asked for; give a larger --steps or --epochs")
        if saved_state["encoder_sha256"] != encoder_digest:
            raise CLIError(
                "--resume: the frozen encoder differs from the one the run was trained with (a VGG file appeared, "
                "disappeared or changed in the weights folders, or --init/--seed differ); restore it to resume"
            )
        if saved_state["world_size"] != dist_ctx.world_size:
            warnings.warn(f"resuming a run of {saved_state['world_size']} process(es) with {dist_ctx.world_size}: "
                          "the data split differs, so this is not an exact continuation")
        model.load_state_dict({**model.state_dict(), **saved_state["model"]}, strict=True)
        optimizer.load_state_dict(saved_state["optimizer"])
        if saved_state.get("scaler"):
            scaler.load_state_dict(saved_state["scaler"])
        _set_rng_state(saved_state["rng"])
        for path, reason in saved_state.get("skipped", {}).items():
            skipped.setdefault(path, reason)
    else:
        torch.manual_seed(seed + dist_ctx.rank)
        np.random.seed((seed + dist_ctx.rank) % 2**32)
        random.seed(seed + dist_ctx.rank)

    loss_module = LossModule(model, weights)
    runner: nn.Module = loss_module
    if dist_ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(loss_module, device_ids=[device.index] if device.type == "cuda" else None)
    if config.compile:
        runner = torch.compile(runner)

    main = dist_ctx.main
    if main:
        out.mkdir(parents=True, exist_ok=True)
    log = LossLog(out / LOSS_LOG_NAME, start_step if saved_state is not None else None) if main else None
    for path, reason in skipped.items():
        if main and (saved_state is None or path not in saved_state.get("skipped", {})):
            warnings.warn(f"skipping unreadable training image: {reason}")

    versions = environment_versions()
    command_line = config.command_line or _command_line(config)
    stya2k = info.name.lower().startswith("stya2k")
    last_saved = start_step if saved_state is not None else -1
    last_terms: dict[str, float] = dict(saved_state.get("last_terms", {})) if saved_state is not None else {}
    written_official: list[str] = []

    def metadata(step: int, finished: bool) -> dict[str, Any]:
        encoder_file = method.provenance.files.get(info.encoder_weights.filename) if info.encoder_weights else None
        return {
            "recipe": _plain(asdict(recipe)), "seed": seed, "steps": step, "total_steps": total_steps,
            "epoch": (max(step, 1) - 1) // spe + 1, "steps_per_epoch": spe, "finished": finished,
            "world_size": dist_ctx.world_size, "amp": config.amp, "options": _plain(method.options),
            "vgg": encoder_file, "provenance_files": _plain(method.provenance.files),
            "untrained_encoder": untrained_encoder,
            "skipped_files": sorted(skipped), "skipped_count": len(skipped),
            "final_terms": dict(last_terms), "versions": versions, "command_line": command_line,
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def sync_skipped() -> None:
        for other in dist_ctx.gather(dict(skipped)):
            for path, reason in other.items():
                skipped.setdefault(path, reason)

    def write_checkpoint(step: int, finished: bool) -> None:
        """Training state, then the harness checkpoint, then (StyA2K) the official files; rank 0 only."""
        nonlocal last_saved
        epoch, position = divmod(step, spe)
        state = {
            "format": STATE_FORMAT, "step": step, "epoch": epoch, "position_in_epoch": position,
            "model": {k: v.detach().cpu().clone() for k, v in model.trainable_state_dict().items()},
            "optimizer": optimizer.state_dict(), "scaler": scaler.state_dict() if scaler.is_enabled() else {},
            "rng": _rng_state(), "sampler": schedule.state(), "config": _plain(config.to_dict()),
            "recipe": _plain(asdict(recipe)), "skipped": dict(skipped), "data": fingerprints,
            "encoder_sha256": encoder_digest, "world_size": dist_ctx.world_size, "last_terms": dict(last_terms),
            "columns": list(log.columns or []) if log else [],
        }
        _atomic_torch_save(state, state_path)
        save_checkpoint(method, out / CHECKPOINT_NAME, metadata(step, finished))
        if stya2k:
            for attr, filename in OFFICIAL_STYA2K_FILES.items():
                part = model.get_submodule(attr)
                _atomic_torch_save({k: v.detach().cpu() for k, v in part.state_dict().items()}, out / filename)
                if filename not in written_official:
                    written_official.append(filename)
        last_saved = step

    def weights_finite() -> bool:
        return all(bool(torch.isfinite(p).all()) for p in params)

    def diverged(step: int, epoch: int, terms: Mapping[str, float], what: str) -> TrainingDivergedError:
        good = step - 1 if what == "loss" else last_saved
        note = ""
        if main:
            if what == "loss" and last_saved != good and good >= 0 and weights_finite():
                write_checkpoint(good, finished=False)
            if last_saved >= 0:
                note = f"; the last good state (step {last_saved}) is in {out}"
            else:
                note = "; no checkpoint was written"
        dist_ctx.barrier()
        shown = ", ".join(f"{k}={v:.6g}" for k, v in terms.items())
        return TrainingDivergedError(
            f"training diverged at step {step} (epoch {epoch}): non-finite {what} ({shown}){note}; "
            "lower --lr, or use --amp off"
        )

    # -- loop ----------------------------------------------------------------------------------------------------------
    dataset = PairDataset(content_paths, style_paths, preprocess, seed)
    loader = torch.utils.data.DataLoader(
        dataset, batch_sampler=StepBatchSampler(schedule, start_step, total_steps), num_workers=recipe.workers,
        collate_fn=collate, pin_memory=device.type == "cuda",
    )
    show_bar = main and (config.progress if config.progress is not None else sys.stderr.isatty())
    bar = tqdm(total=total_steps, initial=start_step, disable=not show_bar, unit="step", dynamic_ncols=True,
               desc=f"train {info.name}")
    images_per_step = recipe.batch_size * dist_ctx.world_size
    flag = "RANDOM ENCODER (--init random)" if untrained_encoder else ""
    if main and start_step < total_steps:
        what = f"resuming at step {start_step}" if saved_state is not None else "training"
        print(f"{what}: {info.name}, {total_steps} steps ({total_epochs} epoch(s) of {spe} steps), batch "
              f"{recipe.batch_size}×{dist_ctx.world_size}, crop {recipe.crop}, lr {recipe.lr:g} ({recipe.schedule}), "
              f"amp {config.amp}, {len(content_paths)} content / {len(style_paths)} style images"
              + (f" [{flag}]" if flag else ""), flush=True)

    step = start_step
    loop_start = time.perf_counter()
    window_start, window_steps = loop_start, 0
    images_done = 0
    try:
        for batch in loader:
            epoch = step // spe
            lr = lr_at(recipe, step, spe, total_epochs)
            for group in optimizer.param_groups:
                group["lr"] = lr
            for path, reason in batch["skipped"]:
                if path not in skipped:
                    skipped[path] = reason
                    if main:
                        warnings.warn(f"skipping unreadable training image: {reason}")
            content = batch["content"].to(device, non_blocking=True)
            style = batch["style"].to(device, non_blocking=True)

            optimizer.zero_grad(set_to_none=True)
            with _autocast(config.amp, device):
                terms = runner(content, style)
            if not isinstance(terms, Mapping) or "loss" not in terms:
                raise RuntimeError(f"{type(model).__name__}.training_loss must return a dict of scalar tensors "
                                   f"with a 'loss' entry, got {type(terms).__name__}")
            names = [k for k in terms if k != "loss"] + ["loss"]
            values = dist_ctx.mean(torch.stack([terms[k].detach().float().reshape(()) for k in names]))
            terms_now = dict(zip(names, values.tolist()))
            if not all(math.isfinite(v) for v in terms_now.values()):
                raise diverged(step + 1, epoch + 1, terms_now, "loss")
            scaler.scale(terms["loss"]).backward()
            scaler.step(optimizer)
            scaler.update()
            step += 1
            last_terms = terms_now
            images_done += images_per_step
            window_steps += 1

            if log is not None:
                log.write({"step": step, "epoch": epoch + 1, "lr": float(lr), **terms_now})
            now = time.perf_counter()
            if config.log_every and (step % config.log_every == 0 or step == total_steps):
                rate = window_steps * images_per_step / max(now - window_start, 1e-9)
                window_start, window_steps = now, 0
                shown = " ".join(f"{k} {v:.4g}" for k, v in terms_now.items())
                if show_bar:
                    bar.set_postfix_str(f"{shown} lr {lr:.3g} {rate:.1f} img/s", refresh=False)
                elif main:
                    print(f"step {step}/{total_steps} epoch {epoch + 1} lr {lr:.4g} {shown} {rate:.2f} img/s",
                          flush=True)
            bar.update(1)

            if main and config.sample_every and step % config.sample_every == 0:
                with torch.no_grad(), _autocast(config.amp, device):
                    n = min(4, content.shape[0])
                    output = model(content[:n], style[:n]).float()
                save_sample_grid(out / SAMPLES_DIR / f"step_{step:06d}.png", content[:n], style[:n], output)
            if step % recipe.checkpoint_every == 0 or step == total_steps:
                sync_skipped()
                if not weights_finite():  # every rank holds the same weights, so every rank stops here
                    raise diverged(step, epoch + 1, terms_now, "weights after the update")
                if main:
                    write_checkpoint(step, finished=step == total_steps)
    finally:
        bar.close()
        if log is not None:
            log.close()
    elapsed = time.perf_counter() - loop_start
    if main and last_saved != step:  # e.g. a resume of a finished run: refresh nothing, but make sure files exist
        write_checkpoint(step, finished=step >= total_steps)
    dist_ctx.barrier()

    summary = {
        "method": info.name, "out": str(out), "steps": step, "total_steps": total_steps,
        "steps_this_run": step - start_step, "epochs": total_epochs, "steps_per_epoch": spe,
        "seconds": elapsed, "images_per_s": images_done / elapsed if images_done and elapsed > 0 else 0.0,
        "final_terms": dict(last_terms), "skipped_files": sorted(skipped), "untrained_encoder": untrained_encoder,
        "world_size": dist_ctx.world_size, "checkpoint": str(out / CHECKPOINT_NAME),
        "training_state": str(state_path), "loss_log": str(out / LOSS_LOG_NAME),
        "samples": str(out / SAMPLES_DIR) if (out / SAMPLES_DIR).is_dir() else None,
        "official_files": [str(out / f) for f in OFFICIAL_STYA2K_FILES.values()] if stya2k else [],
        "recipe": _plain(asdict(recipe)), "flag": flag,
    }
    return summary


def _command_line(config: TrainConfig) -> str:
    """A ``python -m harness train ...`` line equivalent to ``config`` (for the record)."""
    parts = ["python", "-m", "harness", "train"]
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if value is None or f.name in ("command_line", "progress") or value is False or value == {}:
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.name == "options":
            for k, v in value.items():
                parts += ["--option", f"{k}={','.join(map(str, v)) if isinstance(v, (tuple, list)) else v}"]
        elif f.name == "download":
            parts += [] if value else ["--no-download"]
        elif value is True:
            parts.append(flag)
        else:
            parts += [flag, str(value)]
    return shlex.join(parts)
