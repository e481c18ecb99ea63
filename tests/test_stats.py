"""Paired tests against the best, Holm's correction, average ranks, Friedman and Nemenyi."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sp

from l2obench.report.stats import (
    average_ranks,
    differences,
    holm,
    nemenyi_cd,
    rank_test,
    versus_best,
    wilcoxon_greater,
)


def test_differences_pair_instances_of_the_seeds_both_have() -> None:
    method = {0: [1.0, 2.0], 1: [3.0, 3.0], 2: [5.0]}
    best = {0: [0.5, 2.5], 1: [1.0, 1.0], 3: [9.0]}
    assert differences(method, best).tolist() == [0.5, -0.5, 2.0, 2.0]
    assert len(differences(method, {2: [1.0, 2.0]})) == 0  # another test split: no pairs


def test_wilcoxon_is_scipys_one_sided_test_without_zeros() -> None:
    rng = np.random.default_rng(0)
    d = np.concatenate([rng.normal(0.3, 1.0, 60), np.zeros(40)])
    assert wilcoxon_greater(d) == pytest.approx(
        sp.wilcoxon(d[d != 0], alternative="greater").pvalue)
    assert wilcoxon_greater(np.zeros(10)) == 1.0  # the same decisions everywhere
    assert wilcoxon_greater(-np.abs(rng.normal(size=30)) - 0.1) > 0.99  # better, not worse


def test_holm_step_down() -> None:
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert holm({"a": 0.6, "b": 0.7}) == pytest.approx({"a": 1.0, "b": 1.0})


def test_versus_best_marks_the_tie_group() -> None:
    rng = np.random.default_rng(1)
    base = {s: rng.uniform(0, 1, 200) for s in range(3)}
    regrets = {
        "best": {s: list(v) for s, v in base.items()},
        "close": {s: list(v + rng.normal(0, 0.05, 200)) for s, v in base.items()},
        "worse": {s: list(v + 0.2 + rng.normal(0, 0.05, 200)) for s, v in base.items()},
        "unknown": {},
    }
    result = versus_best(regrets, "best")
    assert set(result) == {"close", "worse"}  # no pairs: nothing to say
    assert result["close"].tie and not result["worse"].tie
    assert result["worse"].pairs == 600 and result["worse"].mean_difference == \
        pytest.approx(0.2, abs=0.02)
    assert result["worse"].p_holm >= result["worse"].p_value


def test_average_ranks_share_ties_and_put_missing_last() -> None:
    values = np.array([[0.1, 0.2, np.nan, np.nan], [0.3, 0.3, 0.1, 0.5]])
    assert average_ranks(values).tolist() == [[1.0, 2.0, 3.5, 3.5], [2.5, 2.5, 1.0, 4.0]]


def test_critical_difference_matches_demsars_table() -> None:
    # q_0.05 for k = 2 … 10 (Demšar 2006, table 5(a)), CD = q √(k(k+1)/(6N)).
    for k, q in zip(range(2, 11), (1.960, 2.343, 2.569, 2.728, 2.850, 2.949, 3.031, 3.102,
                                   3.164), strict=True):
        assert nemenyi_cd(k, 10) == pytest.approx(q * math.sqrt(k * (k + 1) / 60), abs=2e-3)


def test_rank_test_is_scipys_friedman() -> None:
    rng = np.random.default_rng(2)
    values = rng.uniform(size=(8, 4)) + np.array([0.0, 0.1, 0.5, 0.6])
    test = rank_test(values, ["a", "b", "c", "d"])
    expected = sp.friedmanchisquare(*values.T)
    assert test.statistic == pytest.approx(expected.statistic)
    assert test.p_value == pytest.approx(expected.pvalue)
    assert test.average_ranks == pytest.approx(
        dict(zip("abcd", sp.rankdata(values, axis=1).mean(axis=0), strict=True)))
    assert test.cd == pytest.approx(nemenyi_cd(4, 8))
    best = min(test.average_ranks.values())
    assert test.cd is not None
    assert test.within_cd_of_best() == sorted(
        m for m, r in test.average_ranks.items() if r - best < test.cd)
    assert "Friedman test over 8 blocks" in test.summary()
    small = rank_test(values[:, :2], ["a", "b"])
    assert small.cd is None and "not computed" in small.summary()
    tied = rank_test(np.ones((3, 3)), ["a", "b", "c"])
    assert (tied.statistic, tied.p_value) == (0.0, 1.0)
