"""Shortest path on a k×k grid: PyEPO's data generator and an exact, batched DAG oracle.

Nodes are numbered row by row (``v = i·k + j``); arcs go right (``v → v+1``) and down
(``v → v+k``) in exactly PyEPO's order, so costs, solutions and models line up with PyEPO's. The
source is the top-left node 0 and the target the bottom-right node ``k² − 1``.

Because the grid is a DAG whose nodes on one anti-diagonal ``i + j = s`` depend only on the
previous anti-diagonal, the default oracle is a dynamic program that relaxes a whole diagonal for
a whole batch in a few numpy operations: exact for any real costs (negative ones included) and
far faster than calling an LP solver per instance (the ``oracle-vs-gurobi`` comparison measures
it against PyEPO's Gurobi model: benchmarks/results/comparisons.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from l2obench.params import Param
from l2obench.problems.base import DATA_PARAMS, Capability, Dataset, LPForm, Problem
from l2obench.problems.batching import as_cost_matrix
from l2obench.problems.lp_solvers import solve_lp_batch

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike


def grid_arcs(k: int) -> np.ndarray:
    """The arcs of a k×k grid as ``[m, 2]`` (tail, head) pairs, in PyEPO's order.

    Row by row: the row's ``k − 1`` right arcs, then (except on the last row) its ``k`` down arcs.
    """
    block = np.concatenate([np.arange(k - 1), np.arange(k)])  # column of each arc in a row
    step = np.concatenate([np.ones(k - 1, dtype=np.int64), np.full(k, k, dtype=np.int64)])
    tails = (np.arange(k - 1)[:, None] * k + block[None, :]).ravel()
    heads = tails + np.tile(step, k - 1)
    last_tails = (k - 1) * k + np.arange(k - 1)
    tails = np.concatenate([tails, last_tails])
    heads = np.concatenate([heads, last_tails + 1])
    return np.stack([tails, heads], axis=1).astype(np.int64)


def path_laplacian(k: int) -> np.ndarray:
    """The ``k × k`` Laplacian of a path on ``k`` nodes (degree minus adjacency)."""
    off = -np.ones(k - 1)
    degree = np.full(k, 2.0)
    degree[[0, -1]] = 1.0
    return np.diag(degree) + np.diag(off, 1) + np.diag(off, -1)


@dataclass(frozen=True)
class _DagPlan:
    """Everything the dynamic program precomputes once per grid size.

    The distances are kept diagonal by diagonal (``order``: the nodes, diagonal after diagonal,
    ``i`` increasing within one), each diagonal between two ``+inf`` pads, so that the left and
    upper predecessors of a whole diagonal are two contiguous slices of the previous one: a
    relaxation is a few slice operations, with no gather or scatter.
    """

    #: per diagonal ``s ≥ 1``: (first position in ``order``, length, row of its first distance,
    #: rows of the previous diagonal's left and upper predecessors of its first node)
    steps: tuple[tuple[int, int, int, int, int], ...]
    order: np.ndarray  # [k²] node at each diagonal-major position
    position: np.ndarray  # [k²] diagonal-major position of each node
    in_right: np.ndarray  # [k²] the right arc entering each node (from v − 1), or the padding arc
    in_down: np.ndarray  # [k²] the down arc entering each node (from v − k), or the padding arc
    tails: np.ndarray  # [m] tail node of each arc


class ShortestPath(Problem):
    """Shortest path from the top-left to the bottom-right corner of a k×k grid (PyEPO).

    Costs are ``c = [((B x)/√p + 3)^deg + 1] / 3.5^deg · ε`` with ``x ~ N(0, I_p)``,
    ``B ~ Bernoulli(0.5)^{m×p}`` drawn once and ``ε ~ U[1 − noise, 1 + noise]`` per arc, drawn
    with the same random-number sequence as ``pyepo.data.shortestpath.genData``.

    ``arcs`` holds the ``[m, 2]`` int64 (tail, head) pairs of the grid, in PyEPO's order.
    """

    description = "Shortest path on a k×k grid (PyEPO generator), exact batched DAG oracle"
    offers = frozenset({Capability.LP_FORM, Capability.BINARY, Capability.SLACK_FORM})
    size_param = "k"
    params: ClassVar[dict[str, Param]] = {
        "k": Param(int, 5, "grid side: k×k nodes, 2k(k−1) arcs", low=2, high=1000),
        **DATA_PARAMS,
        "deg": Param(
            int, 4, "polynomial degree of the feature-to-cost map (misspecification)", low=1,
            high=32,
        ),
        "oracle": Param(
            str,
            "dp",
            "exact solver behind oracle(): batched DAG dynamic program, HiGHS or Gurobi",
            choices=("dp", "highs", "gurobi"),
        ),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.arcs: np.ndarray = grid_arcs(self.size)

    @property
    def source(self) -> int:
        """The top-left node, where the path starts."""
        return 0

    @property
    def target(self) -> int:
        """The bottom-right node ``k² − 1``, where the path ends."""
        return self.size * self.size - 1

    def lp(self) -> LPForm:
        """Flow conservation: ``A`` is the node-arc incidence matrix, one unit from 0 to k²−1.

        The returned form is cached and shared; do not modify its arrays.
        """
        return self._lp_form

    @cached_property
    def _lp_form(self) -> LPForm:
        n_nodes = self.size * self.size
        m = len(self.arcs)
        arc_ids = np.arange(m)
        incidence = sp.csr_matrix(
            (
                np.concatenate([-np.ones(m), np.ones(m)]),
                (np.concatenate([self.arcs[:, 0], self.arcs[:, 1]]), np.concatenate([arc_ids] * 2)),
            ),
            shape=(n_nodes, m),
            dtype=np.float64,
        )
        b = np.zeros(n_nodes)
        b[self.source] = -1.0
        b[self.target] = 1.0
        # The grid is the Cartesian product of two k-node paths, so A Aᵀ (its Laplacian) is the
        # Kronecker sum of two path Laplacians.
        path = path_laplacian(self.size)
        return LPForm(
            A=incidence, b=b, lower=np.zeros(m), upper=np.ones(m), sense="min",
            gram_kronecker=(path, path),
        )

    def generate(self) -> Dataset:
        """One draw of ``n_train + n_val + n_test`` instances, identical to PyEPO's ``genData``.

        The random calls (B, then x, then ε) and the arithmetic follow
        ``pyepo.data.shortestpath.genData`` step by step so that features and costs match it
        bit for bit; rows are split in order into train, val and test.
        """
        cfg = self.config
        n_train, n_val = cfg["n_train"], cfg["n_val"]
        n = n_train + n_val + cfg["n_test"]
        p = cfg["n_features"]
        d = len(self.arcs)
        deg = cfg["deg"]
        noise = cfg["noise"]
        rnd = np.random.RandomState(cfg["seed"])
        B = rnd.binomial(1, 0.5, (d, p))
        x = rnd.normal(0, 1, (n, p))
        c = (x @ B.T / np.sqrt(p) + 3) ** deg + 1
        c /= 3.5**deg
        c *= rnd.uniform(1 - noise, 1 + noise, (n, d))
        costs = c.astype(np.float32)
        cuts = [slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n)]
        train, val, test = (self.make_split(x[cut], costs[cut]) for cut in cuts)
        return Dataset(train=train, val=val, test=test)

    def oracle(self, costs: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Shortest paths for every row of ``costs[N, m]`` (any real, finite costs).

        Returns ``(solutions[N, m] float64 in {0, 1}, objectives[N] float64)`` with
        ``objectives = costs · solutions`` row-wise. The backend is the ``oracle`` parameter;
        ties between equally short paths are broken arbitrarily. Raises ``ValueError`` for a
        batch that is not shaped ``(N, m)`` or holds non-finite costs.
        """
        matrix = as_cost_matrix(costs, len(self.arcs))
        backend = self.config["oracle"]
        if backend == "dp":
            return self._solve_dp(matrix)
        solutions, _ = solve_lp_batch(self.lp(), matrix, backend)
        # The incidence matrix is totally unimodular, so an optimal basic solution is 0/1 up to
        # the solver's tolerances: round it and price the rounded path.
        solutions = np.rint(solutions)
        return solutions, np.einsum("ij,ij->i", matrix, solutions)

    @cached_property
    def _plan(self) -> _DagPlan:
        k = self.size
        n_nodes = k * k
        m = len(self.arcs)
        tails, heads = self.arcs[:, 0], self.arcs[:, 1]
        is_down = heads - tails == k
        in_right = np.full(n_nodes, m, dtype=np.int64)
        in_down = np.full(n_nodes, m, dtype=np.int64)
        in_right[heads[~is_down]] = np.flatnonzero(~is_down)
        in_down[heads[is_down]] = np.flatnonzero(is_down)

        order: list[int] = []
        steps = []
        first_i = prev_first_i = prev_row = 0
        for s in range(2 * k - 1):
            i = np.arange(max(0, s - k + 1), min(s, k - 1) + 1)
            first_i, start = int(i[0]), len(order)
            row = start + 2 * s + 1  # diagonal s's distances, after its pad and s earlier pairs
            if s > 0:
                # node (i, j): left predecessor (i, j − 1) and upper one (i − 1, j), both on the
                # previous diagonal, at offsets i − i₀' and i − 1 − i₀' after its first node
                steps.append((start, len(i), row, prev_row + first_i - prev_first_i,
                              prev_row + first_i - prev_first_i - 1))
            order.extend((i * k + s - i).tolist())
            prev_first_i, prev_row = first_i, row
        nodes = np.array(order, dtype=np.int64)
        position = np.empty(n_nodes, dtype=np.int64)
        position[nodes] = np.arange(n_nodes)
        return _DagPlan(steps=tuple(steps), order=nodes, position=position, in_right=in_right,
                        in_down=in_down, tails=tails)

    def _solve_dp(self, costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Forward pass over anti-diagonals, then a backtrack of 2(k−1) steps, batch-vectorised.

        Arrays are laid out node- (or arc-) major, ``[·, N]``, so that each diagonal's rows are
        whole contiguous rows; a node without a left (upper) predecessor sees the pad, ``+inf``,
        through the padding arc, cost 0. Ties go to the left predecessor.
        """
        plan = self._plan
        n, m = costs.shape
        n_nodes = self.size * self.size
        padded = np.zeros((m + 1, n))  # row m: the padding arc, cost 0
        padded[:m] = costs.T
        left_cost = padded[plan.in_right[plan.order]]  # diagonal-major, as the distances
        up_cost = padded[plan.in_down[plan.order]]
        dist = np.full((n_nodes + 2 * (2 * self.size - 1), n), np.inf)
        dist[1] = 0.0  # the source, alone on diagonal 0
        from_up = np.zeros((n_nodes, n), dtype=bool)
        for start, length, row, left, up_row in plan.steps:
            via_left = dist[left : left + length] + left_cost[start : start + length]
            via_up = dist[up_row : up_row + length] + up_cost[start : start + length]
            up = via_up < via_left
            from_up[start : start + length] = up
            dist[row : row + length] = np.where(up, via_up, via_left)
        from_up = from_up[plan.position]  # node-major for the backtrack

        batch = np.arange(n)
        path = np.empty((2 * (self.size - 1), n), dtype=np.int64)
        node = np.full(n, self.target, dtype=np.int64)
        for step in range(len(path)):
            arc = np.where(from_up[node, batch], plan.in_down[node], plan.in_right[node])
            path[step] = arc
            node = plan.tails[arc]
        solutions = np.zeros((n, m))
        solutions[batch[None, :], path] = 1.0
        objectives = padded[path, batch[None, :]].sum(axis=0)
        return solutions, objectives
