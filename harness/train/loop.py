"""The training loop: :func:`train` checks everything it can before building a model (:func:`_plan`), builds and
restores the model (:func:`_build`), then steps through the data (:class:`_Trainer`)."""
from __future__ import annotations

import contextlib
import datetime as _dt
import math
import os
import random
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

from methods import CHECKPOINT_NAME, Method, MethodInfo, create_method, get_method_info
from methods.errors import literal
from methods.recipes import TrainingRecipe
from methods.weights import ENV_OFFLINE, ENV_WEIGHTS, cache_dir

from ..data import (PairDataset, PairSchedule, Preprocess, StepBatchSampler, collate, first_readable,
    folder_fingerprint, list_training_images)
from ..environment import resolve_device
from ..environment import versions as environment_versions
from ..errors import ConfigError, TrainingDivergedError
from ..atomic import remove_stale_temporaries
from ..io import save_checkpoint, save_torch
from .config import (_DEFAULTS, AMP_CHOICES, LOSS_LOG_NAME, OFFICIAL_STYA2K_FILES, SAMPLES_DIR, STATE_FORMAT,
    STATE_NAME, TrainConfig, _command_line, _merge_resumed, _plain, build_recipe, lr_at)
from .distributed import Distributed, LossModule
from .state import LossLog, rng_state, save_sample_grid, set_rng_state, tensor_digest


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
    how = "downloads are off ({download=False} or $HARNESS_OFFLINE)" if not download else "its download failed"
    raise ConfigError(
        f"training {method.name} needs the pretrained VGG-19 encoder {spec.filename}, which was not found and "
        f"{how}: get it from {literal(spec.url)} and put it in {{weights_dir=DIR}}, ${ENV_WEIGHTS}=DIR or the "
        f"cache folder {literal(cache_dir())}; or pass {{init=\"random\"}} to train against a random encoder "
        "(smoke runs only: the checkpoint is flagged untrained_encoder and its losses are meaningless)"
    )


# ----------------------------------------------------------------------------------------------------------------------
# Before any model: settings, resume state, data
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class _Plan:
    """Everything :func:`train` checks and derives before it builds a model."""

    config: TrainConfig
    info: MethodInfo
    recipe: TrainingRecipe
    device: torch.device
    saved_state: dict[str, Any] | None
    content_paths: list[Path]
    style_paths: list[Path]
    skipped: dict[str, str]
    fingerprints: dict[str, dict[str, Any]]
    schedule: PairSchedule
    total_steps: int
    total_epochs: int

    @property
    def out(self) -> Path:
        return Path(self.config.out)

    @property
    def spe(self) -> int:
        return self.schedule.steps_per_epoch

    @property
    def seed(self) -> int:
        return int(self.config.seed)


def _resumed_config(config: TrainConfig) -> tuple[TrainConfig, dict[str, Any] | None]:
    """``config`` (merged with the saved run's when resuming) and the saved training state, if any."""
    out = Path(config.out)
    state_path = out / STATE_NAME
    if not config.resume:
        if state_path.exists() or (out / CHECKPOINT_NAME).exists():
            raise ConfigError(f"{{out}} {literal(out)} already holds a training run ({STATE_NAME} / "
                              f"{CHECKPOINT_NAME}); pass {{resume}} to continue it, or choose another {{out}} folder")
        return config, None
    if not state_path.is_file():
        raise ConfigError(f"{{resume}}: {literal(state_path)} does not exist; nothing to resume (start without "
                          "{resume})")
    try:
        saved = torch.load(state_path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated, corrupt, or pickled objects weights_only refuses
        reason = literal(" ".join(str(exc).split())[:200])
        raise ConfigError(f"{{resume}}: {literal(state_path)} is unreadable ({type(exc).__name__}: {reason}); it "
                          f"cannot be resumed: restore it from a backup, or start a new run (the last checkpoint, "
                          f"{CHECKPOINT_NAME}, loads on its own with {{weights}} {literal(out)})") from None
    if not isinstance(saved, dict) or saved.get("format") != STATE_FORMAT:
        raise ConfigError(f"{{resume}}: {literal(state_path)} is not a harness training state ({STATE_FORMAT})")
    return _merge_resumed(config, saved["config"], state_path), saved


def _check_data(config: TrainConfig, saved_state: dict[str, Any] | None
                ) -> tuple[list[Path], list[Path], dict[str, str], dict[str, dict[str, Any]]]:
    """The training images, the unreadable ones met so far and the folders' fingerprints (a resumed run needs the
    same folders to reproduce its data order)."""
    content_paths = list_training_images(config.content_dir, "content_dir")
    style_paths = list_training_images(config.style_dir, "style_dir")
    skipped: dict[str, str] = {}
    for paths, role, folder in ((content_paths, "content_dir", config.content_dir),
                                (style_paths, "style_dir", config.style_dir)):
        _, bad = first_readable(paths, f"{{{role}}} {literal(folder)}")
        skipped.update(bad)
    fingerprints = {
        "content": {"count": len(content_paths), "sha256": folder_fingerprint(content_paths, Path(config.content_dir))},
        "style": {"count": len(style_paths), "sha256": folder_fingerprint(style_paths, Path(config.style_dir))},
    }
    for role, now in fingerprints.items():
        then = saved_state["data"][role] if saved_state is not None else now
        if then != now:
            raise ConfigError(
                f"{{resume}}: the {role} folder changed since the run started ({then['count']} images then, "
                f"{now['count']} now, or other names): resuming would not reproduce the data order"
            )
    return content_paths, style_paths, skipped, fingerprints


def _plan(config: TrainConfig, dist_ctx: Distributed) -> _Plan:
    config = replace(config, options=dict(config.options or {}))  # filled in below; the caller's object stays as is
    config, saved_state = _resumed_config(config)
    for name, value in _DEFAULTS.items():
        if getattr(config, name) is None:
            setattr(config, name, value)
    if config.amp not in AMP_CHOICES:
        raise ConfigError(f"{{amp}} {config.amp!r}: choose one of {', '.join(AMP_CHOICES)}")
    for name in ("log_every", "sample_every"):
        if getattr(config, name) < 0:
            raise ConfigError(f"{{{name}}} must be 0 or more, got {getattr(config, name)}")
    info = get_method_info(config.method)
    if info.recipe is None or not info.trainable:
        raise ConfigError(f"method {info.name!r} is not trainable in the harness (it has no training recipe)")
    recipe = build_recipe(info.recipe, config, info.name)
    device = dist_ctx.device(resolve_device(config.device))
    if config.amp == "fp16" and device.type != "cuda":
        raise ConfigError("{amp} fp16 needs a CUDA device (fp16 autocast with a GradScaler); on CPU use "
                          "{amp=bf16}")
    content_paths, style_paths, skipped, fingerprints = _check_data(config, saved_state)
    schedule = PairSchedule(len(content_paths), len(style_paths), recipe.batch_size, int(config.seed),
                            recipe.pairing, dist_ctx.rank, dist_ctx.world_size)
    spe = schedule.steps_per_epoch
    total_steps = recipe.steps if recipe.steps is not None else recipe.epochs * spe
    return _Plan(config, info, recipe, device, saved_state, content_paths, style_paths, skipped, fingerprints,
                 schedule, total_steps, math.ceil(total_steps / spe))


# ----------------------------------------------------------------------------------------------------------------------
# The model, restored when resuming
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class _Model:
    method: Method
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    encoder_digest: str
    untrained_encoder: bool
    start_step: int = 0
    runner: nn.Module | None = None

    @property
    def model(self) -> nn.Module:
        return self.method.model


def _restore(plan: _Plan, built: _Model, dist_ctx: Distributed) -> None:
    """The saved run's weights, optimiser, scaler and RNG states (or, for a new run, the seeded RNGs)."""
    saved, seed = plan.saved_state, plan.seed
    if saved is None:
        torch.manual_seed(seed + dist_ctx.rank)
        np.random.seed((seed + dist_ctx.rank) % 2**32)
        random.seed(seed + dist_ctx.rank)
        return
    built.start_step = int(saved["step"])
    if built.start_step > plan.total_steps:
        raise ConfigError(f"{{resume}}: the run in {literal(plan.out)} has already done {built.start_step} steps, "
                          f"more than the {plan.total_steps} asked for; give a larger {{steps}} or {{epochs}}")
    if saved["encoder_sha256"] != built.encoder_digest:
        raise ConfigError(
            "{resume}: the frozen encoder differs from the one the run was trained with (a VGG file appeared, "
            "disappeared or changed in the weights folders, or {init}/{seed} differ); restore it to resume"
        )
    if saved["world_size"] != dist_ctx.world_size:
        warnings.warn(f"resuming a run of {saved['world_size']} process(es) with {dist_ctx.world_size}: "
                      "the data split differs, so this is not an exact continuation")
    built.model.load_state_dict({**built.model.state_dict(), **saved["model"]}, strict=True)
    built.optimizer.load_state_dict(saved["optimizer"])
    if saved.get("scaler"):
        built.scaler.load_state_dict(saved["scaler"])
    set_rng_state(saved["rng"])
    for path, reason in saved.get("skipped", {}).items():
        plan.skipped.setdefault(path, reason)


def _build(plan: _Plan, dist_ctx: Distributed) -> _Model:
    """The method (trainable parts seeded, the frozen VGG from the resolver), its optimiser and the wrapped loss."""
    config, device = plan.config, plan.device
    dist_ctx.init(device)
    download = _downloads_allowed(config)
    method = create_method(plan.info.name, init="random", device=device, weights_dir=config.weights_dir,
                           seed=plan.seed, download=download, **config.options)
    untrained_encoder = not method.provenance.encoder_pretrained
    if untrained_encoder and config.init != "random":
        _refuse_random_encoder(method, download)
    model = method.model
    model.train()
    model.encoder.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ConfigError(f"method {plan.info.name!r} has no trainable parameters")
    built = _Model(method, params, torch.optim.Adam(params, lr=plan.recipe.lr, betas=tuple(plan.recipe.betas)),
                   torch.amp.GradScaler(device.type, enabled=config.amp == "fp16"),
                   tensor_digest(model.encoder.state_dict()), untrained_encoder)
    _restore(plan, built, dist_ctx)
    runner: nn.Module = LossModule(model, dict(plan.recipe.loss_weights))
    if dist_ctx.enabled:
        from torch.nn.parallel import DistributedDataParallel

        runner = DistributedDataParallel(runner, device_ids=[device.index] if device.type == "cuda" else None)
    built.runner = torch.compile(runner) if config.compile else runner
    return built


# ----------------------------------------------------------------------------------------------------------------------
# The loop
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class _Trainer:
    """One training process: steps, logs, samples, checkpoints and divergence handling (rank 0 writes the files)."""

    plan: _Plan
    built: _Model
    dist_ctx: Distributed
    log: LossLog | None = None
    last_saved: int = -1
    last_terms: dict[str, float] = field(default_factory=dict)
    written_official: list[str] = field(default_factory=list)
    versions: dict[str, str] = field(default_factory=environment_versions)

    @property
    def main(self) -> bool:
        return self.dist_ctx.main

    @property
    def stya2k(self) -> bool:
        return self.plan.info.name.lower().startswith("stya2k")

    @property
    def flag(self) -> str:
        return "RANDOM ENCODER (init random)" if self.built.untrained_encoder else ""

    def metadata(self, step: int, finished: bool) -> dict[str, Any]:
        plan, method = self.plan, self.built.method
        info = plan.info
        encoder_file = method.provenance.files.get(info.encoder_weights.filename) if info.encoder_weights else None
        return {
            "recipe": _plain(asdict(plan.recipe)), "seed": plan.seed, "steps": step, "total_steps": plan.total_steps,
            "epoch": (max(step, 1) - 1) // plan.spe + 1, "steps_per_epoch": plan.spe, "finished": finished,
            "world_size": self.dist_ctx.world_size, "amp": plan.config.amp, "options": _plain(method.options),
            "vgg": encoder_file, "provenance_files": _plain(method.provenance.files),
            "untrained_encoder": self.built.untrained_encoder,
            "skipped_files": sorted(plan.skipped), "skipped_count": len(plan.skipped),
            "final_terms": dict(self.last_terms), "versions": self.versions,
            "command_line": plan.config.command_line or _command_line(plan.config),
            "time": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    def sync_skipped(self) -> None:
        for other in self.dist_ctx.gather(dict(self.plan.skipped)):
            for path, reason in other.items():
                self.plan.skipped.setdefault(path, reason)

    def write_checkpoint(self, step: int, finished: bool) -> None:
        """Training state, then the harness checkpoint, then (StyA2K) the official files; rank 0 only."""
        plan, built = self.plan, self.built
        epoch, position = divmod(step, plan.spe)
        state = {
            "format": STATE_FORMAT, "step": step, "epoch": epoch, "position_in_epoch": position,
            "model": {k: v.detach().cpu().clone() for k, v in built.model.trainable_state_dict().items()},
            "optimizer": built.optimizer.state_dict(),
            "scaler": built.scaler.state_dict() if built.scaler.is_enabled() else {},
            "rng": rng_state(), "sampler": plan.schedule.state(), "config": _plain(plan.config.to_dict()),
            "recipe": _plain(asdict(plan.recipe)), "skipped": dict(plan.skipped), "data": plan.fingerprints,
            "encoder_sha256": built.encoder_digest, "world_size": self.dist_ctx.world_size,
            "last_terms": dict(self.last_terms), "columns": list(self.log.columns or []) if self.log else [],
        }
        save_torch(state, plan.out / STATE_NAME)
        save_checkpoint(built.method, plan.out / CHECKPOINT_NAME, self.metadata(step, finished))
        if self.stya2k:
            for attr, filename in OFFICIAL_STYA2K_FILES.items():
                part = built.model.get_submodule(attr)
                save_torch({k: v.detach().cpu() for k, v in part.state_dict().items()}, plan.out / filename)
                if filename not in self.written_official:
                    self.written_official.append(filename)
        self.last_saved = step

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.built.params)

    def diverged(self, step: int, epoch: int, terms: Mapping[str, float], what: str) -> TrainingDivergedError:
        good = step - 1 if what == "loss" else self.last_saved
        note = ""
        if self.main:
            if what == "loss" and self.last_saved != good and good >= 0 and self.weights_finite():
                self.write_checkpoint(good, finished=False)
            note = (f"; the last good state (step {self.last_saved}) is in {literal(self.plan.out)}"
                    if self.last_saved >= 0 else "; no checkpoint was written")
        self.dist_ctx.barrier()
        shown = ", ".join(f"{k}={v:.6g}" for k, v in terms.items())
        return TrainingDivergedError(f"training diverged at step {step} (epoch {epoch}): non-finite {what} "
                                     f"({literal(shown)}){note}; lower {{lr}}, or use {{amp=off}}")

    def optimise(self, batch: Mapping[str, Any], step: int, epoch: int) -> tuple[dict[str, float], Tensor, Tensor]:
        """One optimiser step on ``batch``: the loss terms (averaged over ranks) and the batch's tensors."""
        plan, built = self.plan, self.built
        for path, reason in batch["skipped"]:
            if path not in plan.skipped:
                plan.skipped[path] = reason
                if self.main:
                    warnings.warn(f"skipping unreadable training image: {reason}")
        content = batch["content"].to(plan.device, non_blocking=True)
        style = batch["style"].to(plan.device, non_blocking=True)
        built.optimizer.zero_grad(set_to_none=True)
        with _autocast(plan.config.amp, plan.device):
            terms = built.runner(content, style)
        if not isinstance(terms, Mapping) or "loss" not in terms:
            raise RuntimeError(f"{type(built.model).__name__}.training_loss must return a dict of scalar tensors "
                               f"with a 'loss' entry, got {type(terms).__name__}")
        names = [k for k in terms if k != "loss"] + ["loss"]
        values = self.dist_ctx.mean(torch.stack([terms[k].detach().float().reshape(()) for k in names]))
        terms_now = dict(zip(names, values.tolist()))
        if not all(math.isfinite(v) for v in terms_now.values()):
            raise self.diverged(step + 1, epoch + 1, terms_now, "loss")
        built.scaler.scale(terms["loss"]).backward()
        built.scaler.step(built.optimizer)
        built.scaler.update()
        return terms_now, content, style

    def after_step(self, step: int, epoch: int, content: Tensor, style: Tensor) -> None:
        """Samples and checkpoints due at ``step`` (optimiser steps done)."""
        plan = self.plan
        if self.main and plan.config.sample_every and step % plan.config.sample_every == 0:
            with torch.no_grad(), _autocast(plan.config.amp, plan.device):
                n = min(4, content.shape[0])
                output = self.built.model(content[:n], style[:n]).float()
            save_sample_grid(plan.out / SAMPLES_DIR / f"step_{step:06d}.png", content[:n], style[:n], output,
                             step=step, untrained=self.built.untrained_encoder)
        if step % plan.recipe.checkpoint_every == 0 or step == plan.total_steps:
            self.sync_skipped()
            if not self.weights_finite():  # every rank holds the same weights, so every rank stops here
                raise self.diverged(step, epoch + 1, self.last_terms, "weights after the update")
            if self.main:
                self.write_checkpoint(step, finished=step == plan.total_steps)

    def announce(self, start_step: int) -> None:
        plan, recipe = self.plan, self.plan.recipe
        if self.main and start_step < plan.total_steps:
            what = f"resuming at step {start_step}" if plan.saved_state is not None else "training"
            print(f"{what}: {plan.info.name}, {plan.total_steps} steps ({plan.total_epochs} epoch(s) of {plan.spe} "
                  f"steps), batch {recipe.batch_size}×{self.dist_ctx.world_size}, crop {recipe.crop}, lr "
                  f"{recipe.lr:g} ({recipe.schedule}), amp {plan.config.amp}, {len(plan.content_paths)} content / "
                  f"{len(plan.style_paths)} style images" + (f" [{self.flag}]" if self.flag else ""), flush=True)

    def run(self) -> tuple[int, float, int]:
        """Step from the start (or resumed) step to the end; returns (steps done, seconds, images seen)."""
        plan, recipe, config = self.plan, self.plan.recipe, self.plan.config
        step = self.built.start_step
        loader = torch.utils.data.DataLoader(
            PairDataset(plan.content_paths, plan.style_paths,
                        Preprocess(recipe.load_size, recipe.crop, recipe.keep_aspect, recipe.hflip), plan.seed),
            batch_sampler=StepBatchSampler(plan.schedule, step, plan.total_steps), num_workers=recipe.workers,
            collate_fn=collate, pin_memory=plan.device.type == "cuda",
        )
        show_bar = self.main and (config.progress if config.progress is not None else sys.stderr.isatty())
        bar = tqdm(total=plan.total_steps, initial=step, disable=not show_bar, unit="step", dynamic_ncols=True,
                   desc=f"train {plan.info.name}")
        images_per_step = recipe.batch_size * self.dist_ctx.world_size
        self.announce(step)
        loop_start = time.perf_counter()
        window_start, window_steps, images_done = loop_start, 0, 0
        try:
            for batch in loader:
                epoch = step // plan.spe
                lr = lr_at(recipe, step, plan.spe, plan.total_epochs)
                for group in self.built.optimizer.param_groups:
                    group["lr"] = lr
                terms, content, style = self.optimise(batch, step, epoch)
                step += 1
                self.last_terms = terms
                images_done += images_per_step
                window_steps += 1
                if self.log is not None:
                    self.log.write({"step": step, "epoch": epoch + 1, "lr": float(lr), **terms})
                now = time.perf_counter()
                if config.log_every and (step % config.log_every == 0 or step == plan.total_steps):
                    rate = window_steps * images_per_step / max(now - window_start, 1e-9)
                    window_start, window_steps = now, 0
                    shown = " ".join(f"{k} {v:.4g}" for k, v in terms.items())
                    if show_bar:
                        bar.set_postfix_str(f"{shown} lr {lr:.3g} {rate:.1f} img/s", refresh=False)
                    elif self.main:
                        print(f"step {step}/{plan.total_steps} epoch {epoch + 1} lr {lr:.4g} {shown} "
                              f"{rate:.2f} img/s", flush=True)
                bar.update(1)
                self.after_step(step, epoch, content, style)
        finally:
            bar.close()
            if self.log is not None:
                self.log.close()
        return step, time.perf_counter() - loop_start, images_done


def _summary(trainer: _Trainer, step: int, elapsed: float, images_done: int) -> dict[str, Any]:
    plan, out = trainer.plan, trainer.plan.out
    return {
        "method": plan.info.name, "out": str(out), "steps": step, "total_steps": plan.total_steps,
        "steps_this_run": step - trainer.built.start_step, "epochs": plan.total_epochs, "steps_per_epoch": plan.spe,
        "seconds": elapsed, "images_per_s": images_done / elapsed if images_done and elapsed > 0 else 0.0,
        "final_terms": dict(trainer.last_terms), "skipped_files": sorted(plan.skipped),
        "untrained_encoder": trainer.built.untrained_encoder, "world_size": trainer.dist_ctx.world_size,
        "checkpoint": str(out / CHECKPOINT_NAME), "training_state": str(out / STATE_NAME),
        "loss_log": str(out / LOSS_LOG_NAME),
        "samples": str(out / SAMPLES_DIR) if (out / SAMPLES_DIR).is_dir() else None,
        "official_files": [str(out / f) for f in OFFICIAL_STYA2K_FILES.values()] if trainer.stya2k else [],
        "recipe": _plain(asdict(plan.recipe)), "flag": trainer.flag,
    }


def _train(config: TrainConfig, dist_ctx: Distributed) -> dict[str, Any]:
    plan = _plan(config, dist_ctx)  # every check of the settings and the data, before any model is built
    built = _build(plan, dist_ctx)
    resumed = plan.saved_state is not None
    trainer = _Trainer(plan, built, dist_ctx, last_saved=built.start_step if resumed else -1,
                       last_terms=dict(plan.saved_state.get("last_terms", {})) if resumed else {})
    if trainer.main:
        plan.out.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(plan.out)  # checkpoints a killed training was writing
        trainer.log = LossLog(plan.out / LOSS_LOG_NAME, built.start_step if resumed else None)
        for path, reason in plan.skipped.items():
            if not resumed or path not in plan.saved_state.get("skipped", {}):
                warnings.warn(f"skipping unreadable training image: {reason}")
    step, elapsed, images_done = trainer.run()
    if trainer.main and trainer.last_saved != step:  # e.g. a resume of a finished run: make sure the files exist
        trainer.write_checkpoint(step, finished=step >= plan.total_steps)
    dist_ctx.barrier()
    return _summary(trainer, step, elapsed, images_done)


def train(config: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training; returns a summary dict (see :mod:`harness.train` for the files written).

    Raises :class:`~harness.errors.ConfigError` / :class:`~harness.errors.ImageError` / method errors for bad input
    (before any model is built when it is the data), and :class:`~harness.errors.TrainingDivergedError` when the
    loss becomes NaN/inf.
    """
    dist_ctx = Distributed()
    try:
        return _train(config, dist_ctx)
    finally:
        dist_ctx.close()
