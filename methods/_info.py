"""What the harness knows about a method besides its network (:class:`MethodInfo`), and where a built method's
weights came from (:class:`Provenance`)."""
from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from .recipes import TrainingRecipe
from .vgg import VGG_WEIGHTS
from .weights import WeightFile

if TYPE_CHECKING:  # annotations only: the network module does not need this one
    from .net import StyleTransferNet

INIT_CHOICES = (None, "pretrained", "random")


@dataclass(frozen=True)
class MethodInfo:
    """Everything the harness knows about a method besides its network.

    ``weights`` maps the attribute path of a sub-module of the network (e.g. ``"A2K"``, ``"decoder"``) to the official
    file that loads strictly into it; the frozen encoder's file is ``encoder_weights``. ``defaults`` are option values
    fixed by this registration (e.g. the ablations of StyA2K) that callers may still override. ``option_notes``: a
    short note per option where its default alone misleads (``None`` meaning "set by the variant").
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
    option_notes: Mapping[str, str] = field(default_factory=dict)

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


@dataclass
class Provenance:
    """Where a method's weights came from; every output row and table carries :meth:`flag`."""

    untrained: bool
    encoder_pretrained: bool
    seed: int | None = None
    checkpoint: str | None = None
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    trained_with_random_encoder: bool = False

    def flag(self) -> str:
        """"" for fully pretrained weights, else a short warning such as ``UNTRAINED (random init, seed 0)``."""
        parts = []
        if self.untrained:
            parts.append(f"UNTRAINED (random init, seed {self.seed})")
        if not self.encoder_pretrained:
            parts.append("RANDOM ENCODER")
        if self.trained_with_random_encoder:
            parts.append("TRAINED WITH A RANDOM ENCODER")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
