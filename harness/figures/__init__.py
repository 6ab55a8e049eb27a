"""The paper's figures for a run directory or a method (matplotlib; each function returns a Figure, none shows one).

* :func:`comparison_grid` / :func:`comparison_grid_from_run` — paper Fig. 9 (rows = pairs; columns = content, style,
  each method) and, with :data:`ABLATION_LABELS`, Fig. 10 (the ablations);
* :func:`interpolation_strip` (Fig. 11) and :func:`interpolation_grid` (four styles, bilinear weights);
* :func:`attention_figure` — Fig. 6: a content point, its all-to-all attention over the style image, DA's scores over
  the style blocks, PA's chosen block and its fine attention (from :func:`methods.attention_maps.attention_maps`);
* :func:`metric_bars` — per-metric bars with 95 % CI error bars (``harness.tables.aggregate`` / ``table.csv``),
  optionally the paper's numbers as markers; :func:`loss_curves` — a training ``loss_log.csv``;
* :func:`plot_per_frame_error` — a video run's per-frame warping error; :func:`plot_complexity` — the complexity
  sweep's log-log latency / memory plot;
* :func:`write_run_figures` — the standard figures of a run directory into ``<run>/figures/``;
  :func:`save_figure` writes ``<stem>.png`` and ``<stem>.pdf`` atomically.

Figures are built on :class:`matplotlib.figure.Figure` directly (Agg canvas, no pyplot state), so nothing is ever
shown and nothing leaks between calls. Images are drawn as 8-bit arrays with the harness's truncating tensor → image
rule, so a cell holds exactly the pixels of the saved PNG.
"""
from __future__ import annotations

from pathlib import Path
from collections.abc import Mapping, Sequence

import pandas as pd

from ..errors import RunError
from ..tables import METRIC_LABELS, MetricSpec, aggregate
from ._common import (ABLATION_LABELS, FIGURE_KINDS, METHOD_LABELS, PathLike, _read_frame, method_label, save_figure)
from .attention import attention_figure
from .charts import (COMPLEXITY_QUANTITIES, loss_curves, metric_bars, moving_average, plot_complexity,
                     plot_per_frame_error, preference_figure)
from .grids import comparison_grid, comparison_grid_from_run, interpolation_grid, interpolation_strip

__all__ = [
    "ABLATION_LABELS",
    "COMPLEXITY_QUANTITIES",
    "FIGURE_KINDS",
    "METHOD_LABELS",
    "attention_figure",
    "comparison_grid",
    "preference_figure",
    "comparison_grid_from_run",
    "interpolation_grid",
    "interpolation_strip",
    "loss_curves",
    "metric_bars",
    "moving_average",
    "plot_complexity",
    "plot_per_frame_error",
    "method_label",
    "save_figure",
    "write_run_figures",
]


# ---------------------------------------------------------------------------------------------------- a run
def _run_table(run_dir: Path) -> pd.DataFrame | None:
    """The run's aggregated table: ``table.csv``, else :func:`harness.tables.aggregate` of ``metrics.csv``."""
    if (run_dir / "table.csv").is_file():
        return _read_frame(run_dir / "table.csv", "table")
    frame = _read_frame(run_dir / "metrics.csv", "metrics")
    specs = {n: MetricSpec(n, *METRIC_LABELS[n]) for n in METRIC_LABELS if n in frame.columns}
    return aggregate(frame, specs) if specs else None


def write_run_figures(
    run_dir: PathLike,
    kind: str = "comparison",
    reference: Mapping[str, Mapping[str, float]] | None = None,
    methods: Sequence[str] | None = None,
    max_rows: int | None = 6,
) -> list[Path]:
    """The standard figures of a run directory, written (PNG + PDF) into ``<run_dir>/figures/``:

    * ``<kind>_grid``: :func:`comparison_grid_from_run` (``kind="ablation"`` titles columns with
      :data:`ABLATION_LABELS`, as paper Fig. 10);
    * ``<kind>_metrics``: :func:`metric_bars` of ``table.csv`` (skipped when the run has no metric values);
    * ``loss_curves``: :func:`loss_curves` when the directory holds a ``loss_log.csv`` (a training run).
    """
    if kind not in FIGURE_KINDS:
        raise RunError(f"unknown figure kind {kind!r}; choose one of: {', '.join(FIGURE_KINDS)}")
    run_dir = Path(run_dir)
    labels = FIGURE_KINDS[kind]
    out = run_dir / "figures"
    written = save_figure(
        comparison_grid_from_run(run_dir, methods=methods, max_rows=max_rows, labels=labels), out / f"{kind}_grid"
    )
    table = _run_table(run_dir)
    if table is not None and methods is not None:
        table = table[table["method"].isin(list(methods))]
    has_values = table is not None and any(
        f"{m}_mean" in table.columns and table[f"{m}_mean"].notna().any() for m in METRIC_LABELS
    )
    if has_values:
        written += save_figure(metric_bars(table, metrics=tuple(METRIC_LABELS), reference=reference, labels=labels),
                               out / f"{kind}_metrics")
    if (run_dir / "loss_log.csv").is_file():
        written += save_figure(loss_curves(run_dir / "loss_log.csv", smooth=10), out / "loss_curves")
    return written
