"""Shared test fixtures: the offline, isolated weights environment and the shared real assets."""
from __future__ import annotations

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
