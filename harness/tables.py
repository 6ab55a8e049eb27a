"""Aggregate per-pair metric values by method and write the results table as CSV, Markdown and LaTeX.

Input of :func:`aggregate`: one row per method × (content, style) pair, in *wide* form — columns ``method``,
``content``, ``style``, one float column per metric (NaN: the metric could not be computed for that pair) and an
optional boolean ``untrained`` — or in *long* form — ``method, content, style, metric, value`` (+ ``untrained``),
pivoted to wide. Metric metadata comes as ``{column: MetricSpec}``.

:func:`write_tables` writes ``table.csv`` (machine-readable), ``table.md`` (GitHub Markdown) and ``table.tex``
(pandas ``Styler.to_latex``, booktabs rules; the best mean of each column in ``\\textbf``, the second best
``\\underline``; untrained rows get a dagger and are never ranked), each atomically. User-study preference shares
(the output of :func:`metrics.preference.tally`) can be appended as extra columns.
"""
from __future__ import annotations

import dataclasses
import math
import re
import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from metrics.base import summarize
from metrics.preference import QUESTIONS

from .atomic import write_text_atomic
from .errors import TableError
from .latex import latex_escape, latex_table

__all__ = [
    "STATS",
    "METRIC_LABELS",
    "TIMING_COLUMNS",
    "MetricSpec",
    "TableError",
    "aggregate",
    "latex_escape",
    "markdown_table",
    "preference_columns",
    "rank_marks",
    "write_tables",
]

STATS: tuple[str, ...] = ("mean", "std", "n", "ci95")
"""Per-metric columns of the aggregate (and of ``table.csv``): ``<metric>_mean``, ``_std``, ``_n``, ``_ci95``."""

WIDE_COLUMNS = 4
"""A LaTeX table with more metric columns than this is a full-width ``table*``, scaled to ``\\textwidth``."""
NA_MD = "—"
NA_TEX = "--"
DAGGER_MD = "†"
DAGGER_TEX = r"$^\dagger$"
UNTRAINED_NOTE = "untrained weights (not a trained model); excluded from the best/second-best marks"


METRIC_LABELS: dict[str, tuple[str, bool, str]] = {
    "content_loss": ("content loss", False, "{:.3f}"),
    "style_loss": ("style loss", False, "{:.3f}"),
    "lpips": ("LPIPS", False, "{:.3f}"),
    "ssim": ("SSIM", True, "{:.3f}"),
    "cfsd": ("CFSD", False, "{:.3f}"),
    "gram_loss": ("Gram loss", False, "{:.3g}"),
    "fid": ("FID", False, "{:.1f}"),
    "artfid": ("ArtFID", False, "{:.2f}"),
}
"""Per-pair metric column → (table label, higher is better, format)."""
TIMING_COLUMNS: dict[str, tuple[str, bool, str]] = {
    "latency_ms": ("time (ms)", False, "{:.1f}"),
    "images_per_s": ("images/s", True, "{:.2f}"),
    "peak_memory_mib": ("peak mem. (MiB)", False, "{:.0f}"),
    "gflops": ("GFLOPs", False, "{:.1f}"),
}
"""``timing.csv`` column → (table label, higher is better, format)."""


def markdown_table(headers: Sequence[object], rows: Sequence[Sequence[object]], *, align: Sequence[str] | None = None
                   ) -> str:
    """A GitHub Markdown table (no trailing newline); ``align``: one of ``"---"``, ``":---"``, ``":---:"`` per
    column (default ``---``). Cells are written as given (escape them first where they may hold ``|``)."""
    rule = "|" + "|".join(align) + "|" if align else "|" + "---|" * len(headers)
    lines = ["| " + " | ".join(str(h) for h in headers) + " |", rule]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


@dataclass(frozen=True)
class MetricSpec:
    """How a metric column is shown: its ``label`` in the header, whether higher is better (the ↑/↓ arrow and
    the ranking), the ``fmt`` used for mean and std (a ``str.format`` pattern) and an optional ``unit`` shown in
    parentheses after the label."""

    name: str
    label: str
    higher_is_better: bool
    fmt: str = "{:.3f}"
    unit: str = ""

    def __post_init__(self) -> None:
        try:
            self.fmt.format(1.0)
        except (ValueError, IndexError, KeyError) as exc:
            raise ValueError(f"metric {self.name!r}: bad format {self.fmt!r} ({exc})") from None

    def format(self, value: float) -> str:
        return self.fmt.format(value)

    def for_column(self, values: Sequence[float]) -> MetricSpec:
        """This spec with ONE fixed format for a whole column: a general (``g``) format would print ``1.541e-38``
        beside ``0.000715``; instead three significant digits of the column's largest magnitude, as fixed decimals
        (10⁻³ ≤ max < 10⁵) or else scientific notation for every cell."""
        if "g}" not in self.fmt:
            return self
        finite = [abs(v) for v in values if isinstance(v, (int, float)) and math.isfinite(v) and v != 0]
        if not finite:
            return dataclasses.replace(self, fmt="{:.3f}")
        exponent = math.floor(math.log10(max(finite)))
        fmt = f"{{:.{max(0, 2 - exponent)}f}}" if -3 <= exponent < 5 else "{:.2e}"
        return dataclasses.replace(self, fmt=fmt)

    def header(self) -> str:
        """Label with unit, no arrow: ``"Content loss (px)"``."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


def normalise_specs(specs: Mapping[str, MetricSpec] | Sequence[MetricSpec]) -> dict[str, MetricSpec]:
    """``{column: spec}``; a sequence of specs is keyed by their names."""
    if isinstance(specs, Mapping):
        out = dict(specs)
    else:
        out = {}
        for spec in specs:
            if spec.name in out:
                raise TableError(f"metric {spec.name!r} is specified twice")
            out[spec.name] = spec
    for key, spec in out.items():
        if not isinstance(spec, MetricSpec):
            raise TypeError(f"spec for {key!r} must be a MetricSpec, got {type(spec).__name__}")
        if key in ("method", "untrained", "content", "style"):
            raise TableError(f"{key!r} is a reserved column name and cannot be a metric")
    return out


def _as_bool(series: pd.Series) -> pd.Series:
    """Booleans from bool / 0-1 / 'true'-'false' columns (as written by pandas or by hand); NaN → False."""
    if pd.api.types.is_bool_dtype(series):
        return series.fillna(False).astype(bool)
    if pd.api.types.is_numeric_dtype(series):
        return series.fillna(0).astype(bool)

    def as_text(v: object) -> str:
        return "" if pd.isna(v) else str(v)

    text = series.astype("object").map(as_text)
    text = text.astype(str).str.strip().str.casefold()
    bad = sorted(set(text[~text.isin(["", "true", "false", "1", "0", "yes", "no"])]))
    if bad:
        raise TableError(f"column 'untrained' must be boolean, found {', '.join(map(repr, bad))}")
    return text.isin(["true", "1", "yes"])


def _to_wide(df: pd.DataFrame, specs: dict[str, MetricSpec]) -> pd.DataFrame:
    """The wide form of ``df`` (long frames with ``metric`` / ``value`` columns are pivoted)."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"expected a pandas DataFrame, got {type(df).__name__}")
    if "method" not in df.columns:
        raise TableError("the metrics frame has no 'method' column")
    is_long = {"metric", "value"} <= set(df.columns) and not any(k in df.columns for k in specs)
    if not is_long:
        return df
    keys = ["method"] + [c for c in ("content", "style") if c in df.columns]
    if df.duplicated([*keys, "metric"]).any():
        raise TableError(f"long metrics frame has repeated ({', '.join(keys)}, metric) rows")
    wide = df.pivot(index=keys, columns="metric", values="value")
    wide.columns = [str(c) for c in wide.columns]
    # pivot sorts the index: restore the order of first appearance
    order = df[keys].drop_duplicates()
    wide = order.merge(wide.reset_index(), on=keys, how="left")
    if "untrained" in df.columns:
        flags = _as_bool(df["untrained"]).groupby([df[k] for k in keys], sort=False).any().rename("untrained")
        wide = wide.merge(flags.reset_index(), on=keys, how="left")
    return wide


def aggregate(df: pd.DataFrame, specs: Mapping[str, MetricSpec] | Sequence[MetricSpec]) -> pd.DataFrame:
    """Per method (in order of first appearance): ``method``, ``untrained`` (True if any of its rows is) and, for
    each metric of ``specs`` in order, ``<metric>_mean``, ``_std``, ``_n``, ``_ci95`` from
    :func:`metrics.base.summarize` over the non-NaN values (sample std; ci95 = t_{0.975,n−1}·std/√n). A metric without any
    value for a method gives NaN with ``n = 0``. Metric columns not in ``specs`` are ignored; a metric of ``specs``
    missing from ``df`` is a :class:`TableError`."""
    specs = normalise_specs(specs)
    wide = _to_wide(df, specs)
    missing = [k for k in specs if k not in wide.columns]
    if missing:
        raise TableError(f"the metrics frame lacks the metric column(s) {', '.join(missing)}")
    if wide["method"].isna().any():
        raise TableError("the metrics frame has rows without a method")
    methods = wide["method"].astype(str)
    untrained = _as_bool(wide["untrained"]) if "untrained" in wide.columns else pd.Series(False, index=wide.index)
    values: dict[str, pd.Series] = {}
    for key in specs:
        try:
            values[key] = pd.to_numeric(wide[key], errors="raise").astype("float64")
        except (ValueError, TypeError) as exc:
            raise TableError(f"metric column {key!r} is not numeric ({exc})") from None

    rows = []
    for method in dict.fromkeys(methods):
        mask = (methods == method).to_numpy()
        row: dict[str, object] = {"method": method, "untrained": bool(untrained[mask].any())}
        for key in specs:
            v = values[key][mask].to_numpy()
            s = summarize(v[~np.isnan(v)].tolist())
            row.update({f"{key}_mean": s.mean, f"{key}_std": s.std, f"{key}_n": s.n, f"{key}_ci95": s.ci95})
        rows.append(row)
    columns = ["method", "untrained"] + [f"{k}_{s}" for k in specs for s in STATS]
    out = pd.DataFrame(rows, columns=columns)
    dtypes: dict[str, str] = {"untrained": "bool"}
    for key in specs:
        dtypes.update({f"{key}_{s}": "float64" for s in STATS})
        dtypes[f"{key}_n"] = "int64"
    return out.astype(dtypes)


# --------------------------------------------------------------------------- preference columns


def preference_columns(extra_rows: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, MetricSpec]]:
    """Turn :func:`metrics.preference.tally` output (``question, method, share`` and optionally ``total``,
    ``ci_low``, ``ci_high``) into aggregate-style columns ``pref_<question>_{mean,std,n,ci95,ci_low,ci_high}``
    (share and interval in percent, std and ci95 NaN, n = the question's total votes) and their specs
    (label ``"pref. <question> (%)"``, higher is better)."""
    if not isinstance(extra_rows, pd.DataFrame):
        raise TypeError(f"extra_rows must be a pandas DataFrame, got {type(extra_rows).__name__}")
    missing = [c for c in ("question", "method", "share") if c not in extra_rows.columns]
    if missing:
        raise TableError(
            f"preference rows lack the column(s) {', '.join(missing)} (expected metrics.preference.tally output)"
        )
    frame = extra_rows.assign(
        question=extra_rows["question"].astype(str).str.strip(), method=extra_rows["method"].astype(str).str.strip()
    )
    if frame.duplicated(["question", "method"]).any():
        raise TableError("preference rows repeat a (question, method)")
    try:
        share = pd.to_numeric(frame["share"], errors="raise").astype("float64")
    except (ValueError, TypeError) as exc:
        raise TableError(f"preference column 'share' is not numeric ({exc})") from None

    def numeric(column: str) -> pd.Series:
        if column not in frame.columns:
            return pd.Series(np.nan, index=frame.index)
        return pd.to_numeric(frame[column], errors="coerce").astype("float64")

    total, low, high = numeric("total"), numeric("ci_low"), numeric("ci_high")
    present = list(dict.fromkeys(frame["question"]))
    questions = [q for q in QUESTIONS if q in present] + [q for q in present if q not in QUESTIONS]
    methods = list(dict.fromkeys(frame["method"]))
    out = pd.DataFrame({"method": methods})
    specs: dict[str, MetricSpec] = {}
    for q in questions:
        key = f"pref_{q}"
        specs[key] = MetricSpec(key, f"pref. {q} (%)", higher_is_better=True, fmt="{:.1f}")
        sel = (frame["question"] == q).to_numpy()
        by_method = pd.DataFrame(
            {
                "method": frame["method"][sel].to_numpy(),
                f"{key}_mean": 100.0 * share[sel].to_numpy(),
                f"{key}_std": np.nan,
                f"{key}_n": total[sel].fillna(0).astype("int64").to_numpy(),
                f"{key}_ci95": np.nan,
                f"{key}_ci_low": 100.0 * low[sel].to_numpy(),
                f"{key}_ci_high": 100.0 * high[sel].to_numpy(),
            }
        )
        out = out.merge(by_method, on="method", how="left")
        out[f"{key}_n"] = out[f"{key}_n"].fillna(0).astype("int64")
    return out, specs


def _merge_preferences(
    agg: pd.DataFrame, specs: dict[str, MetricSpec], extra_rows: pd.DataFrame
) -> tuple[pd.DataFrame, dict[str, MetricSpec]]:
    pref, pref_specs = preference_columns(extra_rows)
    clash = [k for k in pref_specs if k in specs]
    if clash:
        raise TableError(f"preference column(s) {', '.join(clash)} clash with metric names")
    # match method names ignoring case; methods only in the user study get rows of their own
    known = {m.casefold(): m for m in agg["method"]}
    pref["method"] = [known.get(m.casefold(), m) for m in pref["method"]]
    folded = pref["method"].str.casefold()
    if folded.duplicated().any():
        dup = sorted(set(pref["method"][folded.duplicated(keep=False)]))
        raise TableError(f"preference rows name the same method in different case: {', '.join(dup)}")
    merged = agg.merge(pref, on="method", how="outer", sort=False)
    order = list(agg["method"]) + [m for m in pref["method"] if m not in set(agg["method"])]
    merged = merged.set_index("method").loc[order].reset_index()
    merged["untrained"] = _as_bool(merged["untrained"])
    for key in [*specs, *pref_specs]:
        merged[f"{key}_n"] = merged[f"{key}_n"].fillna(0).astype("int64")
    return merged, {**specs, **pref_specs}


# --------------------------------------------------------------------------- ranking and formatting


def rank_marks(means: Sequence[float], higher_is_better: bool, eligible: Sequence[bool] | None = None) -> list[str]:
    """``"best"``, ``"second"`` or ``""`` per value: the best and second-best *distinct* means among the eligible,
    non-NaN values (so every tied value gets the same mark, and a tie for best leaves the next value second).
    Means equal to 12 significant digits count as tied."""
    values = [float(v) for v in means]
    eligible = [True] * len(values) if eligible is None else [bool(e) for e in eligible]
    if len(eligible) != len(values):
        raise ValueError("means and eligible differ in length")
    keys = [float(f"{v:.12g}") if ok and not math.isnan(v) else None for v, ok in zip(values, eligible)]
    distinct = sorted({k for k in keys if k is not None}, reverse=higher_is_better)
    best = distinct[0] if distinct else None
    second = distinct[1] if len(distinct) > 1 else None
    return ["best" if k is not None and k == best else "second" if k is not None and k == second else "" for k in keys]


def _md_escape(text: object) -> str:
    return "".join("\\" + c if c in "\\|*`" else c for c in str(text)).replace("\n", " ")


def format_cell(spec: MetricSpec, mean: float, std: float, pm: str, na: str) -> str:
    if math.isnan(mean):
        return na
    text = spec.format(mean)
    if not math.isnan(std):
        text += f" {pm} {spec.format(std)}"
    return text


# --------------------------------------------------------------------------- writing


def check_aggregate(agg: pd.DataFrame, specs: dict[str, MetricSpec]) -> pd.DataFrame:
    if not isinstance(agg, pd.DataFrame):
        raise TypeError(f"expected the aggregate DataFrame, got {type(agg).__name__}")
    if "method" not in agg.columns:
        raise TableError("the aggregate has no 'method' column (pass the output of aggregate())")
    if agg.empty:
        raise TableError("the aggregate has no rows: nothing to tabulate")
    missing = [f"{k}_mean" for k in specs if f"{k}_mean" not in agg.columns]
    if missing:
        raise TableError(f"the aggregate lacks the column(s) {', '.join(missing)}")
    out = agg.copy()
    out["method"] = out["method"].astype(str)
    if out["method"].duplicated().any():
        dup = sorted(set(out["method"][out["method"].duplicated()]))
        raise TableError(f"the aggregate repeats method(s) {', '.join(dup)}")
    out["untrained"] = _as_bool(out["untrained"]) if "untrained" in out.columns else False
    for key in specs:
        for stat, default in (("std", np.nan), ("n", 0), ("ci95", np.nan)):
            if f"{key}_{stat}" not in out.columns:
                out[f"{key}_{stat}"] = default
        for stat in ("mean", "std", "ci95"):
            out[f"{key}_{stat}"] = pd.to_numeric(out[f"{key}_{stat}"], errors="coerce").astype("float64")
        out[f"{key}_n"] = pd.to_numeric(out[f"{key}_n"], errors="coerce").fillna(0).astype("int64")
    return out


def _csv_text(agg: pd.DataFrame, specs: dict[str, MetricSpec]) -> str:
    columns = ["method", "untrained"]
    for key in specs:
        columns += [f"{key}_{s}" for s in STATS]
        columns += [c for c in (f"{key}_ci_low", f"{key}_ci_high") if c in agg.columns]
    return agg[columns].to_csv(index=False, lineterminator="\n")


def ranked_rows(agg: pd.DataFrame, unranked: Collection[str]) -> np.ndarray:
    """Rows eligible for the best / second-best marks: trained methods, not listed in ``unranked``."""
    return ~agg["untrained"].to_numpy(dtype=bool) & ~agg["method"].isin(list(unranked)).to_numpy()


def _markdown_text(agg: pd.DataFrame, specs: dict[str, MetricSpec], caption: str,
                   unranked: Collection[str] = ()) -> str:
    untrained = agg["untrained"].to_numpy(dtype=bool)
    eligible = ranked_rows(agg, unranked)
    header = ["Method"] + [f"{_md_escape(s.header())} {'↑' if s.higher_is_better else '↓'}" for s in specs.values()]
    columns: list[list[str]] = []
    for key, spec in specs.items():
        means, stds = agg[f"{key}_mean"].to_numpy(), agg[f"{key}_std"].to_numpy()
        marks = rank_marks(means, spec.higher_is_better, eligible)
        spec = spec.for_column(list(means))
        cells = [format_cell(spec, m, s, "±", NA_MD) for m, s in zip(means, stds)]
        columns.append([f"**{c}**" if mark == "best" else c for c, mark in zip(cells, marks)])
    lines = []
    if caption.strip():
        lines += [" ".join(caption.split()), ""]
    names = [_md_escape(m) + (f" {DAGGER_MD}" if untrained[i] else "") for i, m in enumerate(agg["method"])]
    lines.append(markdown_table(header, [[name] + [col[i] for col in columns] for i, name in enumerate(names)],
                                align=[":---"] + [":---:"] * len(specs)))
    lines += ["", "↑ higher is better, ↓ lower is better; cells are mean ± std, the best value in bold."]
    if untrained.any():
        lines.append(f"{DAGGER_MD} {UNTRAINED_NOTE}.")
    return "\n".join(lines) + "\n"


def _latex_text(agg: pd.DataFrame, specs: dict[str, MetricSpec], caption: str, label: str | None,
                unranked: Collection[str] = ()) -> str:
    untrained = agg["untrained"].to_numpy(dtype=bool)
    cells = {"Method": [latex_escape(m) + (DAGGER_TEX if u else "") for m, u in zip(agg["method"], untrained)]}
    props = {"Method": [""] * len(agg)}
    for key, spec in specs.items():
        means, stds = agg[f"{key}_mean"].to_numpy(), agg[f"{key}_std"].to_numpy()
        column = spec.for_column(list(means))
        cells[key] = [format_cell(column, m, s, r"$\pm$", NA_TEX) for m, s in zip(means, stds)]
        marks = rank_marks(means, spec.higher_is_better, ranked_rows(agg, unranked))
        props[key] = [{"best": "textbf: --rwrap;", "second": "underline: --rwrap;"}.get(m, "") for m in marks]
    # internal column keys stay unique; the visible headers are set by latex_table
    data = pd.DataFrame(cells, columns=["Method", *specs])
    styles = pd.DataFrame(props, columns=data.columns, index=data.index)
    arrows = {True: r"$\uparrow$", False: r"$\downarrow$"}
    headers = ["Method"] + [f"{latex_escape(s.header())} {arrows[s.higher_is_better]}" for s in specs.values()]
    full_caption = latex_escape(" ".join(caption.split()))
    if untrained.any():
        full_caption = (full_caption + " " if full_caption else "") + f"{DAGGER_TEX} {latex_escape(UNTRAINED_NOTE)}."
    return latex_table(data, styles, headers, full_caption, label, len(specs) > WIDE_COLUMNS, "l" + "c" * len(specs))


def write_tables(
    agg: pd.DataFrame,
    specs: Mapping[str, MetricSpec] | Sequence[MetricSpec],
    out_dir: str | os.PathLike,
    *,
    caption: str,
    extra_rows: pd.DataFrame | None = None,
    label: str | None = None,
    unranked: Collection[str] = (),
    stem: str = "table",
) -> dict[str, Path]:
    """Write ``table.csv``, ``table.md`` and ``table.tex`` for ``agg`` (the output of :func:`aggregate`) into
    ``out_dir`` (created) and return ``{"csv": path, "md": path, "tex": path}``.

    - ``table.csv``: ``method, untrained`` then ``<metric>_mean, _std, _n, _ci95`` per metric (full precision;
      preference columns add ``_ci_low``, ``_ci_high`` — the Wilson interval — and have NaN std / ci95).
    - ``table.md``: the caption, a GitHub table with "mean ± std" cells, ↑/↓ in the headers, the best value in
      bold, untrained methods marked † and a footnote.
    - ``table.tex``: ``Styler.to_latex`` with booktabs rules, "mean $\\pm$ std" cells, best per column in
      ``\\textbf``, second best ``\\underline`` (by mean, honouring ``higher_is_better``, NaN ignored, ties all
      marked), untrained methods marked ``$^\\dagger$``, never ranked and explained in the caption; method names
      and caption are escaped as plain text; ``label`` becomes ``\\label{...}`` (not escaped; default
      ``tab:<folder>-<stem>``); more than :data:`WIDE_COLUMNS` metric columns make a ``table*`` scaled to
      ``\\textwidth`` (``\\usepackage{graphicx}``); each column has one number format (:meth:`MetricSpec.for_column`).

    ``extra_rows``: preference shares from :func:`metrics.preference.tally`, appended as columns
    ``pref. <question> (%)`` (higher is better; matched to methods ignoring case; methods only in the study get
    rows of their own). ``unranked``: rows that are not methods (e.g. a floor measured on the unstylised input):
    shown, never marked best or second. ``stem``: the file names (``<stem>.csv/.md/.tex``). Every file is written
    to a temporary file and moved into place.
    """
    specs = normalise_specs(specs)
    agg = check_aggregate(agg, specs)
    if extra_rows is not None:
        agg, specs = _merge_preferences(agg, specs, extra_rows)
    if not specs:
        raise TableError("no metric columns to tabulate")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if label is None:  # every table can be referenced: tab:<folder>-<stem>, letters, digits and - only
        label = "tab:" + re.sub(r"[^A-Za-z0-9-]+", "-", f"{out.resolve().name}-{stem}").strip("-")
    texts = {
        "csv": _csv_text(agg, specs),
        "md": _markdown_text(agg, specs, caption, unranked),
        "tex": _latex_text(agg, specs, caption, label, unranked),
    }
    paths = {}
    for kind, text in texts.items():
        path = out / f"{stem}.{kind}"
        write_text_atomic(path, text)
        paths[kind] = path
    return paths

