"""The choices behind the TSP oracle and its LP form: DFJ with subtour cuts against the compact
MTZ formulation, the DFJ loop's HiGHS options against HiGHS's defaults, and the degree-2
relaxation (the layers' LP form) against MTZ's LP relaxation.

All on HiGHS in one process, on the same instances (the problem's own data, 20 nodes; MTZ, far
slower, on the first few). Targets:
DFJ at least 10× faster than MTZ (the choice of the default must not be close); the options no
slower than the defaults; the degree-2 relaxation's mean gap to the optimal tour no larger than
MTZ's relaxation's (the ratio of the two at most 1).
"""

from __future__ import annotations

import contextlib
import logging
import statistics
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from l2obench.problems import tsp_solvers
from l2obench.problems.lp_solvers import solve_lp_batch
from l2obench.problems.tsp import TSP
from l2obench.problems.tsp_solvers import MTZForm, solve_tsp_batch

from ..comparisons.comparison import (
    Check,
    Comparison,
    Findings,
    Side,
    Table,
    at_least,
    at_most,
    clock,
    median_of,
    ratio,
    seconds,
)

log = logging.getLogger(__name__)

CLEARLY_FASTER = at_least(10, "×")
NO_SLOWER = at_least(1, "×")
TIGHTER = at_most(1, "×")


@dataclass(frozen=True)
class Sizes:
    n_nodes: int
    batch: int  # instances of the DFJ timings and the relaxations
    mtz_batch: int  # the first instances, solved by MTZ too (far slower, timed once)
    rounds: int  # interleaved rounds of DFJ with its options and with HiGHS's defaults


FULL = Sizes(n_nodes=20, batch=200, mtz_batch=20, rounds=5)
QUICK = Sizes(n_nodes=7, batch=5, mtz_batch=5, rounds=1)


@contextlib.contextmanager
def highs_defaults() -> Iterator[None]:
    """The DFJ loop without its own HiGHS options, for the time being."""
    saved = dict(tsp_solvers.DFJ_HIGHS_OPTIONS)
    tsp_solvers.DFJ_HIGHS_OPTIONS.clear()
    try:
        yield
    finally:
        tsp_solvers.DFJ_HIGHS_OPTIONS.update(saved)


def measure(sizes: Sizes) -> Findings:
    n, batch = sizes.n_nodes, sizes.batch
    problem = TSP(n_nodes=n, n_train=batch, n_val=1, n_test=1, seed=0)
    costs = problem.generate().train.costs.astype(np.float64)
    few = costs[: sizes.mtz_batch]

    def dfj(rows: np.ndarray = costs) -> np.ndarray:
        return solve_tsp_batch(n, rows, "highs", "dfj", processes=1)

    # The options against HiGHS's defaults in interleaved rounds, so that a change of load on
    # the shared machine falls on both sides alike; the checked value is the median ratio.
    dfj()  # warm-up
    t_options, t_defaults = [], []
    for _ in range(sizes.rounds):
        t_options.append(clock(dfj))
        with highs_defaults():
            t_defaults.append(clock(dfj))
            defaults_tours = dfj()
    optimal = (costs * dfj()).sum(axis=1)
    t_dfj_few = median_of(lambda: clock(lambda: dfj(few)), sizes.rounds)
    mtz_tours = np.empty_like(few)

    def mtz() -> None:
        mtz_tours[:] = solve_tsp_batch(n, few, "highs", "mtz", processes=1)

    t_mtz = clock(mtz)
    for name, found, rows in (("MTZ", mtz_tours, few), ("DFJ with HiGHS's defaults",
                                                         defaults_tours, costs)):
        gap = np.abs((rows * found).sum(axis=1) - optimal[: len(rows)]).max()
        if gap > 1e-8 * np.abs(optimal).max():
            raise RuntimeError(f"{name} found other tour lengths than DFJ (max gap {gap:.3g})")
    _, degree2 = solve_lp_batch(problem.lp(), costs, "highs", processes=1)
    form = MTZForm.build(n)
    _, mtz_lp = solve_lp_batch(form.lp, form.price(costs), "highs", processes=1)
    gap_degree2 = float(np.mean((optimal - degree2) / optimal))
    gap_mtz = float(np.mean((optimal - mtz_lp) / optimal))
    ratios = [d / o for d, o in zip(t_defaults, t_options, strict=True)]
    log.info("n=%d: DFJ %s per %d instances (HiGHS's defaults %s), MTZ %s per %d; relaxation "
             "gaps %.2f%% (degree-2) and %.2f%% (MTZ)", n, seconds(statistics.median(t_options)),
             batch, seconds(statistics.median(t_defaults)), seconds(t_mtz), sizes.mtz_batch,
             100 * gap_degree2, 100 * gap_mtz)
    rounds = f"per batch of {batch}, median of {sizes.rounds} interleaved rounds"
    return Findings(
        [
            Check(f"MTZ s ÷ DFJ s, n_nodes={n}",
                  Side(t_dfj_few, "s", f"per batch of {sizes.mtz_batch}, median of "
                                       f"{sizes.rounds}"),
                  Side(t_mtz, "s", f"per batch of {sizes.mtz_batch}, once"),
                  ratio(t_mtz, t_dfj_few), CLEARLY_FASTER),
            Check(f"HiGHS defaults s ÷ DFJ options {tsp_solvers.DFJ_HIGHS_OPTIONS} s, "
                  f"n_nodes={n}", Side(statistics.median(t_options), "s", rounds),
                  Side(statistics.median(t_defaults), "s", rounds), statistics.median(ratios),
                  NO_SLOWER, note="the median of the rounds' ratios"),
            Check(f"mean relaxation gap to the tour, degree-2 ÷ MTZ's LP, n_nodes={n}",
                  Side(gap_degree2, "", "degree-2 relaxation (the LP form)"),
                  Side(gap_mtz, "", "MTZ's LP relaxation"), ratio(gap_degree2, gap_mtz),
                  TIGHTER),
        ],
        tables=[Table(
            f"LP relaxations at n_nodes = {n}: mean (tour − bound) / tour over {batch} instances",
            ["relaxation", "columns", "mean gap"],
            [["degree-2 (tsp's LP form)", problem.lp().n_vars, f"{gap_degree2:.2%}"],
             ["MTZ's LP relaxation", form.lp.n_vars, f"{gap_mtz:.2%}"]],
        )],
        notes=[f"n_nodes={n}: DFJ {seconds(t_dfj_few / sizes.mtz_batch)} per instance, MTZ "
               f"{seconds(t_mtz / sizes.mtz_batch)}; every formulation found the same tour "
               "lengths"],
    )


COMPARISON = Comparison(
    name="tsp-formulation",
    title="TSP oracle's formulation and options, and the LP relaxation the layers train on",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
