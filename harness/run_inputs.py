"""A finished run directory read back: its per-pair rows (``metrics.csv``), its manifest and the paths of its input
images — what figures and user-study surveys are drawn from."""
from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from pathlib import Path

from .demo import demo_content, demo_styles
from .errors import ImageError, RunError
from .images import list_images

__all__ = ["read_run", "run_input_paths"]


def read_run(run_dir: Path) -> tuple[list[dict[str, str]], dict]:
    """Rows of ``run_dir/metrics.csv`` that name a method and a style (as strings) and the manifest (or {})."""
    path = run_dir / "metrics.csv"
    if not path.is_file():
        raise RunError(f"{run_dir}: no metrics.csv (is it a run directory? shards are combined by "
                       "harness.rundir.merge_shards)")
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [r for r in csv.DictReader(fh) if r.get("method") and r.get("style")]
    manifest_path = run_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    except (OSError, ValueError):
        manifest = {}
    return rows, manifest


def run_input_paths(config: Mapping) -> dict[str, dict[str, Path]]:
    """File name → path of a run's content and style images (``config``: the manifest's ``config``; the embedded
    demo set where it names none)."""
    out: dict[str, dict[str, Path]] = {}
    for role, demo in (("content", demo_content), ("style", demo_styles)):
        try:
            paths = list_images(config[role]) if config.get(role) else demo()
        except (ImageError, OSError, TypeError):
            paths = []
        out[role] = {p.name: p for p in paths}
    return out
