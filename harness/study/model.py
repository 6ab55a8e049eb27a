"""What a study is once its file is read: :class:`Study` (its entries, reference numbers, sections), and what a run
of it takes (:class:`StudyOverrides`) and gives (:class:`StudySummary`)."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Reference:
    """Numbers reported in the paper: ``rows[label][i]`` is the value of ``columns[i]`` (None: not reported)."""

    columns: list[str]
    rows: dict[str, list[float | None]]
    note: str = ""

    def value(self, label: str, column: str) -> float | None:
        row = self._row(label)
        return None if row is None or column not in self.columns else row[self.columns.index(column)]

    def _row(self, label: str) -> list[float | None] | None:
        for name, row in self.rows.items():
            if name.lower() == label.lower():
                return row
        return None

    def by_label(self, labels: Mapping[str, str]) -> dict[str, dict[str, float]]:
        """``{our label: {column: paper value}}`` for the entries that have a reference row (``labels``: our label →
        its paper label)."""
        out = {}
        for ours, paper in labels.items():
            row = self._row(paper)
            if row is not None:
                out[ours] = {c: v for c, v in zip(self.columns, row) if v is not None}
        return out


@dataclass(frozen=True)
class StudyEntry:
    """One row of a run study's table."""

    label: str
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    weights: str | None = None
    train: dict[str, Any] | None = None
    paper_label: str | None = None


@dataclass
class Study:
    """A validated study file (variables expanded)."""

    name: str
    kind: str
    source: Path
    sha256: str
    title: str = ""
    paper: str = ""
    description: str = ""
    run: dict[str, Any] = field(default_factory=dict)
    entries: list[StudyEntry] = field(default_factory=list)
    training: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, dict[str, Any]] = field(default_factory=dict)
    reference: Reference | None = None
    complexity: dict[str, Any] = field(default_factory=dict)
    video: dict[str, Any] = field(default_factory=dict)

    @property
    def labels(self) -> list[str]:
        return [e.label for e in self.entries]


@dataclass
class StudyOverrides:
    """What the command line sets for every study it runs (None: keep the file's value or the default)."""

    out: Path | None = None
    device: str | None = None
    init: str | None = None
    seed: int | None = None
    weights_dir: str | None = None
    download: bool | None = None
    train_missing: bool = False
    sizes: list[int] | None = None
    max_memory_mib: int | None = None
    votes: Path | None = None
    force: bool = False
    progress: bool = True


@dataclass
class StudySummary:
    study: Study
    out: Path
    lines: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)
    command: str = ""

    def report(self) -> str:
        head = f"study {self.study.name} ({self.study.kind}): {self.study.title}".rstrip(": ")
        return "\n".join([head, *self.lines, f"results: {self.out}"])
