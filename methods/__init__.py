"""Style-transfer methods: the registry, the shared VGG encoder, StyA2K (+ ablations), all-to-all attention, AdaIN,
AdaAttN, SANet, StyTr², MicroAST.

This package knows nothing of runs, metrics or the command line, and writes no files.

Its names are imported on first use (PEP 562), so ``import methods.errors`` — which the command line needs to answer
``--help`` — does not import torch; the built-in methods register themselves the first time the registry is asked
(:func:`list_methods`, :func:`get_method_info`, :func:`create_method`, ...).
"""
from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    "create_method": "_factory", "load_method": "_factory",
    "MethodInfo": "_info", "Provenance": "_info",
    "get_method_info": "_registry", "list_methods": "_registry", "register_method": "_registry",
    "reload_plugins": "_registry", "unregister_method": "_registry",
    "CHECKPOINT_NAME": "checkpoint", "checkpoint_payload": "checkpoint", "find_checkpoint": "checkpoint",
    "load_checkpoint": "checkpoint",
    "InputError": "errors", "MissingWeightsError": "errors", "NoWeightsError": "errors", "OptionError": "errors",
    "UnknownMethodError": "errors", "WeightsError": "errors",
    "Method": "method", "PreparedContent": "method", "PreparedFeatures": "method", "PreparedStyle": "method",
    "StyleTransferNet": "net",
    "TrainingRecipe": "recipes",
    "Archive": "weights", "Loading": "weights", "WeightFile": "weights",
}
"""Public name → the submodule that defines it."""

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'methods' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # what type checkers and IDEs see
    from ._factory import create_method, load_method
    from ._info import MethodInfo, Provenance
    from ._registry import get_method_info, list_methods, register_method, reload_plugins, unregister_method
    from .checkpoint import CHECKPOINT_NAME, checkpoint_payload, find_checkpoint, load_checkpoint
    from .errors import InputError, MissingWeightsError, NoWeightsError, OptionError, UnknownMethodError, WeightsError
    from .method import Method, PreparedContent, PreparedFeatures, PreparedStyle
    from .net import StyleTransferNet
    from .recipes import TrainingRecipe
    from .weights import Archive, Loading, WeightFile
