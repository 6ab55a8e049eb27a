"""Tests for the command line (harness.cli): `methods`, `stylize`, help texts and the error contract.

In-process through ``main([...])`` (fast), plus one subprocess run of ``python -m harness --help``. Every test runs
offline with private, empty weight folders (HARNESS_WEIGHTS, HARNESS_CACHE under tmp_path; HARNESS_OFFLINE=1) and
inside tmp_path, so default outputs land there.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

import methods
from harness.cli import main, parse_options, parse_value

REPO = Path(__file__).resolve().parents[1]
EVAL = Path(__file__).resolve().parents[2] / "shared/assets/images/eval"
BUILTIN = ["adain", "all2all", "styA2K", "styA2K-1head", "styA2K-noDA", "styA2K-noPA", "styA2K-noPA1"]
STYA2K_FILES = ["latest_net_A2K.pth", "latest_net_transform.pth", "latest_net_decoder.pth", "vgg_normalised.pth"]


pytestmark = pytest.mark.usefixtures("isolated")  # offline, private weight folders, cwd = tmp_path


@pytest.fixture
def real():
    """The real content1/style1/style2 images of the shared StyA2K evaluation set (skipped when absent)."""
    paths = {
        "content": EVAL / "stya2k/content/content1.png",
        "style": EVAL / "stya2k/style/style1.png",
        "style2": EVAL / "stya2k/style/style2.png",
    }
    missing = [str(p) for p in paths.values() if not p.is_file()]
    if missing:
        pytest.skip(f"shared evaluation images are absent ({', '.join(missing)}); "
                    "the ../shared/assets folder is not next to this checkout")
    return paths


def resized(src: Path, dest: Path, size: tuple[int, int]) -> Path:
    """A copy of ``src`` resized to ``size`` (PIL order: width, height)."""
    with Image.open(src) as img:
        img.convert("RGB").resize(size, Image.BICUBIC).save(dest)
    return dest


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def table_row(out: str, name: str) -> str:
    table = out.split("\n\n", 1)[0]  # --verbose details follow the table after a blank line
    rows = [line for line in table.splitlines() if line.split(maxsplit=1)[:1] == [name]]
    assert len(rows) == 1, f"no single row for {name} in:\n{out}"
    return rows[0]


# ----------------------------------------------------------------------------------------------------------------------
# help
# ----------------------------------------------------------------------------------------------------------------------
def test_module_help_in_a_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "harness", "--help"], cwd=REPO, env=dict(os.environ),
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "methods" in proc.stdout and "stylize" in proc.stdout
    assert "python -m harness stylize --method" in proc.stdout  # example line in the epilog


@pytest.mark.parametrize("command, needle", [("methods", "--verbose"), ("stylize", "--keep-size")])
def test_subcommand_help_explains_with_an_example(capsys, command, needle):
    code, out, _ = run(capsys, command, "--help")
    assert code == 0
    assert needle in out
    assert "examples:" in out and f"python -m harness {command} " in out


def test_usage_errors_exit_2(capsys):
    assert run(capsys, "stylize", "--content", "a.png")[0] == 2  # --method / --style missing
    assert run(capsys, "stylize", "--method", "adain", "--content", "a.png", "--style", "b.png", "--size", "0")[0] == 2
    assert run(capsys, "no-such-command")[0] == 2
    assert run(capsys)[0] == 2


# ----------------------------------------------------------------------------------------------------------------------
# methods
# ----------------------------------------------------------------------------------------------------------------------
def test_methods_lists_builtins_with_missing_weights_offline(capsys):
    code, out, err = run(capsys, "methods")
    assert code == 0, err
    header = out.splitlines()[0]
    for column in ("METHOD", "TRAINABLE", "SIZE", "ENCODER LAYERS", "OFFICIAL WEIGHTS", "SUMMARY"):
        assert column in header
    for name in BUILTIN:
        table_row(out, name)
    row = table_row(out, "styA2K")
    assert "missing: " + ", ".join(STYA2K_FILES) in row
    assert "512" in row and "relu3_1,relu4_1,relu5_1" in row
    assert "missing: decoder.pth, vgg_normalised.pth" in table_row(out, "adain")
    assert "none (train it)" in table_row(out, "all2all")
    # the columns are aligned: the weights column starts at the same offset in every row
    offsets = {line.index(word) for line in out.splitlines()[1:] for word in ("missing", "none") if word in line}
    assert len(offsets) == 1


def test_methods_reports_a_present_file_as_found(capsys, isolated):
    (isolated / "latest_net_A2K.pth").write_bytes(b"not checked here")
    code, out, _ = run(capsys, "methods", "--verbose")
    assert code == 0
    row = table_row(out, "styA2K")
    assert "latest_net_A2K.pth" not in row
    assert "missing: latest_net_transform.pth, latest_net_decoder.pth, vgg_normalised.pth" in row
    assert f"latest_net_A2K.pth: found at {isolated / 'latest_net_A2K.pth'}" in out
    assert "latest_net_decoder.pth: missing" in out

    for name in STYA2K_FILES[1:]:
        (isolated / name).write_bytes(b"x")
    code, out, _ = run(capsys, "methods", "stya2k")
    assert code == 0
    assert "  found  " in table_row(out, "styA2K")
    assert "adain" not in out  # the pattern filters


def test_methods_weights_dir_overrides_env(capsys, tmp_path):
    folder = tmp_path / "wd"
    folder.mkdir()
    (folder / "decoder.pth").write_bytes(b"x")
    (folder / "vgg_normalised.pth").write_bytes(b"x")
    code, out, _ = run(capsys, "methods", "--weights-dir", folder)
    assert code == 0
    assert "  found  " in table_row(out, "adain")
    assert run(capsys, "methods", "--weights-dir", tmp_path / "nope")[0] == 2


def test_methods_verbose_shows_options_and_urls(capsys):
    code, out, _ = run(capsys, "methods", "--verbose")
    assert code == 0
    block = out.split("\nstyA2K-1head\n", 1)[1].split("\n\n", 1)[0]
    assert "heads = 1" in block  # the ablation's registered default
    assert "block_sides = (8, 8, 4)" in block
    assert "da_normaliser = None  (the variant's: 'r+1' official, 'n' paper)" in block  # None explained
    assert "https://raw.githubusercontent.com/LearningHx/StyA2K/" in out
    assert "https://github.com/naoto0804/pytorch-AdaIN/releases/download/v0.0.0/decoder.pth" in out


# ----------------------------------------------------------------------------------------------------------------------
# stylize
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["styA2K", "all2all", "adain"])
def test_stylize_random_init_writes_an_image(capsys, real, tmp_path, method):
    output = tmp_path / "out" / f"{method}.png"
    code, out, err = run(capsys, "stylize", "--method", method, "--init", "random", "--size", 64,
                         "--content", real["content"], "--style", real["style"], "--output", output)
    assert code == 0, err
    with Image.open(output) as img:
        assert img.size == (64, 64) and img.mode == "RGB"
    assert "WARNING" in err and "untrained" in err.lower() and method in err
    line = out.strip()
    assert len(out.strip().splitlines()) == 1
    assert str(output) in line and "64x64" in line and method in line and " s" in line
    assert "UNTRAINED (random init, seed 0)" in line


def test_stylize_keep_size_keeps_the_content_size(capsys, real, tmp_path):
    content = resized(real["content"], tmp_path / "small.png", (80, 48))
    style = resized(real["style"], tmp_path / "other.png", (72, 64))
    code, out, err = run(capsys, "stylize", "--method", "styA2K", "--init", "random", "--keep-size",
                         "--content", content, "--style", style, "--output", "kept.png")
    assert code == 0, err
    with Image.open(tmp_path / "kept.png") as img:
        assert img.size == (80, 48)
    assert "80x48" in out


def test_stylize_keep_aspect_resizes_the_shorter_side(capsys, real, tmp_path):
    content = resized(real["content"], tmp_path / "wide.png", (80, 48))
    code, _, err = run(capsys, "stylize", "--method", "adain", "--init", "random", "--size", 32, "--keep-aspect",
                       "--content", content, "--style", real["style"], "--output", "aspect.png")
    assert code == 0, err
    with Image.open(tmp_path / "aspect.png") as img:
        assert img.size == (53, 32)


def test_stylize_mixes_two_styles_with_default_output_name(capsys, real, tmp_path):
    code, out, err = run(capsys, "stylize", "--method", "styA2K", "--init", "random", "--size", 64,
                         "--content", real["content"], "--style", real["style"], "--style", real["style2"],
                         "--mix", "0.3,0.7", "--option", "heads=1", "--option", "block_sides=8,8,4",
                         "--option", "remainder=reflect")
    assert code == 0, err
    expected = tmp_path / "content1__style1+style2.png"
    with Image.open(expected) as img:
        assert img.size == (64, 64)
    assert "mix 0.3,0.7" in out
    assert "WARNING" in err


# ----------------------------------------------------------------------------------------------------------------------
# bad input: exit 2, one line "error: ..." naming the thing, no traceback
# ----------------------------------------------------------------------------------------------------------------------
def expect_error(capsys, argv, *needles):
    code, out, err = run(capsys, *argv)
    assert code == 2, (out, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def stylize_argv(real, *extra, method="styA2K", content=None):
    return ["stylize", "--method", method, "--size", 64, "--content", content or real["content"],
            "--style", real["style"], *extra]


def test_corrupt_image(capsys, real, tmp_path):
    bad = tmp_path / "x.png"
    bad.write_bytes(b"this is not a png \x00\x01\x02" * 10)
    expect_error(capsys, stylize_argv(real, "--init", "random", content=bad), "content image", str(bad))


def test_missing_content(capsys, real, tmp_path):
    missing = tmp_path / "nowhere" / "c.png"
    expect_error(capsys, stylize_argv(real, "--init", "random", content=missing), str(missing), "no such file")


def test_unknown_method_suggests_the_closest(capsys, real):
    expect_error(capsys, stylize_argv(real, "--init", "random", method="styA2k-nod"), "styA2k-nod", "styA2K-noDA")


def test_unknown_option_key(capsys, real):
    expect_error(capsys, stylize_argv(real, "--init", "random", "--option", "colour=blue"), "colour", "heads=8")


def test_malformed_option(capsys, real):
    expect_error(capsys, stylize_argv(real, "--init", "random", "--option", "heads"), "--option", "KEY=VALUE")


def test_mix_count_mismatch(capsys, real):
    expect_error(capsys, stylize_argv(real, "--init", "random", "--mix", "0.3,0.7,0.1"), "--mix", "3", "1 --style")


def test_bad_output_suffix(capsys, real):
    expect_error(capsys, stylize_argv(real, "--init", "random", "--output", "out.nope"), "--output", ".nope")


def test_missing_weights_without_random_init(capsys, real):
    """Missing files: exit 2, a headline, ONE LINE PER FILE (what, from where, why not downloaded), then where they
    were looked for and what to do — no traceback."""
    code, out, err = run(capsys, *stylize_argv(real))
    assert code == 2 and "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[0] == "error: missing weight file(s) of styA2K:"
    assert [line.split(" (")[0].strip() for line in lines[1:5]] == [f"- {name}" for name in STYA2K_FILES]
    assert all("downloads disabled" in line for line in lines[1:5])
    assert "--init random" in lines[-1] and "--weights-dir DIR" in lines[-1]
    expect_error(capsys, stylize_argv(real, method="all2all"), "all2all", "no released weights", "--init random")


def test_missing_weights_folder(capsys, real, tmp_path):
    expect_error(capsys, stylize_argv(real, "--weights", tmp_path / "absent"), "--weights", "absent")


def test_unexpected_errors_keep_their_traceback(monkeypatch, real):
    def boom(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(methods, "load_method", boom)  # what build_method imports when it runs
    with pytest.raises(RuntimeError, match="a bug"):
        main([str(a) for a in stylize_argv(real, "--init", "random")])


# ----------------------------------------------------------------------------------------------------------------------
# option values
# ----------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, value", [
    ("1", 1), ("-2", -2), ("0.5", 0.5), ("1e-3", 1e-3), ("true", True), ("False", False), ("none", None),
    ("8,8,4", (8, 8, 4)), ("reflect", "reflect"), ("r+1", "r+1"), ("sdpa", "sdpa"), ("1,", (1,)),
])
def test_parse_value(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_parse_options():
    assert parse_options(["heads=1", "remainder=reflect", "block_sides=8,8,4"]) == {
        "heads": 1, "remainder": "reflect", "block_sides": (8, 8, 4)}
    with pytest.raises(ValueError, match="twice"):
        parse_options(["heads=1", "heads=2"])


def test_bad_device(capsys, real):
    expect_error(capsys, stylize_argv(real, "--init", "random", "--device", "toaster"), "--device", "toaster")
    import torch

    if not torch.cuda.is_available():
        expect_error(capsys, stylize_argv(real, "--init", "random", "--device", "cuda"), "--device cuda", "CUDA")


# ----------------------------------------------------------------------------------------------------------------------
# help and command-line checks import no torch (they answer in a fraction of a second; torch alone takes seconds)
# ----------------------------------------------------------------------------------------------------------------------
def test_help_and_usage_errors_import_no_torch(tmp_path):
    bad_config = tmp_path / "bad.yaml"
    bad_config.write_text("sizee: 3\n")
    commands = [["--help"], *([name, "--help"] for name in ("methods", "stylize", "run", "table", "report", "merge",
                                                             "tally", "survey", "train", "study", "video")),
                ["run", "--size", "-3"], ["run"], ["run", "--methods", "adain", "--config", str(bad_config)]]
    script = (
        "import contextlib, io, json, sys\n"
        "from harness.cli import main\n"
        "codes = []\n"
        f"for argv in {commands!r}:\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        "        codes.append(main(argv))\n"
        "print(json.dumps({'codes': codes, 'heavy': sorted(m for m in ('torch', 'pandas', 'scipy', 'matplotlib')"
        " if m in sys.modules)}))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parents[1])
    report = __import__("json").loads(result.stdout.strip().splitlines()[-1])
    assert report["codes"] == [0] * 12 + [2, 2, 2]
    assert report["heavy"] == []
