"""A training run's settings (:class:`TrainConfig`), the recipe they make (:func:`build_recipe`) and the learning
rate of every step (:func:`lr_at`). Defaults come from the method's :class:`~methods.recipes.TrainingRecipe`; a
setting that is not ``None`` overrides the recipe field."""
from __future__ import annotations

import dataclasses
import math
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from methods.errors import literal
from methods.recipes import TrainingRecipe, lr_factor

from ..errors import ConfigError

STATE_NAME = "training_state.pt"
STATE_FORMAT = "ast-harness/training-state-v1"
LOSS_LOG_NAME = "loss_log.csv"
SAMPLES_DIR = "samples"
OFFICIAL_STYA2K_FILES = {"A2K": "latest_net_A2K.pth", "transform": "latest_net_transform.pth",
                         "decoder": "latest_net_decoder.pth"}
AMP_CHOICES = ("off", "bf16", "fp16")
SCHEDULES = ("official", "paper", "inverse_time", "constant")


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
            conflicts.append(f"{name} {_plain(value)!r} (the run used {_plain(old)!r})")
    if conflicts:
        raise ConfigError(f"{{resume}}: {literal(state_path)} was trained with other settings: "
                          f"{'; '.join(literal(c) for c in conflicts)}; resume with the same values (or leave them "
                          "out), or start a new run in another {out} folder")
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
    """The method's recipe with the config's overrides; bad values → :class:`ConfigError` naming the setting."""
    overrides: dict[str, Any] = {}
    for name in ("lr", "batch_size", "load_size", "crop", "keep_aspect", "schedule", "checkpoint_every", "workers"):
        value = getattr(config, name)
        if value is not None:
            overrides[name] = value
    if config.steps is not None and config.epochs is not None:
        raise ConfigError("{steps} and {epochs} cannot be combined; give one training length")
    if config.steps is not None:
        overrides.update(steps=config.steps, epochs=None)
    elif config.epochs is not None:
        overrides.update(epochs=config.epochs, steps=None)
    weights = dict(base.loss_weights)
    terms = ", ".join(weights) or "none"
    if config.lambda_style is not None:
        key = _style_key(base)
        if key is None:
            raise ConfigError(f"{{lambda_style}}: method {method_name!r} has no style loss weight (its terms: {terms})")
        weights[key] = float(config.lambda_style)
    if config.lambda_a2k is not None:
        if "a2k" not in weights:
            raise ConfigError(f"{{lambda_a2k}}: method {method_name!r} has no A2K loss (its loss terms: {terms}); "
                              "it applies to styA2K, its ablations and all2all")
        weights["a2k"] = float(config.lambda_a2k)
    overrides["loss_weights"] = weights
    recipe = replace(base, **overrides)

    checks = [
        (recipe.lr > 0 and math.isfinite(recipe.lr), f"{{lr}} must be a positive number, got {recipe.lr}"),
        (recipe.batch_size >= 1, f"{{batch_size}} must be at least 1, got {recipe.batch_size}"),
        (recipe.crop >= 1, f"{{crop}} must be at least 1, got {recipe.crop}"),
        (recipe.load_size >= recipe.crop,
         f"{{load_size}} {recipe.load_size} is smaller than {{crop}} {recipe.crop}: images are resized to the load "
         "size and then cropped, so the load size must be at least the crop"),
        (recipe.schedule in SCHEDULES, f"{{schedule}} {recipe.schedule!r}: choose one of {', '.join(SCHEDULES)}"),
        (recipe.checkpoint_every >= 1, f"{{checkpoint_every}} must be at least 1, got {recipe.checkpoint_every}"),
        (recipe.workers >= 0, f"{{workers}} must be 0 or more, got {recipe.workers}"),
        (recipe.steps is not None or recipe.epochs is not None,
         f"method {method_name!r}: its recipe sets no training length; give {{steps}} or {{epochs}}"),
        (recipe.steps is None or recipe.steps >= 1, f"{{steps}} must be at least 1, got {recipe.steps}"),
        (recipe.epochs is None or recipe.epochs >= 1, f"{{epochs}} must be at least 1, got {recipe.epochs}"),
        (all(w >= 0 and math.isfinite(w) for w in weights.values()),
         f"loss weights must be non-negative numbers, got {literal(weights)}"),
    ]
    for ok, message in checks:
        if not ok:
            raise ConfigError(message)
    return recipe


def lr_at(recipe: TrainingRecipe, step: int, steps_per_epoch: int, total_epochs: int) -> float:
    """The learning rate of 0-based optimiser ``step``: ``recipe.lr · lr_factor(recipe, epoch, step, total)``."""
    return recipe.lr * lr_factor(recipe, step // steps_per_epoch, step, total_epochs)


def _command_line(config: TrainConfig) -> str:
    """The ``python -m harness train ...`` line equivalent to ``config``, recorded in the checkpoint's metadata
    (how to repeat the run, also when it was started from Python)."""
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
