"""AST harness: the reference benchmark and evaluation harness for arbitrary style transfer.

``from harness import create_method, list_methods, register_method`` is the public entry to the method registry
(defined in :mod:`methods`); the command line lives in :mod:`harness.cli` (``python -m harness``).
"""
from methods import create_method, get_method_info, list_methods, register_method

__all__ = ["create_method", "get_method_info", "list_methods", "register_method"]
__version__ = "0.1.0"
