"""`harness report`: one self-contained HTML page of a run (table, figures, timing, manifest), written at the end of
`run` and `study`, and rendered by headless Chromium where it is installed (screenshot checked)."""
from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from harness.cli import main
from harness.report import write_report

from .conftest import shared_asset

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None)


@pytest.fixture(scope="module")
def micro_run(tmp_path_factory):
    """A real run: MicroAST with its official files on 4 demo pairs at 64 px, with SSIM and timing."""
    from .conftest import offline_environment

    root = tmp_path_factory.mktemp("report")
    with offline_environment(root):
        out = root / "micro"
        assert main(["run", "--methods", "MicroAST,all2all", "--init", "all2all=random", "--weights-dir",
                     str(shared_asset("weights")), "--size", "64", "--pairs", "4", "--metrics", "ssim,timing",
                     "--timing-repeats", "1", "--out", str(out), "--no-progress"]) == 0
    return out


def test_a_run_writes_a_self_contained_report(micro_run):
    page = (micro_run / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") and "<table class=\"results\">" in page
    assert "<th scope=\"row\">MicroAST</th>" in page and "<th scope=\"row\">All-to-all †</th>" in page
    assert "SSIM ↑" in page and "time (ms) ↓" in page and "<b>" in page  # arrows and the best value in bold
    assert "c8d895c0eec52507" in page  # the official files' sha256 (provenance)
    assert "UNTRAINED (random init, seed 0)" in page and "version: torch" in page and "git commit" in page
    assert page.count("data:image/png;base64,") >= 2  # the comparison grid and the metric bars, embedded
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # nothing is loaded from elsewhere


def test_report_command_and_missing_tables(micro_run, tmp_path, capsys):
    out = tmp_path / "r.html"
    assert main(["report", str(micro_run), "--out", str(out), "--max-rows", "2"]) == 0
    assert f"report: {out}" in capsys.readouterr().out and out.stat().st_size > 10_000
    assert main(["report", str(tmp_path)]) == 2
    assert "no table.csv" in capsys.readouterr().err


def test_a_study_report_embeds_its_figures_and_the_paper(smoke_results, tmp_path):
    path = write_report(smoke_results, tmp_path / "smoke.html")
    page = path.read_text()
    assert "The paper's numbers beside ours" in page and "0.55" in page
    assert page.count("data:image/png;base64,") == len(list((smoke_results / "figures").glob("*.png")))


@pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (.ci/run installs the distribution's)")
def test_the_report_renders_in_headless_chromium(micro_run, tmp_path):
    shot = tmp_path / "report.png"
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           f"--screenshot={shot}", "--window-size=1280,1600", (micro_run / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1280)
    assert pixels.std() > 20  # text, the table and the embedded images, not a blank page
    dark_rows = (pixels < 100).mean(axis=1)
    assert (dark_rows > 0.01).sum() > 50  # many rows carry ink
