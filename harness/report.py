"""One self-contained HTML page per run directory (``harness report RUN_DIR``): the table (↑/↓, best in bold, second
underlined, † for untrained rows), the comparison grid, metric bars with their intervals, the timing, the paper's
numbers where a study has them, and the manifest (versions, commit, device, weights and their sha256, provenance
flags) — the page one sends to a co-author. Images are embedded (base64 PNG); the page loads nothing else."""
from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import write_text_atomic
from .errors import RunError, TableError
from .labels import method_label
from .tables import (DAGGER_MD, METRIC_LABELS, NA_MD, TIMING_COLUMNS, UNTRAINED_NOTE, MetricSpec, check_aggregate,
                     format_cell, normalise_specs, rank_marks, ranked_rows)

REPORT_NAME = "report.html"


def specs_from_table(table: pd.DataFrame) -> dict[str, MetricSpec]:
    """The column specs of a written ``table.csv``: every ``<name>_mean`` column, labelled as the table writers label
    it (per-pair and set metrics, timing, ``pref_<question>`` preference shares)."""
    specs: dict[str, MetricSpec] = {}
    for column in table.columns:
        if not column.endswith("_mean"):
            continue
        name = column[: -len("_mean")]
        if name in METRIC_LABELS:
            label, higher, fmt = METRIC_LABELS[name]
        elif name in TIMING_COLUMNS:
            label, higher, fmt = TIMING_COLUMNS[name]
        elif name.startswith("pref_"):
            label, higher, fmt = f"pref. {name[len('pref_'):]} (%)", True, "{:.1f}"
        else:
            label, higher, fmt = name, False, "{:.3g}"
        specs[name] = MetricSpec(name, label, higher, fmt)
    return specs


def html_table(agg: pd.DataFrame, specs: Mapping[str, MetricSpec], unranked: Collection[str] = (),
               labels: Mapping[str, str] | None = None) -> str:
    """The table as an HTML ``<table>``: ↑/↓ in the headers, "mean ± std" cells in one format per column, the best
    value per column in bold and the second underlined (trained methods only), untrained rows marked †."""
    specs = normalise_specs(specs)
    agg = check_aggregate(agg, specs)
    untrained = agg["untrained"].to_numpy(dtype=bool)
    eligible = ranked_rows(agg, unranked)
    head = "".join(f"<th>{html.escape(s.header())} {'↑' if s.higher_is_better else '↓'}</th>" for s in specs.values())
    rows = []
    columns = []
    for key, spec in specs.items():
        means, stds = agg[f"{key}_mean"].to_numpy(), agg[f"{key}_std"].to_numpy()
        marks = rank_marks(means, spec.higher_is_better, eligible)
        column = spec.for_column(list(means))
        cells = [html.escape(format_cell(column, m, s, "±", NA_MD)) for m, s in zip(means, stds)]
        columns.append([f"<b>{c}</b>" if k == "best" else f"<u>{c}</u>" if k == "second" else c
                        for c, k in zip(cells, marks)])
    for i, method in enumerate(agg["method"]):
        name = html.escape((labels or {}).get(method, method)) + (f" {DAGGER_MD}" if untrained[i] else "")
        rows.append(f"<tr><th scope=\"row\">{name}</th>" + "".join(f"<td>{col[i]}</td>" for col in columns) + "</tr>")
    return (f"<table class=\"results\"><thead><tr><th>Method</th>{head}</tr></thead><tbody>{''.join(rows)}"
            "</tbody></table>")


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    fig.clear()
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figures(run_dir: Path, table: pd.DataFrame, max_rows: int) -> list[tuple[str, str | None, str | None]]:
    """(title, base64 PNG, why not drawn): a study's own figures where it drew them, else a comparison grid and
    metric bars."""
    drawn = sorted((run_dir / "figures").glob("*.png")) if (run_dir / "figures").is_dir() else []
    if drawn:
        return [(p.stem.replace("_", " "), base64.b64encode(p.read_bytes()).decode("ascii"), None) for p in drawn]
    from .figures import comparison_grid_from_run, metric_bars  # matplotlib only where a figure is drawn

    out = []
    try:
        out.append(("comparison", _png(comparison_grid_from_run(run_dir, max_rows=max_rows)), None))
    except (RunError, OSError, ValueError) as exc:
        out.append(("comparison", None, str(exc)))
    shown = [n for n in METRIC_LABELS if f"{n}_mean" in table.columns and table[f"{n}_mean"].notna().any()]
    if shown:
        try:
            out.append(("metrics", _png(metric_bars(table, metrics=shown)), None))
        except (TableError, ValueError) as exc:
            out.append(("metrics", None, str(exc)))
    return out


def _kv(rows: Mapping[str, Any]) -> str:
    return "<table class=\"kv\">" + "".join(f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
                                           for k, v in rows.items()) + "</table>"


def _weights_section(manifest: Mapping[str, Any]) -> str:
    rows = []
    for name, record in (manifest.get("methods") or {}).items():
        flag = record.get("flag") or "pretrained"
        files = (record.get("provenance") or {}).get("files") or {}
        listed = "<br>".join(
            f"{html.escape(f)} <code>{html.escape(str((r or {}).get('sha256', ''))[:16])}…</code> "
            f"({html.escape(str((r or {}).get('source', '')))}, verified: {(r or {}).get('verified')})"
            for f, r in files.items()) or "—"
        options = ", ".join(f"{k}={v}" for k, v in (record.get("options") or {}).items()) or "defaults"
        rows.append(f"<tr><th>{html.escape(name)}</th><td>{html.escape(flag)}</td><td>{html.escape(options)}</td>"
                    f"<td>{listed}</td></tr>")
    skipped = (manifest.get("summary") or {}).get("skipped_methods") or {}
    rows += [f"<tr><th>{html.escape(n)}</th><td>not run</td><td colspan=\"2\">{html.escape(r)}</td></tr>"
             for n, r in skipped.items()]
    return ("<table class=\"kv\"><tr><th>method</th><th>weights</th><th>options</th><th>files (sha256)</th></tr>"
            + "".join(rows) + "</table>")


def _markdown_tables(text: str) -> str:
    """The pipe tables and paragraphs of a small Markdown file (the study's paper.md) as HTML."""
    out, table = [], []

    def flush() -> None:
        if table:
            cells = [[c.strip() for c in row.strip().strip("|").split("|")] for row in table
                     if not set(row.replace("|", "").strip()) <= set(":- ")]
            head, body = cells[0], cells[1:]
            out.append("<table class=\"results\"><thead><tr>" + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                       + "</tr></thead><tbody>" + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r)
                                                          + "</tr>" for r in body) + "</tbody></table>")
            table.clear()

    for line in text.splitlines():
        if line.strip().startswith("|"):
            table.append(line)
            continue
        flush()
        if line.strip():
            out.append(f"<p>{html.escape(line.strip().lstrip('#').strip())}</p>")
    flush()
    return "\n".join(out)


STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222;line-height:1.4}
h1{font-size:1.5em}h2{font-size:1.15em;border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.25em .6em;border-bottom:1px solid #e4e4e4;text-align:center}
table.kv th,table.kv td{text-align:left;vertical-align:top}table.results th[scope=row]{text-align:left}
img{max-width:100%;border:1px solid #eee}.caption{color:#555;font-size:.92em}.note{color:#a40;font-size:.92em}
code{font-size:.88em}"""


def write_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, max_rows: int = 6) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``) from the run directory's ``table.csv``, ``table.md`` (its caption),
    ``manifest.json``, ``timing.csv`` and figures (a study's ``figures/*.png``, else drawn here); returns the path."""
    run_dir = Path(run_dir)
    if not (run_dir / "table.csv").is_file():
        raise RunError(f"{run_dir}: no table.csv (is it a run directory whose tables were written? `harness table "
                       f"{run_dir}` writes them)")
    table = pd.read_csv(run_dir / "table.csv")
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").is_file() else {}
    caption = (run_dir / "table.md").read_text().split("\n", 1)[0] if (run_dir / "table.md").is_file() else ""
    labels = {m: method_label(m) for m in table["method"]}
    sections = [f"<h1>{html.escape(run_dir.resolve().name)}: results</h1>",
                f"<p class=\"caption\">{html.escape(caption)}</p>",
                html_table(table, specs_from_table(table), labels=labels),
                "<p class=\"caption\">↑ higher is better, ↓ lower is better; mean ± std over pairs; best in bold, second "
                f"underlined.{' ' + DAGGER_MD + ' ' + html.escape(UNTRAINED_NOTE) + '.' if table.get('untrained', pd.Series([])).astype(str).str.lower().eq('true').any() else ''}</p>"]
    paper = run_dir / "paper.md"
    if paper.is_file():
        sections += ["<h2>The paper's numbers beside ours</h2>", _markdown_tables(paper.read_text())]
    sections.append("<h2>Figures</h2>")
    for title, data, problem in _figures(run_dir, table, max_rows):
        body = (f"<img alt=\"{html.escape(title)}\" src=\"data:image/png;base64,{data}\">" if data is not None
                else f"<p class=\"note\">not drawn: {html.escape(problem)}</p>")
        sections.append(f"<h3>{html.escape(title)}</h3>{body}")
    if (run_dir / "timing.csv").is_file():
        timing = pd.read_csv(run_dir / "timing.csv")
        keep = [c for c in ("method", "size", "device", "repeats", "latency_ms", "p10_ms", "p90_ms", "images_per_s",
                            "peak_memory_mib", "gflops") if c in timing.columns]
        shown = timing[keep].rename(columns={**{k: v[0] for k, v in TIMING_COLUMNS.items()},
                                             "p10_ms": "p10 (ms)", "p90_ms": "p90 (ms)"})
        shown["method"] = shown["method"].map(method_label)
        sections += ["<h2>Timing</h2>", shown.to_html(index=False, na_rep=NA_MD, float_format="{:.2f}".format,
                                                      classes="results", border=0)]
    summary = manifest.get("summary") or {}
    sections += ["<h2>Weights and provenance</h2>", _weights_section(manifest),
                 "<h2>Environment</h2>", _kv({"command": manifest.get("command", "—"),
                                              "started": manifest.get("started", "—"),
                                              "finished": manifest.get("finished", "—"),
                                              "git commit": manifest.get("git_commit") or "—",
                                              "device": manifest.get("device", "—"),
                                              **{f"version: {k}": v for k, v in (manifest.get("versions") or {}).items()},
                                              "pairs": summary.get("pairs", "—"),
                                              "unavailable metrics": "; ".join(f"{k}: {v}" for k, v in
                                                                               (summary.get("unavailable") or {}).items())
                                              or "none"})]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>"
            f"{html.escape(run_dir.resolve().name)}: results</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(sections) + "\n</body></html>\n")
    path = Path(out) if out is not None else run_dir / REPORT_NAME
    write_text_atomic(path, page)
    return path
