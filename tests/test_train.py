"""Tests for training (harness.train, harness.data and the `train` command).

CPU only and offline. The data are real photos and paintings from ``../shared/assets/images/train`` (8 of each,
shrunk to ≤ 160 px when copied so decoding is cheap); crops of 64, load size 96, batch 2. No full VGG is available
offline, so the runs use ``--init random``: the frozen encoder is random (flagged ``untrained_encoder``), which is
fine for checking that the loop lowers the loss, resumes exactly and writes loadable checkpoints.
"""
from __future__ import annotations

import csv
import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from harness import create_method
from harness.cli import main
from harness.data import PairSchedule, Preprocess, list_training_images
from harness.errors import ConfigError
from harness.train import STATE_NAME, TrainConfig, TrainingDivergedError, lr_at, train
from methods import load_checkpoint
from methods.recipes import ADAIN_RECIPE, STYA2K_RECIPE, TrainingRecipe
from methods import CHECKPOINT_NAME

REPO = Path(__file__).resolve().parents[1]
TRAIN_IMAGES = Path(__file__).resolve().parents[2] / "shared/assets/images/train"
SMALL = ["--crop", "64", "--load-size", "96", "--batch-size", "2", "--workers", "0", "--init", "random",
         "--log-every", "0", "--sample-every", "0"]
FAST = {"lr": 2e-4, "schedule": "constant"}  # no LR decay in 30 steps; 1e-3 gives a spike at step 2


# ----------------------------------------------------------------------------------------------------------------------
# fixtures and helpers
# ----------------------------------------------------------------------------------------------------------------------
def _copy_shrunk(src: Path, dest: Path, count: int) -> None:
    dest.mkdir(parents=True)
    for path in sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count]:
        with Image.open(path) as img:
            img = img.convert("RGB")
            img.thumbnail((160, 160), Image.BICUBIC)
            img.save(dest / f"{path.stem}.png")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, Path]:
    """8 photos (content) and 8 paintings (style) copied from the shared training assets."""
    photos, paintings = TRAIN_IMAGES / "photos", TRAIN_IMAGES / "paintings"
    if not photos.is_dir() or not paintings.is_dir():
        pytest.skip(f"shared training images are absent ({TRAIN_IMAGES}/photos, /paintings); the ../shared/assets "
                    "folder is not next to this checkout")
    root = tmp_path_factory.mktemp("train-data")
    _copy_shrunk(photos, root / "content", 8)
    _copy_shrunk(paintings, root / "style", 8)
    return {"content": root / "content", "style": root / "style", "root": root}


pytestmark = pytest.mark.usefixtures("isolated")  # offline, private weight folders, cwd = tmp_path


def config(data, out: Path, method: str, **kw) -> TrainConfig:
    base = dict(crop=64, load_size=96, batch_size=2, workers=0, init="random", log_every=0, sample_every=0,
                progress=False)
    base.update(kw)
    return TrainConfig(method=method, content_dir=data["content"], style_dir=data["style"], out=out, **base)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def log_rows(out: Path) -> list[dict[str, str]]:
    with open(out / "loss_log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def trainable(method) -> dict[str, torch.Tensor]:
    return method.model.trainable_state_dict()


def assert_same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"{len(different)} tensors differ, e.g. {different[:3]}"


# ----------------------------------------------------------------------------------------------------------------------
# data layer (no model)
# ----------------------------------------------------------------------------------------------------------------------
def test_schedule_is_a_pure_function_of_seed_and_step():
    a = PairSchedule(10, 7, 4, seed=3)
    b = PairSchedule(10, 7, 4, seed=3)
    assert a.steps_per_epoch == 3  # ⌈10 / 4⌉, drop_last=False
    assert [a.batch(s) for s in range(9)] == [b.batch(s) for s in reversed(range(9))][::-1]
    epoch0 = [k for s in range(3) for k in a.batch(s)]
    assert [len(a.batch(s)) for s in range(3)] == [4, 4, 2]
    assert sorted(k[0] for k in epoch0) == list(range(10))  # each content image once per epoch
    assert all(0 <= k[1] < 7 for k in epoch0)
    assert [k[0] for k in epoch0] != [k[0] for s in range(3, 6) for k in a.batch(s)]  # reshuffled per epoch
    assert PairSchedule(10, 7, 4, seed=4).batch(0) != a.batch(0)


def test_schedule_folder_smaller_than_batch_and_ddp_split():
    small = PairSchedule(3, 5, 8, seed=0)
    assert small.steps_per_epoch == 1 and len(small.batch(0)) == 3 and len(small.batch(1)) == 3
    ranks = [PairSchedule(9, 5, 2, seed=0, rank=r, world_size=2) for r in range(2)]
    assert ranks[0].steps_per_epoch == ranks[1].steps_per_epoch == 3  # ⌈⌈9/2⌉ / 2⌉
    seen = [k[0] for r in ranks for s in range(3) for k in r.batch(s)]
    assert sorted(set(seen)) == list(range(9)) and len(seen) == 10  # every image, one padded repeat
    independent = PairSchedule(3, 2, 4, seed=0, pairing="independent")
    assert all(len(independent.batch(s)) == 4 for s in range(5))  # infinite samplers: full batches


def test_preprocess_crops_flips_and_checks_sizes():
    import numpy as np

    image = Image.new("RGB", (40, 30), (10, 20, 30))
    out = Preprocess(load_size=48, crop=32)(image, np.random.default_rng(0))
    assert out.shape == (3, 32, 32) and out.dtype == torch.float32
    aspect = Preprocess(load_size=48, crop=32, keep_aspect=True)
    grad = Image.fromarray(np.tile(np.arange(80, dtype=np.uint8), (60, 1)))
    crops = {tuple(aspect(grad.convert("RGB"), np.random.default_rng(s))[0, 0, :3].tolist()) for s in range(8)}
    assert len(crops) > 1  # random positions / flips
    assert torch.equal(aspect(grad.convert("RGB"), np.random.default_rng(5)),
                       aspect(grad.convert("RGB"), np.random.default_rng(5)))
    with pytest.raises(ValueError, match="load size 16 is smaller than the crop 32"):
        Preprocess(load_size=16, crop=32)


def test_lr_schedules_per_epoch():
    official = [lr_at(STYA2K_RECIPE, e * 10, 10, 5) for e in range(5)]
    assert official == pytest.approx([2e-4, 2e-4, 6e-5, 1.8e-5, 5.4e-6], rel=1e-12)
    paper = TrainingRecipe(source="test", lr=1.0, schedule="paper")
    assert [lr_at(paper, e * 10 + 3, 10, 5) for e in range(5)] == pytest.approx([1, 1, 0.75, 0.5, 0.25])
    assert lr_at(ADAIN_RECIPE, 20_000, 10, 5) == pytest.approx(1e-4 / (1 + 5e-5 * 20_000))


# ----------------------------------------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def stya2k_runs(data, tmp_path_factory):
    """styA2K: 30 steps (then resumed to 40) and 40 steps straight, same seed; 8 content / batch 2 → 4 steps per
    epoch, so step 30 is in the middle of an epoch. Both parts checkpoint every 7 steps and sample every 10."""
    root = tmp_path_factory.mktemp("stya2k-runs")
    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.setenv("HARNESS_OFFLINE", "1")
        mp.setenv("HARNESS_WEIGHTS", str(root / "no-weights"))
        mp.setenv("HARNESS_CACHE", str(root / "no-cache"))
        common = dict(seed=7, checkpoint_every=7, sample_every=10, **FAST)
        first = train(config(data, root / "resumed", "styA2K", steps=30, **common))
        rows_at_30 = log_rows(root / "resumed")
        with open(root / "resumed" / "loss_log.csv", "a") as fh:  # rows a crash after the checkpoint left behind
            fh.write("31,8,0.001,1.0,1.0,1.0\n32,8,0.001,1.0,1.0,1.0\n")
        resumed = train(TrainConfig(method=None, content_dir=None, style_dir=None, out=root / "resumed",
                                    steps=40, resume=True, workers=2, progress=False))
        straight = train(config(data, root / "straight", "styA2K", steps=40, **common))
    return {"root": root, "first": first, "rows_at_30": rows_at_30, "resumed": resumed, "straight": straight}


def _losses(rows) -> list[float]:
    return [float(r["loss"]) for r in rows]


def _assert_loss_decreases(rows, method: str) -> None:
    losses = _losses(rows)
    assert len(losses) == 30 and all(math.isfinite(x) for x in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < first, f"{method}: loss did not decrease (first 5 mean {first:.4g}, last 5 mean {last:.4g})"


def test_stya2k_lowers_its_loss(stya2k_runs):
    _assert_loss_decreases(stya2k_runs["rows_at_30"], "styA2K")
    assert set(stya2k_runs["rows_at_30"][0]) == {"step", "epoch", "lr", "global_style", "a2k", "loss"}


@pytest.mark.parametrize("method", ["styA2K-noPA", "all2all", "adain"])
def test_method_lowers_its_loss(data, tmp_path, method):
    summary = train(config(data, tmp_path / "run", method, steps=30, seed=0, **FAST))
    rows = log_rows(tmp_path / "run")
    _assert_loss_decreases(rows, method)
    assert summary["steps"] == 30 and summary["untrained_encoder"] is True
    assert [int(r["step"]) for r in rows] == list(range(1, 31))


def test_resume_is_bit_identical_to_a_straight_run(stya2k_runs):
    root = stya2k_runs["root"]
    assert stya2k_runs["first"]["steps"] == 30 and stya2k_runs["resumed"]["steps_this_run"] == 10
    resumed = torch.load(root / "resumed" / STATE_NAME, weights_only=True)
    straight = torch.load(root / "straight" / STATE_NAME, weights_only=True)
    assert resumed["step"] == straight["step"] == 40
    assert_same_state(resumed["model"], straight["model"])
    assert_same_state(load_checkpoint(root / "resumed" / CHECKPOINT_NAME)["state_dict"], straight["model"])
    opt_a, opt_b = resumed["optimizer"]["state"], straight["optimizer"]["state"]
    assert all(torch.equal(opt_a[i]["exp_avg_sq"], opt_b[i]["exp_avg_sq"]) for i in opt_b)
    rows_resumed, rows_straight = log_rows(root / "resumed"), log_rows(root / "straight")
    assert [int(r["step"]) for r in rows_resumed] == list(range(1, 41))  # the stale rows 31, 32 were dropped
    assert rows_resumed == rows_straight
    assert sorted(p.name for p in (root / "resumed" / "samples").iterdir()) == [
        "step_000010.png", "step_000020.png", "step_000030.png", "step_000040.png"]


def test_checkpoint_round_trip(stya2k_runs, tmp_path):
    out = stya2k_runs["root"] / "straight"
    trained = torch.load(out / STATE_NAME, weights_only=True)["model"]
    meta = load_checkpoint(out / CHECKPOINT_NAME)["metadata"]
    assert meta["untrained_encoder"] is True and meta["steps"] == 40 and meta["seed"] == 7
    assert meta["recipe"]["lr"] == 2e-4 and meta["recipe"]["loss_weights"] == {"global_style": 10.0, "a2k": 1.25}
    assert {"python", "torch", "harness"} <= set(meta["versions"]) and meta["command_line"].startswith("python -m")
    assert meta["vgg"] is None and meta["skipped_count"] == 0

    # The checkpoint holds the trainable parts only; the frozen VGG is resolved at load time. None is here, so the
    # seeded random encoder the run was trained against (seed 7) is rebuilt, and the method is flagged.
    encoder = create_method("styA2K", init="random", seed=7).model.encoder.layers.state_dict()
    rebuilt = create_method("styA2K", weights=out)
    assert_same_state(rebuilt.model.encoder.layers.state_dict(), encoder)
    assert_same_state(trainable(rebuilt), trained)
    assert "RANDOM ENCODER" in rebuilt.provenance.flag() and "TRAINED WITH A RANDOM ENCODER" in rebuilt.provenance.flag()
    # A real encoder file found by the resolver wins (here the same random one, saved as a VGG file).
    encoder_dir = tmp_path / "encoder"
    encoder_dir.mkdir()
    torch.save(encoder, encoder_dir / "vgg_normalised.pth")
    loaded = create_method("styA2K", weights=out, weights_dir=encoder_dir)
    assert_same_state(trainable(loaded), trained)
    assert loaded.provenance.checkpoint == str(out / CHECKPOINT_NAME)
    assert "TRAINED WITH A RANDOM ENCODER" in loaded.provenance.flag() and loaded.untrained  # flagged in every output
    # The official files load through the official path into the same weights.
    official = tmp_path / "official"
    official.mkdir()
    for name in ("latest_net_A2K.pth", "latest_net_transform.pth", "latest_net_decoder.pth"):
        (official / name).write_bytes((out / name).read_bytes())
    with warnings.catch_warnings(record=True) as caught:  # not the published files: checksum warnings
        warnings.simplefilter("always")
        from_official = create_method("styA2K", weights=official, weights_dir=encoder_dir)
    assert {n for n in ("latest_net_A2K.pth", "latest_net_transform.pth", "latest_net_decoder.pth")
            if any(n in str(w.message) for w in caught)} == {"latest_net_A2K.pth", "latest_net_transform.pth",
                                                             "latest_net_decoder.pth"}
    assert_same_state(trainable(from_official), trained)


def test_ddp_two_processes_gloo(data, tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", HARNESS_OFFLINE="1")
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "harness",
         "train", "--method", "styA2K", "--content-dir", data["content"], "--style-dir", data["style"], "--out", out,
         "--steps", "3", *SMALL],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    meta = load_checkpoint(out / CHECKPOINT_NAME)["metadata"]
    assert meta["world_size"] == 2 and meta["steps"] == 3
    assert [int(r["step"]) for r in log_rows(out)] == [1, 2, 3]  # rank 0 alone writes the log
    assert proc.stdout.count("trained styA2K") == 1
    assert (out / "latest_net_decoder.pth").is_file()


def test_corrupt_images_are_skipped_and_counted(data, tmp_path, capsys):
    content = tmp_path / "content"
    content.mkdir()
    for path in sorted(data["content"].iterdir())[:4]:
        (content / path.name).write_bytes(path.read_bytes())
    (content / "aaa_not_an_image.png").write_bytes(b"this is not a png")  # first in order: found by the start scan
    good = (sorted(data["content"].iterdir())[0]).read_bytes()
    (content / "zzz_truncated.png").write_bytes(good[: len(good) // 3])  # drawn during the run
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "--method", "adain", "--content-dir", content, "--style-dir",
                                data["style"], "--out", out, "--steps", "4", *SMALL, "--batch-size", "4")
    assert code == 0, err
    assert "aaa_not_an_image.png" in err and "zzz_truncated.png" in err
    assert all(line.startswith("warning: skipping unreadable training image") for line in err.splitlines()
               if "aaa_not_an_image" in line or "zzz_truncated" in line)
    assert "skipped unreadable images: 2" in stdout
    meta = load_checkpoint(out / CHECKPOINT_NAME)["metadata"]
    assert meta["skipped_count"] == 2 and len(log_rows(out)) == 4
    assert sorted(Path(p).name for p in meta["skipped_files"]) == ["aaa_not_an_image.png", "zzz_truncated.png"]


def test_lr_per_epoch_in_the_log(data, tmp_path, capsys):
    """2 content images, batch 4 (a folder smaller than a batch): 1 step per epoch, so 5 steps = 5 epochs."""
    content = tmp_path / "two"
    content.mkdir()
    for path in sorted(data["content"].iterdir())[:2]:
        (content / path.name).write_bytes(path.read_bytes())
    expected = {"official": [2e-4, 2e-4, 6e-5, 1.8e-5, 5.4e-6], "paper": [2e-4, 2e-4, 1.5e-4, 1e-4, 5e-5]}
    for schedule, lrs in expected.items():
        out = tmp_path / schedule
        code, _, err = run_cli(capsys, "train", "--method", "styA2K-noPA", "--content-dir", content, "--style-dir",
                               data["style"], "--out", out, "--epochs", "5", *SMALL, "--batch-size", "4",
                               "--schedule", schedule, "--lr", "2e-4")
        assert code == 0, err
        rows = log_rows(out)
        assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4, 5]
        assert [float(r["lr"]) for r in rows] == pytest.approx(lrs, rel=1e-9)


def test_yaml_config_and_command_line_override(data, tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text(f"method: adain\ncontent-dir: {data['content']}\nstyle_dir: {data['style']}\nsteps: 2\n"
                   "crop: 64\nload-size: 96\nbatch_size: 2\nworkers: 0\ninit: random\nlr: 5.0e-4\n"
                   "lambda-style: 3\namp: off\nsample_every: 0\nlog-every: 0\n")
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "--config", cfg, "--out", out, "--lr", "3e-4", "--steps", "3")
    assert code == 0, err
    meta = load_checkpoint(out / CHECKPOINT_NAME)["metadata"]
    assert meta["recipe"]["lr"] == 3e-4 and meta["steps"] == 3  # command line wins
    assert meta["recipe"]["loss_weights"] == {"content": 1.0, "style": 3.0} and meta["amp"] == "off"
    assert meta["recipe"]["crop"] == 64 and meta["recipe"]["schedule"] == "inverse_time"  # YAML, then recipe


def test_bf16_amp_runs(data, tmp_path):
    summary = train(config(data, tmp_path / "bf16", "adain", steps=2, amp="bf16"))
    assert summary["steps"] == 2 and all(math.isfinite(v) for v in summary["final_terms"].values())


def test_compile_flag_compiles_the_loss_module(data, tmp_path, monkeypatch):
    """--compile wraps the loss computation in torch.compile (a real CPU compile takes about a minute, so the
    compiler is replaced by a recording pass-through here)."""
    from harness.train import LossModule

    compiled = []

    def fake_compile(module, *args, **kwargs):
        compiled.append(module)
        return module

    monkeypatch.setattr(torch, "compile", fake_compile)
    summary = train(config(data, tmp_path / "compiled", "adain", steps=2, compile=True))
    assert summary["steps"] == 2 and len(compiled) == 1 and isinstance(compiled[0], LossModule)


def test_nan_loss_stops_with_the_last_good_checkpoint_on_disk(data, tmp_path, monkeypatch):
    from methods.adain import AdaINNet

    real = AdaINNet.training_loss
    calls = {"n": 0}

    def flaky(self, content, style, weights):
        calls["n"] += 1
        terms = real(self, content, style, weights)
        if calls["n"] == 4:
            terms["style"] = terms["style"] * float("nan")
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(AdaINNet, "training_loss", flaky)
    out = tmp_path / "nan"
    with pytest.raises(TrainingDivergedError, match=r"step 4 .*style=nan.*last good state \(step 3\)"):
        train(config(data, out, "adain", steps=10, checkpoint_every=100))
    state = torch.load(out / STATE_NAME, weights_only=True)
    assert state["step"] == 3 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert load_checkpoint(out / CHECKPOINT_NAME)["metadata"]["steps"] == 3
    assert len(log_rows(out)) == 3


# ----------------------------------------------------------------------------------------------------------------------
# errors: one line, exit 2, before any model is built
# ----------------------------------------------------------------------------------------------------------------------
@pytest.fixture
def no_model(monkeypatch):
    """Fails the test if a model gets built."""
    def refuse(*args, **kwargs):
        raise AssertionError("a model was built before the arguments were checked")

    monkeypatch.setattr("harness.train.loop.create_method", refuse)


@pytest.mark.parametrize("case, expected", [
    ("missing-dir", "--content-dir"),
    ("empty-dir", "no training images found"),
    ("unknown-method", "unknown method 'styB2K'"),
    ("yaml-key", "unknown key 'learning_rate'"),
    ("a2k-adain", "--lambda-a2k: method 'adain' has no A2K loss"),
    ("load<crop", "--load-size 32 is smaller than --crop 64"),
    ("no-method", "train needs --method"),
    ("fp16-cpu", "--amp fp16 needs a CUDA device"),
])
def test_bad_arguments_exit_2_with_one_line(data, tmp_path, capsys, no_model, case, expected):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("no images here")
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("learning_rate: 0.1\n")
    args = {"--method": "styA2K", "--content-dir": data["content"], "--style-dir": data["style"],
            "--out": tmp_path / "out", "--steps": "2"}
    extra: list = []
    if case == "missing-dir":
        args["--content-dir"] = tmp_path / "nowhere"
    elif case == "empty-dir":
        args["--style-dir"] = empty
    elif case == "unknown-method":
        args["--method"] = "styB2K"
    elif case == "yaml-key":
        extra = ["--config", cfg]
    elif case == "a2k-adain":
        args["--method"] = "adain"
        extra = ["--lambda-a2k", "2"]
    elif case == "load<crop":
        extra = ["--crop", "64", "--load-size", "32"]
    elif case == "no-method":
        del args["--method"]
    elif case == "fp16-cpu":
        extra = ["--amp", "fp16"]
    argv = ["train", *[x for kv in args.items() for x in kv], *extra]
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], err
    if case == "yaml-key":
        assert str(cfg) in lines[0]
    assert not (tmp_path / "out" / CHECKPOINT_NAME).exists()


def test_refuses_a_random_encoder_without_init_random(data, tmp_path, capsys):
    """HARNESS_OFFLINE=1 and empty weight folders: no vgg_normalised.pth anywhere → refused, exit 2."""
    code, _, err = run_cli(capsys, "train", "--method", "adain", "--content-dir", data["content"], "--style-dir",
                           data["style"], "--out", tmp_path / "out", "--steps", "2", "--crop", "64",
                           "--load-size", "96")
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: ") and "vgg_normalised.pth" in line and "--init random" in line
    assert "--weights-dir" in line
    assert not (tmp_path / "out" / CHECKPOINT_NAME).exists()


def test_trains_without_init_random_when_the_vgg_file_is_found(data, tmp_path, capsys):
    """A vgg_normalised.pth in --weights-dir (here a stand-in with random values) is used, recorded, and lifts the
    refusal; the checkpoint is not flagged untrained_encoder."""
    weights = tmp_path / "weights"
    weights.mkdir()
    stand_in = create_method("adain", init="random", seed=123).model.encoder.layers.state_dict()
    torch.save(stand_in, weights / "vgg_normalised.pth")
    out = tmp_path / "run"
    code, stdout, err = run_cli(capsys, "train", "--method", "adain", "--content-dir", data["content"], "--style-dir",
                                data["style"], "--out", out, "--steps", "1", "--weights-dir", weights,
                                *[a for a in SMALL if a not in ("--init", "random")])
    assert code == 0, err
    assert "RANDOM ENCODER" not in stdout
    meta = load_checkpoint(out / CHECKPOINT_NAME)["metadata"]
    assert meta["untrained_encoder"] is False
    assert meta["vgg"]["path"] == str(weights / "vgg_normalised.pth") and len(meta["vgg"]["sha256"]) == 64
    loaded = create_method("adain", weights=out, weights_dir=weights)
    assert_same_state(trainable(loaded), torch.load(out / STATE_NAME, weights_only=True)["model"])


def test_existing_run_needs_resume(data, tmp_path, capsys):
    out = tmp_path / "run"
    train(config(data, out, "adain", steps=1))
    code, _, err = run_cli(capsys, "train", "--method", "adain", "--content-dir", data["content"], "--style-dir",
                           data["style"], "--out", out, "--steps", "2", *SMALL)
    assert code == 2 and "--resume" in err
    code, _, err = run_cli(capsys, "train", "--out", out, "--resume", "--lr", "0.5")
    assert code == 2 and "lr 0.5" in err and "--resume" in err
    code, stdout, err = run_cli(capsys, "train", "--out", out, "--resume", "--steps", "2")
    assert code == 0, err
    assert "2/2 steps (1 in this run" in stdout
    with pytest.raises(ConfigError, match="already done 2 steps"):
        train(TrainConfig(method=None, content_dir=None, style_dir=None, out=out, resume=True, steps=1))


def test_training_image_listing(tmp_path):
    (tmp_path / "a" / "deep").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "deep" / "x.webp")
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "y.ppm")
    Image.new("RGB", (8, 8)).save(tmp_path / "a" / "z.tif")  # not a training suffix
    assert [p.name for p in list_training_images(tmp_path / "a", "content_dir")] == ["x.webp", "y.ppm"]


def test_sample_grid_is_labelled_and_keeps_the_pixels(tmp_path):
    """Rows content | style | output under a white band with a label over each column; the pixels below it are the
    tensors' (to the uint8 step of harness.images.tensor_to_image), the output clamped to [0, 1]."""
    from harness.train.state import SAMPLE_HEADER_PX, save_sample_grid

    g = torch.Generator().manual_seed(0)
    content, style = torch.rand(2, 3, 32, 40, generator=g), torch.rand(2, 3, 32, 40, generator=g)
    output = torch.rand(2, 3, 32, 40, generator=g) * 1.4 - 0.2
    path = save_sample_grid(tmp_path / "s.png", content, style, output, step=120, untrained=True)
    grid = np.asarray(Image.open(path).convert("RGB")).astype(np.float64) / 255.0
    assert grid.shape == (SAMPLE_HEADER_PX + 2 * 32, 3 * 40, 3)
    header, body = grid[:SAMPLE_HEADER_PX], grid[SAMPLE_HEADER_PX:]
    for column in range(3):  # some dark text over each column, white elsewhere
        band = header[:, column * 40:(column + 1) * 40]
        assert (band < 0.5).any() and (band > 0.99).mean() > 0.6
    expected = torch.cat([torch.cat([content[i], style[i], output[i].clamp(0, 1)], dim=2) for i in range(2)], dim=1)
    assert np.abs(body - expected.permute(1, 2, 0).numpy()).max() <= 1 / 255 + 1e-6  # the uint8 quantisation
