"""A run's methods: ``init`` per row, methods without released weights (``all2all``) skipped with the way out, and
ONE error listing every missing file of every method (one line per file)."""
from __future__ import annotations

import shutil

import pytest

from harness.cli import main
from harness.errors import ConfigError
from harness.run_methods import parse_init

from .conftest import shared_asset
from .test_cli_run import pairs_dir  # noqa: F401  (fixture)

pytestmark = pytest.mark.usefixtures("isolated")


def test_parse_init():
    labels = ["styA2K", "adain", "all2all"]
    assert parse_init(None, labels) == (None, {})
    assert parse_init("random", labels) == ("random", {})
    assert parse_init("all2all=random", labels) == (None, {"all2all": "random"})
    assert parse_init("pretrained, ALL2ALL=random,adain=pretrained", labels) == (
        "pretrained", {"all2all": "random", "adain": "pretrained"})
    assert parse_init({"all2all": "random"}, labels) == (None, {"all2all": "random"})
    with pytest.raises(ConfigError, match="'randm' is not one of pretrained, random"):
        parse_init("all2all=randm", labels)
    with pytest.raises(ConfigError, match="sanet is not a method of this run"):
        parse_init("sanet=random", labels)


@pytest.fixture
def micro_weights(tmp_path):
    """A weights folder holding the real MicroAST files under W/MicroAST/ (as a user lays them out)."""
    weights = tmp_path / "W"
    shutil.copytree(shared_asset("weights/MicroAST"), weights / "MicroAST")
    return weights


def _run(pairs_dir, out, weights, *extra):  # noqa: F811
    return ["run", "--methods", "MicroAST,all2all", "--content", str(pairs_dir / "content"), "--style",
            str(pairs_dir / "style"), "--size", "64", "--out", str(out), "--no-progress", "--metrics", "timing",
            "--timing-repeats", "1", "--weights-dir", str(weights), *extra]


def test_a_method_without_weights_is_skipped_with_the_way_out(pairs_dir, micro_weights, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert main(_run(pairs_dir, out, micro_weights)) == 0
    printed = capsys.readouterr()
    assert ("skipped: all2all: no released weights and no harness checkpoint under <weights dir>/all2all/: train it "
            "(harness train all2all) and place its output there, or give --init all2all=random") in printed.err
    table = (out / "table.md").read_text()
    assert "| MicroAST |" in table and "all2all" not in table.split("\n\n", 1)[1]  # no all2all row
    assert "Not run: all2all" in table
    assert not (out / "all2all").exists()


def test_per_method_init_flags_only_that_row(pairs_dir, micro_weights, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "run"
    assert main(_run(pairs_dir, out, micro_weights, "--init", "all2all=random")) == 0
    printed = capsys.readouterr()
    assert "WARNING: --init: all2all run(s) with UNTRAINED weights" in printed.err
    table = (out / "table.md").read_text()
    assert "| MicroAST |" in table and "| all2all † |" in table


def test_every_methods_missing_files_in_one_error(pairs_dir, tmp_path, capsys):  # noqa: F811
    argv = ["run", "--methods", "styA2K,adain,all2all", "--content", str(pairs_dir / "content"), "--style",
            str(pairs_dir / "style"), "--size", "64", "--out", str(tmp_path / "r"), "--no-progress"]
    assert main(argv) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines[0] == "error: missing weight file(s) of styA2K, adain:"
    files = [line.strip().split(" (")[0] for line in lines if line.startswith("  - ")]
    assert files == ["- styA2K: latest_net_A2K.pth", "- styA2K: latest_net_transform.pth",
                     "- styA2K: latest_net_decoder.pth", "- styA2K: vgg_normalised.pth", "- adain: decoder.pth",
                     "- adain: vgg_normalised.pth"]
    assert "<DIR>/<method>/<file>" in lines[-1]
    assert not (tmp_path / "r").exists()  # nothing was started


def test_the_headline_command_downloads_what_is_released_and_skips_all2all(pairs_dir, tmp_path, monkeypatch,  # noqa: F811
                                                                           capsys):
    """`run --methods styA2K,adain,all2all` on a machine with internet: every released file is downloaded from its
    official URL (served here from local files of the exact official layouts), styA2K and adain give real rows,
    all2all — no released weights — is left out with the way to train it. The synthetic files cannot match the
    published checksums, so those are dropped for this test; the URLs, the cache and the loading are the real ones."""
    import dataclasses
    import urllib.request

    import methods.fetch
    from methods import get_method_info

    from .test_methods import write_official_files

    served = write_official_files(tmp_path / "served")
    requested = []
    real_urlopen = urllib.request.urlopen

    def urlopen(url, timeout=None):
        requested.append(url)
        return real_urlopen((served / url.rsplit("/", 1)[-1]).as_uri(), timeout=timeout)

    monkeypatch.setattr(methods.fetch.urllib.request, "urlopen", urlopen)
    for name in ("styA2K", "adain"):
        info = get_method_info(name)
        for key, spec in list(info.weights.items()):
            monkeypatch.setitem(info.weights, key, dataclasses.replace(spec, sha256=None, git_blob_sha1=None))
    monkeypatch.delenv("HARNESS_OFFLINE")
    out = tmp_path / "run"
    argv = ["run", "--methods", "styA2K,adain,all2all", "--content", str(pairs_dir / "content"), "--style",
            str(pairs_dir / "style"), "--size", "64", "--out", str(out), "--no-progress", "--metrics", "timing",
            "--timing-repeats", "1", "--no-report"]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "skipped: all2all: no released weights" in err
    assert {u.rsplit("/", 1)[-1] for u in requested} == {"latest_net_A2K.pth", "latest_net_transform.pth",
                                                          "latest_net_decoder.pth", "decoder.pth",
                                                          "vgg_normalised.pth"}
    assert all(u.startswith("https://") for u in requested)  # the official URLs
    table = (out / "table.md").read_text()
    assert "| styA2K |" in table and "| adain |" in table and "†" not in table and "Not run: all2all" in table
