"""Batched exact solves: one cost vector per row, blocks of rows, large batches over processes.

Every exact oracle takes a matrix of cost vectors and solves each row. The solvers behind them
(HiGHS, Gurobi, Clarabel, a subtour-cut loop) solve one instance at a time, so the batch is cut
into blocks of :data:`BLOCK_ROWS` rows, each solved by one call of a block function (which may
build its model once per block and change only the objective between rows). A row's solution
therefore depends on its block alone, never on where the block was solved, and large batches are
spread over forked processes without changing a single result. Nothing here knows about any
particular problem or solver.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from l2obench.process_pool import available_cpus, can_fork, map_in_processes

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike

#: Rows per block: each block is solved by one call of the block function.
BLOCK_ROWS = 32

#: The blocks after the first are spread over processes when, at the pace the first block was
#: solved, they would take longer than this in one process (forking a worker has a fixed cost
#: that a short batch does not repay).
PARALLEL_MIN_SECONDS = 0.5

#: Solves one block ``costs[B, n]`` and returns its solutions ``[B, n_out]``; it is pickled to
#: the worker processes (a module-level function or a ``functools.partial`` of one).
BlockSolver = Callable[[np.ndarray], np.ndarray]


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


def solve_in_blocks(
    solve: BlockSolver, matrix: np.ndarray, processes: int | None = None
) -> np.ndarray:
    """``solve`` each block of :data:`BLOCK_ROWS` rows of ``matrix``; stack the solutions in order.

    The first block runs here and times the solver; the others are spread over up to
    ``processes`` forked workers (default: the CPUs available; ``1``: this process only) when
    that pace predicts more than :data:`PARALLEL_MIN_SECONDS` of work for them, and run here
    otherwise. The result is the same either way. An empty ``matrix`` gives an empty result of
    the same shape.
    """
    blocks = [matrix[i : i + BLOCK_ROWS] for i in range(0, len(matrix), BLOCK_ROWS)]
    if not blocks:
        return np.empty_like(matrix)
    start = time.perf_counter()
    first = solve(blocks[0])
    rest = blocks[1:]
    pace = (time.perf_counter() - start) / len(blocks[0])
    workers = min(processes or available_cpus(), len(rest))
    if workers > 1 and can_fork() and pace * (len(matrix) - len(first)) > PARALLEL_MIN_SECONDS:
        solved = map_in_processes(solve, rest, workers)
    else:
        solved = [solve(block) for block in rest]
    return np.concatenate([first, *solved])
