"""Tests for harness.tables: aggregation, CSV round trip, Markdown, LaTeX best/second marks, escaping, atomicity."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest

from harness import tables
from harness.tables import MetricSpec, TableError, aggregate, latex_escape, rank_marks, write_tables
from metrics.preference import tally

CONTENT = MetricSpec("content", "Content loss", higher_is_better=False)
PREF = MetricSpec("pref", "Preference", higher_is_better=True, fmt="{:.1f}", unit="%")

T_975_DF2 = 0.95 / math.sqrt(2 * 0.975 * 0.025)
"""Student's t 97.5 % quantile at 2 degrees of freedom, in closed form: (2p − 1) / √(2p(1 − p)) = 4.3027."""


def pairs(method: str, values: list[float], untrained: bool = False) -> list[dict]:
    return [
        {"method": method, "content": f"c{i}", "style": "s0", "value": v, "untrained": untrained}
        for i, v in enumerate(values)
    ]


def tex_rows(tex: str) -> dict[str, list[str]]:
    """Body rows of the tabular: method cell → the other cells."""
    body = tex.split("\\midrule\n", 1)[1].split("\\bottomrule", 1)[0]
    rows = {}
    for line in body.strip().splitlines():
        cells = [c.strip() for c in line.rstrip().removesuffix("\\\\").split(" & ")]
        rows[cells[0]] = cells[1:]
    return rows


def tex_header(tex: str) -> list[str]:
    head = tex.split("\\toprule\n", 1)[1].split("\\midrule", 1)[0]
    return [c.strip() for c in head.strip().removesuffix("\\\\").split(" & ")]


def md_rows(md: str) -> dict[str, list[str]]:
    rows = {}
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| Method"):
            cells = [c.strip() for c in line.strip("|").split(" | ")]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture
def three_methods() -> pd.DataFrame:
    """Means: content 0.55 / 0.91 / 1.00 (lower is better), pref 60 / 30 / 10 (higher is better)."""
    rows = []
    table = [("StyA2K", [0.5, 0.6], 60.0), ("AdaIN", [0.9, 0.92], 30.0), ("All2All", [1.0, 1.0], 10.0)]
    for method, content, pref in table:
        for i, c in enumerate(content):
            rows.append({"method": method, "content": f"c{i}", "style": "s0", "content_loss": c, "pref": pref})
    return pd.DataFrame(rows)


SPECS = {"content_loss": CONTENT, "pref": PREF}


# --------------------------------------------------------------------------- aggregate


def test_aggregate_mean_std_n_ci95_by_hand():
    df = pd.DataFrame(
        {
            "method": ["B", "A", "B", "A", "A"],
            "content": ["c0", "c0", "c1", "c1", "c2"],
            "style": ["s"] * 5,
            "m": [10.0, 1.0, np.nan, 2.0, 3.0],
            "gone": [np.nan] * 5,
            "ignored": [0.0] * 5,
        }
    )
    specs = {"m": MetricSpec("m", "M", False), "gone": MetricSpec("gone", "Gone", True)}
    agg = aggregate(df, specs)
    assert agg["method"].tolist() == ["B", "A"]  # order of first appearance
    assert list(agg.columns) == [
        "method", "untrained", "m_mean", "m_std", "m_n", "m_ci95", "gone_mean", "gone_std", "gone_n", "gone_ci95"
    ]
    a = agg.set_index("method").loc["A"]
    assert a["m_mean"] == pytest.approx(2.0)
    assert a["m_std"] == pytest.approx(1.0)
    assert a["m_n"] == 3
    assert a["m_ci95"] == pytest.approx(T_975_DF2 / math.sqrt(3))  # Student's t at n = 3
    b = agg.set_index("method").loc["B"]
    assert (b["m_mean"], b["m_std"], b["m_n"], b["m_ci95"]) == (10.0, 0.0, 1, 0.0)  # NaN pair skipped
    assert agg["gone_n"].tolist() == [0, 0]
    assert agg[["gone_mean", "gone_std", "gone_ci95"]].isna().all().all()
    assert agg["untrained"].tolist() == [False, False]


def test_aggregate_carries_untrained_and_accepts_long_frames():
    long = pd.DataFrame(
        [
            {**r, "metric": "m"}
            for r in pairs("Trained", [1.0, 3.0]) + pairs("Random", [5.0]) + pairs("Random", [7.0], untrained=True)[:1]
        ]
    )
    long.loc[3, "content"] = "c9"
    agg = aggregate(long, [MetricSpec("m", "M", True)])
    assert agg["method"].tolist() == ["Trained", "Random"]
    assert agg["untrained"].tolist() == [False, True]  # any True → True
    assert agg["m_mean"].tolist() == pytest.approx([2.0, 6.0])
    assert agg["m_n"].tolist() == [2, 2]


def test_aggregate_reads_untrained_flags_written_as_text():
    flags = ["yes", "False", None, "1"]
    df = pd.DataFrame({"method": ["A", "B", "C", "C"], "m": [1.0, 2.0, 3.0, 4.0], "untrained": flags})
    agg = aggregate(df, {"m": MetricSpec("m", "M", True)})
    assert agg["untrained"].tolist() == [True, False, True]
    with pytest.raises(TableError, match="untrained"):
        aggregate(df.assign(untrained="maybe"), {"m": MetricSpec("m", "M", True)})


def test_aggregate_errors():
    with pytest.raises(TableError, match="lacks the metric column"):
        aggregate(pd.DataFrame({"method": ["A"], "x": [1.0]}), {"m": MetricSpec("m", "M", True)})
    with pytest.raises(TableError, match="method"):
        aggregate(pd.DataFrame({"x": [1.0]}), {"x": MetricSpec("x", "X", True)})
    with pytest.raises(TableError, match="not numeric"):
        aggregate(pd.DataFrame({"method": ["A"], "x": ["abc"]}), {"x": MetricSpec("x", "X", True)})
    with pytest.raises(ValueError, match="bad format"):
        MetricSpec("x", "X", True, fmt="{:.3q}")


# --------------------------------------------------------------------------- ranking


def test_rank_marks():
    assert rank_marks([0.55, 0.91, 1.0], higher_is_better=False) == ["best", "second", ""]
    assert rank_marks([60, 30, 10], higher_is_better=True) == ["best", "second", ""]
    assert rank_marks([1.0, 1.0, 2.0, 3.0], False) == ["best", "best", "second", ""]  # tie for best
    assert rank_marks([1.0, 2.0, 2.0, 3.0], False) == ["best", "second", "second", ""]  # tie for second
    assert rank_marks([math.nan, 2.0, 1.0], True) == ["", "best", "second"]
    assert rank_marks([9.0, 2.0, 1.0], True, eligible=[False, True, True]) == ["", "best", "second"]
    assert rank_marks([math.nan, math.nan], True) == ["", ""]
    assert rank_marks([0.1 + 0.2, 0.3, 1.0], False) == ["best", "best", "second"]  # float noise is a tie


# --------------------------------------------------------------------------- LaTeX


def test_latex_bold_and_underline_cells(tmp_path, three_methods):
    paths = write_tables(aggregate(three_methods, SPECS), SPECS, tmp_path, caption="Main results")
    assert set(paths) == {"csv", "md", "tex"}
    tex = paths["tex"].read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex
    assert "\\caption{Main results}" in tex
    rows = tex_rows(tex)
    assert rows["StyA2K"] == ["\\textbf{0.550 $\\pm$ 0.071}", "\\textbf{60.0 $\\pm$ 0.0}"]
    assert rows["AdaIN"] == ["\\underline{0.910 $\\pm$ 0.014}", "\\underline{30.0 $\\pm$ 0.0}"]
    assert rows["All2All"] == ["1.000 $\\pm$ 0.000", "10.0 $\\pm$ 0.0"]
    assert tex.count("\\textbf{") == 2 and tex.count("\\underline{") == 2
    assert tex_header(tex) == ["Method", "Content loss $\\downarrow$", "Preference (\\%) $\\uparrow$"]


def test_latex_ties_all_marked(tmp_path):
    df = pd.DataFrame({"method": ["A", "B", "C", "D"], "m": [1.0, 1.0, 2.0, 3.0]})
    specs = {"m": MetricSpec("m", "M", False, fmt="{:.2f}")}
    rows = tex_rows(write_tables(aggregate(df, specs), specs, tmp_path, caption="t")["tex"].read_text())
    assert rows["A"][0].startswith("\\textbf{") and rows["B"][0].startswith("\\textbf{")
    assert rows["C"][0].startswith("\\underline{")
    assert "\\" not in rows["D"][0].replace("$\\pm$", "")


def test_latex_nan_cells_are_dashes_and_unranked(tmp_path):
    df = pd.DataFrame({"method": ["A", "B", "C"], "m": [np.nan, 2.0, 1.0], "all_nan": [np.nan] * 3})
    specs = {"m": MetricSpec("m", "M", True), "all_nan": MetricSpec("all_nan", "Gone", True)}
    tex = write_tables(aggregate(df, specs), specs, tmp_path, caption="t")["tex"].read_text()
    rows = tex_rows(tex)
    assert rows["A"] == ["--", "--"]
    assert rows["B"][0].startswith("\\textbf{2.000")
    assert rows["C"][0].startswith("\\underline{1.000")
    assert [r[1] for r in rows.values()] == ["--", "--", "--"]


def test_untrained_rows_marked_and_never_ranked(tmp_path):
    df = pd.DataFrame(
        {
            "method": ["Good", "Random", "Okay", "Bad"],
            "m": [0.5, 0.01, 0.7, 0.9],  # Random would be best
            "untrained": [False, True, False, False],
        }
    )
    specs = {"m": MetricSpec("m", "M", False)}
    paths = write_tables(aggregate(df, specs), specs, tmp_path, caption="Results.")
    tex = paths["tex"].read_text()
    rows = tex_rows(tex)
    assert "Random$^\\dagger$" in rows
    assert rows["Random$^\\dagger$"] == ["0.010 $\\pm$ 0.000"]
    assert rows["Good"][0].startswith("\\textbf{") and rows["Okay"][0].startswith("\\underline{")
    caption = re.search(r"\\caption\{(.*)\}\n", tex).group(1)
    assert caption.startswith("Results.") and "$^\\dagger$" in caption and "untrained" in caption
    md = paths["md"].read_text()
    assert "Random †" in md_rows(md)
    assert md_rows(md)["Random †"] == ["0.010 ± 0.000"]
    assert md_rows(md)["Good"] == ["**0.500 ± 0.000**"]
    assert any(line.startswith("† ") and "untrained" in line for line in md.splitlines())


def test_no_dagger_note_without_untrained_rows(tmp_path, three_methods):
    paths = write_tables(aggregate(three_methods, SPECS), SPECS, tmp_path, caption="c", label="tab:t")
    assert "dagger" not in paths["tex"].read_text()
    assert "†" not in paths["md"].read_text()


def test_special_characters_escaped(tmp_path):
    df = pd.DataFrame({"method": ["sty_a2k", "50%", "A&B", "#1"], "m": [1.0, 2.0, 3.0, 4.0]})
    specs = {"m": MetricSpec("m", "score_x", True)}
    tex = write_tables(aggregate(df, specs), specs, tmp_path, caption="Top_1 at 95% & #3")["tex"].read_text()
    assert set(tex_rows(tex)) == {"sty\\_a2k", "50\\%", "A\\&B", "\\#1"}
    assert "\\caption{Top\\_1 at 95\\% \\& \\#3}" in tex
    assert tex_header(tex)[1] == "score\\_x $\\uparrow$"
    assert latex_escape("a\\b{c}~$^") == "a\\textbackslash{}b\\{c\\}\\textasciitilde{}\\$\\textasciicircum{}"


# --------------------------------------------------------------------------- Markdown


def test_markdown_arrows_and_cells(tmp_path, three_methods):
    md = write_tables(aggregate(three_methods, SPECS), SPECS, tmp_path, caption="Main results")["md"].read_text()
    lines = md.splitlines()
    assert lines[0] == "Main results"
    header = next(line for line in lines if line.startswith("| Method"))
    assert header == "| Method | Content loss ↓ | Preference (%) ↑ |"
    assert re.search(r"^\|:---\|:---:\|:---:\|$", md, re.M)
    rows = md_rows(md)
    assert rows["StyA2K"] == ["**0.550 ± 0.071**", "**60.0 ± 0.0**"]
    assert rows["All2All"] == ["1.000 ± 0.000", "10.0 ± 0.0"]


# --------------------------------------------------------------------------- CSV


def test_csv_round_trip(tmp_path):
    df = pd.DataFrame(
        {
            "method": ["A", "A", "A", "B", "B"],
            "content": ["c0", "c1", "c2", "c0", "c1"],
            "style": ["s"] * 5,
            "m": [1.0, 2.0, 3.0, 4.0, np.nan],
            "gone": [np.nan] * 5,
            "untrained": [False, False, False, True, True],
        }
    )
    specs = {"m": MetricSpec("m", "M", False), "gone": MetricSpec("gone", "Gone", False)}
    path = write_tables(aggregate(df, specs), specs, tmp_path, caption="c")["csv"]
    back = pd.read_csv(path)
    assert list(back.columns) == [
        "method", "untrained", "m_mean", "m_std", "m_n", "m_ci95", "gone_mean", "gone_std", "gone_n", "gone_ci95"
    ]
    a, b = back.iloc[0], back.iloc[1]
    assert a["method"] == "A" and not a["untrained"]
    assert a["m_mean"] == pytest.approx(2.0) and a["m_std"] == pytest.approx(1.0) and a["m_n"] == 3
    assert a["m_ci95"] == pytest.approx(T_975_DF2 / math.sqrt(3), rel=1e-12)
    assert b["method"] == "B" and bool(b["untrained"])
    assert (b["m_mean"], b["m_std"], b["m_n"], b["m_ci95"]) == (4.0, 0.0, 1, 0.0)
    assert back["gone_n"].tolist() == [0, 0] and back["gone_mean"].isna().all()
    # the read-back frame is itself a valid aggregate
    again = write_tables(back, specs, tmp_path / "again", caption="c")["csv"]
    assert again.read_text() == path.read_text()


# --------------------------------------------------------------------------- preference rows


def test_preference_rows_appended_as_columns(tmp_path, three_methods):
    rows = [("overall", "StyA2K", 30), ("overall", "AdaIN", 15), ("overall", "All2All", 5)]
    rows += [("style", "stya2k", 5), ("style", "adain", 5)]  # case-insensitive match
    votes = pd.DataFrame([(q, m) for q, m, k in rows for _ in range(k)], columns=["question", "method"])
    prefs = tally(votes, ["StyA2K", "AdaIN", "All2All"])
    specs = {"content_loss": CONTENT}
    with pytest.raises(TableError, match="different case"):  # without a method list, case variants stay apart
        write_tables(aggregate(three_methods, specs), specs, tmp_path, caption="c", extra_rows=tally(votes))
    paths = write_tables(aggregate(three_methods, specs), specs, tmp_path, caption="c", extra_rows=prefs)
    tex = paths["tex"].read_text()
    assert tex_header(tex)[-2:] == ["pref. style (\\%) $\\uparrow$", "pref. overall (\\%) $\\uparrow$"]
    trows = tex_rows(tex)
    assert trows["StyA2K"][1:] == ["\\textbf{50.0}", "\\textbf{60.0}"]
    assert trows["AdaIN"][1:] == ["\\textbf{50.0}", "\\underline{30.0}"]
    assert trows["All2All"][1:] == ["\\underline{0.0}", "10.0"]
    back = pd.read_csv(paths["csv"]).set_index("method")
    assert back.loc["StyA2K", "pref_overall_mean"] == pytest.approx(60.0)
    assert back.loc["StyA2K", "pref_overall_n"] == 50
    assert back.loc["StyA2K", "pref_overall_ci_low"] == pytest.approx(46.18, abs=0.01)
    assert back.loc["StyA2K", "pref_overall_ci_high"] == pytest.approx(72.39, abs=0.01)
    assert md_rows(paths["md"].read_text())["StyA2K"][1:] == ["**50.0**", "**60.0**"]


def test_preference_only_methods_get_rows(tmp_path, three_methods):
    prefs = tally(pd.DataFrame({"question": ["overall"] * 2, "method": ["StyA2K", "Human"]}))
    specs = {"content_loss": CONTENT}
    paths = write_tables(aggregate(three_methods, specs), specs, tmp_path, caption="c", extra_rows=prefs)
    tex = paths["tex"].read_text()
    rows = tex_rows(tex)
    assert list(rows) == ["StyA2K", "AdaIN", "All2All", "Human"]
    assert rows["Human"][0] == "--"
    assert rows["AdaIN"][1] == "--"


# --------------------------------------------------------------------------- writing


def test_writes_are_atomic_and_leave_no_temporaries(tmp_path, three_methods, monkeypatch):
    out = tmp_path / "deep" / "table"
    paths = write_tables(aggregate(three_methods, SPECS), SPECS, out, caption="c")
    assert sorted(p.name for p in out.iterdir()) == ["table.csv", "table.md", "table.tex"]
    before = paths["csv"].read_text()

    replaced = []
    real_replace = tables.os.replace

    def spy(src, dst):
        replaced.append((str(src), str(dst)))
        return real_replace(src, dst)

    monkeypatch.setattr(tables.os, "replace", spy)
    write_tables(aggregate(three_methods, SPECS), SPECS, out, caption="c")
    assert [dst for _, dst in replaced] == [str(paths[k]) for k in ("csv", "md", "tex")]
    assert all(src != dst and "tmp" in src for src, dst in replaced)

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(tables.os, "replace", boom)
    with pytest.raises(OSError):
        write_tables(aggregate(three_methods, SPECS), SPECS, out, caption="changed")
    assert paths["csv"].read_text() == before  # old file intact
    assert sorted(p.name for p in out.iterdir()) == ["table.csv", "table.md", "table.tex"]


def test_write_tables_errors(tmp_path, three_methods):
    agg = aggregate(three_methods, SPECS)
    with pytest.raises(TableError, match="lacks"):
        write_tables(agg, {"other": CONTENT}, tmp_path, caption="c")
    with pytest.raises(TableError, match="no rows"):
        write_tables(agg.iloc[:0], SPECS, tmp_path, caption="c")
    with pytest.raises(TableError, match="repeats"):
        write_tables(pd.concat([agg, agg]), SPECS, tmp_path, caption="c")
    with pytest.raises(TableError, match="share"):
        no_share = pd.DataFrame({"method": ["A"], "question": ["overall"]})
        write_tables(agg, SPECS, tmp_path, caption="c", extra_rows=no_share)


def test_unranked_rows_are_shown_but_never_marked(tmp_path):
    spec = {"err": MetricSpec("err", "error", False, "{:.3g}")}
    agg = pd.DataFrame({"method": ["a", "b", "floor"], "untrained": [False, False, False],
                        "err_mean": [0.3, 0.2, 0.01], "err_std": [0.0] * 3, "err_n": [2] * 3, "err_ci95": [0.0] * 3})
    paths = write_tables(agg, spec, tmp_path, caption="", unranked=["floor"], stem="temporal")
    assert sorted(p.name for p in paths.values()) == ["temporal.csv", "temporal.md", "temporal.tex"]
    md = paths["md"].read_text()
    # the lowest value is not the best method; one format for the column (3 digits of its largest value)
    assert "| b | **0.200 ± 0.000** |" in md and "| floor | 0.010 ± 0.000 |" in md
    tex = paths["tex"].read_text()
    assert "\\textbf{0.2" in tex and "\\underline{0.3" in tex and "floor & 0.01" in tex
