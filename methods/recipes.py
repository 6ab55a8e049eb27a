"""Training recipes: every hyper-parameter of a method's official training in one place, with its source.

The training loop (``harness/train.py``) takes its defaults from here, never from CLI code; command-line values
override single fields (``dataclasses.replace``).
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Schedule = Literal["official", "paper", "inverse_time", "constant"]
Pairing = Literal["random_style_per_content", "independent"]


@dataclass(frozen=True)
class TrainingRecipe:
    """A method's training recipe.

    Length: ``epochs`` over the content set (StyA2K: 5 = 2 at full LR + 3 decayed) or ``steps`` optimiser steps
    (AdaIN: 160,000); the CLI's ``--steps``/``--epochs`` override. ``schedule``:

    * ``official``: LambdaLR factor ``decay ** max(0, epoch + 1 − constant_epochs)``, stepped per epoch (StyA2K/AdaAttN
      code: 2e-4, 2e-4, 6e-5, 1.8e-5, 5.4e-6);
    * ``paper``: constant for ``constant_epochs``, then linear to 0 (pix2pix rule, factors 1, 1, 0.75, 0.5, 0.25);
    * ``inverse_time``: per step ``1 / (1 + inverse_time_decay · step)`` (pytorch-AdaIN);
    * ``constant``.
    ``pairing``: ``random_style_per_content`` (one pass over the shuffled content set, each image paired with a
    uniformly random style, StyA2K) or ``independent`` (two infinite shuffled samplers, AdaIN).
    ``loss_weights``: names of the method's loss terms → weights.
    """

    source: str
    lr: float = 2e-4
    betas: tuple[float, float] = (0.9, 0.999)
    batch_size: int = 8
    load_size: int = 512
    crop: int = 256
    keep_aspect: bool = False
    hflip: bool = True
    epochs: int | None = 5
    steps: int | None = None
    schedule: Schedule = "official"
    constant_epochs: int = 2
    decay: float = 0.3
    inverse_time_decay: float = 5e-5
    pairing: Pairing = "random_style_per_content"
    loss_weights: Mapping[str, float] = field(default_factory=dict)
    checkpoint_every: int = 5000
    workers: int = 4


def lr_factor(recipe: TrainingRecipe, epoch: int, step: int, total_epochs: int | None = None) -> float:
    """Multiplier of ``recipe.lr`` at 0-based ``epoch`` and global optimiser ``step`` (spec §6.4, §11)."""
    if recipe.schedule == "official":
        return recipe.decay ** max(0, epoch + 1 - recipe.constant_epochs)
    if recipe.schedule == "paper":
        decay_epochs = (total_epochs or recipe.epochs or recipe.constant_epochs + 1) - recipe.constant_epochs
        return 1.0 - max(0, epoch + 1 - recipe.constant_epochs) / float(decay_epochs + 1)
    if recipe.schedule == "inverse_time":
        return 1.0 / (1.0 + recipe.inverse_time_decay * step)
    if recipe.schedule == "constant":
        return 1.0
    raise ValueError(f"unknown LR schedule {recipe.schedule!r}; choose official, paper, inverse_time or constant")


STYA2K_RECIPE = TrainingRecipe(
    source="StyA2K official train_A2K.sh + A2K_model.py (spec §6): Adam 2e-4, betas (0.9, 0.999), batch 8, resize "
    "512×512 → random crop 256 → random h-flip, 5 epochs (2 + 3 decayed ×0.3), λ_global 10, λ_A2K 1.25",
    loss_weights={"global_style": 10.0, "a2k": 1.25},
)
ALL2ALL_RECIPE = TrainingRecipe(
    source="StyA2K's recipe with the all-to-all analogue of the A2K* loss (spec §10.1)",
    loss_weights={"global_style": 10.0, "a2k": 1.25},
)
ADAATTN_RECIPE = TrainingRecipe(
    source="AdaAttN official train_adaattn.sh + adaattn_model.py (spec §10.2): Adam 2e-4, batch 8, resize 512×512 → "
    "random crop 256 → random h-flip, 5 epochs (2 + 3 decayed), λ_global 10, λ_local 3, λ_content 0",
    loss_weights={"global_style": 10.0, "local": 3.0, "content": 0.0},
)
ADAIN_RECIPE = TrainingRecipe(
    source="pytorch-AdaIN train.py (spec §11): Adam 1e-4, lr / (1 + 5e-5·i), batch 8, resize 512×512 → random crop "
    "256 (no flip), 160,000 iterations, independent content/style samplers, content 1.0 + style 10.0",
    lr=1e-4,
    hflip=False,
    epochs=None,
    steps=160_000,
    schedule="inverse_time",
    pairing="independent",
    loss_weights={"content": 1.0, "style": 10.0},
)


def steps_per_epoch(num_content: int, batch_size: int) -> int:
    """Optimiser steps in one pass over the content set (``drop_last=False``): ⌈N / B⌉."""
    return math.ceil(num_content / batch_size)
