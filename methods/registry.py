"""The method registry: ``register_method`` (a decorator on a network factory), ``create_method``, ``list_methods``.

Names are case-insensitive (``styA2K`` == ``stya2k``). Third-party packages add methods through the ``harness.methods``
entry-point group: the entry point names a module (or an object inside one) whose import calls ``@register_method``.

Weights (see :mod:`methods.weights`): ``create_method(name, weights=DIR)`` loads the method's official files from DIR
(falling back to ``--weights-dir`` / ``$HARNESS_WEIGHTS``, the cache, and the official URLs), or a checkpoint the
harness wrote (``harness_checkpoint.pt``). ``init="random"`` builds seeded untrained weights instead, explicitly, and
the method's :class:`~methods.base.Provenance` flags every output as untrained. Nothing falls back to random silently.
"""
from __future__ import annotations

import difflib
import fnmatch
import inspect
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

from .base import Method, Provenance, StyleTransferNet
from .recipes import TrainingRecipe
from .weights import (
    ResolvedFile,
    WeightFile,
    WeightsError,
    check_state_dict,
    load_into,
    resolve_files,
    resolve_for_init,
    search_dirs,
    sha256_file,
)

ENTRY_POINT_GROUP = "harness.methods"
CHECKPOINT_NAME = "harness_checkpoint.pt"
CHECKPOINT_FORMAT = "ast-harness/checkpoint-v1"
INIT_CHOICES = (None, "pretrained", "random")

VGG_WEIGHTS = WeightFile(
    "vgg_normalised.pth",
    url="https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth",
    description="VGG-19 normalised encoder (pytorch-AdaIN release v0.0.0; no published checksum)",
)


class UnknownMethodError(ValueError):
    """An unknown method name; the message lists the known names and suggests the closest one."""


class OptionError(ValueError):
    """An unknown or invalid method option; the message lists the method's options."""


@dataclass(frozen=True)
class MethodInfo:
    """Everything the harness knows about a method besides its network.

    ``weights`` maps the attribute path of a sub-module of the network (e.g. ``"A2K"``, ``"decoder"``) to the official
    file that loads strictly into it; the frozen encoder's file is ``encoder_weights``. ``defaults`` are option values
    fixed by this registration (e.g. the ablations of StyA2K) that callers may still override.
    """

    name: str
    factory: Callable[..., StyleTransferNet]
    paper: str = ""
    summary: str = ""
    trainable: bool = True
    encoder_layers: tuple[str, ...] = ()
    default_size: int = 512
    weights: Mapping[str, WeightFile] = field(default_factory=dict)
    encoder_weights: WeightFile | None = VGG_WEIGHTS
    licence: str = ""
    code_url: str = ""
    defaults: Mapping[str, Any] = field(default_factory=dict)
    recipe: TrainingRecipe | None = None
    plugin: str | None = None

    @property
    def options(self) -> dict[str, Any]:
        """Option name → default value (the factory's keyword arguments, with this registration's defaults)."""
        params = inspect.signature(self.factory).parameters
        out = {k: p.default for k, p in params.items() if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)}
        out.update(self.defaults)
        return out

    @property
    def has_official_weights(self) -> bool:
        return bool(self.weights)

    def weight_files(self) -> list[WeightFile]:
        """Every file the pretrained method needs: its own, then the encoder's."""
        return list(self.weights.values()) + ([self.encoder_weights] if self.encoder_weights else [])


_REGISTRY: dict[str, MethodInfo] = {}
_PLUGINS_LOADED = False


def register_method(name: str | Callable | None = None, **info: Any):
    """Register a network factory as a method (use bare or with metadata, like timm's ``register_model``).

    ``@register_method`` names the method after the function; ``@register_method("name", paper=..., weights=...)``
    sets the metadata of :class:`MethodInfo`. The factory takes the method's options as keyword arguments and returns
    a :class:`~methods.base.StyleTransferNet`. Registering the same factory again replaces the entry; another
    factory under a taken name is an error.
    """

    def decorator(factory: Callable[..., StyleTransferNet]) -> Callable[..., StyleTransferNet]:
        display = name if isinstance(name, str) else factory.__name__
        key = display.lower()
        previous = _REGISTRY.get(key)
        if previous is not None and previous.factory is not factory:
            raise ValueError(f"method name {display!r} is already registered by {previous.factory.__module__}")
        _REGISTRY[key] = MethodInfo(display, factory, **info)
        return factory

    if callable(name):
        factory, name = name, None
        return decorator(factory)
    return decorator


def _load_plugins() -> None:
    """Import every ``harness.methods`` entry point once; a broken plugin is a warning, not a crash."""
    global _PLUGINS_LOADED
    if _PLUGINS_LOADED:
        return
    _PLUGINS_LOADED = True
    for entry_point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        before = set(_REGISTRY)
        try:
            entry_point.load()
        except Exception as exc:  # a third-party import error must not take the harness down
            warnings.warn(f"method plugin {entry_point.name!r} ({entry_point.value}) failed to load: {exc}")
            continue
        for key in set(_REGISTRY) - before:
            object.__setattr__(_REGISTRY[key], "plugin", entry_point.value)


def reload_plugins() -> None:
    """Look for ``harness.methods`` entry points again (e.g. after installing a plugin in a running session)."""
    global _PLUGINS_LOADED
    _PLUGINS_LOADED = False
    _load_plugins()


def list_methods(pattern: str = "*") -> list[str]:
    """Registered method names matching a shell-style ``pattern`` (case-insensitive), sorted."""
    _load_plugins()
    return sorted((i.name for k, i in _REGISTRY.items() if fnmatch.fnmatch(k, pattern.lower())), key=str.lower)


def get_method_info(name: str) -> MethodInfo:
    """The :class:`MethodInfo` of ``name``; unknown names raise :class:`UnknownMethodError` with a suggestion."""
    _load_plugins()
    key = name.lower()
    if key in _REGISTRY:
        return _REGISTRY[key]
    close = difflib.get_close_matches(key, list(_REGISTRY), n=1, cutoff=0.5)
    hint = f"did you mean {_REGISTRY[close[0]].name!r}? " if close else ""
    raise UnknownMethodError(f"unknown method {name!r}; {hint}known methods: {', '.join(list_methods())}")


def _build(info: MethodInfo, options: dict[str, Any]) -> tuple[StyleTransferNet, dict[str, Any]]:
    known = info.options
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise OptionError(
            f"method {info.name!r} has no option(s) {', '.join(unknown)}; its options are: "
            + ", ".join(f"{k}={v!r}" for k, v in known.items())
        )
    resolved = {**known, **options}
    try:
        return info.factory(**resolved), resolved
    except (ValueError, TypeError) as exc:
        raise OptionError(f"method {info.name!r}: invalid options: {exc}") from exc


def _submodule(model: torch.nn.Module, path: str) -> torch.nn.Module:
    return model.get_submodule(path) if path else model


def _file_record(resolved: ResolvedFile) -> dict[str, Any]:
    return {"path": str(resolved.path), "sha256": resolved.sha256, "source": resolved.source, "verified": resolved.verified}


def find_checkpoint(info: MethodInfo, weights=None, weights_dir=None) -> Path | None:
    """A harness checkpoint: ``weights`` itself if it is a file, else ``harness_checkpoint.pt`` in the explicit
    folder, or in ``<dir>/<method name>/`` of the other search folders."""
    if weights is not None and Path(weights).is_file():
        return Path(weights)
    for source, folder in search_dirs(weights, weights_dir):
        candidates = [folder / CHECKPOINT_NAME] if source == "explicit" else []
        candidates.append(folder / info.name.lower() / CHECKPOINT_NAME)
        for candidate in candidates:
            if candidate.is_file():
                return candidate
    return None


def _resolve_encoder(info: MethodInfo, model: StyleTransferNet, weights, weights_dir, download, init: str | None):
    """Load the encoder file into ``model.encoder.layers``; returns its record, or None when ``init="random"`` and
    it is not found (:func:`~methods.weights.resolve_for_init`)."""
    if info.encoder_weights is None:
        return None
    record = resolve_for_init(info.encoder_weights, init, weights=weights, weights_dir=weights_dir, download=download)
    if record is None:
        return None
    load_into(model.encoder.layers, record.path, source=str(record.path))
    return _file_record(record)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Read a harness checkpoint (``torch.load(weights_only=True)``) and check its format."""
    try:
        payload = torch.load(Path(path), map_location="cpu", weights_only=True)
    except Exception as exc:
        raise WeightsError(f"{path}: not a readable harness checkpoint ({str(exc).splitlines()[0]})") from exc
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise WeightsError(f"{path}: not a harness checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return payload


def save_checkpoint(method: Method, path: str | os.PathLike, metadata: Mapping[str, Any] | None = None) -> Path:
    """Write ``method``'s trainable state, options and metadata as a harness checkpoint (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "method": method.info.name,
        "options": {k: (list(v) if isinstance(v, tuple) else v) for k, v in method.options.items()},
        "state_dict": {k: v.detach().cpu() for k, v in method.model.trainable_state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    return path


def create_method(
    name: str,
    weights: str | os.PathLike | None = None,
    init: str | None = None,
    device: str | torch.device = "cpu",
    *,
    weights_dir: str | os.PathLike | None = None,
    seed: int = 0,
    download: bool | None = None,
    **options: Any,
) -> Method:
    """Build method ``name`` with its weights.

    Args:
        weights: a folder with the method's official files (e.g. StyA2K's ``latest_net_A2K.pth``,
            ``latest_net_transform.pth``, ``latest_net_decoder.pth``; VGG's ``vgg_normalised.pth``), or a harness
            checkpoint (file, or a folder holding ``harness_checkpoint.pt``). ``None``: the resolver's search order.
        init: ``None``/``"pretrained"`` (load weights; missing ones are an error) or ``"random"`` (seeded untrained
            weights for smoke and timing runs, and the start of a training; the frozen encoder is still loaded when
            found locally — downloaded only with ``download=True`` — else random and flagged).
        device: where the model lives.
        weights_dir: the ``--weights-dir`` folder (else ``$HARNESS_WEIGHTS``).
        seed: seed of ``init="random"``.
        download: allow downloads from the official URLs (default: yes unless ``$HARNESS_OFFLINE`` is set).
        **options: the method's options (see ``MethodInfo.options``).
    """
    info = get_method_info(name)
    if init not in INIT_CHOICES:
        raise OptionError(f"init must be one of None, 'pretrained', 'random'; got {init!r}")
    checkpoint = None
    if init != "random":
        checkpoint_path = find_checkpoint(info, weights, weights_dir)
        if checkpoint_path is not None:
            checkpoint = load_checkpoint(checkpoint_path)
            if checkpoint["method"].lower() != info.name.lower():
                raise WeightsError(
                    f"{checkpoint_path}: checkpoint of method {checkpoint['method']!r}, not {info.name!r}; "
                    f"use create_method({checkpoint['method']!r}, ...)"
                )
            options = {**checkpoint.get("options", {}), **options}
    model, resolved_options = _build(info, options)
    model.eval()

    if init == "random":
        generator = torch.Generator().manual_seed(seed)
        model.reset_random(generator)
        encoder = _resolve_encoder(info, model, weights, weights_dir, download, init="random")
        if encoder is None and info.encoder_weights is not None:
            model.encoder.reset_random(torch.Generator().manual_seed(seed + 1))
        provenance = Provenance(
            untrained=True, encoder_pretrained=encoder is not None or info.encoder_weights is None, seed=seed,
            files={info.encoder_weights.filename: encoder} if encoder else {},
        )
    elif checkpoint is not None:
        state = checkpoint["state_dict"]
        check_state_dict(model.trainable_state_dict(), state, str(checkpoint_path))
        model.load_state_dict({**model.state_dict(), **state}, strict=True)
        metadata = checkpoint.get("metadata", {})
        random_encoder = bool(metadata.get("untrained_encoder", False))
        # A checkpoint trained against the seeded random VGG of `train --init random` is only meaningful with that
        # same encoder: where no VGG file is on disk (none is downloaded for it), rebuild it from the training seed
        # (as create_method(init="random", seed=...) did for the training), flagged.
        encoder = _resolve_encoder(info, model, weights, weights_dir, download,
                                   init="random" if random_encoder else None)
        if encoder is None and random_encoder and info.encoder_weights is not None:
            model.encoder.reset_random(torch.Generator().manual_seed(int(metadata.get("seed", 0)) + 1))
        files = {CHECKPOINT_NAME: {"path": str(checkpoint_path), "sha256": sha256_file(checkpoint_path),
                                   "source": "checkpoint", "verified": None}}
        if encoder:
            files[info.encoder_weights.filename] = encoder
        provenance = Provenance(
            untrained=False, encoder_pretrained=encoder is not None or info.encoder_weights is None,
            checkpoint=str(checkpoint_path), files=files,
            trained_with_random_encoder=bool(checkpoint.get("metadata", {}).get("untrained_encoder", False)),
        )
    else:
        if not info.has_official_weights:
            raise WeightsError(
                f"method {info.name!r} has no official weights; train it with `python -m harness train --method "
                f"{info.name} ...` and pass the output folder as --weights, place its {CHECKPOINT_NAME} under "
                f"<weights dir>/{info.name.lower()}/, or use --init random for an untrained smoke or timing run"
            )
        resolved = resolve_files(info.weight_files(), weights=weights, weights_dir=weights_dir, download=download)
        for target, spec in info.weights.items():
            load_into(_submodule(model, target), resolved[spec.filename].path, source=str(resolved[spec.filename].path))
        if info.encoder_weights is not None:
            record = resolved[info.encoder_weights.filename]
            load_into(model.encoder.layers, record.path, source=str(record.path))
        provenance = Provenance(
            untrained=False, encoder_pretrained=True, files={k: _file_record(v) for k, v in resolved.items()}
        )
    model.to(device)
    return Method(info, model, resolved_options, provenance)
