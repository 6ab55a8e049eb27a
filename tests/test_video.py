"""harness.video and `python -m harness video`: cached-style stylisation, clip reading, tables, end to end, errors."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from harness.cli import main
from harness.images import ImageError
from harness.tables import MetricSpec
from harness.errors import VideoError
from harness.io import check_frame_sequence, clip_name, read_clip, write_flo, write_preview
from harness.video import FLOOR_LABEL, VideoConfig, write_temporal_tables
from methods import InputError, create_method

from .conftest import shared_asset


# --------------------------------------------------------------------------- the cached style path


@pytest.mark.parametrize("name", ["styA2K", "adain", "all2all"])
def test_prepared_style_gives_exactly_the_plain_output(name):
    method = create_method(name, init="random", seed=0)
    gen = torch.Generator().manual_seed(1)
    content, style = torch.rand(2, 3, 40, 56, generator=gen), torch.rand(1, 3, 64, 64, generator=gen)
    prepared = method.prepare_style(style)
    assert prepared.batch == 1 and prepared.size == (64, 64) and prepared.method == method.name
    assert torch.equal(method.stylize(content, prepared), method.stylize(content, style))
    with torch.inference_mode():  # and both equal the network's own forward (style encoded inside it)
        assert torch.equal(method.stylize(content, prepared), method.model(content, style).clamp(0, 1))
    assert torch.equal(method.interpolate(content, [prepared, style], [0.5, 0.5]),
                       method.interpolate(content, [style, style], [0.5, 0.5]))
    assert torch.equal(method.stylize(content[1:], prepared, alpha=0.5), method.stylize(content[1:], style, 0.5))
    with pytest.raises(InputError, match="content image 8×56 is too small"):
        method.stylize(content[..., :8, :], prepared)


@pytest.mark.parametrize("name, options", [
    ("styA2K-noDA", {}), ("styA2K-noPA", {}), ("styA2K-noPA1", {}), ("styA2K-1head", {}),
    ("styA2K", {"variant": "paper"}), ("styA2K", {"remainder": "reflect"}),
])
def test_prepared_style_state_is_bit_identical_for_every_stya2k_form(name, options):
    """The style state (key/value projections, DA step-1 aggregation, PA's blocked keys) prepared once gives exactly
    the per-call result for each ablation, at sizes that are not multiples of the blocks and a style larger than
    the content (the noPA1 block index follows the style's own grid)."""
    method = create_method(name, init="random", seed=0, **options)
    gen = torch.Generator().manual_seed(2)
    content, style = torch.rand(2, 3, 72, 88, generator=gen), torch.rand(1, 3, 100, 76, generator=gen)
    prepared = method.prepare_style(style)
    state = {key for key in prepared.features if "/" in key}
    assert state and all(prepared.features[key].shape[0] == 1 for key in state)
    assert torch.equal(method.stylize(content, prepared), method.stylize(content, style))


def test_prepared_style_belongs_to_its_method():
    adain = create_method("adain", init="random", seed=0)
    prepared = adain.prepare_style(torch.rand(1, 3, 32, 32))
    with pytest.raises(InputError, match="prepared by 'adain'"):
        create_method("all2all", init="random", seed=0).stylize(torch.rand(1, 3, 32, 32), prepared)


# --------------------------------------------------------------------------- clips


def moving_clip(folder, frames=5, size=(36, 52), step=2, seed=0):
    """A camera panning right by ``step`` px per frame over a random canvas: frame_t(x) = frame_{t−1}(x + step), so
    the true backward flow w_{t→t−1} is (step, 0) and the forward flow w_{t−1→t} is (−step, 0)."""
    import cv2

    folder.mkdir(parents=True, exist_ok=True)
    noise = (np.random.default_rng(seed).random((size[0], size[1] + step * frames, 3)) * 255).astype(np.uint8)
    canvas = cv2.GaussianBlur(noise, (0, 0), 1.5)  # a smooth texture (video codecs keep it)
    for t in range(frames):
        Image.fromarray(canvas[:, step * t: step * t + size[1]]).save(folder / f"f{t + 1:03d}.png")
    return folder


def test_frame_sequence_gap_is_named(tmp_path):
    paths = [tmp_path / n for n in ("frame_0001.png", "frame_0002.png", "frame_0004.png")]
    with pytest.raises(ImageError, match="frame 3 is missing .frame_0002.png is followed by frame_0004.png"):
        check_frame_sequence(paths)
    check_frame_sequence([tmp_path / n for n in ("a.png", "b.png", "c.png")])          # not numbered: unchecked
    check_frame_sequence([tmp_path / f"x{i}.png" for i in (10, 20, 30)])               # constant step 10: fine


def test_read_clip_resizes_the_shorter_side_and_names_clips(tmp_path):
    folder = moving_clip(tmp_path / "pan" / "frames", frames=4)
    clip = read_clip("pan", folder, size=18, max_frames=3)
    assert clip.frames.shape == (3, 18, 26, 3) and clip.frames.dtype == np.uint8
    assert clip.native_size == (36, 52) and clip.frame_names == ["f001.png", "f002.png", "f003.png"]
    assert clip_name(folder) == "pan" and clip_name(tmp_path / "a.mp4") == "a"
    assert list(VideoConfig(methods="adain", clips=[str(folder)], style="s.png").clips) == ["pan"]
    with pytest.raises(VideoError, match="at least 2"):
        read_clip("pan", folder, max_frames=1)


def test_video_file_round_trip_mp4_and_gif(tmp_path):
    clip = read_clip("pan", moving_clip(tmp_path / "frames", frames=4, size=(32, 48)))
    mp4, note = write_preview(clip.frames, tmp_path / "pan", "mp4", fps=10)
    assert note is None and mp4.suffix == ".mp4" and mp4.stat().st_size > 0
    back = read_clip("pan", mp4)
    assert back.frames.shape == clip.frames.shape and back.frame_names[0] == "pan.mp4#1"
    assert np.abs(back.frames.astype(float) - clip.frames).mean() < 8  # lossy codec, same pictures
    gif, _ = write_preview(clip.frames, tmp_path / "pan", "gif", fps=10)
    assert read_clip("pan", gif, max_frames=3).frames.shape == (3, 32, 48, 3)


def test_preview_falls_back_to_gif_when_opencv_cannot_write_mp4(tmp_path, monkeypatch):
    import cv2

    class Broken:
        def __init__(self, *args):
            pass

        def isOpened(self):
            return False

        def release(self):
            pass

    monkeypatch.setattr(cv2, "VideoWriter", Broken)
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    path, note = write_preview(frames, tmp_path / "x", "mp4")
    assert path == tmp_path / "x.gif" and path.exists() and "could not write an mp4" in note


# --------------------------------------------------------------------------- tables


def test_floor_row_is_appended_and_never_ranked(tmp_path):
    spec = {"clip_a": MetricSpec("clip_a", "a", False, "{:.4g}"), "mean": MetricSpec("mean", "mean", False, "{:.4g}")}
    agg = pd.DataFrame({
        "method": ["m1", "m2", FLOOR_LABEL], "untrained": [False, False, False],
        "clip_a_mean": [0.2, 0.1, 0.01], "clip_a_std": [0.02, 0.01, 0.001], "clip_a_n": [3, 3, 3],
        "clip_a_ci95": [0.0, 0.0, 0.0], "mean_mean": [0.2, 0.1, 0.01], "mean_std": [np.nan] * 3, "mean_n": [1] * 3,
        "mean_ci95": [np.nan] * 3,
    })
    paths = write_temporal_tables(agg, spec, tmp_path, caption="cap")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["temporal.csv", "temporal.md", "temporal.tex"]
    md = paths["md"].read_text().splitlines()
    rows = [line for line in md if line.startswith("| ") and "Method" not in line]
    # one format per column: three significant digits of its largest value (0.2 → three decimals)
    assert rows == ["| m1 | 0.200 ± 0.020 | 0.200 |", "| m2 | **0.100 ± 0.010** | **0.100** |",
                    f"| {FLOOR_LABEL} | 0.010 ± 0.001 | 0.010 |"]
    tex = paths["tex"].read_text()
    assert "\ninput (floor) & 0.010 $\\pm$ 0.001 & 0.010 \\\\\n\\bottomrule" in tex  # last, never bold
    csv = pd.read_csv(paths["csv"])
    assert list(csv["method"]) == ["m1", "m2", FLOOR_LABEL] and csv["clip_a_mean"].tolist() == [0.2, 0.1, 0.01]


# --------------------------------------------------------------------------- end to end


def video_args(frames, out, *extra):
    return ["video", "--methods", "adain", "--frames", str(frames), "--style", str(frames / "f001.png"),
            "--out", str(out), "--init", "random", "--no-progress", "--preview", "none", *extra]


def test_flo_folder_true_flow_zero_floor_resume_and_missing_long_range_files(tmp_path, capsys):
    frames = moving_clip(tmp_path / "pan", frames=4)
    flows = tmp_path / "flows"
    for t in range(2, 5):  # 1-based: backward_t_{t-1} = (+2, 0), forward_{t-1}_t = (−2, 0)
        write_flo(flows / f"backward_{t}_{t - 1}.flo", np.tile(np.float32([2, 0]), (36, 52, 1)))
        write_flo(flows / f"forward_{t - 1}_{t}.flo", np.tile(np.float32([-2, 0]), (36, 52, 1)))
    out = tmp_path / "out"
    # ruder2016 masks out-of-frame samples, so the true flow gives an exactly zero floor (lai2018 keeps the
    # border-clamped samples of the columns the pan uncovers)
    ruder = ("--definition", "ruder2016")
    assert main(video_args(frames, out, "--keep-size", "--flow", str(flows), "--max-frames", "3", *ruder)) == 0
    assert main(video_args(frames, out, "--keep-size", "--flow", str(flows), "--long-range", "2", *ruder)) == 0
    captured = capsys.readouterr()
    assert "no long-range .flo files" in captured.err
    summary = json.loads((out / "manifest.json").read_text())["summary"]
    assert summary["frames_reused"] == {"adain": 3} and summary["frames_stylised"] == {"adain": 1}  # resumed
    per_frame = pd.read_csv(out / "per_frame.csv")
    floor = per_frame[per_frame["method"] == "input"]
    assert floor["frame"].tolist() == [2, 3, 4] and floor["error"].max() < 1e-20
    # reliable: all but the 2 right-most columns (they sample outside) and the motion-boundary-free interior
    assert floor["reliable_fraction"].tolist() == pytest.approx([50 / 52] * 3)
    assert per_frame["long_range_error"].isna().all()
    assert "long range" not in (out / "temporal.md").read_text()


def test_end_to_end_on_mountain_2(tmp_path, capsys):
    source = shared_asset("video/mountain_2")
    style = shared_asset("images/eval/stya2k/style/style1.png")
    out = tmp_path / "out"
    args = ["video", "--methods", "adain,styA2K", "--frames", str(source), "--style", str(style), "--size", "64",
            "--max-frames", "4", "--long-range", "2", "--init", "random", "--out", str(out), "--no-progress"]
    assert main(args) == 0
    captured = capsys.readouterr()
    assert "UNTRAINED" in captured.err and "seconds per frame: flow" in captured.out
    assert "| adain † |" in captured.out and f"| {FLOOR_LABEL} |" in captured.out
    for method in ("adain", "styA2K"):
        pngs = sorted((out / "mountain_2" / method).glob("frame_*.png"))
        assert [p.name for p in pngs] == [f"frame_{i:04d}.png" for i in range(1, 5)]
        assert Image.open(pngs[0]).size == (150, 64)  # 1024×436 → shorter side 64
        assert (out / "mountain_2" / f"{method}.mp4").stat().st_size > 0
    for name in ("temporal.csv", "temporal.md", "temporal.tex", "per_frame.csv", "per_frame_error.png",
                 "per_frame_error.pdf", "manifest.json"):
        assert (out / name).stat().st_size > 0, name
    table = pd.read_csv(out / "temporal.csv")
    assert list(table["method"]) == ["adain", "styA2K", FLOOR_LABEL]
    assert table["untrained"].tolist() == [True, True, False]
    values = table[["clip_mountain_2_mean", "mean_mean", "long_range_mean_mean"]].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all()
    assert table["clip_mountain_2_n"].tolist() == [3, 3, 3]
    per_frame = pd.read_csv(out / "per_frame.csv")
    assert len(per_frame) == 9 and per_frame.loc[per_frame["frame"] == 3, "long_range_error"].notna().all()
    floor = per_frame[per_frame["method"] == "input"]
    assert 0 < floor["error"].max() < 0.05  # a slow pan: small but non-zero (flow and interpolation errors)
    manifest = json.loads((out / "manifest.json").read_text())
    steps = manifest["summary"]["seconds_per_frame"]
    assert steps["flow"] > 0 and steps["metric"] > 0 and steps["stylize"]["styA2K"] > 0
    assert manifest["methods"]["adain"]["flag"].startswith("UNTRAINED") and manifest["untrained"] is True
    # resuming reuses every written frame and gives the same table
    assert main(args) == 0
    assert '"adain": 4' in json.dumps(json.loads((out / "manifest.json").read_text())["summary"]["frames_reused"])
    pd.testing.assert_frame_equal(pd.read_csv(out / "temporal.csv"), table)


# --------------------------------------------------------------------------- bad input: one line, exit 2


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("error: ")]
    assert len(errors) == 1, err
    return errors[0]


def test_corrupt_frame_is_one_line_exit_2(tmp_path, capsys):
    frames = moving_clip(tmp_path / "pan", frames=4)
    (frames / "f003.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a png at all")
    assert main(video_args(frames, tmp_path / "out")) == 2
    line = one_error_line(capsys)
    assert str(frames / "f003.png") in line and "corrupt" in line
    assert not (tmp_path / "out").exists()  # nothing was done


def test_missing_frame_unreadable_video_and_missing_folder_are_one_line_exit_2(tmp_path, capsys):
    frames = moving_clip(tmp_path / "pan", frames=4)
    (frames / "f002.png").unlink()
    assert main(video_args(frames, tmp_path / "out")) == 2
    assert "frame 2 is missing" in one_error_line(capsys)
    fake = tmp_path / "clip.mp4"
    fake.write_bytes(b"not a video")
    assert main(["video", "--methods", "adain", "--video", str(fake), "--style", str(frames / "f001.png")]) == 2
    line = one_error_line(capsys)
    assert str(fake) in line and "cannot open the video" in line
    missing = tmp_path / "nowhere"
    assert main(["video", "--methods", "adain", "--frames", str(missing), "--style", str(frames / "f001.png")]) == 2
    line = one_error_line(capsys)
    assert str(missing) in line and "no such file or folder" in line


def test_bad_method_flow_folder_and_config_are_one_line_exit_2(tmp_path, capsys):
    frames = moving_clip(tmp_path / "pan", frames=3)
    assert main(video_args(frames, tmp_path / "o1", "--methods", "nosuch")) == 2
    assert "nosuch" in one_error_line(capsys)
    empty = tmp_path / "flows"
    empty.mkdir()
    assert main(video_args(frames, tmp_path / "o2", "--flow", str(empty))) == 2
    assert str(empty / "backward_2_1.flo") in one_error_line(capsys)
    with pytest.raises(VideoError, match="flow 'raft'"):
        VideoConfig(methods=["adain"], clips={"a": str(frames)}, style="s.png", flow="raft")
    with pytest.raises(VideoError, match="max_frames must be at least 2"):
        VideoConfig(methods=["adain"], clips={"a": str(frames)}, style="s.png", max_frames=1)
