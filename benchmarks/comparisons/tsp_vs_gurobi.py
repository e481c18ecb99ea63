"""The TSP oracle (HiGHS, DFJ subtour cuts) on a batch against PyEPO's Gurobi TSP models solving
one instance at a time (``setObj`` + ``solve``), as PyEPO's training loops call them.

The batch is PyEPO's own data (``pyepo.data.tsp.genData``, deg 4, noise 0.5). References:
``tspDFJModel`` (lazy subtour cuts in Gurobi's callback) and ``tspGGModel`` (Gavish–Graves
flows). l2obench's side is the problem's oracle (its blocks spread over the CPUs) and the same
solves in one process. Targets: the licence-free oracle at least half Gurobi DFJ's speed and
faster than GG; objectives equal to DFJ's to 1e-8 of the tour, and never above GG's, which
stops at Gurobi's default MIP gap.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import numpy as np

from l2obench.problems.tsp import TSP
from l2obench.problems.tsp_solvers import solve_tsp_batch

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

HALF_GUROBI = at_least(0.5, "×")
FASTER = at_least(1, "×")
SAME_TOUR = at_most(1e-8)
NEVER_WORSE = at_most(0, "instances worse")

#: Relative difference below which two tour lengths are the same (the solvers' tolerances on
#: tied tours).
RTOL = 1e-8


@dataclass(frozen=True)
class Sizes:
    n_nodes: int
    batch: int
    repeats: int  # interleaved rounds of the oracle and Gurobi's DFJ model


FULL = Sizes(n_nodes=20, batch=1000, repeats=3)
QUICK = Sizes(n_nodes=7, batch=30, repeats=1)


def measure(sizes: Sizes) -> Findings:
    from pyepo.data.tsp import genData
    from pyepo.model.grb.tsp import tspDFJModel, tspGGModel

    n, batch = sizes.n_nodes, sizes.batch
    _, raw = genData(batch, 5, n, deg=4, noise_width=0.5, seed=0)
    costs = raw.astype(np.float64)
    problem = TSP(n_nodes=n)
    with quiet():
        dfj_model, gg_model = tspDFJModel(n), tspGGModel(n)
        # The oracle and Gurobi's DFJ model in interleaved rounds (a change of load falls on
        # both); the GG model, some 20× slower, once.
        times = interleaved_medians({
            "ours": lambda: problem.oracle(costs),
            "one": lambda: solve_tsp_batch(n, costs, "highs", processes=1),
            "tspDFJModel": lambda: gurobi_objectives(dfj_model, costs),
        }, sizes.repeats)
        start = time.perf_counter()
        gg = gurobi_objectives(gg_model, costs)
        times["tspGGModel"] = time.perf_counter() - start
        found = {"tspDFJModel": gurobi_objectives(dfj_model, costs), "tspGGModel": gg}
    t_ours, t_one = times["ours"], times["one"]
    ours = problem.oracle(costs)[1]
    rounds = f"median of {sizes.repeats} interleaved rounds"
    ours_side = Side(t_ours, "s", f"per batch of {batch}, over the CPUs, {rounds}")
    one_side = Side(t_one, "s", f"per batch of {batch}, one process, {rounds}")
    checks, notes = [], []
    for label, speed in (("tspDFJModel", HALF_GUROBI), ("tspGGModel", FASTER)):
        theirs, t_ref = found[label], times[label]
        how = rounds if label == "tspDFJModel" else "once"
        ref_side = Side(t_ref, "s", f"per batch of {batch}, one at a time, {how}")
        log.info("n=%d, batch of %d: oracle %s (one process %s), PyEPO %s %s", n, batch,
                 seconds(t_ours), seconds(t_one), label, seconds(t_ref))
        checks += [
            Check(f"Gurobi {label} s ÷ oracle s, n_nodes={n}", ours_side, ref_side,
                  ratio(t_ref, t_ours), speed),
            Check(f"Gurobi {label} s ÷ oracle s in one process, n_nodes={n}", one_side,
                  ref_side, ratio(t_ref, t_one), speed),
        ]
        excess = (ours - theirs) / np.maximum(np.abs(theirs), 1.0)
        if label == "tspDFJModel":
            checks.append(Check(
                f"tour lengths, max |oracle − {label}| / length over {batch} instances",
                Side(float(ours.mean()), "", "mean tour length"),
                Side(float(theirs.mean()), "", "mean tour length"),
                float(np.abs(excess).max()), SAME_TOUR))
        else:
            checks.append(Check(
                f"instances where the oracle's tour is longer than {label}'s (by > {RTOL:g})",
                Side(float(ours.mean()), "", "mean tour length"),
                Side(float(theirs.mean()), "", "mean tour length"),
                int((excess > RTOL).sum()), NEVER_WORSE))
            notes.append(f"{label} stops at Gurobi's default relative MIP gap (1e-4): its tour "
                         f"is up to {float((theirs - ours).max()):.2g} longer than the optimum")
    notes.append(f"n_nodes={n}: the oracle takes {seconds(t_ours / batch)} per instance over the "
                 f"CPUs, {seconds(t_one / batch)} in one process")
    return Findings(checks, notes=notes)


COMPARISON = Comparison(
    name="tsp-vs-gurobi",
    title="TSP oracle (HiGHS, DFJ cuts) vs PyEPO's Gurobi TSP models, one instance at a time",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
