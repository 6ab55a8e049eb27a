"""`run`, `table`, `merge` and `tally` from the command line: outputs, exit codes, one-line errors."""
from __future__ import annotations

import shutil

import pytest

from harness.cli import main

from .conftest import shared_asset


@pytest.fixture
def pairs_dir(tmp_path):
    root = shared_asset("images/eval/stya2k")
    for role in ("content", "style"):
        (tmp_path / role).mkdir()
        for i in (1, 2):
            shutil.copy(root / role / f"{role}{i}.png", tmp_path / role)
    return tmp_path


def run_args(pairs_dir, out, *extra):
    return ["run", "--methods", "adain", "--content", str(pairs_dir / "content"), "--style", str(pairs_dir / "style"),
            "--size", "64", "--init", "random", "--out", str(out), "--no-progress", "--timing-repeats", "5", *extra]


def test_run_table_and_merge(pairs_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(run_args(pairs_dir, out, "--metrics", "style_loss,timing")) == 0
    printed = capsys.readouterr()
    assert "4 pairs computed" in printed.out and "| adain †" in printed.out and "UNTRAINED" in printed.err
    assert main(["table", str(out), "--out", str(tmp_path / "t")]) == 0
    assert (tmp_path / "t" / "table.tex").exists()
    sharded = tmp_path / "sharded"
    for shard in ("0/2", "1/2"):
        assert main(run_args(pairs_dir, sharded, "--metrics", "style_loss", "--shard", shard)) == 0
    assert main(["merge", str(sharded)]) == 0
    assert "metrics.csv 4 rows" in capsys.readouterr().out
    caption = (sharded / "table.md").read_text().split("\n")[0]  # as a single run's: size, device, flags
    assert "at 64 px" in caption and "untrained rows flagged" in caption, caption
    import json
    manifest = json.loads((sharded / "manifest.json").read_text())
    assert manifest["merged_from"] == ["manifest.shard-0-of-2.json", "manifest.shard-1-of-2.json"]
    assert manifest["summary"]["computed"] == 4 and manifest["config"]["shard"] is None


def test_config_file_and_its_errors(pairs_dir, tmp_path, capsys):
    study = tmp_path / "s.yaml"
    study.write_text(f"methods: [adain]\ncontent: {pairs_dir / 'content'}\nstyle: {pairs_dir / 'style'}\n"
                     f"size: 64\ninit: random\nmetrics: [style_loss]\npairs: 2\n")
    assert main(["run", "--config", str(study), "--out", str(tmp_path / "r"), "--no-progress"]) == 0
    assert "2 pairs computed" in capsys.readouterr().out
    study.write_text("methods: [adain]\nsizes: 64\n")
    assert main(["run", "--config", str(study)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'sizes'" in err and str(study) in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra,message", [
    (["--metrics", "kid"], "unknown metric(s) kid"),
    (["--option", "colour=1"], "belong to none of the methods"),
    (["--shard", "3/2"], "expected i/n"),
])
def test_run_bad_arguments_exit_2(pairs_dir, tmp_path, capsys, extra, message):
    assert main(run_args(pairs_dir, tmp_path / "r", *extra)) == 2
    assert message in capsys.readouterr().err


def test_run_without_weights_stops_before_any_work(tmp_path, capsys):
    out = tmp_path / "r"
    assert main(["run", "--methods", "styA2K,adain,all2all", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "vgg_normalised.pth" in err and "--init random" in err and not out.exists()


def test_tally_reports_invalid_rows_with_line_numbers(tmp_path, capsys):
    votes = tmp_path / "votes.csv"
    rows = ["participant,group,question,method"]
    rows += [f"p{i},g1,overall,{m}" for i, m in enumerate(["a"] * 6 + ["b"] * 3 + ["c"])]
    rows += ["p0,g1,overall,a", "p20,g1,colour,a", "p21,g1,style,zzz"]  # lines 12, 13, 14
    votes.write_text("\n".join(rows) + "\n")
    assert main(["tally", str(votes), "--methods", "a,b,c", "--out", str(tmp_path / "t")]) == 0
    captured = capsys.readouterr()
    assert "line 12" in captured.err and "line 13" in captured.err and "line 14" in captured.err
    assert "10 valid votes, 3 invalid row(s)" in captured.out
    assert (tmp_path / "t" / "pairwise.csv").exists()
    (tmp_path / "bad.csv").write_text("who,what\n1,2\n")
    assert main(["tally", str(tmp_path / "bad.csv")]) == 2


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "unknown-method"])
def test_run_bad_inputs_one_line_exit_2_nothing_written(pairs_dir, tmp_path, capsys, case):
    content, methods = str(pairs_dir / "content"), "adain"
    if case == "missing":
        content, expected = str(tmp_path / "nope"), "no such file or folder"
    elif case == "empty":
        (tmp_path / "empty").mkdir()
        content, expected = str(tmp_path / "empty"), "no images found"
    elif case == "corrupt":
        (pairs_dir / "content" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
        expected = "broken.jpg"
    else:
        methods, expected = "adian", "did you mean 'adain'"
    out = tmp_path / "run"
    args = ["run", "--methods", methods, "--content", content, "--style", str(pairs_dir / "style"), "--size", "64",
            "--init", "random", "--out", str(out), "--no-progress"]
    assert main(args) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(err) == 1 and expected in err[0]
    assert not (out / "metrics.csv").exists()


@pytest.mark.parametrize("flag, value, in_file, expected", [
    ("--seed", "0", "seed: 5", {"seed": 0}),
    ("--device", "cpu", "device: 'cuda:7'", {"device": "cpu"}),
    ("--size", "96", "size: 64", {"size": 96}),
    ("--option", "heads=4", "options: {heads: 2}", {"method_options": {"styA2K": {"heads": 4}}}),
])
def test_command_line_values_win_over_the_config_file_even_when_they_equal_the_defaults(
        tmp_path, flag, value, in_file, expected):
    """`--seed 0` or `--device cpu` on the command line override the --config file's value (they used to be
    mistaken for "not given" because they equal the defaults)."""
    from harness.cli import build_parser
    from harness.cli.run import run_config_from_args

    config = tmp_path / "run.yaml"
    config.write_text(f"methods: [styA2K]\n{in_file}\n")
    args = build_parser().parse_args(["run", "--config", str(config), "--out", str(tmp_path / "r"), flag, value])
    resolved = run_config_from_args(args)
    for key, want in expected.items():
        assert getattr(resolved, key) == want
    # ... and without the flag the file's value stays (the CUDA device is not resolved here: skip it)
    if flag != "--device":
        args = build_parser().parse_args(["run", "--config", str(config), "--out", str(tmp_path / "r")])
        assert getattr(run_config_from_args(args), next(iter(expected))) != next(iter(expected.values()))


def test_study_command_line_seed_zero_and_cpu_override_the_file(tmp_path):
    """`study --seed 0 --device cpu` override a study file's `seed: 5` / `device: cuda:7` (None = not given)."""
    from harness.cli import build_parser
    from harness.study import StudyOverrides, load_study_file, run_config_for

    path = tmp_path / "s.yaml"
    path.write_text("study: s\nkind: run\nrun: {seed: 5, device: 'cuda:7'}\nmethods: [adain]\n")
    study = load_study_file(path)
    args = build_parser().parse_args(["study", str(path), "--seed", "0", "--device", "cpu"])
    config = run_config_for(study, StudyOverrides(seed=args.seed, device=args.device))
    assert (config.seed, config.device) == (0, "cpu")
    args = build_parser().parse_args(["study", str(path)])
    config = run_config_for(study, StudyOverrides(seed=args.seed, device=args.device))
    assert (config.seed, config.device) == (5, "cuda:7")


def test_run_votes_say_what_was_left_out_and_table_keeps_them(pairs_dir, tmp_path, capsys):
    votes = tmp_path / "votes.csv"
    rows = ["participant,group,question,method"]
    rows += [f"p{i},g1,overall,adain" for i in range(6)]
    rows += [f"p{i},g1,overall,ghost" for i in range(6, 9)]  # a method that is not in this run
    rows += ["p9,g1,colour,adain"]  # an unknown question
    votes.write_text("\n".join(rows) + "\n")
    out = tmp_path / "run"
    assert main(run_args(pairs_dir, out, "--metrics", "style_loss", "--votes", str(votes))) == 0
    caption = (out / "table.md").read_text().split("\n")[0]
    assert ("Preference: 6 of 10 vote rows used (3 for methods not in this table, 1 invalid left out; shares are over "
            "the methods shown") in caption
    header = (out / "table.md").read_text().split("\n")[2]
    capsys.readouterr()
    assert main(["table", str(out), "--out", str(tmp_path / "t")]) == 0  # no --votes: the run's recorded file
    assert (tmp_path / "t" / "table.md").read_text().split("\n")[2] == header
