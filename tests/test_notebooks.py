"""The notebooks run top to bottom (nbclient, a fresh kernel, no hidden state) against the smoke study's results."""
from __future__ import annotations

from pathlib import Path

import nbformat
import pandas as pd
from nbclient import NotebookClient

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def execute(name: str, env: dict[str, str], monkeypatch) -> nbformat.NotebookNode:
    for key, value in env.items():
        monkeypatch.setenv(key, value)  # the kernel inherits this process's environment
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in notebook.cells), "a tagged parameters cell"
    assert all(c.get("outputs", []) == [] for c in notebook.cells if c.cell_type == "code"), "committed without outputs"
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    return notebook


def outputs_text(notebook) -> str:
    return "\n".join(o.get("text", "") for c in notebook.cells if c.cell_type == "code" for o in c.outputs)


def test_figures_notebook_regenerates_the_smoke_study(smoke_results, tmp_path, monkeypatch):
    out = tmp_path / "regenerated"
    notebook = execute("figures.ipynb", {"HARNESS_RESULTS": str(smoke_results), "HARNESS_NOTEBOOK_OUT": str(out)},
                       monkeypatch)
    for name in ("table.csv", "table.md", "table.tex", "paper.md"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "table.md").read_text() == (smoke_results / "table.md").read_text()
    for stem in ("comparison", "ablation", "metrics", "interpolation_styA2K", "attention_styA2K", "per_pair"):
        assert (out / "figures" / f"{stem}.png").stat().st_size > 1000, stem
    assert "study smoke (run)" in outputs_text(notebook)


def test_attention_notebook(tmp_path, monkeypatch):
    notebook = execute("attention.ipynb", {"HARNESS_SIZE": "64", "HARNESS_NOTEBOOK_OUT": str(tmp_path)}, monkeypatch)
    text = outputs_text(notebook)
    assert "WARNING: styA2K" in text and "head 0: style block" in text
    assert sorted(p.name for p in tmp_path.glob("*.png")) == [
        "attention_styA2K_relu3_1.png", "attention_styA2K_relu4_1.png", "attention_styA2K_relu5_1.png"]


def test_complexity_notebook(tmp_path, monkeypatch):
    from harness.complexity import ComplexityConfig, run_complexity

    results = tmp_path / "complexity"
    run_complexity(ComplexityConfig(methods=["styA2K", "all2all"], sizes=[64, 96], repeats=1, warmup=0,
                                    attention_repeats=1, out=results, progress=False))
    out = tmp_path / "regenerated"
    notebook = execute("complexity.ipynb", {"HARNESS_RESULTS": str(results), "HARNESS_NOTEBOOK_OUT": str(out),
                                            "HARNESS_MIN_FIT_SIZE": "64"}, monkeypatch)
    for name in ("complexity.md", "complexity_time.png", "complexity_memory.pdf", "eq15.csv"):
        assert (out / name).stat().st_size > 0, name
    eq15 = pd.read_csv(out / "eq15.csv")
    assert set(eq15["method"]) == {"styA2K", "all2all"} and set(eq15["size"]) == {64, 96}
    assert "4 cells on" in outputs_text(notebook)
