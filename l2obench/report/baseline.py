"""Each method's change against a published baseline (``l2obench report --baseline DIR``).

Both sides are read the same way (their records, each method represented by its selected
configuration), and a method at a size and data point is matched by problem, size, data point,
method and seed. Where both sides recorded per-instance test regrets for a matched seed, the
same test instances pair up (the data of a seed is one seeded draw), so the change is tested by
a two-sided Wilcoxon signed-rank test on the per-instance regret differences, paired over
matched seeds × instances; without them, only the means are compared.
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

BASELINE_NOTE = (
    "Change against the baseline: each method's mean normalized regret now and in the baseline "
    "over the seeds both have (same problem, size, data point, method and seed), and the "
    "difference; where both recorded per-instance regrets, a two-sided Wilcoxon signed-rank "
    "test on the per-instance differences, paired over those seeds × test instances, says "
    f"whether the change is significant at level {ALPHA}."
)
_KEYS = ["problem", "size", "data", "method_label"]


def compare(now: pd.DataFrame, baseline: pd.DataFrame) -> pd.DataFrame:
    """One row per (problem, size, data point, method) present on both sides.

    ``now`` and ``baseline`` are ranked records (``method_label`` the method's identity, a
    ``data`` column). Columns: the keys, ``seeds`` (matched seeds with an ok cell on both
    sides), ``regret_now``, ``regret_baseline``, ``change``, ``pairs`` and ``p_value`` (NaN
    without per-instance regrets), ``verdict``.
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
        regret_now = float(a["norm_regret"].astype(float).mean())
        regret_base = float(b["norm_regret"].astype(float).mean())
        d = _paired(a, b, seeds)
        p = _two_sided(d) if len(d) else math.nan
        rows.append({**dict(zip(_KEYS, key, strict=True)), "seeds": len(seeds),
                     "regret_now": regret_now, "regret_baseline": regret_base,
                     "change": regret_now - regret_base, "pairs": len(d), "p_value": p,
                     "verdict": _verdict(regret_now - regret_base, p)})
    return pd.DataFrame(rows)


def _instances(value: Any) -> list[float] | None:
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, list | tuple | np.ndarray) and len(value):
        return [float(v) for v in value]
    return None


def _paired(a: pd.DataFrame, b: pd.DataFrame, seeds: Sequence[int]) -> np.ndarray:
    """Per-instance regret differences (now − baseline) over the seeds where both sides have
    them for the same number of instances."""
    if "test_regrets" not in a or "test_regrets" not in b:
        return np.empty(0)
    parts = []
    for seed in seeds:
        mine, theirs = _instances(a.at[seed, "test_regrets"]), _instances(b.at[seed,
                                                                              "test_regrets"])
        if mine is not None and theirs is not None and len(mine) == len(theirs):
            parts.append(np.asarray(mine) - np.asarray(theirs))
    return np.concatenate(parts) if parts else np.empty(0)


def _two_sided(d: np.ndarray) -> float:
    nonzero = d[np.abs(d) > 1e-12 * max(1.0, float(np.abs(d).max(initial=0.0)))]
    if len(nonzero) == 0:
        return 1.0
    return float(stats.wilcoxon(nonzero).pvalue)


def _verdict(change: float, p: float) -> str:
    if math.isnan(p):
        return "not tested (no per-instance regrets)"
    if p >= ALPHA:
        return "no significant change"
    return "better" if change < 0 else "worse"
