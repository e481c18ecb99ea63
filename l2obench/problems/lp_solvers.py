"""Batched exact solves of one LP (or MIP) form under many cost vectors, with HiGHS or Gurobi.

Problems without a special-purpose oracle (or tests that want an independent check of one) solve
``min``/``max cᵀx s.t. A x = b, lower ≤ x ≤ upper`` for every row of a cost matrix. The model is
built once per call and only its objective changes between instances, so the solver can reuse its
last basis. Nothing here knows about any particular problem.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import highspy
import numpy as np

from l2obench.errors import MissingExtraError
from l2obench.problems.base import LPForm

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike

BACKENDS = ("highs", "gurobi")


def as_cost_matrix(costs: ArrayLike | torch.Tensor, n_vars: int) -> np.ndarray:
    """``costs`` as a finite float64 array of shape ``(N, n_vars)``.

    Oracles take numpy arrays of any float type and torch tensors (detached and copied to the
    CPU), and refuse anything that is not one cost vector per row, so that a transposed or
    flattened batch fails loudly instead of being solved as the wrong instances.
    """
    if hasattr(costs, "detach"):  # a torch tensor; torch itself is not imported here
        costs = costs.detach().cpu().double().numpy()
    array = np.asarray(costs, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != n_vars:
        raise ValueError(
            f"costs must have shape (N, {n_vars}): one cost vector per row; got {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError("costs must be finite (found NaN or infinity)")
    return array


def solve_lp_batch(
    lp: LPForm,
    costs: ArrayLike | torch.Tensor,
    backend: str,
    integer: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``lp`` exactly once per row of ``costs[N, n_vars]`` with ``backend``.

    ``backend`` is ``"highs"`` (highspy, always installed) or ``"gurobi"`` (gurobipy, the
    ``gurobi`` extra). With ``integer=True`` every variable is integer and the MIP is solved to a
    zero relative gap; its solutions are rounded to the nearest integer. Returns
    ``(solutions[N, n_vars] float64, objectives[N] float64)``, where ``objectives`` is the row-wise
    product ``costs · solutions``. Raises ``RuntimeError`` when an instance is not solved to
    optimality (infeasible, unbounded, ...).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown LP backend {backend!r}; valid: {', '.join(BACKENDS)}")
    matrix = as_cost_matrix(costs, lp.n_vars)
    solve = _solve_highs if backend == "highs" else _solve_gurobi
    solutions = solve(lp, matrix, integer)
    if integer:
        solutions = np.rint(solutions)
    return solutions, np.einsum("ij,ij->i", matrix, solutions)


def _solve_highs(lp: LPForm, costs: np.ndarray, integer: bool) -> np.ndarray:
    n_rows, n_cols = lp.A.shape
    columns = lp.A.tocsc()
    model = highspy.HighsLp()
    model.num_col_ = n_cols
    model.num_row_ = n_rows
    model.col_cost_ = np.zeros(n_cols)
    model.col_lower_ = np.asarray(lp.lower, dtype=np.float64)
    model.col_upper_ = np.asarray(lp.upper, dtype=np.float64)
    model.row_lower_ = np.asarray(lp.b, dtype=np.float64)
    model.row_upper_ = np.asarray(lp.b, dtype=np.float64)
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.num_col_ = n_cols
    model.a_matrix_.num_row_ = n_rows
    model.a_matrix_.start_ = columns.indptr
    model.a_matrix_.index_ = columns.indices
    model.a_matrix_.value_ = columns.data.astype(np.float64)
    model.sense_ = highspy.ObjSense.kMaximize if lp.sense == "max" else highspy.ObjSense.kMinimize
    if integer:
        model.integrality_ = [highspy.HighsVarType.kInteger] * n_cols

    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    if integer:
        solver.setOptionValue("mip_rel_gap", 0.0)
        solver.setOptionValue("mip_abs_gap", 0.0)
    if solver.passModel(model) == highspy.HighsStatus.kError:
        raise RuntimeError("HiGHS refused the LP form (inconsistent sizes or bounds)")

    indices = np.arange(n_cols, dtype=np.int32)
    solutions = np.empty_like(costs)
    for row, cost in enumerate(costs):
        solver.changeColsCost(n_cols, indices, cost)
        solver.run()
        status = solver.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(
                f"HiGHS did not solve instance {row} to optimality: "
                f"{solver.modelStatusToString(status)}"
            )
        solutions[row] = solver.getSolution().col_value
    return solutions


def _solve_gurobi(lp: LPForm, costs: np.ndarray, integer: bool) -> np.ndarray:
    gp = _import_gurobipy()
    grb = gp.GRB
    solutions = np.empty_like(costs)
    with gp.Env(empty=True) as env:
        env.setParam("OutputFlag", 0)
        env.start()
        with gp.Model(env=env) as model:
            x = model.addMVar(
                lp.n_vars,
                lb=np.asarray(lp.lower, dtype=np.float64),
                ub=np.asarray(lp.upper, dtype=np.float64),
                vtype=grb.INTEGER if integer else grb.CONTINUOUS,
            )
            model.addMConstr(lp.A, x, "=", np.asarray(lp.b, dtype=np.float64))
            model.ModelSense = grb.MAXIMIZE if lp.sense == "max" else grb.MINIMIZE
            if integer:
                model.Params.MIPGap = 0.0
            for row, cost in enumerate(costs):
                x.Obj = cost
                model.optimize()
                if model.Status != grb.OPTIMAL:
                    raise RuntimeError(
                        f"Gurobi did not solve instance {row} to optimality (status {model.Status})"
                    )
                solutions[row] = x.X
    return solutions


def _import_gurobipy() -> Any:
    try:
        import gurobipy
    except ImportError as exc:
        raise MissingExtraError(
            "the 'gurobi' solver backend needs gurobipy: pip install 'l2obench[gurobi]'"
        ) from exc
    return gurobipy
