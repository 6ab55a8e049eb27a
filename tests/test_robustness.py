"""Nothing lost, ever: torn rows, mixed runs, concurrent writers, kills, full disks and bad settings — each a
one-line refusal or an exact resume (real subprocesses where a kill or a second process is the point)."""
from __future__ import annotations

import errno
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness import atomic
from harness.cli import main
from harness.errors import RunError
from harness.run import RunConfig, execute_run
from harness.rundir import read_done, read_rows, write_run_tables

from .conftest import shared_asset

ROOT = Path(__file__).resolve().parents[1]


def config(out, images, **kw):
    content, style = images
    base = dict(methods=["adain"], out=out, content=[str(content)], style=[str(style)], size=64, init="random",
                metrics=["style_loss"], progress=False)
    return RunConfig(**{**base, **kw})


def last_line_cut_inside_a_number(path: Path) -> None:
    data = path.read_bytes()
    start = data.rstrip(b"\n").rfind(b"\n") + 1
    path.write_bytes(data[: start + len(data[start:]) - 6])  # the last row loses its newline and 5 digits


# ----------------------------------------------------------------------------------------------------------------------
# Torn rows
# ----------------------------------------------------------------------------------------------------------------------
def test_a_torn_last_row_is_not_done_and_is_never_tabulated(tmp_path, eval_images):
    out = tmp_path / "run"
    execute_run(config(out, eval_images))
    metrics = out / "metrics.csv"
    whole = metrics.read_text().splitlines()
    last_line_cut_inside_a_number(metrics)
    assert len(read_done(metrics)) == 3  # the cut row is not counted as done
    frame = read_rows(metrics)
    assert len(frame) == 3 and frame["style_loss"].notna().all()
    table = write_run_tables([out])
    assert ",3," in table["csv"].read_text().splitlines()[1]  # n = 3 whole rows, not 4 with a cut value
    summary = execute_run(config(out, eval_images))
    assert summary["computed"] == 1 and summary["skipped"] == 3
    assert metrics.read_text().splitlines() == whole  # the pair is computed again, to the same row


def test_a_malformed_row_is_computed_again(tmp_path, eval_images):
    out = tmp_path / "run"
    execute_run(config(out, eval_images))
    metrics = out / "metrics.csv"
    lines = metrics.read_text().splitlines()
    lines[2] = lines[2].rsplit(",", 1)[0] + ",0.12.3"  # not a number
    metrics.write_text("\n".join(lines) + "\n")
    assert len(read_done(metrics)) == 3
    assert execute_run(config(out, eval_images))["computed"] == 1


# ----------------------------------------------------------------------------------------------------------------------
# One configuration per run directory
# ----------------------------------------------------------------------------------------------------------------------
def test_a_run_of_other_settings_into_the_same_folder_is_refused(tmp_path, eval_images):
    out = tmp_path / "run"
    execute_run(config(out, eval_images))
    before = (out / "metrics.csv").read_text()
    with pytest.raises(RunError, match=r"other settings: size 64 \(this run: 96\)"):
        execute_run(config(out, eval_images, size=96))
    assert (out / "metrics.csv").read_text() == before
    execute_run(config(out, eval_images, methods=["adain", "styA2K"]))  # another method, same settings: allowed
    with pytest.raises(RunError, match="heads"):
        execute_run(config(out, eval_images, methods=["styA2K"], method_options={"styA2K": {"heads": 4}}))
    summary = execute_run(config(out, eval_images, size=96, force=True))
    assert summary["computed"] == 4
    assert json.loads((out / "identity.json").read_text())["size"] == 96


# ----------------------------------------------------------------------------------------------------------------------
# One writer per run directory
# ----------------------------------------------------------------------------------------------------------------------
def test_a_second_writer_is_refused_and_a_stale_lock_taken_over(tmp_path, eval_images):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (out / ".lock").write_text(json.dumps({"pid": holder.pid, "host": socket.gethostname(), "started": "now"}))
        with pytest.raises(RunError, match=f"being written by process {holder.pid}"):
            execute_run(config(out, eval_images))
        assert not (out / "metrics.csv").exists()
    finally:
        holder.kill()
        holder.wait()
    with pytest.warns(UserWarning, match="stale lock"):
        assert execute_run(config(out, eval_images))["computed"] == 4
    assert not (out / ".lock").exists()
    # shards lock their own files: a shard runs while the lock of another shard is held
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    (sharded / ".lock.shard-0-of-2").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert execute_run(config(sharded, eval_images, shard=(1, 2)))["computed"] == 2


def test_a_killed_run_resumes_exactly(tmp_path):
    """SIGKILL a real `harness run` once it has written a row; the rerun takes over the lock, drops a torn row,
    computes only what is missing, and ends with the same rows as an uninterrupted run."""
    root = shared_asset("images/eval/stya2k")
    args = lambda out: [sys.executable, "-m", "harness", "run", "--methods", "styA2K", "--content",  # noqa: E731
                        str(root / "content"), "--style", str(root / "style"), "--size", "128", "--init", "random",
                        "--metrics", "style_loss", "--no-progress", "--out", str(out)]
    env = {**os.environ, "HARNESS_OFFLINE": "1", "HARNESS_WEIGHTS": str(tmp_path / "none"),
           "HARNESS_CACHE": str(tmp_path / "cache")}
    killed = tmp_path / "killed"
    process = subprocess.Popen(args(killed), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        metrics = killed / "metrics.csv"
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert (killed / ".lock").exists()  # left behind by the killed process
    rows_before = len(read_done(killed / "metrics.csv"))
    total = len(list((root / "content").glob("*.png"))) * len(list((root / "style").glob("*.png")))
    assert 2 <= rows_before < total
    done = subprocess.run(args(killed), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"{total - rows_before} pairs computed, {rows_before} already done" in done.stdout
    straight = tmp_path / "straight"
    assert subprocess.run(args(straight), cwd=ROOT, env=env, capture_output=True, timeout=300).returncode == 0
    assert sorted((killed / "metrics.csv").read_text().splitlines()) == sorted(
        (straight / "metrics.csv").read_text().splitlines())
    assert not (killed / ".lock").exists()


# ----------------------------------------------------------------------------------------------------------------------
# One line, exit 2, instead of a traceback
# ----------------------------------------------------------------------------------------------------------------------
def one_line_error(capsys, argv) -> str:
    assert main([str(a) for a in argv]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("WARNING: ")]
    assert len(err) == 1 and err[0].startswith("error: "), err  # the untrained-weights warning aside
    return err[0]


def run_argv(images, *extra):
    content, style = images
    return ["run", "--methods", "adain", "--content", content, "--style", style, "--size", "64", "--init", "random",
            "--metrics", "style_loss", "--no-progress", *extra]


def test_bad_run_settings_are_one_line(tmp_path, eval_images, capsys):
    a_file = tmp_path / "taken"
    a_file.write_text("x")
    assert "exists and is not a folder" in one_line_error(capsys, run_argv(eval_images, "--out", a_file))
    for text, expected in (("size: big", "key 'size' must be an integer"), ("pairs: -3", "--pairs must be"),
                           ("timing_repeats: 0", "--timing-repeats must be")):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(text + "\n")
        line = one_line_error(capsys, run_argv(eval_images, "--config", cfg, "--out", tmp_path / "o"))
        assert expected in line, line
    assert not (tmp_path / "o").exists()


def test_a_full_disk_is_one_line_naming_the_file(tmp_path, eval_images, capsys, monkeypatch):
    def full(src, dst):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic.os, "replace", full)
    content, style = eval_images
    output = tmp_path / "out.png"
    line = one_line_error(capsys, ["stylize", "--method", "adain", "--init", "random", "--size", "64", "--content",
                                   content / "content1.png", "--style", style / "style1.png", "--output", output])
    assert f"no space left on device writing {output}" in line
    assert not output.exists() and not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_a_hostile_or_truncated_training_state_is_one_line(tmp_path, capsys):
    out = tmp_path / "train"
    out.mkdir()
    (out / "training_state.pt").write_bytes(b"PK\x03\x04 truncated")
    line = one_line_error(capsys, ["train", "--out", out, "--resume"])
    assert "--resume" in line and "training_state.pt is unreadable" in line and "--weights" in line


def test_stale_temporaries_of_killed_writers_are_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = tmp_path / f".harness_checkpoint.{dead.pid}.0123abcd.tmp.pt"
    mine = tmp_path / f".table.{os.getpid()}.0123abcd.tmp.csv"
    kept = tmp_path / "harness_checkpoint.pt"
    for path in (stale, mine, kept):
        path.write_bytes(b"x")
    assert atomic.remove_stale_temporaries(tmp_path) == 1
    assert not stale.exists() and mine.exists() and kept.exists()


# ----------------------------------------------------------------------------------------------------------------------
# Damaged, hostile and unreadable images; unwritable outputs
# ----------------------------------------------------------------------------------------------------------------------
def _png_with_bad_image_data_crc(path: Path) -> None:
    import numpy as np
    from PIL import Image

    Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3)).save(path)
    data = bytearray(path.read_bytes())
    start = data.find(b"IDAT")
    (length,) = struct.unpack(">I", data[start - 4:start])
    data[start + 4 + length] ^= 0xFF  # the IDAT chunk's CRC; its zlib stream (and so the pixels) stays intact
    path.write_bytes(bytes(data))


def test_a_png_with_a_wrong_crc_decodes_with_a_warning_naming_the_file(tmp_path):
    from harness.errors import ImageWarning
    from harness.images import load_image, png_checksum_problem

    path = tmp_path / "damaged.png"
    _png_with_bad_image_data_crc(path)
    assert png_checksum_problem(path).startswith("chunk IDAT #1: stored CRC")
    with pytest.warns(ImageWarning, match=r"damaged\.png: PNG checksum mismatch \(chunk IDAT #1"):
        image = load_image(path)
    assert image.getpixel((0, 0)) == (0, 1, 2)  # decoded all the same
    good = tmp_path / "good.png"
    image.save(good)
    assert png_checksum_problem(good) is None


def test_the_decompression_bomb_warning_names_the_file(tmp_path, monkeypatch):
    import warnings

    from PIL import Image

    from harness.errors import ImageWarning
    from harness.images import load_image

    path = tmp_path / "large.png"
    Image.new("RGB", (30, 30)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 600)  # 900 pixels: above the limit, below twice it
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        load_image(path)
    assert [w.category for w in caught] == [ImageWarning]
    assert str(caught[0].message).startswith(f"{path}: Image size (900 pixels) exceeds limit")


def test_an_unwritable_output_is_named_not_its_temporary_file(tmp_path, eval_images, capsys):
    content, style = eval_images
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for output, expected in ((a_file / "out.png", "a file stands where a folder of that path should be"),
                             (Path("/proc/out.png"), "no such file or directory")):
        line = one_line_error(capsys, ["stylize", "--method", "adain", "--init", "random", "--size", "32",
                                       "--content", content / "content1.png", "--style", style / "style1.png",
                                       "--output", output])
        assert line.startswith(f"error: cannot write {output}: {expected}"), line
        assert ".tmp" not in line


def test_an_unreadable_input_stops_the_run_before_any_work_or_is_left_out(tmp_path, eval_images, capsys):
    content, style = eval_images
    broken = content / "content3.png"
    broken.write_bytes((content / "content1.png").read_bytes()[:400])
    out = tmp_path / "run"
    line = one_line_error(capsys, run_argv(eval_images, "--out", out))
    assert f"{broken}: cannot decode the image" in line and "--skip-unreadable" in line
    assert not (out / "metrics.csv").exists()
    assert main([str(a) for a in run_argv(eval_images, "--out", out, "--skip-unreadable")]) == 0
    assert "left out: 1 unreadable input image(s)" in capsys.readouterr().err
    assert len(read_done(out / "metrics.csv")) == 4  # 2 readable contents × 2 styles
    manifest = json.loads((out / "manifest.json").read_text())
    assert list(manifest["summary"]["unreadable"]) == [str(broken)]
