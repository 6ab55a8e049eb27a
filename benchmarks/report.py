"""Shared output of the benchmark scripts: ``bench.json`` (machine, protocol, rows) and a Markdown ``bench.md``."""
from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def write_report(out: Path, report: dict[str, Any], header: Sequence[str],
                 cells: Callable[[dict[str, Any]], Sequence[Any]]) -> None:
    """Write ``out/bench.json`` and ``out/bench.md``: one table row per ``report["rows"]`` entry via ``cells(row)``
    (rows with an ``error`` show it instead), then the machine and protocol lines."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.json").write_text(json.dumps(report, indent=2))
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in report["rows"]:
        values = [row.get("method"), row.get("error")] if "error" in row else list(cells(row))
        lines.append("| " + " | ".join("" if v is None else str(v) for v in values) + " |")
    (out / "bench.md").write_text("\n".join(lines) + f"\n\nMachine: {json.dumps(report['machine'])}\n\n"
                                  f"Protocol: {report['protocol']}\n")
