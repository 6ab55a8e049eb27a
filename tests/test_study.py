"""Study files: every bundled study validates; the schema's errors name the key and the file; the smoke study runs end
to end (tables, paper comparison, figures, resume); --train-missing trains through `harness train`."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from harness.cli import main
from harness.study import (
    StudyError,
    StudyOverrides,
    expand_variables,
    load_study_file,
    run_config_for,
    run_study,
)

from .conftest import shared_asset

STUDIES = Path(__file__).resolve().parents[1] / "studies"
BUNDLED = sorted(STUDIES.glob("*.yaml"))


def write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


MINIMAL = """
study: tiny
kind: run
run: {size: 64, pairs: 1, metrics: [content_loss]}
methods: [adain]
"""


# ----------------------------------------------------------------------------------------------------------------------
# Validation
# ----------------------------------------------------------------------------------------------------------------------
def test_the_bundled_studies_are_the_papers_tables():
    names = {p.stem for p in BUNDLED}
    assert {"table1", "table2_ablation", "supp_lambda", "complexity", "smoke", "table3_video"} <= names


@pytest.mark.parametrize("path", BUNDLED, ids=[p.stem for p in BUNDLED])
def test_every_bundled_study_validates(path):
    study = load_study_file(path)
    assert study.name == path.stem and study.title and study.description
    if study.kind == "run":
        assert study.entries and len(set(study.labels)) == len(study.labels)


def test_table_studies_carry_the_papers_numbers():
    table1 = load_study_file(STUDIES / "table1.yaml")
    assert table1.reference.value("StyA2K", "content_loss") == 0.55
    assert table1.reference.value("AdaIN", "latency_ms") == 3.8
    assert table1.run["size"] == 512 and table1.labels == ["styA2K", "StyTr2", "AdaAttN", "SANet", "adain", "all2all"]
    ablation = load_study_file(STUDIES / "table2_ablation.yaml")
    assert ablation.labels == ["all2all", "styA2K-noDA", "styA2K-noPA", "styA2K-noPA1", "styA2K-1head", "styA2K"]
    assert ablation.reference.by_label({"styA2K-noPA1": "w/o step 1 of PA"}) == {
        "styA2K-noPA1": {"content_loss": 0.65, "style_loss": 0.73, "lpips": 0.56}}
    sweep = load_study_file(STUDIES / "supp_lambda.yaml")
    assert [e.train["lambda_a2k"] for e in sweep.entries] == [0.5, 0.75, 1.0, 1.25, 1.5, 2.0]
    assert {e.method for e in sweep.entries} == {"styA2K"} and all(e.weights for e in sweep.entries)
    assert sweep.training["lambda_style"] == 10


def test_table1_pairs_are_15_contents_by_20_styles():
    shared_asset("images/eval/adain/content")
    from harness.run import resolve_pairs

    config = run_config_for(load_study_file(STUDIES / "table1.yaml"), StudyOverrides())
    contents, styles, pairs = resolve_pairs(config)
    assert (len(contents), len(styles), len(pairs)) == (15, 20, 300)


@pytest.mark.parametrize("text, message", [
    (MINIMAL + "colour: red\n", "unknown key 'colour'; known keys:"),
    (MINIMAL.replace("pairs: 1", "pairs: 1, sise: 3"), "unknown key 'sise' in run"),
    (MINIMAL.replace("pairs: 1", "pairs: one"), "key 'run.pairs' must be an integer"),
    (MINIMAL.replace("[adain]", "[{method: adain, colour: 1}]"), "unknown key 'colour' in methods[0]"),
    (MINIMAL.replace("[adain]", "[adian]"), "methods[0]: unknown method 'adian'"),
    (MINIMAL.replace("[adain]", "[{method: styA2K, options: {hedas: 2}}]"), "styA2K has no option(s) hedas"),
    (MINIMAL.replace("[adain]", "[adain, adain]"), "label(s) adain used twice"),
    (MINIMAL.replace("[adain]", "[{method: styA2K, options: {heads: 7}}]"),
     "methods[0] (styA2K): invalid options: 256 channels cannot be split into 7 heads"),
    (MINIMAL.replace("pairs: 1", "pairs: 1, content: no/such/folder"), "run.content: no/such/folder does not exist"),
    (MINIMAL.replace("pairs: 1", "pairs: 1, init: adian=random"), "run.init: adian is not a method of this run"),
    (MINIMAL.replace("[adain]", "[]"), "'methods' must be a non-empty list"),
    (MINIMAL.replace("kind: run", "kind: table"), "'kind' must be one of run, complexity, video"),
    (MINIMAL.replace("study: tiny", "study: a/b"), "'study' must be a name"),
    (MINIMAL.replace("[content_loss]", "[flicker]"), "unknown metric(s) flicker"),
    (MINIMAL + "figures: [histogram]\n", "unknown key 'histogram' in figures"),
    (MINIMAL + "figures: {bars: {colour: red}}\n", "figure 'bars' has no parameter(s) colour"),
    (MINIMAL + "reference: {columns: [lpips], rows: {x: [1, 2]}}\n", "reference row 'x' must list 1 values"),
    (MINIMAL + "training: {stepz: 3}\n", "unknown key 'stepz' in training"),
    (MINIMAL.replace("study: tiny", 'study: tiny\ntitle: "${NO_SUCH_VARIABLE_HERE}"'), "${NO_SUCH_VARIABLE_HERE} is not set"),
    ("study: x\nkind: complexity\n", "a complexity study needs a 'complexity:' section"),
    ("- a\n- b\n", "a study file is a mapping"),
    ("study: [\n", "not valid YAML"),
])
def test_schema_errors_name_the_key_and_the_file(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(StudyError) as info:
        load_study_file(path)
    assert str(path) in str(info.value) and message in str(info.value)
    assert "\n" not in str(info.value)


def test_variables_expand_with_nested_defaults(monkeypatch):
    text = "${A:-${B:-base}/x}/y"
    monkeypatch.delenv("A", raising=False)
    monkeypatch.delenv("B", raising=False)
    assert expand_variables(text, "f") == "base/x/y"
    monkeypatch.setenv("B", "/data")
    assert expand_variables([text, {"k": text}], "f") == ["/data/x/y", {"k": "/data/x/y"}]
    monkeypatch.setenv("A", "/a")
    assert expand_variables(text, "f") == "/a/y"


def test_cli_check_and_one_line_errors(tmp_path, capsys):
    assert main(["study", "--check", *map(str, BUNDLED)]) == 0
    out = capsys.readouterr().out
    assert all(f"{p}: ok" in out for p in BUNDLED)
    bad = write(tmp_path, MINIMAL + "colour: red\n")
    assert main(["study", "--check", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad}: unknown key 'colour'")
    assert main(["study", str(tmp_path / "absent.yaml")]) == 2
    assert "no such study file" in capsys.readouterr().err
    assert main(["study", str(write(tmp_path, MINIMAL, "ok.yaml")), "--option", "heads=2"]) == 2
    assert "names each method's weights and options in its file" in capsys.readouterr().err


def test_a_missing_checkpoint_stops_before_any_work(isolated, capsys):
    path = write(isolated.parent, MINIMAL.replace("[adain]", "[{method: adain, weights: ck/absent}]"))
    assert main(["study", str(path), "--out", "out", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "missing checkpoint(s): 'adain' → ck/absent" in err and "--init random" in err
    assert not Path("out/metrics.csv").exists()
    assert main(["study", str(write(isolated.parent, MINIMAL, "m2.yaml")),
                 "--out", "deep/er/out", "--no-progress"]) == 2  # adain's official files are missing
    assert "missing weight file(s) of adain:" in capsys.readouterr().err
    assert not Path("deep").exists()  # a failed study leaves no empty results folders behind


# ----------------------------------------------------------------------------------------------------------------------
# The smoke study, end to end
# ----------------------------------------------------------------------------------------------------------------------
def test_smoke_study_end_to_end(smoke_results):
    out = smoke_results
    table = pd.read_csv(out / "table.csv")
    assert list(table["method"]) == ["styA2K", "adain", "all2all", "styA2K-noPA"]
    assert table["untrained"].astype(str).str.lower().eq("true").all()  # --init random: flagged
    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 16 and metrics[["content_loss", "style_loss", "lpips"]].notna().all().all()
    assert (out / "table.md").exists() and (out / "table.tex").exists() and (out / "timing.csv").exists()
    paper = (out / "paper.md").read_text()
    assert "| styA2K | StyA2K | content_loss | 0.55 |" in paper and "† untrained" in paper
    for stem in ("comparison", "ablation", "metrics", "interpolation_styA2K", "attention_styA2K"):
        for suffix in (".png", ".pdf"):
            assert (out / "figures" / f"{stem}{suffix}").stat().st_size > 1000, stem
    manifest = json.loads((out / "study.json").read_text())
    assert manifest["study"] == "smoke" and len(manifest["file_sha256"]) == 64 and manifest["versions"]["torch"]


def test_a_study_resumes(smoke_results, capsys):
    summary = run_study(load_study_file(STUDIES / "smoke.yaml"), StudyOverrides(out=smoke_results, progress=False))
    assert "pairs: 0 computed, 16 already done" in summary.report()


# ----------------------------------------------------------------------------------------------------------------------
# --train-missing
# ----------------------------------------------------------------------------------------------------------------------
def test_train_missing_trains_each_entry_through_harness_train(isolated, capsys):
    shared_asset("images/train/photos")
    train = shared_asset("images/train")
    path = write(isolated.parent, f"""
study: sweep
kind: run
run: {{size: 64, pairs: 1, metrics: [content_loss, style_loss]}}
training: {{content_dir: {train}/photos, style_dir: {train}/paintings, steps: 2, batch_size: 1, crop: 64,
           schedule: constant, sample_every: 0, log_every: 1}}
methods:
  - {{label: "lambda2=0.5", method: styA2K, weights: ck/a, train: {{lambda_a2k: 0.5}}}}
  - {{label: "lambda2=2", method: styA2K, weights: ck/b, train: {{lambda_a2k: 2.0}}}}
figures: [loss_curves]
""")
    code = main(["study", str(path), "--out", "out", "--no-progress", "--train-missing", "--init", "random"])
    assert code == 0, capsys.readouterr().err
    from methods import load_checkpoint

    for folder, weight in (("ck/a", 0.5), ("ck/b", 2.0)):
        meta = load_checkpoint(Path(folder) / "harness_checkpoint.pt")["metadata"]
        assert meta["recipe"]["loss_weights"]["a2k"] == weight and meta["steps"] == 2
        assert meta["untrained_encoder"] is True
    metrics = pd.read_csv("out/metrics.csv")
    assert sorted(metrics["method"]) == ["lambda2=0.5", "lambda2=2"]
    assert (Path("out/figures") / "loss_a.png").exists() and (Path("out/figures") / "loss_b.pdf").exists()
    # The two checkpoints differ (their A2K-loss weights did), and each row was stylised with its own.
    a, b = (pd.read_csv(f"ck/{x}/loss_log.csv") for x in "ab")
    assert not a["loss"].equals(b["loss"])


# ----------------------------------------------------------------------------------------------------------------------
# Video and complexity studies through the same command
# ----------------------------------------------------------------------------------------------------------------------
def test_video_study_makes_a_table3_like_table(isolated, capsys):
    video = shared_asset("video")
    path = write(isolated.parent, f"""
study: video_small
kind: video
title: "tiny Table 3"
video:
  methods: [adain, styA2K]
  clips: {{mountain_2: {video}/mountain_2, marple8: {video}/marple8/frames}}
  style: {video}/marple8/frames/{sorted(p.name for p in (video / "marple8" / "frames").iterdir())[0]}
  size: 64
  max_frames: 3
  long_range_k: 2
  preview: none
reference:
  columns: [clip1, mean]
  rows: {{StyA2K: [2.58, 4.24]}}
""")
    assert main(["study", str(path), "--out", "out", "--init", "random", "--no-progress"]) == 0, capsys.readouterr().err
    table = pd.read_csv("out/temporal.csv")
    assert list(table["method"])[:2] == ["adain", "styA2K"] and table["method"].iloc[-1] == "input (floor)"
    assert {"clip_mountain_2_mean", "clip_marple8_mean", "mean_mean"} <= set(table.columns)
    assert table["mean_mean"].notna().all()
    assert Path("out/paper.md").exists() and json.loads(Path("out/study.json").read_text())["kind"] == "video"
    assert "| adain †" in capsys.readouterr().out


def test_complexity_study_records_oom_under_a_memory_cap(isolated, capsys):
    path = write(isolated.parent, """
study: complexity_small
kind: complexity
title: "tiny sweep"
complexity:
  methods: [adain]
  sizes: [64, 512]
  repeats: 1
  warmup: 0
  attention_repeats: 1
""")
    code = main(["study", str(path), "--out", "out", "--no-progress", "--sizes", "64,1024", "--max-memory-mib", "150"])
    assert code == 0, capsys.readouterr().err
    rows = pd.read_csv("out/complexity.csv").set_index("size")
    assert rows.loc[64, "status"] == "ok" and rows.loc[1024, "status"].startswith("oom")


def test_command_line_overrides_reach_the_runner(tmp_path):
    entries = "\n  - {label: mine, method: styA2K, options: {heads: 4}, weights: ck/mine}\n  - adain"
    study = load_study_file(write(tmp_path, MINIMAL.replace(" [adain]", entries)))
    config = run_config_for(study, StudyOverrides(votes=Path("votes.csv"), seed=3, device="cpu", init="random",
                                                  weights_dir="w"))
    assert config.methods == ["mine", "adain"] and config.method_names == {"mine": "styA2K"}
    assert config.method_options == {"mine": {"heads": 4}, "adain": {}}
    assert (config.votes, config.seed, config.init, config.weights_dir, config.size) == ("votes.csv", 3, "random", "w", 64)
