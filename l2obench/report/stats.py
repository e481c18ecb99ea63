"""Paired statistics: which methods are not significantly worse than the best, and how the
overall ranking's differences compare with a critical difference.

**Per size and data point** every method's selected configuration is compared with the best one
(lowest mean normalized regret) instance by instance: all methods at a size, data point and
seed see the same test instances, so the differences ``regret(method) − regret(best)`` pair up
over seeds × instances. Normalized regret is Σ regret / Σ |optimal objective| with the same
denominator for every method, so these raw per-instance regrets are the right ones to compare.
The test is the one-sided Wilcoxon signed-rank test (``H₁``: the method's regrets are larger;
zero differences, instances both methods solve equally, are dropped, as Wilcoxon proposed), its
p-values Holm-corrected over the methods compared at that block; a method whose corrected
p-value is at least :data:`ALPHA` is *not significantly worse* than the best and joins the tie
group. The unit of the test is the test instance: it asks whether the difference is larger than
the instances' variation explains, given the trained models, not how it varies over training
seeds (the intervals over seeds show that).

**Across blocks** (the sizes × data points where all the ranked methods have records) each
method's rank on mean normalized regret gives an overall ranking: average ranks, a method
without an ok cell at a block sharing the last
places there, the Friedman test of "all methods rank alike", and the Nemenyi critical
difference ``CD = q_α √(k(k+1)/(6N))`` (Demšar 2006): methods whose average ranks differ by
less than ``CD`` are not significantly different at level :data:`ALPHA`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from l2obench.tasks.base import Task

#: The level of every test on the pages.
ALPHA = 0.05

def statistics_note(task: Task) -> str:
    """The pages' account of the tie groups and the rank test, for ``task``'s ranking metric."""
    rank = task.ranking()
    best = "lowest" if rank.direction == "min" else "highest"
    values = f"per-instance {rank.short_label}"
    return (
        "Tie groups (bold): at each size and data point, every method's selected configuration "
        f"is compared with the best one ({best} mean {rank.label}) by a one-sided Wilcoxon "
        f"signed-rank test on the {values} differences, paired over seeds × test "
        "instances (every method sees the same instances; zero differences dropped), "
        "Holm-corrected over the methods compared; a method whose corrected p-value is at least "
        "0.05 is not significantly worse than the best and is shown in bold with it (— where no "
        f"{values}s are recorded, as in records written before they were). The overall "
        "ranking averages the ranks over the sizes × data points where all its methods have "
        "records (a method without an ok cell ranks last there, ties sharing their places); "
        "the Friedman test asks whether the "
        "methods rank alike, and two methods whose average ranks differ by less than the "
        "Nemenyi critical difference (CD, level 0.05) are not significantly different; the "
        "methods within CD of the best are in bold."
    )


@dataclass(frozen=True)
class Paired:
    """One method against the best at one block."""

    pairs: int  # seed × instance pairs compared
    mean_difference: float  # mean regret(method) − regret(best) over the pairs
    p_value: float  # one-sided Wilcoxon signed-rank, before correction
    p_holm: float  # Holm-corrected over the methods compared at the block

    @property
    def tie(self) -> bool:
        """Not significantly worse than the best at :data:`ALPHA`."""
        return self.p_holm >= ALPHA


def differences(method: Mapping[int, Sequence[float]],
                best: Mapping[int, Sequence[float]]) -> np.ndarray:
    """``regret(method) − regret(best)`` over the seeds both have, instance by instance.

    ``method`` and ``best`` map a seed to its per-instance test regrets; a seed whose lists
    differ in length (another test split) is left out.
    """
    parts = [np.asarray(method[s], float) - np.asarray(best[s], float)
             for s in sorted(set(method) & set(best)) if len(method[s]) == len(best[s])]
    return np.concatenate(parts) if parts else np.empty(0)


def wilcoxon_greater(d: np.ndarray) -> float:
    """One-sided Wilcoxon signed-rank p-value of ``H₁``: the differences ``d`` are positive.

    Zero differences are dropped; without any nonzero difference the two methods decide alike
    on every instance and the p-value is 1.
    """
    nonzero = d[np.abs(d) > 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0)))]
    if len(nonzero) == 0:
        return 1.0
    return float(stats.wilcoxon(nonzero, alternative="greater").pvalue)


def holm(p_values: Mapping[str, float]) -> dict[str, float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, at most 1)."""
    order = sorted(p_values, key=lambda k: p_values[k])
    m, running, adjusted = len(order), 0.0, {}
    for i, key in enumerate(order):
        running = max(running, min(1.0, (m - i) * p_values[key]))
        adjusted[key] = running
    return adjusted


def versus_best(regrets: Mapping[str, Mapping[int, Sequence[float]]],
                best: str) -> dict[str, Paired]:
    """Every method of ``regrets`` (method → seed → per-instance regrets) against ``best``.

    Methods with no pair in common with the best (no per-instance regrets recorded, records
    written before they were) are left out: nothing can be said about them.
    """
    raw: dict[str, tuple[int, float, float]] = {}
    for method, by_seed in regrets.items():
        if method == best:
            continue
        d = differences(by_seed, regrets[best])
        if len(d):
            raw[method] = (len(d), float(d.mean()), wilcoxon_greater(d))
    adjusted = holm({m: p for m, (_, _, p) in raw.items()})
    return {m: Paired(n, mean, p, adjusted[m]) for m, (n, mean, p) in raw.items()}


@dataclass(frozen=True)
class RankTest:
    """Average ranks over blocks, the Friedman test and the Nemenyi critical difference."""

    average_ranks: dict[str, float]
    blocks: int
    statistic: float | None  # Friedman χ² (None: fewer than 3 methods or 2 blocks)
    p_value: float | None
    cd: float | None  # Nemenyi critical difference at ALPHA

    def within_cd_of_best(self) -> list[str]:
        """The methods whose average rank is within the critical difference of the best's."""
        if self.cd is None or not self.average_ranks:
            return []
        best = min(self.average_ranks.values())
        return sorted(m for m, r in self.average_ranks.items() if r - best < self.cd)

    def summary(self) -> str:
        """The test in one sentence for the pages."""
        k, n = len(self.average_ranks), self.blocks
        if self.statistic is None or self.p_value is None or self.cd is None:
            return (f"Friedman/Nemenyi: not computed ({k} methods over {n} "
                    f"block{'s' * (n != 1)}; it needs at least 3 methods and 2 blocks).")
        verdict = "differ" if self.p_value < ALPHA else "do not differ significantly"
        return (f"Friedman test over {n} blocks (sizes × data points) and {k} methods: "
                f"χ² = {self.statistic:.3g}, p = {self.p_value:.3g} (the ranks {verdict} at "
                f"level {ALPHA:g}); Nemenyi critical difference CD = {self.cd:.3g}; within CD "
                f"of the best average rank: {', '.join(self.within_cd_of_best())}.")


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks (1 = lowest) within each row of ``values`` [blocks × methods]; ties share the
    average of their places, and NaN (no ok cell) ranks last, tied with other NaNs."""
    filled = np.where(np.isnan(values), np.inf, values)
    return np.vstack([stats.rankdata(row) for row in filled]) if len(filled) else filled


def nemenyi_cd(k: int, blocks: int, alpha: float = ALPHA) -> float:
    """Critical difference of average ranks for ``k`` methods over ``blocks`` blocks: the
    studentized range quantile over √2 (Demšar's ``q_α``) times ``√(k(k+1)/(6N))``."""
    q = stats.studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(k * (k + 1) / (6 * blocks)))


def rank_test(values: np.ndarray, methods: Sequence[str]) -> RankTest:
    """:class:`RankTest` of ``values`` [blocks × methods], lower is better (NaN: no ok cell)."""
    ranks = average_ranks(values)
    blocks, k = values.shape
    mean = {m: float(ranks[:, j].mean()) for j, m in enumerate(methods)} if blocks else {}
    if k < 3 or blocks < 2:
        return RankTest(mean, blocks, None, None, None)
    filled = np.where(np.isnan(values), np.inf, values)
    if np.all(ranks == ranks[:, :1]):  # every method tied in every block
        statistic, p = 0.0, 1.0
    else:
        result = stats.friedmanchisquare(*filled.T)
        statistic, p = float(result.statistic), float(result.pvalue)
    return RankTest(mean, blocks, statistic, p, nemenyi_cd(k, blocks))
