"""l2obench's exact shortest-path oracle on a batch against PyEPO's Gurobi ``shortestPathModel``
solving one instance at a time (``setObj`` + ``solve``), as PyEPO's training loops call it.

Targets: at least 50× faster, the same objectives on every instance; and the oracle solves a grid
past what Gurobi's bundled size-limited licence accepts (k ≥ 33), which Gurobi refuses.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..asv.common import dataset, gurobi_objectives
from .comparison import (
    Check,
    Comparison,
    Findings,
    Side,
    at_least,
    at_most,
    clock,
    median_of,
    quiet,
    seconds,
)

log = logging.getLogger(__name__)

SPEED_UP = at_least(50, "×")
OBJECTIVE_GAP = at_most(1e-6)
#: Gurobi must refuse the large grid: the instances it solves there.
LICENCE = at_most(0, "solved by Gurobi")


@dataclass(frozen=True)
class Sizes:
    k: int
    batch: int
    repeats: int  # Gurobi's; the oracle, far faster, is timed 3× as often
    big_k: int  # a grid past Gurobi's size-limited licence (k ≥ 33)
    big_batch: int
    n_eval: int  # validation and test instances generated beside each batch


FULL = Sizes(k=5, batch=1000, repeats=7, big_k=100, big_batch=1000, n_eval=200)
QUICK = Sizes(k=5, batch=100, repeats=3, big_k=33, big_batch=10, n_eval=32)


def measure(sizes: Sizes) -> Findings:
    """The batch oracle against one-at-a-time Gurobi, then a grid past the licence."""
    import gurobipy
    from pyepo.model.grb import shortestPathModel

    k, n = sizes.k, sizes.batch
    problem, data = dataset(k, n, sizes.n_eval)
    costs = data.train.costs.astype(np.float64)
    with quiet():
        model = shortestPathModel((k, k))
    t_oracle = median_of(lambda: clock(lambda: problem.oracle(costs)), 3 * sizes.repeats)
    t_gurobi = median_of(lambda: clock(lambda: gurobi_objectives(model, costs)), sizes.repeats)
    ours, theirs = problem.oracle(costs)[1], gurobi_objectives(model, costs)
    log.info("k=%d, batch of %d: oracle %s, Gurobi one at a time %s (medians)", k, n,
             seconds(t_oracle), seconds(t_gurobi))
    checks = [
        Check(f"Gurobi s ÷ oracle s (speed-up), k={k}",
              Side(t_oracle, "s", f"per batch of {n}, median of {3 * sizes.repeats}"),
              Side(t_gurobi, "s", f"per batch of {n}, median of {sizes.repeats}"),
              t_gurobi / t_oracle, SPEED_UP),
        Check(f"objectives, max |oracle − Gurobi| over {n} instances, k={k}",
              Side(float(ours.mean()), "", "mean objective"),
              Side(float(theirs.mean()), "", "mean objective"),
              float(np.abs(ours - theirs).max()), OBJECTIVE_GAP),
    ]

    big_k, big_n = sizes.big_k, sizes.big_batch
    big, big_data = dataset(big_k, big_n, sizes.n_eval)
    big_costs = big_data.train.costs
    t_big = median_of(lambda: clock(lambda: big.oracle(big_costs)), 3, warm_up_first=False)
    try:
        with quiet():
            big_model = shortestPathModel((big_k, big_k))
            big_model.setObj(big_costs[0])
            big_model.solve()
        solved, gurobi_note = 1, "solved the first instance"
    except gurobipy.GurobiError as exc:
        solved, gurobi_note = 0, f"GurobiError {getattr(exc, 'errno', '?')}: {exc}"
    log.info("k=%d (%d arcs): oracle %s per batch of %d; Gurobi: %s", big_k, big.n_vars,
             seconds(t_big), big_n, gurobi_note)
    checks.append(Check(
        f"instances solved at k={big_k} ({big.n_vars} arcs)",
        Side(big_n, "instances", f"the batch, in {seconds(t_big)}"),
        Side(solved, "instances", f"of 1 tried: {gurobi_note}"), solved, LICENCE,
    ))
    notes = [f"k={k}: the oracle takes {seconds(t_oracle / n)} per instance, Gurobi "
             f"{seconds(t_gurobi / n)}"]
    return Findings(checks, notes=notes)


COMPARISON = Comparison(
    name="oracle-vs-gurobi",
    title="Exact oracle vs PyEPO's Gurobi shortestPathModel, one instance at a time",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
