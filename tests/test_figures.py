"""harness.figures on a real (tiny, random-init, offline) run directory made by the runner itself: grid cells hold
the run's pixels, bars the table's means and CIs, curves the logged values; every figure writes PNG + PDF."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from harness.figures import (
    ABLATION_LABELS,
    attention_figure,
    comparison_grid,
    comparison_grid_from_run,
    interpolation_grid,
    interpolation_strip,
    loss_curves,
    metric_bars,
    save_figure,
    write_run_figures,
)
from harness.images import load_image_tensor, tensor_to_image
from harness.run import RunConfig, RunError, execute_run
from harness.tables import MetricSpec, TableError, aggregate
from harness.train import LossLog
from methods import InputError, Method, MethodInfo, Provenance, StyleTransferNet, create_method
from methods.attention_maps import attention_maps

from .conftest import offline_environment

METHODS = ["adain", "styA2K"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """adain + styA2K, random init, 2 demo pairs at 64 px, content/style losses (random VGG, offline)."""
    root = tmp_path_factory.mktemp("figures-run")
    with offline_environment(root):
        execute_run(RunConfig(methods=METHODS, out=root / "run", size=64, init="random",
                              metrics=["content_loss", "style_loss"], pairs=2, progress=False))
    return root / "run"


def pixels(path: Path) -> np.ndarray:
    return np.asarray(tensor_to_image(load_image_tensor(path)))


def assert_written(paths: list[Path], stem: Path) -> None:
    assert paths == [stem.with_name(stem.name + ".png"), stem.with_name(stem.name + ".pdf")]
    png, pdf = (p.read_bytes() for p in paths)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 2000
    assert pdf.startswith(b"%PDF") and len(pdf) > 2000
    assert not [p for p in stem.parent.iterdir() if p.name.startswith(".")]  # no temporary files left


def titles(fig) -> list[str]:
    return [ax.get_title() for ax in fig.axes]


# ------------------------------------------------------------------------------------------------ grids
def test_comparison_grid_from_run_shows_the_run_pixels(run_dir):
    metrics = pd.read_csv(run_dir / "metrics.csv")
    pairs = list(dict.fromkeys(zip(metrics["content"], metrics["style"])))
    fig = comparison_grid_from_run(run_dir)
    cols = 2 + len(METHODS)
    assert len(fig.axes) == len(pairs) * cols
    assert titles(fig)[:cols] == ["Content", "Style", "AdaIN †", "StyA2K †"]  # both untrained → flagged
    assert all(t == "" for t in titles(fig)[cols:])
    from harness.demo import CONTENT_DIR, STYLE_DIR

    for r, (content, style) in enumerate(pairs):
        row = fig.axes[r * cols:(r + 1) * cols]
        expected_content = np.asarray(tensor_to_image(load_image_tensor(CONTENT_DIR / content, size=64)))
        np.testing.assert_array_equal(row[0].images[0].get_array(), expected_content)
        np.testing.assert_array_equal(row[1].images[0].get_array(),
                                      np.asarray(tensor_to_image(load_image_tensor(STYLE_DIR / style, size=64))))
        for ax, method in zip(row[2:], METHODS):
            stem = f"{Path(content).stem}__{Path(style).stem}.png"
            np.testing.assert_array_equal(ax.images[0].get_array(), pixels(run_dir / method / stem))


def test_grid_missing_cells_selection_and_errors(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    metrics = pd.read_csv(copy / "metrics.csv")
    content, style = metrics.loc[1, "content"], metrics.loc[1, "style"]
    stem = f"{Path(content).stem}__{Path(style).stem}"
    (copy / "styA2K" / f"{stem}.png").unlink()
    fig = comparison_grid_from_run(copy, methods=["styA2K", "adain"], pairs=[stem], labels=ABLATION_LABELS)
    assert len(fig.axes) == 4
    assert titles(fig) == ["Content", "Style", "Full model †", "adain †"]
    missing = fig.axes[2]
    assert not missing.images and [t.get_text() for t in missing.texts] == ["missing"]
    np.testing.assert_array_equal(fig.axes[3].images[0].get_array(), pixels(copy / "adain" / f"{stem}.png"))
    assert len(comparison_grid_from_run(copy, max_rows=1).axes) == 4

    with pytest.raises(RunError, match="not in the run"):
        comparison_grid_from_run(copy, methods=["all2all"])
    with pytest.raises(RunError, match="not in the run"):
        comparison_grid_from_run(copy, pairs=["nope__none"])
    with pytest.raises(RunError, match="no metrics.csv"):
        comparison_grid_from_run(tmp_path / "empty")


def test_comparison_grid_with_callables_and_missing_inputs(tmp_path):
    from harness.demo import demo_content, demo_styles

    content, style = demo_content()[0], demo_styles()[0]
    grey = lambda c, s: c.mean(dim=1, keepdim=True).expand(-1, 3, -1, -1)  # noqa: E731
    fig = comparison_grid([(content, style), (tmp_path / "gone.png", style)], {"grey": grey, "folder": tmp_path},
                          size=32, untrained={"grey"}, row_labels=False)
    assert len(fig.axes) == 2 * 4 and titles(fig)[:4] == ["Content", "Style", "grey †", "folder"]
    c = load_image_tensor(content, size=32)
    np.testing.assert_array_equal(fig.axes[2].images[0].get_array(), np.asarray(tensor_to_image(grey(c, None))))
    assert [t.get_text() for t in fig.axes[3].texts] == ["missing"]  # no such output file in the folder
    assert [t.get_text() for t in fig.axes[4].texts] == ["missing"]  # no such content file
    assert [t.get_text() for t in fig.axes[6].texts] == ["no input"]
    with pytest.raises(RunError):
        comparison_grid([], {"x": tmp_path})


def test_write_run_figures(run_dir, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    written = write_run_figures(copy, kind="ablation")  # the grid and the bars through save_figure
    assert_written(written[:2], copy / "figures" / "ablation_grid")
    assert_written(written[2:], copy / "figures" / "ablation_metrics")
    with pytest.raises(RunError, match="figure kind"):
        write_run_figures(copy, kind="fig9")


# ------------------------------------------------------------------------------------------------ bars
def bar_data(ax) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bar heights, bar centres and error-bar half lengths (from the drawn segments)."""
    from matplotlib.container import BarContainer

    (container,) = [c for c in ax.containers if isinstance(c, BarContainer)]
    heights = np.array([b.get_height() for b in container.patches])
    centres = np.array([b.get_x() + b.get_width() / 2 for b in container.patches])
    segments = container.errorbar.lines[2][0].get_segments()
    halves = np.array([(s[1][1] - s[0][1]) / 2 for s in segments])
    mids = np.array([(s[1][1] + s[0][1]) / 2 for s in segments])
    np.testing.assert_allclose(mids, heights)
    return heights, centres, halves


def test_metric_bars_heights_and_ci_are_the_table(run_dir, tmp_path):
    table = pd.read_csv(run_dir / "table.csv")
    reference = {"STYA2K": {"content_loss": 0.5, "style_loss": 2.0}, "adain": {"style_loss": 4.0}}
    fig = metric_bars(run_dir / "table.csv", reference=reference)  # lpips absent from this run: skipped
    assert len(fig.axes) == 2
    for ax, metric in zip(fig.axes, ["content_loss", "style_loss"]):
        heights, centres, halves = bar_data(ax)
        np.testing.assert_allclose(heights, table[f"{metric}_mean"])
        np.testing.assert_allclose(halves, table[f"{metric}_ci95"])
        assert [t.get_text() for t in ax.get_xticklabels()] == ["AdaIN †", "StyA2K †"]
        assert all(p.get_hatch() == "//" for p in ax.patches)
        (marker,) = [line for line in ax.lines if line.get_marker() == "D"]
        expected = {"content_loss": ([1], [0.5]), "style_loss": ([0, 1], [4.0, 2.0])}[metric]
        np.testing.assert_allclose(marker.get_xdata(), centres[expected[0]])
        np.testing.assert_allclose(marker.get_ydata(), expected[1])

    # straight from harness.tables.aggregate, with a CI computed here by hand
    frame = pd.DataFrame({"method": ["a", "a", "a", "b", "b"], "lpips": [0.1, 0.2, 0.6, 0.4, 0.4],
                          "untrained": [False] * 3 + [True] * 2})
    agg = aggregate(frame, {"lpips": MetricSpec("lpips", "LPIPS", False)})
    heights, _, halves = bar_data(metric_bars(agg, metrics=["lpips"]).axes[0])
    np.testing.assert_allclose(heights, [0.3, 0.4])
    t_975_df2 = 0.95 / np.sqrt(2 * 0.975 * 0.025)  # Student's t at n = 3, in closed form (4.303, not 1.96)
    np.testing.assert_allclose(halves, [t_975_df2 * np.std([0.1, 0.2, 0.6], ddof=1) / np.sqrt(3), 0.0])
    with pytest.raises(TableError, match="none of the metrics"):
        metric_bars(agg, metrics=["style_loss"])
    with pytest.raises(TableError, match="method"):
        metric_bars(pd.DataFrame({"lpips_mean": [1.0]}))
    with pytest.raises(TableError, match="no such"):
        metric_bars(tmp_path / "nope.csv")


# ------------------------------------------------------------------------------------------------ loss curves
def trailing_mean(values: np.ndarray, window: int) -> np.ndarray:
    sums = np.cumsum(np.concatenate([[0.0], values]))
    idx = np.arange(1, len(values) + 1)
    start = np.maximum(0, idx - window)
    return (sums[idx] - sums[start]) / (idx - start)


def test_loss_curves_from_a_real_loss_log(tmp_path):
    path = tmp_path / "loss_log.csv"
    log = LossLog(path, None)
    rng = np.random.default_rng(0)
    rows = []
    for step in range(1, 41):
        row = {"step": step, "epoch": 1 + (step - 1) // 20, "lr": 1e-4 / (1 + 5e-5 * step),
               "global_style": float(3 * np.exp(-step / 10) + rng.random()),
               "a2k": float(rng.normal()), "loss": float(10 + rng.random())}
        log.write(row)
        rows.append(row)
    log.close()
    assert path.read_text().splitlines()[0] == "step,epoch,lr,global_style,a2k,loss"
    frame = pd.DataFrame(rows)
    fig = loss_curves(path, smooth=5)
    panels = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in panels] == ["loss", "global_style", "a2k"]
    for ax in panels:
        raw, smoothed = ax.lines
        np.testing.assert_allclose(raw.get_ydata(), frame[ax.get_title()])
        np.testing.assert_allclose(smoothed.get_xdata(), frame["step"])
        np.testing.assert_allclose(smoothed.get_ydata(), trailing_mean(frame[ax.get_title()].to_numpy(), 5))
    assert panels[0].get_yscale() == "log" and panels[1].get_yscale() == "log"
    assert panels[2].get_yscale() == "linear"  # a2k has negative values here
    (twin,) = [ax for ax in fig.axes if ax.get_ylabel() == "learning rate"]
    np.testing.assert_allclose(twin.lines[0].get_ydata(), frame["lr"])
    assert_written(save_figure(fig, tmp_path / "figs" / "loss"), tmp_path / "figs" / "loss")

    single = loss_curves(frame.drop(columns=["lr"]), terms=["a2k"])
    assert len(single.axes) == 1 and len(single.axes[0].lines) == 1
    with pytest.raises(TableError, match="step"):
        loss_curves(frame.drop(columns=["step"]))
    with pytest.raises(TableError, match="nothing"):
        loss_curves(frame, terms=["nothing"])


# ------------------------------------------------------------------------------------------------ interpolation
class ToyNet(StyleTransferNet):
    """A transparent network: output = (content + mean colour of the style) / 2, so blends are known exactly."""

    def encode(self, image):
        return {"rgb": image}

    def transfer(self, content, style):
        return {"rgb": 0.5 * content["rgb"] + 0.5 * style["rgb"].mean(dim=(2, 3), keepdim=True)}

    def decode(self, features, size):
        return features["rgb"]


def toy_method() -> Method:
    return Method(MethodInfo("toy", ToyNet), ToyNet(), {}, Provenance(untrained=True, encoder_pretrained=True, seed=0))


def test_interpolation_strip_and_grid_blend_as_weighted(tmp_path):
    method = toy_method()
    g = torch.Generator().manual_seed(0)
    content, a, b, c, d = (torch.rand(1, 3, 16, 24, generator=g) for _ in range(5))
    fig = interpolation_strip(method, content, (a, b), steps=3, size=None)
    assert len(fig.axes) == 3 + 3
    assert titles(fig) == ["Content", "Style A", "(1.00, 0.00)", "(0.50, 0.50)", "(0.00, 1.00)", "Style B"]
    as_pixels = lambda t: np.asarray(tensor_to_image(t))  # noqa: E731
    expected = lambda w: 0.5 * content + 0.5 * sum(wk * s.mean(dim=(2, 3), keepdim=True)  # noqa: E731
                                                   for wk, s in zip(w, (a, b, c, d)))
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array(), as_pixels(content))
    np.testing.assert_array_equal(fig.axes[1].images[0].get_array(), as_pixels(a))
    np.testing.assert_array_equal(fig.axes[5].images[0].get_array(), as_pixels(b))
    for ax, w in zip(fig.axes[2:5], [(1, 0), (0.5, 0.5), (0, 1)]):
        assert np.abs(ax.images[0].get_array().astype(int) - as_pixels(expected(w)).astype(int)).max() <= 1
    assert "UNTRAINED" in fig._suptitle.get_text()
    assert_written(save_figure(fig, tmp_path / "strip"), tmp_path / "strip")

    grid = interpolation_grid(method, content, [a, b, c, d], steps=3, size=None)
    assert len(grid.axes) == 5 + 9
    for k, ax in enumerate(grid.axes[5:]):
        v, u = divmod(k, 3)
        u, v = u / 2, v / 2
        w = ((1 - u) * (1 - v), u * (1 - v), (1 - u) * v, u * v)
        assert np.abs(ax.images[0].get_array().astype(int) - as_pixels(expected(w)).astype(int)).max() <= 1
    with pytest.raises(InputError):
        interpolation_strip(method, content, (a, b), steps=1)
    with pytest.raises(InputError):
        interpolation_grid(method, content, [a, b, c])


# ------------------------------------------------------------------------------------------------ attention
def test_attention_figure_draws_the_maps(tmp_path):
    method = create_method("styA2K", init="random")
    g = torch.Generator().manual_seed(1)
    content, style = torch.rand(1, 3, 64, 64, generator=g), torch.rand(1, 3, 64, 96, generator=g)
    maps = attention_maps(method, content, style, (37, 45), head=2)
    fig = attention_figure(maps, content, style)
    content_ax, a2a_ax, da_ax, pa_ax = fig.axes[:4]
    assert len(fig.axes) == 4 + 3  # panels + three colour bars
    np.testing.assert_array_equal(content_ax.images[0].get_array(), np.asarray(tensor_to_image(content)))
    (marker,) = content_ax.lines
    assert (marker.get_xdata()[0], marker.get_ydata()[0]) == (45.5, 37.5)
    (block,) = content_ax.patches  # the point's content block: feature (9, 11) → block (1, 1) → pixels 32..64
    assert block.get_xy() == (32, 32) and block.get_width() == 32
    np.testing.assert_array_equal(a2a_ax.images[0].get_array(), np.asarray(tensor_to_image(style)))
    np.testing.assert_allclose(a2a_ax.images[1].get_array(), maps.all_to_all.numpy())
    assert a2a_ax.images[1].get_extent() == [0, 96, 64, 0]
    np.testing.assert_allclose(da_ax.images[1].get_array(), maps.da_scores.numpy())
    assert da_ax.images[1].get_extent() == [0, 96, 64, 0] and maps.da_scores.shape == (2, 3)
    oy, ox = maps.block_origin(maps.pa_block)
    (outline,) = pa_ax.patches
    assert outline.get_xy() == (ox * 4, oy * 4) and outline.get_width() == 32
    fine = pa_ax.images[1].get_array()
    np.testing.assert_allclose(fine.filled(0.0), maps.pa_fine.numpy())
    assert int((~fine.mask).sum()) == 64 and int((~fine.mask)[oy:oy + 8, ox:ox + 8].sum()) == 64
    assert "head 2" in a2a_ax.get_title() and f"block {maps.pa_block}" in pa_ax.get_title()
    assert_written(save_figure(fig, tmp_path / "attention"), tmp_path / "attention")

    no_da = attention_figure(attention_maps(create_method("styA2K-noDA", init="random"), content, style, (3, 3)),
                             content, style)
    assert len([ax for ax in no_da.axes if ax.get_title()]) == 3
    a2a = attention_maps(create_method("all2all", init="random"), content, style, (3, 3))
    assert len([ax for ax in attention_figure(a2a, content, style).axes if ax.get_title()]) == 2
    with pytest.raises(InputError, match="computed at"):
        attention_figure(maps, content[..., :32], style)


def test_comparison_grid_of_real_microast_outputs(tmp_path):
    """MicroAST's official files give a real, trained grid: a run of it (no † anywhere), its cells the run's pixels,
    and the stylisation visibly carries the style (the output's colours move from the content's to the style's)."""
    from harness.cli import main
    from harness.demo import CONTENT_DIR, STYLE_DIR

    from .conftest import shared_asset

    weights = shared_asset("weights")
    out = tmp_path / "micro"
    assert main(["run", "--methods", "MicroAST", "--weights-dir", str(weights), "--size", "64", "--pairs", "2",
                 "--metrics", "ssim", "--out", str(out), "--no-progress"]) == 0
    fig = comparison_grid_from_run(out)
    assert titles(fig)[:3] == ["Content", "Style", "MicroAST"]  # trained: no † mark, no footnote
    assert not any("untrained" in t.get_text() for t in fig.texts)
    metrics = pd.read_csv(out / "metrics.csv")
    for r, (content, style) in enumerate(dict.fromkeys(zip(metrics["content"], metrics["style"]))):
        row = fig.axes[3 * r:3 * (r + 1)]
        stem = f"{Path(content).stem}__{Path(style).stem}.png"
        output = row[2].images[0].get_array().astype(float)
        np.testing.assert_array_equal(output, pixels(out / "MicroAST" / stem))
        c = np.asarray(tensor_to_image(load_image_tensor(CONTENT_DIR / content, size=64))).astype(float)
        s = np.asarray(tensor_to_image(load_image_tensor(STYLE_DIR / style, size=64))).astype(float)
        mean = lambda x: x.reshape(-1, 3).mean(axis=0)  # noqa: E731
        assert np.abs(mean(output) - mean(s)).sum() < np.abs(mean(c) - mean(s)).sum()
