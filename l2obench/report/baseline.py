"""Each method's change against a published baseline (``l2obench report --baseline DIR``).

Both sides are read the same way (their records, each method represented by its selected
configuration), and a method at a size and data point is matched by problem, size, data point,
method and seed, on the task family's ranking metric (normalized regret for
predict-then-optimize). Where both sides recorded its per-instance values for a matched seed,
the same test instances pair up (the data of a seed is one seeded draw), so the change is tested
by a two-sided Wilcoxon signed-rank test on the per-instance differences, paired over matched
seeds × instances; without them, only the means are compared.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from l2obench.record import Status
from l2obench.report.stats import ALPHA
from l2obench.tasks.base import Metric


def baseline_note(metric: Metric) -> str:
    """How the pages compare with a baseline, in words, on the ranking ``metric``."""
    return (
        f"Change against the baseline: each method's mean {metric.label} now and in the "
        "baseline over the seeds both have (same problem, size, data point, method and seed), "
        f"and the difference; where both recorded per-instance {metric.short_label}s, a "
        "two-sided Wilcoxon signed-rank test on the per-instance differences, paired over those "
        f"seeds × test instances, says whether the change is significant at level {ALPHA}."
    )
_KEYS = ["problem", "size", "data", "method_label"]


def compare(now: pd.DataFrame, baseline: pd.DataFrame, metric: Metric) -> pd.DataFrame:
    """One row per (problem, size, data point, method) present on both sides, on ``metric``
    (the task's ranking metric).

    ``now`` and ``baseline`` are ranked records (``method_label`` the method's identity, a
    ``data`` column). Columns: the keys, ``seeds`` (matched seeds with an ok cell on both
    sides), ``now``, ``baseline`` (the means), ``change``, ``pairs`` and ``p_value`` (NaN
    without per-instance values), ``verdict``.
    """
    ok_now = now[now["status"] == Status.OK]
    ok_base = baseline[baseline["status"] == Status.OK]
    rows = []
    for key, mine in ok_now.groupby(_KEYS, sort=True):
        theirs = ok_base
        for column, value in zip(_KEYS, key, strict=True):
            theirs = theirs[theirs[column].astype(str) == str(value)]
        seeds = sorted(set(mine["seed"]) & set(theirs["seed"]))
        if not seeds:
            continue
        a = mine[mine["seed"].isin(seeds)].set_index("seed")
        b = theirs[theirs["seed"].isin(seeds)].drop_duplicates("seed").set_index("seed")
        mean_now = float(pd.to_numeric(a.get(metric.name), errors="coerce").mean())
        mean_base = float(pd.to_numeric(b.get(metric.name), errors="coerce").mean())
        d = _paired(a, b, seeds, metric.per_instance)
        p = _two_sided(d) if len(d) else math.nan
        rows.append({**dict(zip(_KEYS, key, strict=True)), "seeds": len(seeds),
                     "now": mean_now, "baseline": mean_base,
                     "change": mean_now - mean_base, "pairs": len(d), "p_value": p,
                     "verdict": _verdict(metric.sign * (mean_now - mean_base), p)})
    return pd.DataFrame(rows)


def _instances(value: Any) -> list[float] | None:
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, list | tuple | np.ndarray) and len(value):
        return [float(v) for v in value]
    return None


def _paired(a: pd.DataFrame, b: pd.DataFrame, seeds: Sequence[int],
            column: str | None) -> np.ndarray:
    """Per-instance differences (now − baseline) of the values in ``column`` over the seeds
    where both sides have them for the same number of instances."""
    if column is None or column not in a or column not in b:
        return np.empty(0)
    parts = []
    for seed in seeds:
        mine, theirs = _instances(a.at[seed, column]), _instances(b.at[seed, column])
        if mine is not None and theirs is not None and len(mine) == len(theirs):
            parts.append(np.asarray(mine) - np.asarray(theirs))
    return np.concatenate(parts) if parts else np.empty(0)


def _two_sided(d: np.ndarray) -> float:
    nonzero = d[np.abs(d) > 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0)))]
    if len(nonzero) == 0:
        return 1.0
    return float(stats.wilcoxon(nonzero).pvalue)


def _verdict(worsening: float, p: float) -> str:
    """``worsening``: the change times the metric's sign (positive: worse)."""
    if math.isnan(p):
        return "not tested (no per-instance values)"
    if p >= ALPHA:
        return "no significant change"
    return "better" if worsening < 0 else "worse"
