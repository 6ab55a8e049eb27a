"""Shared test fixtures: the offline, isolated weights environment and the shared real assets."""
from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

SHARED_ASSETS = Path(__file__).resolve().parents[2] / "shared" / "assets"


def shared_asset(relative: str) -> Path:
    """Path of a file under ``../shared/assets``; skips the calling test with a clear reason when it is absent."""
    path = SHARED_ASSETS / relative
    if not path.exists():
        pytest.skip(f"shared asset {path} is absent (the ../shared/assets folder is not next to this checkout)")
    return path


@pytest.fixture(autouse=True)
def offline_weights(tmp_path_factory, monkeypatch):
    """Every test runs offline with empty, private weight folders, so nothing on the machine leaks in."""
    root = tmp_path_factory.mktemp("weights-env")
    monkeypatch.setenv("HARNESS_CACHE", str(root / "cache"))
    monkeypatch.delenv("HARNESS_WEIGHTS", raising=False)
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    torch.manual_seed(0)
    return root


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Offline, with a private empty HARNESS_WEIGHTS folder (returned) and cache; the working folder is tmp_path."""
    weights = tmp_path / "env-weights"
    weights.mkdir()
    monkeypatch.setenv("HARNESS_WEIGHTS", str(weights))
    monkeypatch.setenv("HARNESS_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HARNESS_OFFLINE", "1")
    monkeypatch.chdir(tmp_path)
    return weights


@contextlib.contextmanager
def offline_environment(root: Path) -> Iterator[pytest.MonkeyPatch]:
    """What :func:`offline_weights` sets up, for fixtures wider than one test: offline, a private cache under
    ``root``, no ``HARNESS_WEIGHTS``."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HARNESS_CACHE", str(root / "cache"))
        patch.delenv("HARNESS_WEIGHTS", raising=False)
        patch.setenv("HARNESS_OFFLINE", "1")
        yield patch


@pytest.fixture(scope="session")
def smoke_results(tmp_path_factory) -> Path:
    """The smoke study (studies/smoke.yaml) run once per test session, offline; returns its results folder."""
    from harness.study import StudyOverrides, load_study_file, run_study

    root = tmp_path_factory.mktemp("smoke-study")
    with offline_environment(root):
        study = load_study_file(Path(__file__).resolve().parents[1] / "studies" / "smoke.yaml")
        run_study(study, StudyOverrides(out=root / "smoke", progress=False))
    return root / "smoke"


@pytest.fixture
def eval_images(tmp_path):
    """2 content × 2 style images from the StyA2K eval set, copied so tests can add bad files."""
    root = shared_asset("images/eval/stya2k")
    content, style = tmp_path / "content", tmp_path / "style"
    content.mkdir()
    style.mkdir()
    for i in (1, 2):
        shutil.copy(root / "content" / f"content{i}.png", content)
        shutil.copy(root / "style" / f"style{i}.png", style)
    return content, style
