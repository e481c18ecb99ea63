"""Batched exact solves of one LP (or MIP) form under many cost vectors, with HiGHS or Gurobi.

Problems without a special-purpose oracle (or tests that want an independent check of one) solve
``min``/``max cᵀx s.t. A x = b, lower ≤ x ≤ upper`` (some or all variables integer) for every
row of a cost matrix. Rows are solved in blocks of :data:`BLOCK_ROWS`: a block's model is built
once and only its objective changes between rows, so the solver can reuse its last basis. A
row's solution therefore depends on its block alone, never on where the block was solved, so
large batches can be spread over processes without changing a single result (ties between
optima are broken the same way). Nothing here knows about any particular problem.
"""

from __future__ import annotations

import functools
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import highspy
import numpy as np

from l2obench.errors import MissingExtraError
from l2obench.problems.base import LPForm
from l2obench.process_pool import available_cpus, can_fork, map_in_processes

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike

BACKENDS = ("highs", "gurobi")

#: Rows per block: each block is solved by a model of its own (see the module docstring).
BLOCK_ROWS = 32

#: The blocks after the first are spread over processes when, at the pace the first block was
#: solved, they would take longer than this in one process (forking a worker has a fixed cost
#: that a short batch does not repay).
PARALLEL_MIN_SECONDS = 0.5


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
    solutions = _solve_in_blocks(solve, matrix, processes or available_cpus())
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


def _solve_in_blocks(
    solve: functools.partial[np.ndarray], matrix: np.ndarray, processes: int
) -> np.ndarray:
    """``solve`` each block of :data:`BLOCK_ROWS` rows; stack the blocks' solutions in order.

    The first block runs here and times the solver; the others are spread over up to
    ``processes`` forked workers when that pace predicts more than :data:`PARALLEL_MIN_SECONDS`
    of work for them, and run here otherwise.
    """
    blocks = [matrix[i : i + BLOCK_ROWS] for i in range(0, len(matrix), BLOCK_ROWS)]
    if not blocks:
        return np.empty_like(matrix)
    start = time.perf_counter()
    first = solve(blocks[0])
    rest = blocks[1:]
    pace = (time.perf_counter() - start) / len(blocks[0])
    workers = min(processes, len(rest))
    if workers > 1 and can_fork() and pace * (len(matrix) - len(first)) > PARALLEL_MIN_SECONDS:
        solved = map_in_processes(solve, rest, workers)
    else:
        solved = [solve(block) for block in rest]
    return np.concatenate([first, *solved])


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
    _silence_highs_banner()
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

    solver = highspy.Highs()
    for option, value in _highs_options(is_mip).items():
        solver.setOptionValue(option, value)
    if solver.passModel(model) == highspy.HighsStatus.kError:
        raise RuntimeError("HiGHS refused the LP form (inconsistent sizes or bounds)")

    indices = np.arange(n_cols, dtype=np.int32)
    solutions = np.empty_like(costs)
    for row, cost in enumerate(costs):
        solver.changeColsCost(n_cols, indices, cost)
        _run_highs(solver)
        status = solver.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(
                f"HiGHS did not solve instance {row} to optimality: "
                f"{solver.modelStatusToString(status)}"
            )
        solutions[row] = solver.getSolution().col_value
    return solutions


def _highs_options(is_mip: bool) -> dict[str, Any]:
    """HiGHS options for many re-solves of one small model, one instance at a time.

    One thread: parallelism comes from spreading blocks over processes, and HiGHS's default
    second thread only competes for the same cores, multiplying the CPU time of each small MIP.
    MIPs are solved to a zero gap, without the feasibility-jump heuristic, a fixed cost per solve
    that an exact solve of a small model does not need. Both were measured on knapsack MIPs
    (benchmarks/RESULTS.md, "Measurements behind the defaults"). HiGHS versions before that
    heuristic existed ignore the option.
    """
    options: dict[str, Any] = {"output_flag": False, "threads": 1}
    if is_mip:
        options.update(
            mip_rel_gap=0.0, mip_abs_gap=0.0, mip_heuristic_run_feasibility_jump=False
        )
    return options


def _run_highs(solver: highspy.Highs) -> None:
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


def _import_gurobipy() -> Any:
    try:
        import gurobipy
    except ImportError as exc:
        raise MissingExtraError(
            "the 'gurobi' solver backend needs gurobipy: pip install 'l2obench[gurobi]'"
        ) from exc
    return gurobipy
