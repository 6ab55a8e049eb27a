"""The README's plugin recipe is a real plugin: tests/plugin_example/my_package/my_method.py, verbatim in the README,
installed through a ``harness.methods`` entry point, listed, stylising at odd sizes and trained by `harness train`."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch

import harness
from harness.cli import main
from methods import OptionError, reload_plugins, unregister_method

from .test_train import SMALL, data  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "tests" / "plugin_example" / "my_package" / "my_method.py"


def test_the_readme_shows_the_tested_file_verbatim():
    assert EXAMPLE.read_text() in (ROOT / "README.md").read_text()


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    """The example installed as a distribution would be: a package on sys.path and its entry point."""
    shutil.copytree(EXAMPLE.parent, tmp_path / "my_package")
    (tmp_path / "my_package" / "__init__.py").write_text("")
    dist = tmp_path / "my_package-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text('[harness.methods]\nmy-method = my_package.my_method\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    reload_plugins()
    yield
    for name in [m for m in sys.modules if m.startswith("my_package")]:
        sys.modules.pop(name)
    unregister_method("my-method")


def test_the_example_plugin_works(plugin, capsys):
    assert "my-method" in harness.list_methods()
    info = harness.get_method_info("my-method")
    assert info.plugin == "my_package.my_method" and info.trainable and info.recipe is not None
    method = harness.create_method("my-method", init="random", strength=0.5)
    out = method.stylize(torch.rand(2, 3, 37, 50), torch.rand(1, 3, 21, 30))
    assert out.shape == (2, 3, 37, 50) and method.untrained
    with pytest.raises(OptionError, match="strength must be in"):
        harness.create_method("my-method", init="random", strength=2.0)
    assert main(["methods", "--verbose"]) == 0
    assert "my-method" in capsys.readouterr().out


def test_the_example_plugin_trains(plugin, data, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "ckpt"
    assert main(["train", "--method", "my-method", "--content-dir", str(data["content"]), "--style-dir",
                 str(data["style"]), "--out", str(out), "--steps", "2", *SMALL]) == 0, capsys.readouterr().err
    method = harness.create_method("my-method", weights=out)
    assert not method.provenance.untrained
