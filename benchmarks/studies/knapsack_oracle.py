"""The knapsack oracle's enumeration of maximal item sets against the MIP by HiGHS.

PyEPO's knapsack keeps capacity 20 at every size, so a set holds at most six items and at 20
items about a thousand sets are maximal: ``oracle="auto"`` scores them all in one matrix product
(:mod:`l2obench.problems.knapsack_sets`) where HiGHS solves one MIP per instance. Both sides
solve the same batch in one process (HiGHS without worker processes), timed in interleaved
rounds; the values are the generator's and noisy ones of both signs, as a model predicts early in
training. Targets: at least 10× faster at 20 items (the suite's tuning size, where the
perturbation methods solve thousands of instances an epoch) and at 50 items, and the same
optimal values on every instance.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

import numpy as np

from l2obench import process_pool
from l2obench.problems.knapsack import Knapsack

from ..comparisons.comparison import (
    Check,
    Comparison,
    Findings,
    Side,
    Table,
    at_least,
    at_most,
    interleaved_medians,
    ratio,
    seconds,
)

log = logging.getLogger(__name__)

FASTER = at_least(10, "×")
SAME_OPTIMA = at_most(1e-9)


@dataclass(frozen=True)
class Sizes:
    items: tuple[int, ...]
    batch: int
    rounds: int


FULL = Sizes(items=(20, 50), batch=1000, rounds=5)
QUICK = Sizes(items=(12,), batch=20, rounds=1)


def measure(sizes: Sizes) -> Findings:
    process_pool.limit_cpus(1)  # HiGHS in this process, as a cell given one thread solves
    try:
        return _measure(sizes)
    finally:
        process_pool.limit_cpus(None)


def _measure(sizes: Sizes) -> Findings:
    checks: list[Check] = []
    rows: list[list[float | int | str | None]] = []
    for n in sizes.items:
        enumerated = Knapsack(n_items=n, n_train=sizes.batch, n_val=1, n_test=1, seed=0)
        mip = Knapsack(n_items=n, seed=0, oracle="highs")
        sets = enumerated._maximal_sets
        if sets is None:
            raise RuntimeError(f"{n} items: too many item sets fit to enumerate")
        costs = enumerated.generate().train.costs.astype(np.float64)
        noisy = costs + np.random.default_rng(n).normal(0.0, 3.0, costs.shape)
        values = np.vstack([costs[: sizes.batch // 2], noisy[: sizes.batch - sizes.batch // 2]])
        medians = interleaved_medians({"enumeration": partial(enumerated.oracle, values),
                                       "highs": partial(mip.oracle, values)}, sizes.rounds)
        ours, theirs = enumerated.oracle(values)[1], mip.oracle(values)[1]
        gap = float(np.abs(ours - theirs).max())
        t_enum, t_mip = medians["enumeration"], medians["highs"]
        log.info("%d items: enumeration %s, HiGHS %s per batch of %d (%d maximal sets)", n,
                 seconds(t_enum), seconds(t_mip), sizes.batch, len(sets))
        per = f"per batch of {sizes.batch}, median of {sizes.rounds} interleaved rounds"
        checks += [
            Check(f"HiGHS s ÷ enumeration s, n_items={n}", Side(t_enum, "s", per),
                  Side(t_mip, "s", per), ratio(t_mip, t_enum), FASTER),
            Check(f"optimal values, max |enumeration − HiGHS| over {sizes.batch} instances, "
                  f"n_items={n}", Side(float(ours.mean()), "", "mean optimal value"),
                  Side(float(theirs.mean()), "", "mean optimal value"), gap, SAME_OPTIMA),
        ]
        rows.append([n, len(sets), seconds(t_enum / sizes.batch), seconds(t_mip / sizes.batch)])
    return Findings(checks, tables=[Table(
        "Per instance, batch of PyEPO's values (half) and noisy values of both signs (half)",
        ["items", "maximal sets", "enumeration", "HiGHS MIP"], rows)])


COMPARISON = Comparison(
    name="knapsack-oracle",
    title="Knapsack oracle: every maximal item set scored at once against HiGHS's MIP",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
