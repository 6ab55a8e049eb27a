"""Every LaTeX table the harness writes compiles with pdflatex (skipped, with the reason, where pdflatex is absent):
the run table (wide: ``table*`` + ``\\resizebox``), a table with preference columns, the complexity report and the
temporal-consistency table."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.complexity.report import write_summary
from harness.tables import MetricSpec, write_tables

ROOT = Path(__file__).resolve().parents[1]
PDFLATEX = shutil.which("pdflatex")
pytestmark = pytest.mark.skipif(PDFLATEX is None, reason="pdflatex is not installed (.ci/run installs texlive)")

DOCUMENT = r"""\documentclass{article}
\usepackage[utf8]{inputenc}
\usepackage{booktabs}
\usepackage{graphicx}
\begin{document}
%s
\end{document}
"""


def compile_tex(tex: Path, tmp_path: Path) -> None:
    body = "\n".join(line for line in tex.read_text().splitlines() if not line.startswith("%"))
    doc = tmp_path / f"{tex.stem}-doc.tex"
    doc.write_text(DOCUMENT % body)
    proc = subprocess.run([PDFLATEX, "-interaction=nonstopmode", "-halt-on-error", doc.name], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Overfull \\hbox" not in proc.stdout, proc.stdout[-3000:]


def test_the_smoke_run_table_compiles(smoke_results, tmp_path):
    tex = smoke_results / "table.tex"
    assert "\\label{tab:" in tex.read_text() and "\\begin{table*}" in tex.read_text()  # 7 metric columns: wide
    compile_tex(tex, tmp_path)


def test_a_preference_table_with_mixed_magnitudes_compiles(tmp_path):
    agg = pd.DataFrame({"method": ["styA2K", "adain_with_underscore", "all2all"], "untrained": [False, True, False],
                        "gram_mean": [1.541e-38, 0.000715, 2.5], "gram_std": [0.0, 1e-5, 0.1], "gram_n": [3] * 3,
                        "gram_ci95": [np.nan] * 3})
    specs = [MetricSpec("gram", "Gram loss", False, "{:.3g}")]
    votes = pd.DataFrame({"question": ["overall"] * 3, "method": ["styA2K", "adain_with_underscore", "all2all"],
                          "votes": [30, 15, 5], "total": [50] * 3, "share": [0.6, 0.3, 0.1],
                          "ci_low": [0.46, 0.19, 0.04], "ci_high": [0.72, 0.44, 0.21]})
    paths = write_tables(agg, specs, tmp_path / "t", caption="Σ ≥ 2 % of ~the_votes_", extra_rows=votes)
    text = paths["tex"].read_text()
    assert "0.00 $\\pm$" in text and "0.00072" not in text  # one format per column (3 digits of the largest)
    compile_tex(paths["tex"], tmp_path)


def test_the_complexity_report_compiles(tmp_path):
    source = ROOT / "results" / "complexity_cpu"
    cells = pd.read_csv(source / "complexity.csv")
    paths = write_summary(cells, pd.read_csv(source / "slopes.csv"), pd.read_csv(source / "ratios.csv"), tmp_path)
    text = paths["tex"].read_text()
    assert "time\\_ratio" not in text and "StyA2K" in text and text.count("\\label{tab:complexity-") >= 7
    compile_tex(paths["tex"], tmp_path)
