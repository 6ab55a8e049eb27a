"""Style-transfer methods: the registry, the shared VGG encoder, StyA2K (+ ablations), all-to-all attention, AdaIN.

This package knows nothing of runs, metrics or the command line.
"""
from .base import InputError, Method, Provenance, StyleTransferNet
from .registry import (
    MethodInfo,
    OptionError,
    UnknownMethodError,
    create_method,
    find_checkpoint,
    get_method_info,
    list_methods,
    load_checkpoint,
    register_method,
    reload_plugins,
    save_checkpoint,
)
from . import adain, all2all, stya2k  # noqa: E402,F401  (built-in registrations)

__all__ = [
    "InputError", "Method", "MethodInfo", "OptionError", "Provenance", "StyleTransferNet", "UnknownMethodError",
    "create_method", "find_checkpoint", "get_method_info", "list_methods", "load_checkpoint", "register_method", "reload_plugins",
    "save_checkpoint",
]
