"""Style-transfer methods: the registry, the shared VGG encoder, StyA2K (+ ablations), all-to-all attention, AdaIN,
MicroAST.

This package knows nothing of runs, metrics or the command line, and writes no files.
"""
from ._factory import create_method, load_method
from ._info import MethodInfo, Provenance
from ._registry import get_method_info, list_methods, register_method, reload_plugins, unregister_method
from .checkpoint import CHECKPOINT_NAME, checkpoint_payload, find_checkpoint, load_checkpoint
from .errors import InputError, MissingWeightsError, NoWeightsError, OptionError, UnknownMethodError, WeightsError
from .method import Method, PreparedStyle
from .net import StyleTransferNet
from .recipes import TrainingRecipe
from .weights import Archive, Loading, WeightFile
from . import adaattn, adain, all2all, microast, sanet, stya2k, stytr2  # noqa: E402,F401  (built-in registrations)

__all__ = [
    "Archive", "CHECKPOINT_NAME", "InputError", "Loading", "Method", "MethodInfo", "MissingWeightsError", "NoWeightsError",
    "OptionError", "PreparedStyle", "Provenance",
    "StyleTransferNet", "UnknownMethodError", "WeightsError", "checkpoint_payload", "create_method",
    "find_checkpoint", "get_method_info", "list_methods", "load_checkpoint", "load_method", "register_method",
    "reload_plugins", "TrainingRecipe", "unregister_method", "WeightFile",
]
