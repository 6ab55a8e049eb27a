"""The method registry: ``register_method`` (a decorator on a network factory), ``list_methods``, ``get_method_info``.

Names are case-insensitive (``styA2K`` == ``stya2k``). Third-party packages add methods through the ``harness.methods``
entry-point group: the entry point names a module (or an object inside one) whose import calls ``@register_method``.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import warnings
from collections.abc import Callable
from importlib import metadata
from typing import Any

from ._info import MethodInfo
from .errors import UnknownMethodError
from .net import StyleTransferNet

ENTRY_POINT_GROUP = "harness.methods"

BUILTIN_MODULES: tuple[str, ...] = ("stya2k", "all2all", "adain", "adaattn", "sanet", "stytr2", "microast")
"""The modules under :mod:`methods` whose import registers the built-in methods."""

_REGISTRY: dict[str, MethodInfo] = {}
_PLUGINS_LOADED = False
_BUILTINS_LOADED = False


def _load_builtins() -> None:
    """Import the built-in method modules once (they register themselves), before any plugin can take their names."""
    global _BUILTINS_LOADED
    if _BUILTINS_LOADED:
        return
    _BUILTINS_LOADED = True
    for module in BUILTIN_MODULES:
        importlib.import_module(f"{__package__}.{module}")


def register_method(name: str | Callable | None = None, **info: Any):
    """Register a network factory as a method (use bare or with metadata, like timm's ``register_model``).

    ``@register_method`` names the method after the function; ``@register_method("name", paper=..., weights=...)``
    sets the metadata of :class:`MethodInfo`. The factory takes the method's options as keyword arguments and returns
    a :class:`~methods.net.StyleTransferNet`. Registering the same factory again replaces the entry; another
    factory under a taken name is an error.
    """

    def decorator(factory: Callable[..., StyleTransferNet]) -> Callable[..., StyleTransferNet]:
        _load_builtins()
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


def unregister_method(name: str) -> None:
    """Remove ``name`` from the registry (tests and interactive sessions that registered a throw-away method)."""
    _REGISTRY.pop(name.lower(), None)


def _load_plugins() -> None:
    """Import every ``harness.methods`` entry point once; a broken plugin is a warning, not a crash."""
    global _PLUGINS_LOADED
    _load_builtins()
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
