"""User-study preference tallies (the preference rows of a style-transfer results table).

A votes file is a CSV with the header ``participant,group,question,method``: one row per answer, where ``group`` is
the comparison shown (e.g. the content × style pair), ``question`` is one of ``content``, ``style`` or ``overall``
and ``method`` is the method the participant chose. :func:`harness.io.read_votes` reads the file and
:func:`votes_frame` validates it row by row (bad rows are reported with their line number and left out), :func:`tally` gives each method's share of the votes per question
with a Wilson score interval, :func:`chi_square_uniform` tests each question against a uniform split and
:func:`pairwise_binomial` compares every pair of methods with an exact binomial test (Holm-adjusted per question).

Method order: the ``methods`` argument when given (names matched case-insensitively and reported in its
spelling); otherwise the order of first appearance in the votes. Question order: content, style, overall, then any
other question in order of appearance (only :func:`votes_frame` rejects unknown questions).
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd

__all__ = [
    "COLUMNS",
    "QUESTIONS",
    "PreferenceTally",
    "VoteProblem",
    "chi_square_uniform",
    "holm_adjust",
    "pairwise_binomial",
    "participant_bootstrap",
    "position_bias",
    "tally",
    "votes_frame",
    "wilson_interval",
]

COLUMNS: tuple[str, ...] = ("participant", "group", "question", "method")
QUESTIONS: tuple[str, ...] = ("content", "style", "overall")

TALLY_COLUMNS = ["question", "method", "votes", "total", "share", "ci_low", "ci_high"]
CHI2_COLUMNS = ["question", "methods", "total", "statistic", "dof", "p_value"]
PAIR_COLUMNS = ["question", "method_a", "method_b", "votes_a", "votes_b", "n", "p_value", "p_holm"]
BOOTSTRAP_COLUMNS = ["question", "method", "share", "boot_low", "boot_high", "participants", "resamples"]
POSITION_COLUMNS = ["question", "position", "votes", "total", "share", "ci_low", "ci_high", "p_uniform"]


@dataclass(frozen=True)
class VoteProblem:
    """A rejected row of a votes file: its 1-based line in the file (the header is line 1) and why."""

    line: int
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.reason}"


# --------------------------------------------------------------------------- reading


def _method_lookup(methods: Sequence[str] | None) -> dict[str, str] | None:
    """Case-folded name → canonical spelling; ``ValueError`` for names that collide case-insensitively."""
    if methods is None:
        return None
    if isinstance(methods, str):
        raise TypeError("methods must be a sequence of names, not a single string")
    lookup: dict[str, str] = {}
    for name in methods:
        name = str(name).strip()
        if not name:
            raise ValueError("method names must not be empty")
        key = name.casefold()
        if key in lookup:
            raise ValueError(f"method names {lookup[key]!r} and {name!r} are the same ignoring case")
        lookup[key] = name
    return lookup


def _check_vote(line: int, fields: Sequence[str], lookup: dict[str, str] | None) -> VoteProblem | dict:
    """One row's vote as a record, or the :class:`VoteProblem` that rejects it (duplicates are checked by the
    caller)."""
    if len(fields) != len(COLUMNS):
        return VoteProblem(line, f"expected {len(COLUMNS)} fields, found {len(fields)}")
    participant, group, question, method = (str(v).strip() for v in fields)
    missing = [c for c, v in zip(COLUMNS, (participant, group, question, method)) if not v]
    if missing:
        return VoteProblem(line, f"missing {', '.join(missing)}")
    if question.casefold() not in QUESTIONS:
        return VoteProblem(line, f"unknown question {question!r} (expected one of {', '.join(QUESTIONS)})")
    if lookup is not None:
        if method.casefold() not in lookup:
            return VoteProblem(line, f"unknown method {method!r} (expected one of {', '.join(lookup.values())})")
        method = lookup[method.casefold()]
    return {"participant": participant, "group": group, "question": question.casefold(), "method": method,
            "line": line}


def votes_frame(
    rows: Iterable[tuple[int, Sequence[str]]], methods: Sequence[str] | None = None, source: str = ""
) -> tuple[pd.DataFrame, list[VoteProblem]]:
    """Validate vote rows — ``(line, (participant, group, question, method))``, e.g. from
    :func:`harness.io.read_votes` — and return ``(votes, problems)``.

    ``votes`` has the columns ``participant, group, question, method, line`` (all strings but ``line``, the 1-based
    line of the row in its file), with questions lower-cased and — when ``methods`` is given — methods in the
    spelling of ``methods`` (``votes.attrs["methods"]`` keeps that list so that :func:`tally` lists methods without
    votes too). Rows with missing fields, a wrong number of fields, an unknown question, an unknown method (only
    checked when ``methods`` is given, ignoring case) or a repeated (participant, group, question) — the first vote
    counts — are left out and reported as :class:`VoteProblem`.
    """
    lookup = _method_lookup(methods)
    records: list[dict] = []
    problems: list[VoteProblem] = []
    seen: dict[tuple[str, str, str], int] = {}
    for line, fields in rows:
        vote = _check_vote(line, fields, lookup)
        if isinstance(vote, VoteProblem):
            problems.append(vote)
            continue
        key = (vote["participant"], vote["group"], vote["question"])
        if key in seen:
            problems.append(VoteProblem(line, f"duplicate vote: participant {key[0]!r} already answered {key[2]!r} "
                                              f"for group {key[1]!r} on line {seen[key]}"))
            continue
        seen[key] = line
        records.append(vote)
    votes = pd.DataFrame.from_records(records, columns=[*COLUMNS, "line"])
    votes["line"] = votes["line"].astype("int64")
    votes.attrs["source"] = source
    if lookup is not None:
        votes.attrs["methods"] = list(lookup.values())
    return votes, problems


# --------------------------------------------------------------------------- statistics


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a proportion ``k / n``:
    ``(p̂ + z²/2n ± z·√(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)`` with ``z = Φ⁻¹((1 + confidence) / 2)``.
    ``(nan, nan)`` for ``n = 0``; the bounds are clipped to [0, 1] (exactly 0 for ``k = 0``, 1 for ``k = n``)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"need 0 <= k <= n, got k={k}, n={n}")
    if n == 0:
        return math.nan, math.nan
    from scipy import stats  # scipy.stats takes ~1 s to import: only where a test statistic is computed

    z = float(stats.norm.ppf((1.0 + confidence) / 2.0))
    p = k / n
    z2 = z * z
    denominator = 1.0 + z2 / n
    centre = (p + z2 / (2 * n)) / denominator
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4 * n * n)) / denominator
    low = 0.0 if k == 0 else max(0.0, centre - half)  # exact at the ends: the bound is 0 (1) analytically
    high = 1.0 if k == n else min(1.0, centre + half)
    return low, high


def holm_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order. NaNs are not
    part of the family and stay NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    adjusted = np.full_like(p, np.nan)
    valid = np.flatnonzero(~np.isnan(p))
    m = valid.size
    if m == 0:
        return adjusted
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        adjusted[i] = running
    return adjusted


def _check_votes(votes: pd.DataFrame) -> None:
    if not isinstance(votes, pd.DataFrame):
        raise TypeError(f"votes must be a pandas DataFrame, got {type(votes).__name__}")
    missing = [c for c in ("question", "method") if c not in votes.columns]
    if missing:
        raise ValueError(f"votes lack the column(s) {', '.join(missing)} (expected {', '.join(COLUMNS)})")
    if votes["question"].isna().any() or votes["method"].isna().any():
        raise ValueError("votes contain missing questions or methods (read them with read_votes)")


def _prepare(votes: pd.DataFrame, methods: Sequence[str] | None) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Canonical (question, method) columns, the method order and the question order."""
    _check_votes(votes)
    if methods is None:
        methods = votes.attrs.get("methods")
    lookup = _method_lookup(methods)
    question = votes["question"].astype(str).str.strip().str.casefold()
    method = votes["method"].astype(str).str.strip()
    if lookup is not None:
        canonical = method.map(lambda m: lookup.get(m.casefold()))
        unknown = sorted(set(method[canonical.isna()]))
        if unknown:
            raise ValueError(
                f"votes for unknown method(s) {', '.join(map(repr, unknown))} (expected one of "
                f"{', '.join(lookup.values())})"
            )
        method = canonical.astype(str)
        method_order = list(lookup.values())
    else:
        method_order = list(dict.fromkeys(method))
    present = list(dict.fromkeys(question))
    question_order = [q for q in QUESTIONS if q in present] + [q for q in present if q not in QUESTIONS]
    frame = pd.DataFrame({"question": question.to_numpy(dtype=object), "method": method.to_numpy(dtype=object)})
    return frame, method_order, question_order


def _counts(frame: pd.DataFrame, question: str, methods: list[str]) -> np.ndarray:
    counts = frame.loc[frame["question"] == question, "method"].value_counts()
    return np.array([int(counts.get(m, 0)) for m in methods], dtype=np.int64)


def tally(votes: pd.DataFrame, methods: Sequence[str] | None = None, confidence: float = 0.95) -> pd.DataFrame:
    """One row per (question, method): ``question, method, votes, total, share, ci_low, ci_high``.

    ``share = votes / total`` (a fraction in [0, 1]) among the valid votes on that question, with its Wilson score
    interval at ``confidence``. Every method of ``methods`` (or of ``votes.attrs["methods"]``, set by
    :func:`harness.io.read_votes`) appears, with 0 votes if need be; without a method list, the methods voted for anywhere in
    ``votes``. Votes for a method outside a given list are a ``ValueError``.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    frame, method_order, question_order = _prepare(votes, methods)
    rows = []
    for q in question_order:
        counts = _counts(frame, q, method_order)
        total = int(counts.sum())
        for m, k in zip(method_order, counts):
            low, high = wilson_interval(int(k), total, confidence)
            share = k / total if total else math.nan
            rows.append((q, m, int(k), total, share, low, high))
    out = pd.DataFrame(rows, columns=TALLY_COLUMNS)
    return out.astype(
        {"votes": "int64", "total": "int64", "share": "float64", "ci_low": "float64", "ci_high": "float64"}
    )


def chi_square_uniform(votes: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Per question, Pearson's chi-square goodness of fit of the vote counts against a uniform split over the
    methods (see :func:`tally` for which): ``question, methods, total, statistic, dof, p_value`` with
    ``dof = methods − 1``. Statistic and p-value are NaN with fewer than two methods or no votes."""
    from scipy import stats

    frame, method_order, question_order = _prepare(votes, methods)
    rows = []
    for q in question_order:
        counts = _counts(frame, q, method_order)
        total, k = int(counts.sum()), len(method_order)
        if k >= 2 and total > 0:
            result = stats.chisquare(counts)
            statistic, p_value = float(result.statistic), float(result.pvalue)
        else:
            statistic = p_value = math.nan
        rows.append((q, k, total, statistic, max(k - 1, 0), p_value))
    out = pd.DataFrame(rows, columns=CHI2_COLUMNS)
    return out.astype(
        {"methods": "int64", "total": "int64", "statistic": "float64", "dof": "int64", "p_value": "float64"}
    )


def pairwise_binomial(votes: pd.DataFrame, methods: Sequence[str] | None = None) -> pd.DataFrame:
    """Per question and pair of methods (a, b) (in method order): ``question, method_a, method_b, votes_a, votes_b,
    n, p_value, p_holm`` — the two-sided exact binomial test of ``votes_a`` out of ``n = votes_a + votes_b`` against
    1/2 (``scipy.stats.binomtest``), and its Holm-adjusted p-value within the question. Pairs with ``n = 0`` get
    NaN p-values and are not counted in the Holm family."""
    from scipy import stats

    frame, method_order, question_order = _prepare(votes, methods)
    rows = []
    for q in question_order:
        counts = dict(zip(method_order, _counts(frame, q, method_order)))
        block = []
        for a, b in combinations(method_order, 2):
            ka, kb = int(counts[a]), int(counts[b])
            p = float(stats.binomtest(ka, ka + kb, 0.5).pvalue) if ka + kb > 0 else math.nan
            block.append([q, a, b, ka, kb, ka + kb, p])
        for row, adjusted in zip(block, holm_adjust([r[-1] for r in block])):
            rows.append((*row, float(adjusted)))
    out = pd.DataFrame(rows, columns=PAIR_COLUMNS)
    return out.astype(
        {"votes_a": "int64", "votes_b": "int64", "n": "int64", "p_value": "float64", "p_holm": "float64"}
    )


def participant_bootstrap(votes: pd.DataFrame, methods: Sequence[str] | None = None, resamples: int = 2000,
                          confidence: float = 0.95, seed: int = 0) -> pd.DataFrame:
    """Per (question, method): the share of votes with a **participant-level** percentile bootstrap interval —
    ``question, method, share, boot_low, boot_high, participants, resamples``.

    Votes of one participant are not independent (one taste drives all their answers), which the Wilson interval of
    :func:`tally` assumes; here participants are resampled with replacement (each resample draws as many participants
    as voted on the question, by multinomial weights) and the share is recomputed as Σ votes / Σ answers of the drawn
    participants. Needs a ``participant`` column. Seeded: the same votes and seed give the same interval."""
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if resamples < 1:
        raise ValueError(f"resamples must be ≥ 1, got {resamples}")
    if "participant" not in votes.columns:
        raise ValueError("a participant-level bootstrap needs the votes' participant column")
    frame, method_order, question_order = _prepare(votes, methods)
    frame["participant"] = votes["participant"].astype(str).to_numpy(dtype=object)
    rng = np.random.default_rng(seed)
    tail = (1.0 - confidence) / 2.0
    rows = []
    for q in question_order:
        block = frame[frame["question"] == q]
        counts = pd.crosstab(block["participant"], block["method"]).reindex(columns=method_order, fill_value=0)
        matrix = counts.to_numpy(dtype=np.float64)  # [participants, methods]
        answers = matrix.sum(axis=1)
        n = matrix.shape[0]
        share = matrix.sum(axis=0) / answers.sum()
        weights = rng.multinomial(n, np.full(n, 1.0 / n), size=resamples).astype(np.float64)  # [resamples, n]
        shares = (weights @ matrix) / (weights @ answers)[:, None]
        low, high = np.quantile(shares, [tail, 1.0 - tail], axis=0)
        rows += [(q, m, float(share[i]), float(low[i]), float(high[i]), n, resamples)
                 for i, m in enumerate(method_order)]
    return pd.DataFrame(rows, columns=BOOTSTRAP_COLUMNS)


def position_bias(votes: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per (question, on-screen position): the share of votes cast for whatever method stood there —
    ``question, position, votes, total, share, ci_low, ci_high, p_uniform`` (Wilson interval; ``p_uniform``: the
    question's chi-square test of the position counts against a uniform split). With methods shuffled per screen,
    a fair study gives ≈ 1/k everywhere; a high share at position 1 is a primacy bias. Needs a ``position`` column
    (1-based; the survey's ``votes_detail.csv`` has it)."""
    from scipy import stats

    if "position" not in votes.columns or "question" not in votes.columns:
        raise ValueError("position bias needs the votes' question and position columns (votes_detail.csv)")
    positions = pd.to_numeric(votes["position"], errors="coerce")
    if positions.isna().any() or (positions < 1).any():
        raise ValueError("positions must be integers ≥ 1")
    frame = pd.DataFrame({"question": votes["question"].astype(str).str.casefold(), "position": positions.astype(int)})
    k = int(frame["position"].max()) if len(frame) else 0
    rows = []
    present = list(dict.fromkeys(frame["question"]))
    for q in [q for q in QUESTIONS if q in present] + [q for q in present if q not in QUESTIONS]:
        counts = np.bincount(frame.loc[frame["question"] == q, "position"], minlength=k + 1)[1:]
        total = int(counts.sum())
        p = float(stats.chisquare(counts).pvalue) if k >= 2 and total else math.nan
        for position, c in enumerate(counts, start=1):
            low, high = wilson_interval(int(c), total, confidence)
            rows.append((q, position, int(c), total, c / total if total else math.nan, low, high, p))
    return pd.DataFrame(rows, columns=POSITION_COLUMNS)


# --------------------------------------------------------------------------- metric-like accumulator


class PreferenceTally:
    """Accumulates vote frames (``update``) and tallies them (``compute`` → :func:`tally`'s DataFrame); loosely
    follows the metric protocol of :mod:`metrics.base`. The reported value is the share of votes, so
    ``higher_is_better`` is True. Duplicate votes across ``update`` calls are not detected (use
    :func:`read_votes` on the whole file for that)."""

    name = "preference"
    higher_is_better = True
    unit = "share"

    def __init__(self, methods: Sequence[str] | None = None, confidence: float = 0.95) -> None:
        if not 0.0 < confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {confidence}")
        lookup = _method_lookup(methods)
        self.methods: list[str] | None = None if lookup is None else list(lookup.values())
        self.confidence = confidence
        self._frames: list[pd.DataFrame] = []

    def update(self, votes: pd.DataFrame) -> int:
        """Add a frame of votes (at least ``question`` and ``method`` columns); returns the number of votes added.
        Votes for methods outside ``methods`` are a ``ValueError`` right away."""
        frame, _, _ = _prepare(votes, self.methods)
        self._frames.append(frame)
        return len(frame)

    def compute(self) -> pd.DataFrame:
        frame = (
            pd.concat(self._frames, ignore_index=True)
            if self._frames
            else pd.DataFrame({"question": pd.Series(dtype=object), "method": pd.Series(dtype=object)})
        )
        return tally(frame, self.methods, self.confidence)

    def reset(self) -> None:
        self._frames.clear()

    def config(self) -> dict:
        return {
            "name": self.name,
            "higher_is_better": self.higher_is_better,
            "confidence": self.confidence,
            "interval": "wilson",
            "methods": self.methods,
        }
