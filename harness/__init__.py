"""AST harness: the reference benchmark and evaluation harness for arbitrary style transfer.

``from harness import create_method, list_methods, register_method`` is the public entry to the method registry
(defined in :mod:`methods`); the command line lives in :mod:`harness.cli` (``python -m harness``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .version import __version__

__all__ = ["__version__", "create_method", "get_method_info", "list_methods", "register_method"]

_REGISTRY_NAMES = frozenset(__all__) - {"__version__"}


def __getattr__(name: str) -> Any:  # the registry is imported on first use: `python -m harness --help` needs no torch
    if name not in _REGISTRY_NAMES:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    import methods

    return getattr(methods, name)


if TYPE_CHECKING:
    from methods import create_method, get_method_info, list_methods, register_method
