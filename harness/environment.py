"""What a run ran on: package versions, the git commit, the device and the machine — one definition for manifests,
checkpoints and benchmark scripts — and the one device check."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

from methods.errors import literal

from .errors import ConfigError
from .version import __version__


def resolve_device(name: str | torch.device) -> torch.device:
    """A device setting → torch.device; an unknown name or unavailable CUDA is a one-line :class:`ConfigError`."""
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ConfigError(f"{{device}} {literal(repr(name))} is not a torch device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{{device}} {literal(name)}: CUDA is not available here (torch.cuda.is_available() is "
                          "False); use {device=cpu}")
    return device


def versions() -> dict[str, str]:
    """Versions of Python, the platform, the harness and the numeric packages it uses (those installed)."""
    out = {"python": platform.python_version(), "platform": platform.platform(), "harness": __version__}
    for name in ("torch", "torchvision", "lpips", "numpy", "pandas", "PIL", "scipy"):
        try:
            out[name] = str(__import__(name).__version__)
        except Exception:  # an optional package may be absent
            pass
    return out


def git_commit() -> str | None:
    """The checkout's commit (``-dirty`` with uncommitted changes), or None outside a git checkout."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if commit.returncode != 0:
        return None
    return commit.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: str | torch.device) -> str:
    """A human-readable device: the GPU's name, or ``CPU: <model> (<n> cores)``."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        return torch.cuda.get_device_name(device)
    return f"CPU: {cpu_name()} ({os.cpu_count()} cores)"


def machine_info() -> dict[str, Any]:
    """The machine line of benchmark reports."""
    info = {**versions(), "cpu": cpu_name(), "cpu_count": os.cpu_count(), "threads": torch.get_num_threads()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info
