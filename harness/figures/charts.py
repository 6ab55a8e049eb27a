"""Charts: metric bars with CIs (and the paper's values), training loss curves, per-frame video error, and the
complexity study's log-log plots."""
from __future__ import annotations

import math
import os
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib import rcParams
from matplotlib.lines import Line2D
from matplotlib.ticker import NullLocator


from ..errors import TableError
from ..tables import METRIC_LABELS, TIMING_COLUMNS
from ._common import (PathLike, UNTRAINED_MARK, UNTRAINED_NOTE, method_label, save_figure, _read_frame, _truthy)


# ---------------------------------------------------------------------------------------------------- bars

def metric_bars(
    table: pd.DataFrame | PathLike,
    metrics: Sequence[str] = ("content_loss", "style_loss", "lpips"),
    reference: Mapping[str, Mapping[str, float]] | None = None,
    labels: Mapping[str, str] | None = None,
    title: str | None = None,
    reference_label: str = "paper",
) -> Figure:
    """One subplot per metric (those of ``metrics`` present as ``<metric>_mean``), one bar per method (table order)
    with its 95 % CI (``<metric>_ci95``) as error bars; untrained methods are hatched and marked †.

    ``table``: the output of :func:`harness.tables.aggregate` or a ``table.csv``. ``reference``: method → metric →
    value (e.g. the paper's Table 1) drawn as black diamonds over the matching bars, labelled ``reference_label``.
    In ``fig.axes[k]`` bar i's height is the mean of method i (NaN: bar hidden) and its error bar ± ci95, or the
    interval ``<metric>_ci_low`` … ``<metric>_ci_high`` where the table has one (FID, ArtFID: bootstrap)."""
    frame = _read_frame(table, "table")
    if "method" not in frame.columns:
        raise TableError("the table has no 'method' column (expected harness.tables.aggregate output or table.csv)")
    shown = [m for m in metrics if f"{m}_mean" in frame.columns]
    if not shown:
        raise TableError(f"the table has none of the metrics {', '.join(metrics)} (no '<metric>_mean' column)")
    methods = [str(m) for m in frame["method"]]
    untrained = [_truthy(v) for v in frame["untrained"]] if "untrained" in frame.columns else [False] * len(methods)
    ticks = [method_label(m, labels) + (f" {UNTRAINED_MARK}" if u else "") for m, u in zip(methods, untrained)]
    folded_ref = {k.casefold(): v for k, v in (reference or {}).items()}
    fig = Figure(figsize=(max(3.0, 0.55 * len(methods) + 1.2) * len(shown), 3.4), layout="constrained")
    axes = fig.subplots(1, len(shown), squeeze=False)[0]
    x = np.arange(len(methods))
    colours = [f"C{i % 10}" for i in range(len(methods))]
    any_reference = False
    bootstrapped: list[str] = []
    for ax, metric in zip(axes, shown):
        means = pd.to_numeric(frame[f"{metric}_mean"], errors="coerce").to_numpy(dtype=float)
        ci = (pd.to_numeric(frame[f"{metric}_ci95"], errors="coerce").to_numpy(dtype=float)
              if f"{metric}_ci95" in frame.columns else None)
        if f"{metric}_ci_low" in frame.columns and f"{metric}_ci_high" in frame.columns:  # an asymmetric interval
            low = pd.to_numeric(frame[f"{metric}_ci_low"], errors="coerce").to_numpy(dtype=float)
            high = pd.to_numeric(frame[f"{metric}_ci_high"], errors="coerce").to_numpy(dtype=float)
            ci = np.nan_to_num(np.vstack([means - low, high - means]).clip(min=0), nan=0.0)
            bootstrapped.append(METRIC_LABELS.get(metric, (metric,))[0])
        bars = ax.bar(x, np.nan_to_num(means, nan=0.0), yerr=ci, capsize=3, color=colours, edgecolor="black",
                      linewidth=0.6, error_kw={"elinewidth": 1.0})
        for bar, u, m in zip(bars, untrained, means):
            if u:
                bar.set_hatch("//")
            if math.isnan(m):
                bar.set_visible(False)
        ref_x = [i for i, m in enumerate(methods) if metric in folded_ref.get(m.casefold(), {})]
        if ref_x:
            any_reference = True
            ax.plot(ref_x, [folded_ref[methods[i].casefold()][metric] for i in ref_x], marker="D", color="black",
                    linestyle="none", markersize=5, label=reference_label, zorder=5)
            ax.legend(fontsize=7)
        label, higher, _fmt = METRIC_LABELS.get(metric) or TIMING_COLUMNS.get(metric) or (metric, False, "")
        ax.set_title(f"{label} {'↑' if higher else '↓'}", fontsize=9)
        ax.set_xticks(x, ticks, rotation=30, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    notes = ["error bars: 95 % CI of the mean over pairs (Student's t)" + (f" ({', '.join(bootstrapped)}: percentile bootstrap)"
                                                 if bootstrapped else "")]
    if any(untrained):
        notes.append(UNTRAINED_NOTE)
    if any_reference:
        notes.append(f"◆ {reference_label}")
    width_chars = int(fig.get_figwidth() * 72 / 3.9)  # ~characters per line at 7 pt
    fig.supxlabel(textwrap.fill("; ".join(notes), width=max(30, width_chars)), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


# ---------------------------------------------------------------------------------------------------- loss curves
LOSS_LOG_META = ("step", "epoch", "lr")


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average: element i is the mean of values[max(0, i − window + 1) : i + 1]."""
    return pd.Series(values, dtype=float).rolling(window, min_periods=1).mean().to_numpy()


def loss_curves(
    log: pd.DataFrame | PathLike,
    smooth: int = 1,
    terms: Sequence[str] | None = None,
    title: str | None = None,
) -> Figure:
    """Training curves from ``loss_log.csv`` (``step, epoch, lr, <terms…>, loss``: :class:`harness.train.LossLog`).

    One panel per loss term (``loss``, the weighted total, first), against ``step``; log-y where every value is
    positive. ``smooth`` > 1 draws the raw curve faintly and its trailing moving average over ``smooth`` steps on
    top. The learning rate, when logged, is drawn on a twin axis of the first panel."""
    frame = _read_frame(log, "loss log")
    if "step" not in frame.columns:
        raise TableError("the loss log has no 'step' column (expected loss_log.csv: step, epoch, lr, <terms>, loss)")
    if smooth < 1:
        raise TableError(f"smoothing window must be ≥ 1 step, got {smooth}")
    available = [c for c in frame.columns if c not in LOSS_LOG_META and pd.api.types.is_numeric_dtype(frame[c])]
    if terms is None:
        terms = (["loss"] if "loss" in available else []) + [c for c in available if c != "loss"]
    else:
        missing = [t for t in terms if t not in available]
        if missing:
            raise TableError(f"the loss log has no numeric column(s) {', '.join(missing)} "
                             f"(it has: {', '.join(available)})")
    if not terms:
        raise TableError("the loss log has no loss columns")
    frame = frame.sort_values("step", kind="stable")
    steps = frame["step"].to_numpy(dtype=float)
    cols = min(3, len(terms))
    rows = -(-len(terms) // cols)
    fig = Figure(figsize=(3.6 * cols, 2.7 * rows + 0.3), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, term in zip(axes, terms):
        values = frame[term].to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if smooth > 1:
            ax.plot(steps, values, color="C0", alpha=0.3, linewidth=0.8, label="raw")
            ax.plot(steps, moving_average(values, smooth), color="C0", linewidth=1.4, label=f"mean of {smooth}")
        else:
            ax.plot(steps, values, color="C0", linewidth=1.2, label=term)
        if finite.size and (finite > 0).all():
            ax.set_yscale("log")
        ax.set_title(term, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.set_ylabel(("weighted total" if term == "loss" else f"{term} (unweighted)")
                      + (", log scale" if ax.get_yscale() == "log" else ""), fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[len(terms):]:
        ax.set_visible(False)
    lr = frame["lr"].to_numpy(dtype=float) if "lr" in frame.columns and pd.api.types.is_numeric_dtype(frame["lr"]) \
        else None
    if lr is not None and np.isfinite(lr).any() and np.nanmax(lr) == np.nanmin(lr):  # constant: say it, no axis
        axes[0].text(0.98, 0.97, f"lr {np.nanmax(lr):.2g} (constant)", transform=axes[0].transAxes, ha="right",
                     va="top", fontsize=7, color="C3")
    elif lr is not None:
        twin = axes[0].twinx()
        twin.plot(steps, frame["lr"].to_numpy(dtype=float), color="C3", linestyle="--", linewidth=1.0, label="lr")
        twin.set_ylabel("learning rate", fontsize=8, color="C3")
        twin.tick_params(labelsize=7, colors="C3")
        twin.ticklabel_format(axis="y", style="sci", scilimits=(-2, 3))
        twin.yaxis.get_offset_text().set_fontsize(7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def plot_per_frame_error(per_frame_df: pd.DataFrame, path_stem: PathLike, floor: str = "input",
                         floor_label: str = "input (floor)", untrained: Sequence[str] = (),
                         labels: Mapping[str, str] | None = None) -> list[Path]:
    """Plot the per-frame warping error (``per_frame.csv`` columns ``clip, method, frame, error, long_range_error``):
    one row of panels per clip — consecutive frames on the left, the long-range lag on the right when present — one
    line per method (paper labels, † for ``untrained`` methods), the input floor (method ``floor``) dashed grey; a
    log-scale error axis (the floor and the methods differ by orders of magnitude) and whole-frame ticks. Saved as
    ``<path_stem>.png`` (150 dpi) and ``.pdf``, atomically."""
    from matplotlib.ticker import MaxNLocator

    clips = list(dict.fromkeys(per_frame_df["clip"]))
    long_range = "long_range_error" in per_frame_df and per_frame_df["long_range_error"].notna().any()
    lag = int(per_frame_df.loc[per_frame_df["long_range_error"].notna(), "frame"].min()) - 1 if long_range else 0
    columns = [("error", "t−1 → t")] + ([("long_range_error", f"t−{lag} → t (long range)")] if long_range else [])
    fig = Figure(figsize=(6.0 * len(columns), 2.8 * len(clips)), layout="tight")
    axes = fig.subplots(len(clips), len(columns), squeeze=False, sharex="row")
    for row, clip in enumerate(clips):
        data = per_frame_df[per_frame_df["clip"] == clip]
        for col, (column, title) in enumerate(columns):
            ax = axes[row][col]
            for method in dict.fromkeys(data["method"]):
                series = data[data["method"] == method].sort_values("frame")
                style = {"color": "0.4", "linestyle": "--"} if method == floor else {}
                label = floor_label if method == floor else (
                    method_label(str(method), labels) + (f" {UNTRAINED_MARK}" if method in set(untrained) else ""))
                ax.plot(series["frame"], series[column], marker=".", label=label, **style)
            values = pd.to_numeric(data[column], errors="coerce")
            if (values.dropna() > 0).all() and values.notna().any():
                ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_title(f"{clip}: {title}")
            ax.set_xlabel("frame t")
            ax.set_ylabel("warping error" + (" (log scale)" if ax.get_yscale() == "log" else ""))
            ax.grid(alpha=0.3, which="both")
        axes[row][0].legend(fontsize="small")
    if untrained:
        fig.text(0.01, 0.0, f"{UNTRAINED_MARK} {UNTRAINED_NOTE}", fontsize=7, va="bottom")
    return save_figure(fig, path_stem, dpi=150)


# ---------------------------------------------------------------------------------------------------- complexity
COMPLEXITY_QUANTITIES = {"time": ("latency_ms", "latency (ms)"), "memory": ("peak_memory_mib", "peak memory (MiB)")}
"""What a complexity plot can show: quantity → (column of the sweep's frame, axis label)."""


def _pixels_text(pixels: int) -> str:
    return f"{pixels / 1e6:.3g} Mpx" if pixels >= 1e6 else f"{pixels / 1e3:.3g} kpx"


def plot_complexity(df: pd.DataFrame, slopes: pd.DataFrame, out_stem: str | os.PathLike | None,
                    quantity: str = "time"):
    """Log-log plot of latency (``quantity="time"``) or peak memory (``"memory"``) against pixels, one line per
    method (× dtype × device when several), the fitted slope in the legend; a cell that went OOM (timed out) is an
    ×  (◆) at the top of the axes at its size. Saved as ``<out_stem>.png`` and ``.pdf`` (atomically) unless
    ``out_stem`` is None; returns the (pyplot-free) Figure."""
    if quantity not in COMPLEXITY_QUANTITIES:
        raise ValueError(f"quantity must be one of {', '.join(COMPLEXITY_QUANTITIES)}, got {quantity!r}")
    column, ylabel = COMPLEXITY_QUANTITIES[quantity]
    fig = Figure(figsize=(7.0, 4.6), layout="tight")  # no pyplot: no global state, no backend switch
    ax = fig.subplots()
    several = {c: df[c].nunique() > 1 for c in ("dtype", "device")} if not df.empty else {}
    top = ax.get_xaxis_transform()
    colours = rcParams["axes.prop_cycle"].by_key()["color"]
    failures = set()
    for i, ((method, dtype, device), group) in enumerate(df.groupby(["method", "dtype", "device"], sort=False)):
        colour = colours[i % len(colours)]
        label = " ".join([str(method)] + [str(v) for v, c in ((dtype, "dtype"), (device, "device")) if several.get(c)])
        fit = slopes[(slopes["method"] == method) & (slopes["dtype"] == dtype) & (slopes["device"] == device)
                     & (slopes["quantity"] == column)] if not slopes.empty else slopes
        if not fit.empty:
            label += f" (slope {fit['slope'].iloc[0]:.2f})"
        positive = pd.to_numeric(group[column], errors="coerce") > 0
        ok = group[(group["status"] == "ok") & positive].sort_values("pixels")
        ax.plot(ok["pixels"].astype(float), pd.to_numeric(ok[column]), "o-", color=colour, label=label)
        for status, marker in (("oom", "x"), ("timeout", "D")):
            bad = group[group["status"] == status]
            if not bad.empty:
                failures.add(status)
                ax.plot(bad["pixels"].astype(float), [0.97] * len(bad), marker, color=colour, transform=top,
                        markersize=9, clip_on=False, linestyle="none")
    sizes = sorted({int(s) for s in df["size"]}) if not df.empty else []
    ax.set_xscale("log")
    ax.set_yscale("log")
    if not any(len(line.get_xdata()) for line in ax.get_lines() if line.get_transform() != top):
        ax.set_ylim(1, 10)  # nothing positive to show (e.g. CPU memory growth 0 at tiny sizes)
    elif failures:  # head room for the failure markers drawn at 97 % of the height
        low, high = ax.get_ylim()
        ax.set_ylim(low, high * (high / low) ** 0.15)
    if sizes:
        ax.set_xticks([s * s for s in sizes])
        ax.set_xticklabels([f"{s}²\n{_pixels_text(s * s)}" for s in sizes], fontsize=8)
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(sizes[0] ** 2 / 1.4, sizes[-1] ** 2 * 1.4)
    ax.set_xlabel("pixels H·W (side²)")
    ax.set_ylabel(ylabel)
    devices = sorted({str(d) for d in df.get("device_name", pd.Series(dtype=str)).dropna()})
    title = f"{ylabel.split(' (')[0].capitalize()} against image size"
    ax.set_title(title + (f" — {devices[0]}" if len(devices) == 1 else ""), fontsize=10)
    handles, labels = ax.get_legend_handles_labels()
    for status, marker, text in (("oom", "x", "out of memory"), ("timeout", "D", "timeout")):
        if status in failures:
            handles.append(Line2D([], [], marker=marker, color="grey", linestyle="none"))
            labels.append(text)
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no ok cells", ha="center", va="center", transform=ax.transAxes)
    ax.grid(True, which="major", alpha=0.3)
    if out_stem is not None:
        save_figure(fig, out_stem, clear=False)
    return fig



# ---------------------------------------------------------------------------------------------------- user study
def preference_figure(shares: pd.DataFrame, labels: Mapping[str, str] | None = None, title: str | None = None
                      ) -> Figure:
    """One subplot per question, one bar per method: its share of the votes (%) with an interval — the
    participant-level bootstrap (``boot_low`` / ``boot_high``, :func:`metrics.preference.participant_bootstrap`)
    where ``shares`` has it, else the Wilson interval (``ci_low`` / ``ci_high``, :func:`metrics.preference.tally`);
    a dashed line marks the uniform share 1/k. ``shares``: either table, or both merged on (question, method)."""
    missing = [c for c in ("question", "method", "share") if c not in shares.columns]
    if missing:
        raise TableError(f"the vote shares lack the column(s) {', '.join(missing)} (expected tally output)")
    bootstrap = {"boot_low", "boot_high"} <= set(shares.columns)
    low_col, high_col = ("boot_low", "boot_high") if bootstrap else ("ci_low", "ci_high")
    questions = list(dict.fromkeys(shares["question"]))
    methods = list(dict.fromkeys(shares["method"]))
    fig = Figure(figsize=(max(3.0, 0.5 * len(methods) + 1.2) * len(questions), 3.3), layout="constrained")
    axes = fig.subplots(1, len(questions), squeeze=False, sharey=True)[0]
    x = np.arange(len(methods))
    for ax, question in zip(axes, questions):
        block = shares[shares["question"] == question].set_index("method").reindex(methods)
        share = block["share"].to_numpy(dtype=float) * 100
        error = np.nan_to_num(np.vstack([share - block[low_col].to_numpy(dtype=float) * 100,
                                         block[high_col].to_numpy(dtype=float) * 100 - share]).clip(min=0))
        ax.bar(x, np.nan_to_num(share), yerr=error, capsize=3, color=[f"C{i % 10}" for i in range(len(methods))],
               edgecolor="black", linewidth=0.6)
        ax.axhline(100 / len(methods), color="grey", linestyle="--", linewidth=0.8)
        ax.set_title(question, fontsize=9)
        ax.set_xticks(x, [method_label(m, labels) for m in methods], rotation=30, ha="right", fontsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("share of votes (%)", fontsize=8)
    note = (("error bars: 95 % participant-level bootstrap interval" if bootstrap else
             "error bars: 95 % Wilson interval (assumes independent votes)") + "; dashed: uniform share 1/k")
    fig.supxlabel(textwrap.fill(note, width=max(30, int(fig.get_figwidth() * 72 / 3.9))), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig
