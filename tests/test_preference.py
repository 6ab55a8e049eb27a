"""Tests for metrics.preference: reading/validating votes, Wilson intervals, chi-square, pairwise binomial tests."""
from __future__ import annotations

import math
from fractions import Fraction
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from harness.errors import VotesError
from harness.io import read_votes
from metrics.preference import (
    PreferenceTally,
    VoteProblem,
    chi_square_uniform,
    holm_adjust,
    pairwise_binomial,
    tally,
    wilson_interval,
)

METHODS = ["A", "B", "C"]
Z95 = 1.959963984540054  # Φ⁻¹(0.975)


def hand_wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Textbook Wilson score interval: (p̂ + z²/2n ± z√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)."""
    p = k / n
    centre = p + z * z / (2 * n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)


def overall_rows(counts: dict[str, int], question: str = "overall") -> list[str]:
    """One vote per participant for ``question`` on group g1, ``counts`` votes per method."""
    rows, i = [], 0
    for method, k in counts.items():
        for _ in range(k):
            rows.append(f"p{i},g1,{question},{method}")
            i += 1
    return rows


def write_votes(path: Path, rows: list[str], header: str = "participant,group,question,method") -> Path:
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def votes_30_15_5(tmp_path) -> pd.DataFrame:
    path = write_votes(tmp_path / "votes.csv", overall_rows({"A": 30, "B": 15, "C": 5}))
    votes, problems = read_votes(path, METHODS)
    assert problems == []
    return votes


# --------------------------------------------------------------------------- Wilson interval


def test_wilson_matches_published_value():
    low, high = wilson_interval(30, 50, 0.95)
    assert round(low, 4) == 0.4618
    assert round(high, 4) == 0.7239


def test_wilson_matches_textbook_formula():
    for k, n in [(30, 50), (15, 50), (5, 50), (1, 7), (99, 100)]:
        assert wilson_interval(k, n) == pytest.approx(hand_wilson(k, n), abs=1e-12)
    # other confidence levels use z = Φ⁻¹((1 + c) / 2)
    z90 = stats.norm.ppf(0.95)
    assert wilson_interval(30, 50, 0.90) == pytest.approx(hand_wilson(30, 50, z90), abs=1e-12)


def test_wilson_edges():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert all(math.isnan(v) for v in wilson_interval(0, 0))
    with pytest.raises(ValueError):
        wilson_interval(3, 2)
    with pytest.raises(ValueError):
        wilson_interval(1, 2, confidence=1.0)


# --------------------------------------------------------------------------- tally


def test_tally_shares_and_intervals(votes_30_15_5):
    t = tally(votes_30_15_5, METHODS)
    assert list(t.columns) == ["question", "method", "votes", "total", "share", "ci_low", "ci_high"]
    assert list(t["question"]) == ["overall"] * 3
    assert list(t["method"]) == METHODS
    assert list(t["votes"]) == [30, 15, 5]
    assert list(t["total"]) == [50, 50, 50]
    assert t["share"].tolist() == pytest.approx([0.6, 0.3, 0.1])
    for (_, row), k in zip(t.iterrows(), [30, 15, 5]):
        low, high = hand_wilson(k, 50)
        assert row["ci_low"] == pytest.approx(low, abs=1e-12)
        assert row["ci_high"] == pytest.approx(high, abs=1e-12)
    a = t.iloc[0]
    assert (round(a["ci_low"], 4), round(a["ci_high"], 4)) == (0.4618, 0.7239)


def test_tally_lists_methods_without_votes(votes_30_15_5):
    t = tally(votes_30_15_5, ["A", "B", "C", "D"])
    d = t[t["method"] == "D"].iloc[0]
    assert d["votes"] == 0 and d["share"] == 0.0 and d["ci_low"] == 0.0 and d["ci_high"] > 0
    # read_votes remembers the method list, so tally without methods still lists C
    votes = votes_30_15_5[votes_30_15_5["method"] != "C"]
    assert list(tally(votes)["method"]) == METHODS
    # without any list: methods in order of first appearance
    plain = pd.DataFrame({"question": ["style", "style", "content"], "method": ["Y", "X", "X"]})
    t = tally(plain)
    assert list(zip(t["question"], t["method"], t["votes"])) == [
        ("content", "Y", 0), ("content", "X", 1), ("style", "Y", 1), ("style", "X", 1)
    ]


def test_tally_rejects_votes_for_unlisted_methods(votes_30_15_5):
    with pytest.raises(ValueError, match="unknown method"):
        tally(votes_30_15_5, ["A", "B"])
    with pytest.raises(ValueError, match="question"):
        tally(pd.DataFrame({"method": ["A"]}))


def test_tally_matches_methods_ignoring_case():
    votes = pd.DataFrame({"question": ["overall"] * 3, "method": ["adain", "AdaIN", "StyA2K"]})
    t = tally(votes, ["AdaIN", "StyA2K"])
    assert list(zip(t["method"], t["votes"])) == [("AdaIN", 2), ("StyA2K", 1)]


# --------------------------------------------------------------------------- chi-square and binomial


def test_chi_square_uniform_is_19(votes_30_15_5):
    c = chi_square_uniform(votes_30_15_5)
    assert len(c) == 1
    row = c.iloc[0]
    e = 50 / 3
    by_hand = sum((o - e) ** 2 / e for o in (30, 15, 5))
    assert by_hand == pytest.approx(19.0, abs=1e-12)
    assert row["statistic"] == pytest.approx(19.0, abs=1e-12)
    assert row["dof"] == 2 and row["total"] == 50 and row["methods"] == 3
    assert row["p_value"] == pytest.approx(math.exp(-19.0 / 2), rel=1e-9)  # chi² with 2 dof: p = e^(−x/2)


def exact_two_sided(k: int, n: int) -> float:
    """Sum of the Binomial(n, 1/2) pmf over outcomes no more likely than k (exact fractions)."""
    pmf = [Fraction(math.comb(n, i), 2**n) for i in range(n + 1)]
    return float(sum(p for p in pmf if p <= pmf[k]))


def test_pairwise_binomial_matches_hand_sum(votes_30_15_5):
    p = pairwise_binomial(votes_30_15_5)
    assert list(p.columns) == ["question", "method_a", "method_b", "votes_a", "votes_b", "n", "p_value", "p_holm"]
    assert list(zip(p["method_a"], p["method_b"])) == [("A", "B"), ("A", "C"), ("B", "C")]
    ab = p.iloc[0]
    assert (ab["votes_a"], ab["votes_b"], ab["n"]) == (30, 15, 45)
    hand = exact_two_sided(30, 45)
    # symmetric under p = 1/2: twice the upper tail P(X ≥ 30)
    assert hand == pytest.approx(2 * sum(math.comb(45, i) for i in range(30, 46)) / 2**45, rel=1e-12)
    assert ab["p_value"] == pytest.approx(hand, rel=1e-9)
    assert ab["p_value"] == pytest.approx(stats.binomtest(30, 45, 0.5).pvalue, rel=1e-12)
    raw = [exact_two_sided(30, 45), exact_two_sided(30, 35), exact_two_sided(15, 20)]
    assert p["p_value"].tolist() == pytest.approx(raw, rel=1e-9)
    # Holm by hand: sort ascending, multiply by m, m-1, ..., keep monotone, cap at 1
    order = np.argsort(raw)
    expected = [0.0] * 3
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (3 - rank) * raw[i]))
        expected[i] = running
    assert p["p_holm"].tolist() == pytest.approx(expected, rel=1e-9)


def test_holm_adjust():
    assert holm_adjust([0.01, 0.04, 0.03]).tolist() == pytest.approx([0.03, 0.06, 0.06])
    assert holm_adjust([0.5, 0.6]).tolist() == pytest.approx([1.0, 1.0])
    out = holm_adjust([0.01, math.nan, 0.02])
    assert out[0] == pytest.approx(0.02) and math.isnan(out[1]) and out[2] == pytest.approx(0.02)


def test_pairwise_binomial_with_no_votes_for_a_pair():
    votes = pd.DataFrame({"question": ["style"] * 4, "method": ["A"] * 4})
    p = pairwise_binomial(votes, ["A", "B", "C"])
    bc = p[(p["method_a"] == "B") & (p["method_b"] == "C")].iloc[0]
    assert bc["n"] == 0 and math.isnan(bc["p_value"]) and math.isnan(bc["p_holm"])
    # the family has two tests (A-B, A-C), both with p = 2/16
    ab = p.iloc[0]
    assert ab["p_value"] == pytest.approx(0.125) and ab["p_holm"] == pytest.approx(0.25)


# --------------------------------------------------------------------------- reading and validation


def test_read_votes_reports_and_excludes_invalid_rows(tmp_path):
    rows = [
        "p1,g1,overall,A",  # line 2
        "p1,g1,content,B",  # line 3
        "p2,g1,overall,Nope",  # line 4: unknown method
        "p2,g1,beauty,A",  # line 5: unknown question
        "p1,g1,overall,C",  # line 6: duplicate of line 2
        "",  # line 7: blank, skipped silently
        "p3,,style,A",  # line 8: missing group
        "p3,g2,style",  # line 9: too few fields
        "P4 , g2 , STYLE , c ",  # line 10: fine (whitespace, case)
    ]
    path = write_votes(tmp_path / "votes.csv", rows)
    votes, problems = read_votes(path, METHODS)
    assert [p.line for p in problems] == [4, 5, 6, 8, 9]
    assert all(isinstance(p, VoteProblem) for p in problems)
    assert "unknown method 'Nope'" in problems[0].reason
    assert "unknown question 'beauty'" in problems[1].reason
    assert "duplicate" in problems[2].reason and "line 2" in problems[2].reason
    assert "missing group" in problems[3].reason
    assert "fields" in problems[4].reason
    assert str(problems[0]).startswith("line 4: ")
    assert list(votes.columns) == ["participant", "group", "question", "method", "line"]
    assert votes["line"].tolist() == [2, 3, 10]
    assert votes["method"].tolist() == ["A", "B", "C"]
    assert votes["question"].tolist() == ["overall", "content", "style"]
    t = tally(votes)
    overall = t[t["question"] == "overall"]
    assert overall["votes"].tolist() == [1, 0, 0]  # the duplicate vote for C did not count


def test_read_votes_without_method_list_accepts_any_method(tmp_path):
    path = write_votes(tmp_path / "v.csv", ["p1,g1,overall,Mine", "p2,g1,overall,Theirs", "p2,g1,overall,Mine"])
    votes, problems = read_votes(path)
    assert votes["method"].tolist() == ["Mine", "Theirs"]
    assert [p.line for p in problems] == [4]


def test_read_votes_line_numbers_with_quoted_multiline_field(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text('participant,group,question,method\n"p1","g\n1",overall,A\np2,g1,bad,A\n', encoding="utf-8")
    votes, problems = read_votes(path, METHODS)
    assert votes["line"].tolist() == [2]
    assert [p.line for p in problems] == [4]


def test_read_votes_header_in_other_order_and_bom(tmp_path):
    path = tmp_path / "v.csv"
    path.write_text("\ufeffMethod,Question,Group,Participant\nB,style,g1,p1\n", encoding="utf-8")
    votes, problems = read_votes(path, METHODS)
    assert problems == []
    assert votes.iloc[0][["participant", "group", "question", "method"]].tolist() == ["p1", "g1", "style", "B"]


@pytest.mark.parametrize(
    "content",
    [
        None,
        "",
        "\n\n",
        "participant,group,method\np1,g1,A\n",
        "p1,g1,overall,A\n",
        "participant,group,question,method,x\n",
    ],
    ids=["missing", "empty", "blank", "missing-column", "no-header", "extra-column"],
)
def test_read_votes_unreadable_files(tmp_path, content):
    path = tmp_path / "votes.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError) as info:
        read_votes(path, METHODS)
    assert isinstance(info.value, VotesError)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert "participant,group,question,method" in message


def test_read_votes_rejects_methods_equal_ignoring_case(tmp_path):
    path = write_votes(tmp_path / "v.csv", ["p1,g1,overall,A"])
    with pytest.raises(ValueError, match="ignoring case"):
        read_votes(path, ["A", "a"])


# --------------------------------------------------------------------------- accumulator


def test_preference_tally_accumulates(votes_30_15_5):
    metric = PreferenceTally(METHODS)
    assert metric.higher_is_better is True
    assert metric.update(votes_30_15_5.iloc[:20]) == 20
    assert metric.update(votes_30_15_5.iloc[20:]) == 30
    pd.testing.assert_frame_equal(metric.compute(), tally(votes_30_15_5, METHODS))
    metric.reset()
    empty = metric.compute()
    assert empty.empty and list(empty.columns) == ["question", "method", "votes", "total", "share", "ci_low", "ci_high"]
    with pytest.raises(ValueError, match="unknown method"):
        metric.update(pd.DataFrame({"question": ["overall"], "method": ["Z"]}))
    assert metric.config()["interval"] == "wilson"


# --------------------------------------------------------------------------- participant bootstrap, position bias
def _clustered_votes(participants: int = 30, per_participant: int = 20, seed: int = 1) -> pd.DataFrame:
    """Every participant votes for one favourite method on all their groups (maximally clustered)."""
    rng = np.random.default_rng(seed)
    rows = []
    for p in range(participants):
        favourite = ["a", "b", "c"][rng.integers(3)]
        rows += [{"participant": f"p{p}", "group": f"g{g}", "question": "overall", "method": favourite}
                 for g in range(per_participant)]
    return pd.DataFrame(rows)


def test_participant_bootstrap_matches_a_loop_over_resampled_participants():
    from metrics.preference import participant_bootstrap

    votes = _clustered_votes(participants=12, per_participant=5)
    votes.loc[votes.index[::7], "method"] = "b"  # not fully clustered
    result = participant_bootstrap(votes, methods=["a", "b", "c"], resamples=300, seed=4).set_index("method")
    rng = np.random.default_rng(4)  # the same draws, spelt out: participants drawn with replacement, one by one
    participants = list(dict.fromkeys(votes["participant"]))
    weights = rng.multinomial(len(participants), np.full(len(participants), 1 / len(participants)), size=300)
    shares = {m: [] for m in "abc"}
    for draw in weights:
        picked = [p for p, times in zip(sorted(participants), draw) for _ in range(times)]
        chosen = pd.concat([votes[votes["participant"] == p] for p in picked])
        for m in "abc":
            shares[m].append((chosen["method"] == m).sum() / len(chosen))
    for m in "abc":
        assert result.loc[m, "boot_low"] == pytest.approx(np.quantile(shares[m], 0.025), abs=1e-12)
        assert result.loc[m, "boot_high"] == pytest.approx(np.quantile(shares[m], 0.975), abs=1e-12)
        assert result.loc[m, "share"] == pytest.approx((votes["method"] == m).mean())
    assert (result["participants"] == 12).all()


def test_clustered_votes_get_a_wider_interval_than_wilson():
    from metrics.preference import participant_bootstrap

    votes = _clustered_votes()
    wilson = tally(votes, methods=["a", "b", "c"]).set_index("method")
    boot = participant_bootstrap(votes, methods=["a", "b", "c"], seed=0).set_index("method")
    for m in "abc":  # 20 identical votes per participant: the effective sample is 30, not 600 (√20 ≈ 4.5× wider)
        assert (boot.loc[m, "boot_high"] - boot.loc[m, "boot_low"]) > 3 * (wilson.loc[m, "ci_high"] -
                                                                           wilson.loc[m, "ci_low"])
    again = participant_bootstrap(votes, methods=["a", "b", "c"], seed=0)
    assert again.equals(participant_bootstrap(votes, methods=["a", "b", "c"], seed=0))


def test_position_bias_counts_by_hand():
    from metrics.preference import position_bias

    detail = pd.DataFrame({"question": ["overall"] * 6 + ["style"] * 3, "position": [1, 1, 1, 1, 2, 3, 1, 2, 3]})
    table = position_bias(detail).set_index(["question", "position"])
    assert table.loc[("overall", 1), "votes"] == 4 and table.loc[("overall", 1), "share"] == pytest.approx(4 / 6)
    assert table.loc[("style", 2), "share"] == pytest.approx(1 / 3)
    # chi-square of [4, 1, 1] against 2 each: (4 + 1 + 1) / 2 = 3 on 2 dof → p = exp(-3/2)
    assert table.loc[("overall", 1), "p_uniform"] == pytest.approx(math.exp(-1.5))
    assert table.loc[("style", 1), "p_uniform"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="position"):
        position_bias(detail.drop(columns="position"))


def test_tally_command_writes_bootstrap_positions_and_figure(tmp_path, capsys):
    from harness.cli import main

    votes = _clustered_votes(participants=6, per_participant=3)
    votes[["participant", "group", "question", "method"]].to_csv(tmp_path / "votes.csv", index=False)
    votes.assign(position=[1 + i % 3 for i in range(len(votes))]).to_csv(tmp_path / "detail.csv", index=False)
    assert main(["tally", str(tmp_path / "votes.csv"), "--positions", str(tmp_path / "detail.csv"), "--bootstrap",
                 "200", "--out", str(tmp_path / "out")]) == 0
    written = pd.read_csv(tmp_path / "out" / "tally.csv")
    assert {"boot_low", "boot_high", "participants", "ci_low"} <= set(written.columns)
    assert (tmp_path / "out" / "positions.csv").is_file() and (tmp_path / "out" / "preference.png").stat().st_size
    assert "positions:" in capsys.readouterr().out
