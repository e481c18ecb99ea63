"""Batched exact solves of one LP (or MIP) form under many cost vectors, with HiGHS or Gurobi.

Problems without a special-purpose oracle (or tests that want an independent check of one) solve
``min``/``max cᵀx s.t. A x = b, lower ≤ x ≤ upper`` (some or all variables integer) for every
row of a cost matrix. Rows are solved in blocks (:mod:`l2obench.problems.batching`): a block's
model is built once and only its objective changes between rows, so the solver can reuse its last
basis, and large batches are spread over processes without changing a single result (ties between
optima are broken the same way). The configured HiGHS instance (:func:`highs_solver`,
:func:`run_highs`) is shared with the other HiGHS-based oracles. Nothing here knows about any
particular problem.
"""

from __future__ import annotations

import functools
import os
import sys
from typing import TYPE_CHECKING, Any

import highspy
import numpy as np

from l2obench.errors import MissingExtraError
from l2obench.problems.base import LPForm
from l2obench.problems.batching import as_cost_matrix, solve_in_blocks

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike

BACKENDS = ("highs", "gurobi")


def solve_lp_batch(
    lp: LPForm,
    costs: ArrayLike | torch.Tensor,
    backend: str,
    integer: bool | ArrayLike = False,
    processes: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve ``lp`` exactly once per row of ``costs[N, n_vars]`` with ``backend``.

    ``backend`` is ``"highs"`` (highspy, always installed) or ``"gurobi"`` (gurobipy, the
    ``gurobi`` extra). ``integer`` is ``True`` (every variable integer), ``False`` (an LP) or a
    boolean mask over the variables; a MIP is solved to a zero gap and its integer variables are
    rounded to the nearest integer. ``processes`` caps the worker processes a large batch is
    spread over (default: the CPUs available; ``1``: this process only); the results are the
    same either way. Returns ``(solutions[N, n_vars] float64, objectives[N] float64)``, where
    ``objectives`` is the row-wise product ``costs · solutions``. Raises ``RuntimeError`` when
    an instance is not solved to optimality (infeasible, unbounded, ...).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown LP backend {backend!r}; valid: {', '.join(BACKENDS)}")
    matrix = as_cost_matrix(costs, lp.n_vars)
    mask = integrality_mask(integer, lp.n_vars)
    solve = functools.partial(_solve_block, lp, backend=backend, integer=mask)
    solutions = solve_in_blocks(solve, matrix, processes)
    solutions[:, mask] = np.rint(solutions[:, mask])
    return solutions, np.einsum("ij,ij->i", matrix, solutions)


def integrality_mask(integer: bool | ArrayLike, n_vars: int) -> np.ndarray:
    """``integer`` as a boolean mask over ``n_vars`` variables (``True``/``False``: all/none)."""
    if isinstance(integer, bool | np.bool_):
        return np.full(n_vars, bool(integer))
    mask = np.asarray(integer)
    if mask.dtype != np.bool_ or mask.shape != (n_vars,):
        raise ValueError(
            f"integer must be a bool or a boolean mask of shape ({n_vars},); "
            f"got {mask.dtype} of shape {mask.shape}"
        )
    return mask


def _solve_block(lp: LPForm, costs: np.ndarray, backend: str, integer: np.ndarray) -> np.ndarray:
    """The (unrounded) solutions of one block of rows, by a model built for the block."""
    return (_solve_highs if backend == "highs" else _solve_gurobi)(lp, costs, integer)


@functools.cache
def _silence_highs_banner() -> None:
    """Create this process's first HiGHS instance with its standard output sent to /dev/null.

    HiGHS prints a banner to the process's standard output (file descriptor 1, below Python's
    ``sys.stdout``) when the first instance is created, before any option can switch its
    logging off; every cell's process would print it into the sweep's output.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 1)
            highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)


def _solve_highs(lp: LPForm, costs: np.ndarray, integer: np.ndarray) -> np.ndarray:
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
    is_mip = bool(integer.any())
    if is_mip:
        model.integrality_ = [
            highspy.HighsVarType.kInteger if i else highspy.HighsVarType.kContinuous
            for i in integer
        ]

    solver = highs_solver(is_mip)
    if solver.passModel(model) == highspy.HighsStatus.kError:
        raise RuntimeError("HiGHS refused the LP form (inconsistent sizes or bounds)")

    indices = np.arange(n_cols, dtype=np.int32)
    solutions = np.empty_like(costs)
    for row, cost in enumerate(costs):
        solver.changeColsCost(n_cols, indices, cost)
        run_highs(solver)
        status = solver.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(
                f"HiGHS did not solve instance {row} to optimality: "
                f"{solver.modelStatusToString(status)}"
            )
        solutions[row] = solver.getSolution().col_value
    return solutions


def highs_solver(is_mip: bool) -> highspy.Highs:
    """A silent HiGHS instance configured by :func:`highs_options` (no model yet)."""
    _silence_highs_banner()
    solver = highspy.Highs()
    for option, value in highs_options(is_mip).items():
        solver.setOptionValue(option, value)
    return solver


def highs_options(is_mip: bool) -> dict[str, Any]:
    """HiGHS options for many re-solves of one small model, one instance at a time.

    One thread: parallelism comes from spreading blocks over processes, and HiGHS's default
    second thread only competes for the same cores, multiplying the CPU time of each small MIP.
    MIPs are solved to a zero gap, without the feasibility-jump heuristic, a fixed cost per solve
    that an exact solve of a small model does not need. Both were measured on knapsack MIPs
    (benchmarks/results/defaults.md, "Measurements behind the defaults"). HiGHS versions before that
    heuristic existed ignore the option.
    """
    options: dict[str, Any] = {"output_flag": False, "threads": 1}
    if is_mip:
        options.update(
            mip_rel_gap=0.0, mip_abs_gap=0.0, mip_heuristic_run_feasibility_jump=False
        )
    return options


def run_highs(solver: highspy.Highs) -> None:
    """``solver.run()``, even when other code started HiGHS's threads with another count.

    HiGHS keeps one thread scheduler per process, created by the first run; a later run asking
    for another number of threads fails with ``kError`` before solving anything. Then the
    scheduler is reset (a blocking shutdown of its workers) and the run repeated once.
    """
    if (
        solver.run() == highspy.HighsStatus.kError
        and solver.getModelStatus() == highspy.HighsModelStatus.kNotset
    ):
        highspy.Highs.resetGlobalScheduler(True)
        solver.run()


def _solve_gurobi(lp: LPForm, costs: np.ndarray, integer: np.ndarray) -> np.ndarray:
    gp = import_gurobipy()
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
                vtype=np.where(integer, grb.INTEGER, grb.CONTINUOUS),
            )
            model.addMConstr(lp.A, x, "=", np.asarray(lp.b, dtype=np.float64))
            model.ModelSense = grb.MAXIMIZE if lp.sense == "max" else grb.MINIMIZE
            if integer.any():
                model.Params.MIPGap = 0.0
                model.Params.MIPGapAbs = 0.0
            for row, cost in enumerate(costs):
                x.Obj = cost
                model.optimize()
                if model.Status != grb.OPTIMAL:
                    raise RuntimeError(
                        f"Gurobi did not solve instance {row} to optimality (status {model.Status})"
                    )
                solutions[row] = x.X
    return solutions


def import_gurobipy() -> Any:
    try:
        import gurobipy
    except ImportError as exc:
        raise MissingExtraError(
            "the 'gurobi' solver backend needs gurobipy: pip install 'l2obench[gurobi]'"
        ) from exc
    return gurobipy
