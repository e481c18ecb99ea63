"""The portfolio cone's factor: the sparse ``[Lᵀ; 0.01 τ I] / √r`` the problem states against a
dense Cholesky factor of ``Σ / r``, both solved by Clarabel in one process on the same instances.

Both state the same cone (``FᵀF = Σ / r``); the sparse one comes from the generator's factor
model. Targets: the sparse factor no slower, and the same optimal returns to 1e-8.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from l2obench.problems.base import ConicForm, SecondOrderCone
from l2obench.problems.conic_solvers import solve_conic_batch
from l2obench.problems.portfolio import Portfolio

from ..comparisons.comparison import (
    Check,
    Comparison,
    Findings,
    Side,
    at_least,
    at_most,
    clock,
    median_of,
    ratio,
    seconds,
)

log = logging.getLogger(__name__)

NO_SLOWER = at_least(1, "×")
SAME = at_most(1e-8)


@dataclass(frozen=True)
class Sizes:
    n_assets: tuple[int, ...]
    batch: int
    repeats: int


FULL = Sizes(n_assets=(50, 200), batch=200, repeats=3)
QUICK = Sizes(n_assets=(10,), batch=10, repeats=1)


def measure(sizes: Sizes) -> Findings:
    checks = []
    for n in sizes.n_assets:
        problem = Portfolio(n_assets=n, n_train=sizes.batch, n_val=1, n_test=1, seed=0)
        returns = problem.generate().train.costs.astype(np.float64)
        sparse_form = problem.conic()
        cholesky = np.linalg.cholesky(problem.covariance / problem.risk_level).T
        dense_form = ConicForm(sparse_form.linear,
                               (SecondOrderCone(F=sp.csr_matrix(cholesky), bound=1.0),))
        timed = {}
        for label, form in (("sparse", sparse_form), ("dense", dense_form)):
            solve = functools.partial(solve_conic_batch, form, returns, "clarabel", processes=1)
            timed[label] = (median_of(functools.partial(clock, solve), sizes.repeats),
                            solve()[1])
        (t_sparse, sparse), (t_dense, dense) = timed["sparse"], timed["dense"]
        log.info("n=%d, batch of %d: sparse factor %s, dense Cholesky %s", n, sizes.batch,
                 seconds(t_sparse), seconds(t_dense))
        note = f"per batch of {sizes.batch}, one process, median of {sizes.repeats}"
        checks += [
            Check(f"dense Cholesky s ÷ sparse factor s, n_assets={n}",
                  Side(t_sparse, "s", note), Side(t_dense, "s", note), ratio(t_dense, t_sparse),
                  NO_SLOWER),
            Check(f"optimal returns, max |sparse − dense| over {sizes.batch} instances, "
                  f"n_assets={n}",
                  Side(float(sparse.mean()), "", "mean optimal return"),
                  Side(float(dense.mean()), "", "mean optimal return"),
                  float(np.abs(sparse - dense).max()), SAME),
        ]
    return Findings(checks)


COMPARISON = Comparison(
    name="portfolio-factor",
    title="Portfolio cone: the generator's sparse covariance factor vs a dense Cholesky factor",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
