"""Batched exact solves of one conic form under many cost vectors, with Clarabel or Gurobi.

A :class:`~l2obench.problems.base.ConicForm` (``A x = b``, bounds, second-order cones
``‖F x‖₂ ≤ t``) is a convex program: an interior-point cone solver finds its optimum to its
tolerances (:data:`CLARABEL_TOL`) for every row of a cost matrix. Clarabel is licence-free and
always installed; Gurobi (the ``gurobi`` extra) is an optional back end. Each block of rows
(:mod:`l2obench.problems.batching`) builds its model once and changes only the linear objective
between rows; an interior-point solve starts from scratch every time, so a row's solution
depends on its costs alone. Nothing here knows about any particular problem.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

import clarabel
import numpy as np
import scipy.sparse as sp

from l2obench.problems.base import ConicForm
from l2obench.problems.batching import as_cost_matrix, solve_in_blocks
from l2obench.problems.lp_solvers import import_gurobipy

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike

BACKENDS = ("clarabel", "gurobi")


def solve_conic_batch(
    form: ConicForm,
    costs: ArrayLike | torch.Tensor,
    backend: str,
    processes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``form`` once per row of ``costs[N, n_vars]`` with ``backend``.

    ``backend`` is ``"clarabel"`` or ``"gurobi"``. Each cost vector is divided by its largest
    absolute entry before it reaches the solver (the optimal set of a linear objective does not
    change under positive scaling, and the solver's absolute tolerances then mean the same for
    predicted costs of any magnitude). ``processes`` as in
    :func:`~l2obench.problems.batching.solve_in_blocks`. Returns ``(solutions[N, n_vars],
    objectives[N])`` in float64, ``objectives`` the row-wise product ``costs · solutions``.
    Raises ``RuntimeError`` when an instance is not solved to the solver's tolerances
    (infeasible, numerical trouble, ...).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown conic backend {backend!r}; valid: {', '.join(BACKENDS)}")
    matrix = as_cost_matrix(costs, form.n_vars)
    solve = functools.partial(_solve_block, form, backend=backend)
    solutions = solve_in_blocks(solve, matrix, processes)
    return solutions, np.einsum("ij,ij->i", matrix, solutions)


def _normalised(costs: np.ndarray) -> np.ndarray:
    """Each row divided by its largest absolute entry (rows of zeros unchanged)."""
    scale = np.abs(costs).max(axis=1, keepdims=True)
    return costs / np.where(scale > 0.0, scale, 1.0)


def _solve_block(form: ConicForm, costs: np.ndarray, backend: str) -> np.ndarray:
    """The solutions of one block of rows, by a model built for the block."""
    minimised = form.sign * _normalised(costs)  # both back ends minimise
    return (_solve_clarabel if backend == "clarabel" else _solve_gurobi)(form, minimised)


def clarabel_data(
    form: ConicForm,
) -> tuple[sp.csc_matrix, np.ndarray, list[Any]]:
    """``(A, b, cones)`` of Clarabel's standard form ``A x + s = b, s ∈ K`` for ``form``.

    ``K`` is, in order: a zero cone for ``A x = b``, a non-negative cone for the finite lower
    (``−x + s = −lower``) and upper (``x + s = upper``) bounds, and one second-order cone of
    dimension ``k + 1`` per constraint ``‖F x‖₂ ≤ t`` (``s = (t, F x)``).
    """
    lp = form.linear
    n = lp.n_vars
    lower, upper = np.asarray(lp.lower, dtype=float), np.asarray(lp.upper, dtype=float)
    has_lower, has_upper = np.flatnonzero(np.isfinite(lower)), np.flatnonzero(np.isfinite(upper))
    identity = sp.identity(n, format="csr")
    blocks = [sp.csr_matrix(lp.A, dtype=float), -identity[has_lower], identity[has_upper]]
    rhs = [np.asarray(lp.b, dtype=float), -lower[has_lower], upper[has_upper]]
    cones: list[Any] = [
        clarabel.ZeroConeT(lp.n_constraints),
        clarabel.NonnegativeConeT(len(has_lower) + len(has_upper)),
    ]
    for cone in form.cones:
        k = cone.F.shape[0]
        blocks += [sp.csr_matrix((1, n)), -sp.csr_matrix(cone.F, dtype=float)]
        rhs += [np.array([float(cone.bound)]), np.zeros(k)]
        cones.append(clarabel.SecondOrderConeT(k + 1))
    return sp.vstack(blocks, format="csc"), np.concatenate(rhs), cones


#: Clarabel's duality-gap, feasibility and KKT-ratio tolerances for the oracle: one order
#: tighter than its defaults (``1e-8``), at which the portfolio's shares were visibly less
#: stationary (the KKT certificate of ``tests/test_portfolio.py``). An instance that reaches
#: only Clarabel's reduced tolerances at these (which became frequent at ``1e-10``) is solved
#: again at the defaults.
CLARABEL_TOL = 1e-9


def clarabel_settings(tol: float | None) -> clarabel.DefaultSettings:
    """Silent, single-threaded settings (parallelism comes from spreading blocks over
    processes), with the tolerances set to ``tol`` (``None``: Clarabel's defaults)."""
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.max_threads = 1
    if tol is not None:
        settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = tol
        settings.tol_ktratio = tol
    return settings


def _solve_clarabel(form: ConicForm, costs: np.ndarray) -> np.ndarray:
    A, b, cones = clarabel_data(form)
    zero_quadratic = sp.csc_matrix((form.n_vars, form.n_vars))
    tight = clarabel_settings(CLARABEL_TOL)
    solutions = np.empty_like(costs)
    solver = None
    for row, cost in enumerate(costs):
        if solver is None:
            solver = clarabel.DefaultSolver(zero_quadratic, cost, A, b, cones, tight)
        else:
            solver.update(q=cost)
        solution = solver.solve()
        if solution.status == clarabel.SolverStatus.AlmostSolved:
            fallback = clarabel_settings(None)
            solution = clarabel.DefaultSolver(zero_quadratic, cost, A, b, cones, fallback).solve()
        if solution.status != clarabel.SolverStatus.Solved:
            raise RuntimeError(
                f"Clarabel did not solve instance {row} to its tolerances: {solution.status}"
            )
        solutions[row] = solution.x
    return solutions


def _solve_gurobi(form: ConicForm, costs: np.ndarray) -> np.ndarray:
    """Gurobi's barrier on ``‖F x‖² ≤ t²`` as the quadratic constraint ``xᵀ (FᵀF) x ≤ t²``,
    to a tighter QCP tolerance than its default (``1e-6``) so that it agrees with Clarabel."""
    gp = import_gurobipy()
    grb = gp.GRB
    lp = form.linear
    solutions = np.empty_like(costs)
    with gp.Env(empty=True) as env:
        env.setParam("OutputFlag", 0)
        env.start()
        with gp.Model(env=env) as model:
            model.Params.BarQCPConvTol = 1e-9
            x = model.addMVar(
                lp.n_vars,
                lb=np.asarray(lp.lower, dtype=np.float64),
                ub=np.asarray(lp.upper, dtype=np.float64),
            )
            model.addMConstr(lp.A, x, "=", np.asarray(lp.b, dtype=np.float64))
            for cone in form.cones:
                F = sp.csr_matrix(cone.F, dtype=np.float64)
                model.addConstr(x @ (F.T @ F) @ x <= float(cone.bound) ** 2)
            model.ModelSense = grb.MINIMIZE
            for row, cost in enumerate(costs):
                x.Obj = cost
                model.optimize()
                if model.Status != grb.OPTIMAL:
                    raise RuntimeError(
                        f"Gurobi did not solve instance {row} to optimality (status {model.Status})"
                    )
                solutions[row] = x.X
    return solutions
