"""A survey's votes out of its database: ``votes.csv`` in the exact format ``harness tally`` and ``harness run
--votes`` read (``participant,group,question,method``: one row per participant × group × question, attention-check
repeats left out) and ``votes_detail.csv`` (every answer with its screen, on-screen position, response time and the
participant's attention-check result)."""
from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from metrics.preference import COLUMNS

from ..atomic import write_text_atomic
from .store import SurveyStore

__all__ = ["DETAIL_COLUMNS", "attention_results", "export_votes", "votes_csv_text"]

DETAIL_COLUMNS = ("participant", "completed", "screen", "group", "attention_check", "question", "method", "position",
                  "response_ms", "cast_at", "attention_failed")


def attention_results(rows: Iterable[Mapping[str, Any]]) -> dict[str, bool]:
    """Participant → whether they failed an attention check: a repeated group answered differently on some question
    from its first showing (participants who reached no repeat are absent)."""
    first: dict[tuple[str, str, str], str] = {}
    repeats: list[Mapping[str, Any]] = []
    for row in rows:
        if row["attention_check"]:
            repeats.append(row)
        else:
            first[(row["participant"], row["group"], row["question"])] = row["method"]
    failed: dict[str, bool] = {}
    for row in repeats:
        original = first.get((row["participant"], row["group"], row["question"]))
        if original is not None:
            failed[row["participant"]] = failed.get(row["participant"], False) or original != row["method"]
    return failed


def _csv(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def _selected(store: SurveyStore, completed_only: bool, exclude_failed: bool
              ) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    rows = list(store.rows())
    failed = attention_results(rows)
    keep = [r for r in rows if (r["completed"] or not completed_only)
            and not (exclude_failed and failed.get(r["participant"], False))]
    return keep, failed


def _votes_text(rows: Iterable[Mapping[str, Any]]) -> str:
    """``votes.csv`` of the selected answers: the four tally columns, attention-check repeats left out."""
    return _csv(COLUMNS, ((r["participant"], r["group"], r["question"], r["method"])
                          for r in rows if not r["attention_check"]))


def votes_csv_text(store: SurveyStore, completed_only: bool = False, exclude_failed: bool = False) -> str:
    """The ``votes.csv`` text (see the module docstring)."""
    return _votes_text(_selected(store, completed_only, exclude_failed)[0])


def export_votes(store: SurveyStore, out: str | Path, completed_only: bool = False,
                 exclude_failed: bool = False) -> dict[str, Any]:
    """Write ``out`` (votes.csv) and ``<out stem>_detail.csv`` beside it, atomically; returns counts."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows, failed = _selected(store, completed_only, exclude_failed)
    votes = [r for r in rows if not r["attention_check"]]
    write_text_atomic(out, _votes_text(votes))
    detail = out.with_name(f"{out.stem}_detail.csv")
    write_text_atomic(detail, _csv(DETAIL_COLUMNS, ([*(r[c] for c in DETAIL_COLUMNS[:-1]),
                                                     failed.get(r["participant"], "")] for r in rows)))
    per_question: dict[str, int] = defaultdict(int)
    for row in votes:
        per_question[row["question"]] += 1
    return {"votes": out, "detail": detail, "rows": len(votes), "participants": len({r["participant"] for r in rows}),
            "per_question": dict(per_question), "attention_failed": sorted(p for p, f in failed.items() if f)}
