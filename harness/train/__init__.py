"""Training: ``train(TrainConfig) -> summary`` (spec §6, §11).

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
  ``paper`` depends on the total length, so extending a ``paper`` run (``resume`` with more ``steps``) changes its
  remaining LRs;
* AMP: ``bf16`` (CPU or CUDA autocast) or ``fp16`` (CUDA autocast + GradScaler);
* DDP under ``torchrun`` (``RANK``/``WORLD_SIZE`` set): gloo on CPU, nccl on CUDA; every rank runs
  ``batch_size`` images per step on its share of the data (effective batch = world size × batch size); the
  loss terms are averaged over ranks for logging; rank 0 alone writes logs, samples and checkpoints.

Outputs in ``out``:

* ``harness_checkpoint.pt`` (:func:`harness.io.save_checkpoint`; ``create_method(NAME, weights=out)`` loads it — the
  frozen VGG is *not* in it and is resolved again at load time, so a checkpoint trained against a random encoder
  (``untrained_encoder: true`` in its metadata) only reproduces its training outputs with that same encoder);
* ``training_state.pt``: everything ``resume`` needs (model + optimizer + scaler state, step, epoch, position,
  RNG states, sampler state, config, recipe, skipped files, data fingerprints) — self-contained, so a crash between
  writing it and the checkpoint cannot make a run unresumable;
* for StyA2K methods also the official ``latest_net_A2K.pth``, ``latest_net_transform.pth``,
  ``latest_net_decoder.pth`` (state dicts of ``model.A2K``, ``model.transform``, ``model.decoder``);
* ``loss_log.csv``: one row per step, ``step, epoch, lr, <terms>, loss`` (``step`` = optimiser steps done,
  ``epoch`` 1-based, floats written with ``repr`` so equal values give equal text);
* ``samples/step_000123.png``: content | style | output (clamped) for the first ≤ 4 pairs of the batch, under a band
  naming the columns and the step (a † where the encoder is random).

Every file is written atomically (:mod:`harness.atomic`).

Modules: :mod:`.config` (settings → recipe, LR), :mod:`.distributed` (torchrun), :mod:`.state` (loss log, samples,
RNG state), :mod:`.loop` (the loop).
"""
from __future__ import annotations

from ..errors import TrainingDivergedError
from .config import LOSS_LOG_NAME, OFFICIAL_STYA2K_FILES, STATE_NAME, TrainConfig, build_recipe, lr_at
from .distributed import Distributed, LossModule
from .loop import _autocast, train
from .state import LossLog, save_sample_grid

__all__ = [
    "LOSS_LOG_NAME",
    "OFFICIAL_STYA2K_FILES",
    "STATE_NAME",
    "Distributed",
    "LossLog",
    "LossModule",
    "TrainConfig",
    "TrainingDivergedError",
    "build_recipe",
    "lr_at",
    "save_sample_grid",
    "train",
]
