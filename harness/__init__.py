"""AST harness: the reference benchmark and evaluation harness for arbitrary style transfer.

``from harness import create_method, list_methods, register_method`` is the public entry to the method registry
(defined in :mod:`methods`); the command line lives in :mod:`harness.cli` (``python -m harness``).
"""
from methods import create_method, get_method_info, list_methods, register_method

from .version import __version__

__all__ = ["__version__", "create_method", "get_method_info", "list_methods", "register_method"]
