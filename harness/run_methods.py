"""The methods of a run: the ``init`` setting per row (:func:`parse_init`) and every method built with its weights
before any work (:func:`build_methods`), with one error listing every missing file of every method."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from methods import Loading, Method, MissingWeightsError, NoWeightsError, get_method_info, load_method
from methods.errors import literal

from .errors import ConfigError


class MethodRows(Protocol):
    """What :func:`build_methods` reads of a run's config (:class:`harness.run.RunConfig` has it)."""

    methods: list[str]
    method_names: dict[str, str]
    method_options: dict[str, dict[str, Any]]

    def loading(self, label: str | None = None) -> Loading: ...

INIT_VALUES = ("pretrained", "random")


def parse_init(value: str | Mapping[str, str] | None, labels: Sequence[str]) -> tuple[str | None, dict[str, str]]:
    """The ``init`` setting → (init of every method, per-row inits). ``value``: ``"random"``/``"pretrained"``, or
    per row ``"all2all=random"`` (comma-separated, e.g. ``"all2all=random,adain=pretrained"``), or a mapping
    ``{row: init}``; a bare value and per-row ones may be mixed (``"pretrained,all2all=random"``)."""
    if value is None:
        return None, {}
    items = list(value.items()) if isinstance(value, Mapping) else [
        tuple(part.split("=", 1)) if "=" in part else (None, part) for part in str(value).split(",") if part.strip()]
    everyone: str | None = None
    per_row: dict[str, str] = {}
    by_lower = {label.lower(): label for label in labels}
    for row, init in items:
        init = str(init).strip()
        if init not in INIT_VALUES:
            raise ConfigError(f"{{init}}: {literal(repr(init))} is not one of {', '.join(INIT_VALUES)} (per method: "
                              f"{{init=all2all=random}})")
        if row is None:
            everyone = init
            continue
        row = str(row).strip()
        if row.lower() not in by_lower:
            raise ConfigError(f"{{init}}: {literal(row)} is not a method of this run ({literal(', '.join(labels))})")
        per_row[by_lower[row.lower()]] = init
    return everyone, per_row


def build_methods(config: MethodRows, skipped: dict[str, str] | None = None) -> dict[str, Method]:
    """Every method with its weights, before any work. Missing files stop the run with ONE error listing every
    method's files. A method without released weights and without a checkpoint (``all2all`` before it is trained)
    is left out when other methods remain, with why and what to do in ``skipped`` (row label → a settings template:
    spell it with :func:`methods.errors.spell_settings`); ``init`` per row (``{init=all2all=random}``) builds it
    untrained instead, flagged."""
    methods: dict[str, Method] = {}
    missing: dict[str, MissingWeightsError] = {}
    no_weights: dict[str, NoWeightsError] = {}
    for label in config.methods:
        try:
            methods[label] = load_method(config.method_names.get(label, label), config.loading(label),
                                         **config.method_options.get(label, {}))
        except MissingWeightsError as exc:
            missing[label] = exc
        except NoWeightsError as exc:
            no_weights[label] = exc
    if missing:
        raise missing[next(iter(missing))] if len(missing) == 1 else MissingWeightsError.combine(missing)
    if no_weights and not methods:
        raise next(iter(no_weights.values()))
    for label in no_weights:
        name = get_method_info(config.method_names.get(label, label)).name
        if skipped is not None:
            skipped[label] = (f"no released weights and no harness checkpoint under <weights dir>/{literal(name)}/: "
                              f"train it (harness train {literal(name)}) and place its output there, or give "
                              f"{{init={literal(label)}=random}} for an untrained row (flagged †)")
    return methods
