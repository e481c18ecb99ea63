"""The cone solver inside ``cvx-net``'s cvxpylayers layer: Clarabel (its choice) against SCS
(diffcp's default), on the layer's own program, against cvxpy's solve of the same program.

For each problem (shortest path on a 10×10 grid: a QP over an LP form; portfolio with 50 assets:
an SOCP with the risk cone) the layer ``qp_layer(problem.conic(), γ = 1)`` solves a batch of
random costs forward and backward with each ``solve_method``. Measured per solver: seconds per
batch (median of the repeats), the largest distance of a decision to cvxpy's Clarabel solution of
the same regularised program, and the largest violation of the form's constraints (equalities,
bounds and cones, each relative to its right-hand side where that is not below 1). Targets:
Clarabel's decisions within 1e-4 of the reference and feasible to 1e-6, at most 1.5× SCS's time.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import numpy as np
import torch

from l2obench.methods.cvx_net import qp_layer
from l2obench.problems.base import ConicForm
from l2obench.problems.portfolio import Portfolio
from l2obench.problems.shortest_path import ShortestPath

from ..comparisons.comparison import (
    Check,
    Comparison,
    Findings,
    Side,
    Table,
    at_most,
    clock,
    median_of,
    ratio,
    seconds,
)

log = logging.getLogger(__name__)

SOLVERS = ("Clarabel", "SCS")
GAMMA = 1.0
CLOSE = at_most(1e-4)
FEASIBLE = at_most(1e-6)
TIME = at_most(1.5, "×")


@dataclass(frozen=True)
class Sizes:
    k: int
    n_assets: int
    batch: int
    repeats: int


FULL = Sizes(k=10, n_assets=50, batch=64, repeats=3)
QUICK = Sizes(k=3, n_assets=8, batch=4, repeats=1)


def reference(form: ConicForm, costs: np.ndarray) -> np.ndarray:
    """cvxpy's Clarabel solutions of ``min ±cᵀx + (γ/2)‖x‖²`` over ``form``."""
    import cvxpy as cp

    lp = form.linear
    x = cp.Variable(lp.n_vars)
    c = cp.Parameter(lp.n_vars)
    constraints = [lp.A @ x == lp.b, x >= lp.lower, x <= lp.upper]
    constraints += [cp.norm(cone.F @ x) <= cone.bound for cone in form.cones]
    program = cp.Problem(cp.Minimize(lp.sign * c @ x + GAMMA / 2 * cp.sum_squares(x)),
                         constraints)
    solutions = []
    for row in costs:
        c.value = row
        program.solve(solver="CLARABEL")
        solutions.append(x.value)
    return np.array(solutions)


def violation(form: ConicForm, x: np.ndarray) -> float:
    """The largest violation of ``form``'s constraints by the rows of ``x``."""
    lp = form.linear
    scale = np.maximum(np.abs(lp.b), 1.0)
    worst = [np.abs((x @ lp.A.T - lp.b) / scale).max(), (lp.lower - x).max(), (x - lp.upper).max()]
    for cone in form.cones:
        norms = np.linalg.norm(x @ cone.F.T, axis=1)
        worst.append(((norms - cone.bound) / max(cone.bound, 1.0)).max())
    return float(max(0.0, *worst))


def solve(layer: object, costs: np.ndarray, solver: str) -> np.ndarray:
    """The layer's decisions for ``costs``, forward and backward."""
    w = torch.tensor(costs, requires_grad=True)
    (x,) = layer(w, solver_args={"solve_method": solver})  # type: ignore[operator]
    x.sum().backward()
    return x.detach().numpy()


def measure(sizes: Sizes) -> Findings:
    torch.set_num_threads(1)
    checks: list[Check] = []
    rows: list[list[float | int | str | None]] = []
    for name, problem in ((f"shortest-path k={sizes.k}", ShortestPath(k=sizes.k)),
                          (f"portfolio n_assets={sizes.n_assets}",
                           Portfolio(n_assets=sizes.n_assets))):
        form = problem.conic()
        costs = np.abs(np.random.default_rng(0).normal(0.5, 0.3, (sizes.batch, problem.n_vars)))
        target = reference(form, costs)
        layer = qp_layer(form, GAMMA, problem.n_vars)
        found = {}
        for solver in SOLVERS:
            t = median_of(functools.partial(clock, functools.partial(solve, layer, costs,
                                                                     solver)), sizes.repeats)
            decisions = solve(layer, costs, solver)
            found[solver] = (t, float(np.abs(decisions - target).max()),
                             violation(form, decisions))
            rows.append([name, problem.n_vars, solver, t / sizes.batch, *found[solver][1:]])
            log.info("%s, %s: %s per batch of %d", name, solver, seconds(t), sizes.batch)
        (t_ours, d_ours, v_ours), (t_scs, d_scs, v_scs) = found["Clarabel"], found["SCS"]
        note = f"per batch of {sizes.batch}, forward and backward, median of {sizes.repeats}"
        checks += [
            Check(f"{name}: max |x − reference|, Clarabel (SCS beside it)",
                  Side(d_ours, "", "Clarabel"), Side(d_scs, "", "SCS"), d_ours, CLOSE),
            Check(f"{name}: max constraint violation, Clarabel (SCS beside it)",
                  Side(v_ours, "", "Clarabel"), Side(v_scs, "", "SCS"), v_ours, FEASIBLE),
            Check(f"{name}: Clarabel s ÷ SCS s", Side(t_ours, "s", note), Side(t_scs, "s", note),
                  ratio(t_ours, t_scs), TIME),
        ]
    return Findings(checks, tables=[Table(
        "cvx-net's layer by diffcp solve_method", ["problem", "n_vars", "solver",
                                                   "s/instance", "max |x − reference|",
                                                   "max violation"], rows)])


COMPARISON = Comparison(
    name="cvx-net-solver",
    title="cvx-net's layer solver: Clarabel vs diffcp's default SCS",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
