"""The harness's version (one place: the package, manifests and ``--version`` read it)."""
__version__ = "0.1.0"
