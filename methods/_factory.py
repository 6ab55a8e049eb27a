"""``create_method``: a registered network with its weights, in one of three ways, each its own function —
seeded untrained weights (:func:`_random`), a harness checkpoint (:func:`_from_checkpoint`), or the method's official
files (:func:`_official`). Nothing falls back to random silently: ``init="random"`` is explicit and every output of
such a method is flagged by its :class:`~methods._info.Provenance`.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import torch

from ._info import INIT_CHOICES, MethodInfo, Provenance
from ._registry import get_method_info
from .checkpoint import CHECKPOINT_NAME, find_checkpoint, load_checkpoint
from .errors import NoWeightsError, OptionError, WeightsError
from .method import Method
from .net import StyleTransferNet
from .weights import Loading, ResolvedFile, check_state_dict, load_into, resolve_files, resolve_for_init, sha256_file


def build_network(info: MethodInfo, options: dict[str, Any]) -> tuple[StyleTransferNet, dict[str, Any]]:
    """The method's network with ``options`` over its defaults (unknown or invalid options: :class:`OptionError`)."""
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


def _file_record(resolved: ResolvedFile) -> dict[str, Any]:
    return {"path": str(resolved.path), "sha256": resolved.sha256, "source": resolved.source, "verified": resolved.verified}


def _load_encoder(info: MethodInfo, model: StyleTransferNet, loading: Loading, random_seed: int | None):
    """The frozen encoder's file loaded into ``model.encoder.layers``; its record, or None when the method has no
    encoder file or (``random_seed`` given: untrained loading) none is found — then it is seeded from
    ``random_seed + 1`` (what ``init="random"`` with that seed builds)."""
    if info.encoder_weights is None:
        return None
    if random_seed is not None:
        loading = dataclasses.replace(loading, init="random")
    record = resolve_for_init(info.encoder_weights, loading)
    if record is None:
        model.encoder.reset_random(torch.Generator().manual_seed(random_seed + 1))
        return None
    load_into(model.encoder.layers, record.path, source=str(record.path))
    return _file_record(record)


def _random(info: MethodInfo, model: StyleTransferNet, loading: Loading) -> Provenance:
    """Seeded untrained weights; the encoder file is still used when found locally (downloaded only when asked)."""
    model.reset_random(torch.Generator().manual_seed(loading.seed))
    encoder = _load_encoder(info, model, loading, random_seed=loading.seed)
    return Provenance(
        untrained=True, encoder_pretrained=encoder is not None or info.encoder_weights is None, seed=loading.seed,
        files={info.encoder_weights.filename: encoder} if encoder else {},
    )


def _from_checkpoint(info: MethodInfo, model: StyleTransferNet, loading: Loading, path: Path,
                     checkpoint: dict[str, Any]) -> Provenance:
    """A harness checkpoint's trainable state, strictly. A checkpoint trained against the seeded random VGG of an
    untrained-encoder training is only meaningful with that same encoder: where no VGG file is on disk (none is
    downloaded for it), it is rebuilt from the training seed, flagged."""
    state = checkpoint["state_dict"]
    check_state_dict(model.trainable_state_dict(), state, str(path))
    model.load_state_dict({**model.state_dict(), **state}, strict=True)
    metadata = checkpoint.get("metadata", {})
    random_encoder = bool(metadata.get("untrained_encoder", False))
    encoder = _load_encoder(info, model, loading, random_seed=int(metadata.get("seed", 0)) if random_encoder else None)
    files = {CHECKPOINT_NAME: {"path": str(path), "sha256": sha256_file(path), "source": "checkpoint",
                               "verified": None}}
    if encoder:
        files[info.encoder_weights.filename] = encoder
    return Provenance(
        untrained=False, encoder_pretrained=encoder is not None or info.encoder_weights is None,
        checkpoint=str(path), files=files, trained_with_random_encoder=random_encoder,
    )


def _official(info: MethodInfo, model: StyleTransferNet, loading: Loading) -> Provenance:
    """The method's official files (and the encoder's), each loaded strictly into its sub-module."""
    if not info.has_official_weights:
        raise NoWeightsError(
            f"method {info.name!r} has no released weights; train it with harness.train and pass the output folder "
            f"as {{weights}}, place its {CHECKPOINT_NAME} under <weights dir>/{info.name}/, or use "
            f"{{init=\"random\"}} for an untrained smoke or timing run", template=True
        )
    resolved = resolve_files(info.weight_files(), weights=loading.weights, weights_dir=loading.weights_dir,
                             method_dir=info.name, download=loading.download)
    for target, spec in info.weights.items():
        module = model.get_submodule(target) if target else model
        load_into(module, resolved[spec.filename].path, source=str(resolved[spec.filename].path))
    if info.encoder_weights is not None:
        record = resolved[info.encoder_weights.filename]
        load_into(model.encoder.layers, record.path, source=str(record.path))
    return Provenance(untrained=False, encoder_pretrained=True, files={k: _file_record(v) for k, v in resolved.items()})


def load_method(name: str, loading: Loading, **options: Any) -> Method:
    """:func:`create_method` with its weight arguments as one :class:`~methods.weights.Loading`."""
    info = get_method_info(name)
    if loading.init not in INIT_CHOICES:
        raise OptionError(f"init must be one of None, 'pretrained', 'random'; got {loading.init!r}")
    checkpoint_path = checkpoint = None
    if not loading.random:
        checkpoint_path = find_checkpoint(info, loading)
        if checkpoint_path is not None:
            checkpoint = load_checkpoint(checkpoint_path)
            if checkpoint["method"].lower() != info.name.lower():
                raise WeightsError(
                    f"{checkpoint_path}: checkpoint of method {checkpoint['method']!r}, not {info.name!r}; "
                    f"use create_method({checkpoint['method']!r}, ...)"
                )
            options = {**checkpoint.get("options", {}), **options}
    model, resolved_options = build_network(info, options)
    model.eval()
    if loading.random:
        provenance = _random(info, model, loading)
    elif checkpoint is not None:
        provenance = _from_checkpoint(info, model, loading, checkpoint_path, checkpoint)
    else:
        provenance = _official(info, model, loading)
    model.to(loading.device)
    return Method(info, model, resolved_options, provenance)


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
        weights_dir: a folder of every method's files (else ``$HARNESS_WEIGHTS``).
        seed: seed of ``init="random"``.
        download: allow downloads from the official URLs (default: yes unless ``$HARNESS_OFFLINE`` is set).
        **options: the method's options (see ``MethodInfo.options``).
    """
    return load_method(name, Loading(weights, weights_dir, init, device, seed, download), **options)
