"""Tests for methods.weights (offline: downloads use file:// URLs)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import torch
from torch import nn

from methods.weights import (
    ENV_CACHE,
    ENV_OFFLINE,
    ENV_WEIGHTS,
    ChecksumError,
    MissingWeightsError,
    StateDictMismatchError,
    WeightFile,
    WeightsError,
    cache_dir,
    check_state_dict,
    download,
    find_file,
    git_blob_sha1_file,
    load_into,
    load_state_dict,
    resolve_files,
    search_dirs,
    sha256_file,
)

A2K_URL = (
    "https://raw.githubusercontent.com/LearningHx/StyA2K/"
    "70b58dfdf6c249a0c621d8b849945272671dce74/checkpoints/A2K/latest_net_A2K.pth"
)
A2K_BLOB = "186476825d2490e1989ce69a5c8b42203ddbbff0"
A2K_SHA256 = "0752d020344ed334ed63a5f671bdd93db71d7ad7f0d69e49074a3065ec2af7d1"
VGG_URL = "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/vgg_normalised.pth"
SHARED_A2K = Path(__file__).resolve().parents[2] / "shared/assets/weights/StyA2K/latest_net_A2K.pth"


@pytest.fixture
def env(tmp_path, monkeypatch):
    """Isolated environment: env weights folder and cache under tmp_path, downloads allowed."""
    dirs = {"env": tmp_path / "env", "cache": tmp_path / "cache", "src": tmp_path / "src"}
    for d in dirs.values():
        d.mkdir()
    monkeypatch.setenv(ENV_WEIGHTS, str(dirs["env"]))
    monkeypatch.setenv(ENV_CACHE, str(dirs["cache"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv(ENV_OFFLINE, raising=False)
    return dirs


def _write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _hashes(data: bytes) -> tuple[str, str]:
    return hashlib.sha256(data).hexdigest(), hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _model() -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Conv2d(4, 2, 1))


# --------------------------------------------------------------------------- folders
def test_cache_dir_overrides(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV_CACHE, str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"
    monkeypatch.delenv(ENV_CACHE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "ast-harness" / "weights"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "ast-harness" / "weights"
    assert not (tmp_path / "home").exists()  # not created


def test_search_dirs_order(env, tmp_path):
    assert search_dirs() == [("env", env["env"]), ("cache", env["cache"])]
    assert search_dirs(tmp_path / "x", tmp_path / "w") == [
        ("explicit", tmp_path / "x"), ("weights_dir", tmp_path / "w"), ("cache", env["cache"])]


def test_search_order_explicit_env_cache_subdir(env, tmp_path):
    spec = WeightFile("w.pth")
    explicit = tmp_path / "explicit"
    for d in (explicit, env["env"], env["cache"]):
        _write(d / "w.pth", d.name.encode())
    assert resolve_files([spec], weights=explicit)["w.pth"].source == "explicit"
    assert resolve_files([spec])["w.pth"].path == env["env"] / "w.pth"
    (env["env"] / "w.pth").unlink()
    assert resolve_files([spec])["w.pth"].source == "cache"
    # dir/subdir/filename is preferred over dir/filename within a folder
    _write(env["cache"] / "M" / "w.pth", b"sub")
    assert find_file(spec, search_dirs(), subdir="M") == ("cache", env["cache"] / "M" / "w.pth")
    assert find_file(WeightFile("nope.pth"), search_dirs(), subdir="M") is None


# --------------------------------------------------------------------------- download
def test_download_into_cache_verified(env):
    data = b"pretend weights" * 1000
    sha, blob = _hashes(data)
    src = _write(env["src"] / "w.pth", data)
    spec = WeightFile("w.pth", url=src.as_uri(), sha256=sha, git_blob_sha1=blob)
    got = resolve_files([spec], subdir="M", progress=False)["w.pth"]
    assert (got.source, got.verified, got.sha256) == ("download", True, sha)
    assert got.path == env["cache"] / "M" / "w.pth" and got.path.read_bytes() == data
    # second call finds it in the cache
    assert resolve_files([spec], subdir="M", download=False)["w.pth"].source == "cache"


@pytest.mark.parametrize("field", ["sha256", "git_blob_sha1"])
def test_download_wrong_checksum(env, field):
    src = _write(env["src"] / "w.pth", b"data")
    dest = env["cache"] / "w.pth"
    with pytest.raises(ChecksumError, match=r"w\.pth.*expected 0{40}"):
        download(src.as_uri(), dest, **{field: "0" * 40}, progress=False)
    assert list(env["cache"].iterdir()) == []  # no dest, no temp file
    with pytest.raises(ChecksumError):
        resolve_files([WeightFile("w.pth", url=src.as_uri(), **{field: "0" * 40})], progress=False)
    assert list(env["cache"].iterdir()) == []


def test_offline_missing_lists_everything(env, monkeypatch, tmp_path):
    monkeypatch.setenv(ENV_OFFLINE, "1")
    src = _write(env["src"] / "w.pth", b"data")
    specs = [WeightFile("w.pth", url=src.as_uri()), WeightFile("latest_net_A2K.pth", url=A2K_URL),
             WeightFile("private.pth")]
    with pytest.raises(MissingWeightsError) as info:
        resolve_files(specs, weights=tmp_path / "explicit")
    msg = str(info.value)
    lines = msg.split("\n")  # a headline, one line per missing file, then where they were looked for and what to do
    assert lines[0] == "missing weight file(s):"
    assert [line.split(" (")[0] for line in lines[1:4]] == ["  - w.pth", "  - latest_net_A2K.pth", "  - private.pth"]
    assert len(lines) == 6 and all(len(line) < 400 for line in lines[:4])
    for part in ("w.pth", src.as_uri(), "latest_net_A2K.pth", A2K_URL, "private.pth", "no public source",
                 str(tmp_path / "explicit"), str(env["env"]), str(env["cache"]),
                 "weights_dir=DIR", ENV_WEIGHTS, 'init="random"'):
        assert part in msg, part
    assert [s.filename for s in info.value.missing] == ["w.pth", "latest_net_A2K.pth", "private.pth"]
    assert not (env["cache"] / "w.pth").exists()


def test_failed_download_is_missing_with_reason(env):
    bad = (env["src"] / "absent.pth").as_uri()
    with pytest.raises(MissingWeightsError, match=r"absent\.pth.*download failed: URLError") as info:
        resolve_files([WeightFile("absent.pth", url=bad)], progress=False)
    assert info.value.reasons["absent.pth"]
    assert list(env["cache"].iterdir()) == []


def test_local_wrong_checksum_warns(env):
    _write(env["env"] / "w.pth", b"my own file")
    spec = WeightFile("w.pth", sha256="f" * 64)
    with pytest.warns(UserWarning, match=r"w\.pth"):
        got = resolve_files([spec])["w.pth"]
    assert got.verified is False and got.sha256 == hashlib.sha256(b"my own file").hexdigest()
    assert resolve_files([WeightFile("w.pth")])["w.pth"].verified is None


def test_hash_functions(tmp_path):
    data = bytes(range(256)) * 10 + b"tail"
    path = _write(tmp_path / "f.bin", data)
    assert (sha256_file(path), git_blob_sha1_file(path)) == _hashes(data)
    # well-known git id of the empty blob
    assert git_blob_sha1_file(_write(tmp_path / "e", b"")) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"


@pytest.mark.skipif(not SHARED_A2K.is_file(), reason=f"real StyA2K checkpoint not present at {SHARED_A2K}")
def test_real_a2k_checkpoint():
    assert sha256_file(SHARED_A2K) == A2K_SHA256
    assert git_blob_sha1_file(SHARED_A2K) == A2K_BLOB
    assert len(load_state_dict(SHARED_A2K)) == 18


# --------------------------------------------------------------------------- state dicts
def test_load_state_dict_prefix_and_wrapper(tmp_path):
    sd = _model().state_dict()
    torch.save({f"module.{k}": v for k, v in sd.items()}, tmp_path / "dp.pth")
    assert list(load_state_dict(tmp_path / "dp.pth")) == list(sd)
    torch.save({"state_dict": sd, "epoch": 3}, tmp_path / "wrap.pth")
    assert list(load_state_dict(tmp_path / "wrap.pth")) == list(sd)
    torch.save({"model": dict(sd)}, tmp_path / "model.pth")
    assert list(load_state_dict(tmp_path / "model.pth")) == list(sd)


class _NotATensor:
    pass


def test_load_state_dict_bad_files(tmp_path):
    corrupt = _write(tmp_path / "corrupt.pth", b"definitely not a torch file")
    with pytest.raises(WeightsError, match=r"corrupt\.pth") as info:
        load_state_dict(corrupt)
    assert "\n" not in str(info.value)
    torch.save({"obj": _NotATensor()}, tmp_path / "pickle.pth")
    with pytest.raises(WeightsError, match=r"pickle\.pth.*weights_only"):
        load_state_dict(tmp_path / "pickle.pth")
    torch.save({"a": 1, "b": [1, 2]}, tmp_path / "plain.pth")
    with pytest.raises(WeightsError, match=r"plain\.pth.*state dict"):
        load_state_dict(tmp_path / "plain.pth")


def test_load_into_copies_values(tmp_path):
    src, dst = _model(), _model()
    src[1].running_mean.fill_(0.5)
    torch.save(src.state_dict(), tmp_path / "ok.pth")
    load_into(dst, tmp_path / "ok.pth")
    for k, v in src.state_dict().items():
        assert torch.equal(dst.state_dict()[k], v), k
    dbl = {k: v.double() for k, v in src.state_dict().items() if v.is_floating_point()}
    dbl["1.num_batches_tracked"] = src.state_dict()["1.num_batches_tracked"]
    load_into(dst, dbl)
    assert dst[0].weight.dtype == torch.float32


def test_check_state_dict_mismatch():
    model = _model()
    sd = dict(model.state_dict())
    del sd["1.running_var"]
    sd["extra.weight"] = torch.zeros(1)
    sd["0.weight"] = torch.zeros(4, 3, 5, 5)
    with pytest.raises(StateDictMismatchError) as info:
        check_state_dict(model, sd, "bad.pth")
    msg = str(info.value)
    for part in ("bad.pth", "1.running_var", "extra.weight", "0.weight: file (4, 3, 5, 5) vs model (4, 3, 3, 3)"):
        assert part in msg, part
    with pytest.raises(StateDictMismatchError, match="my.pth"):
        load_into(model, sd, source="my.pth")
