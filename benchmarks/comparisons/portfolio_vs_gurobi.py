"""The portfolio oracle (Clarabel, the risk budget as a second-order cone) on a batch against
PyEPO's Gurobi ``portfolioModel`` solving one instance at a time (``setObj`` + ``solve``).

The batch is PyEPO's own data (``pyepo.data.portfolio.genData``, deg 4, noise level 1) and its
covariance, which the problem reproduces exactly (checked). Targets: faster than Gurobi, both
over the CPUs and in one process; objectives within Gurobi's own tolerance (its barrier stops at
1e-6), and never below Gurobi's (the oracle solves to 1e-9).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from l2obench.problems.conic_solvers import solve_conic_batch
from l2obench.problems.portfolio import Portfolio

from ..asv.common import gurobi_objectives
from .comparison import (
    Check,
    Comparison,
    Findings,
    Side,
    at_least,
    at_most,
    interleaved_medians,
    quiet,
    ratio,
    seconds,
)

log = logging.getLogger(__name__)

FASTER = at_least(1, "×")
WITHIN_GUROBI_TOL = at_most(1e-5)
NEVER_WORSE = at_most(0, "instances worse")


@dataclass(frozen=True)
class Sizes:
    n_assets: int
    batch: int
    repeats: int


FULL = Sizes(n_assets=50, batch=1000, repeats=5)
QUICK = Sizes(n_assets=10, batch=30, repeats=1)


def measure(sizes: Sizes) -> Findings:
    from pyepo.data.portfolio import genData
    from pyepo.model.grb.portfolio import portfolioModel

    n, batch = sizes.n_assets, sizes.batch
    cov, _, raw = genData(batch, 5, n, deg=4, noise_level=1.0, seed=0)
    returns = raw.astype(np.float64)
    problem = Portfolio(n_assets=n, seed=0)
    if not np.array_equal(problem.covariance, cov):
        raise RuntimeError("the portfolio problem's covariance differs from PyEPO's")
    with quiet():
        model = portfolioModel(n, cov)
        times = interleaved_medians({
            "ours": lambda: problem.oracle(returns),
            "one": lambda: solve_conic_batch(problem.conic(), returns, "clarabel", processes=1),
            "gurobi": lambda: gurobi_objectives(model, returns),
        }, sizes.repeats)
        theirs = gurobi_objectives(model, returns)
    t_ours, t_one, t_ref = times["ours"], times["one"], times["gurobi"]
    ours = problem.oracle(returns)[1]
    log.info("n=%d, batch of %d: oracle %s (one process %s), PyEPO portfolioModel %s", n, batch,
             seconds(t_ours), seconds(t_one), seconds(t_ref))
    ref_side = Side(t_ref, "s", f"per batch of {batch}, one at a time, median of {sizes.repeats} "
                                f"interleaved rounds")
    return Findings([
        Check(f"Gurobi s ÷ oracle s, n_assets={n}",
              Side(t_ours, "s", f"per batch of {batch}, over the CPUs, median of "
                                f"{sizes.repeats} interleaved rounds"),
              ref_side, ratio(t_ref, t_ours), FASTER),
        Check(f"Gurobi s ÷ oracle s in one process, n_assets={n}",
              Side(t_one, "s", f"per batch of {batch}, one process, median of {sizes.repeats} "
                                f"interleaved rounds"),
              ref_side, ratio(t_ref, t_one), FASTER),
        Check(f"expected returns, max |oracle − Gurobi| over {batch} instances",
              Side(float(ours.mean()), "", "mean optimal return"),
              Side(float(theirs.mean()), "", "mean optimal return"),
              float(np.abs(ours - theirs).max()), WITHIN_GUROBI_TOL),
        Check("instances where the oracle's return is below Gurobi's (by > 1e-9)",
              Side(float(ours.mean()), "", "mean optimal return"),
              Side(float(theirs.mean()), "", "mean optimal return"),
              int((ours < theirs - 1e-9).sum()), NEVER_WORSE),
    ], notes=[f"n_assets={n}: the oracle takes {seconds(t_ours / batch)} per instance over the "
              f"CPUs, {seconds(t_one / batch)} in one process; Gurobi {seconds(t_ref / batch)}"])


COMPARISON = Comparison(
    name="portfolio-vs-gurobi",
    title="Portfolio oracle (Clarabel) vs PyEPO's Gurobi portfolioModel, one instance at a time",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
