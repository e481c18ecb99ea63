"""Exact symmetric TSP solves with HiGHS or Gurobi: the DFJ cut loop and the compact MTZ form.

Decisions are 0/1 vectors over the undirected edges ``(i, j)``, ``i < j``, in
``itertools.combinations(range(n), 2)`` order (PyEPO's). Two exact formulations:

- **DFJ** (Dantzig–Fulkerson–Johnson), the oracle's default: the degree constraints
  ``Σ_{e ∋ v} x_e = 2`` and, added only when violated, the subtour cuts
  ``Σ_{e ⊆ S} x_e ≤ |S| − 1``. Each instance first solves the LP relaxation and cuts every
  connected component of its support until the support is connected; if that LP optimum is a
  0/1 vector it is a tour, hence optimal, and otherwise the MIP is solved and every subtour of
  its solution cut until the solution is one tour. An optimum of a relaxation that is a tour is
  an optimal tour, so the result is exact. Every instance starts from the degree constraints
  alone, so a row's tour depends on its costs alone, never on the rows solved before it.
- **MTZ** (Miller–Tucker–Zemlin): directed arcs, order variables ``u`` and the compact
  constraints ``u_j − u_i ≥ n (x_ij − 1) + 1``, one MIP per instance, solved through
  :func:`~l2obench.problems.lp_solvers.solve_lp_batch`. Polynomial in size, but its weak LP
  relaxation makes it much slower than DFJ (``benchmarks/results/comparisons.md``); it is the
  independent cross-check and the other side of that measurement.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Any, Protocol

import highspy
import numpy as np
import scipy.sparse as sp

from l2obench.problems.base import LPForm
from l2obench.problems.batching import solve_in_blocks
from l2obench.problems.lp_solvers import highs_solver, import_gurobipy, run_highs, solve_lp_batch

BACKENDS = ("highs", "gurobi")

#: A support entry above this is an edge of the LP relaxation's support graph.
SUPPORT_TOL = 1e-6

#: An LP solution within this of a 0/1 vector is that vector.
INTEGRAL_TOL = 1e-9

#: HiGHS options of the DFJ loop, beyond :func:`~l2obench.problems.lp_solvers.highs_options`:
#: the degree model and its cuts are small and have nothing to remove, so HiGHS's presolve costs
#: each of the loop's many re-solves more than it saves (measured in ``benchmarks/``).
DFJ_HIGHS_OPTIONS: dict[str, Any] = {"presolve": "off"}


def tsp_edges(n_nodes: int) -> np.ndarray:
    """The undirected edges ``[m, 2]`` (``i < j``) of the complete graph, in PyEPO's order."""
    return np.array(list(itertools.combinations(range(n_nodes), 2)), dtype=np.int64).reshape(-1, 2)


def degree_matrix(n_nodes: int) -> sp.csr_matrix:
    """The ``n × m`` node-edge incidence matrix: row ``v`` sums the edges at node ``v``."""
    edges = tsp_edges(n_nodes)
    m = len(edges)
    return sp.csr_matrix(
        (np.ones(2 * m), (edges.T.ravel(), np.tile(np.arange(m), 2))),
        shape=(n_nodes, m),
        dtype=np.float64,
    )


def components(n_nodes: int, edges: np.ndarray, chosen: np.ndarray) -> np.ndarray:
    """The connected component of each node in the graph of the ``chosen`` edges, labelled by
    its smallest node (union-find: the graphs here have a few times ``n_nodes`` edges, for
    which building a sparse graph costs more than the search)."""
    parent = list(range(n_nodes))

    def root(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    for i, j in edges[chosen].tolist():
        a, b = root(i), root(j)
        if a != b:
            parent[max(a, b)] = min(a, b)
    return np.array([root(v) for v in range(n_nodes)], dtype=np.int64)


def is_tour(n_nodes: int, x: np.ndarray) -> bool:
    """Whether the 0/1 edge vector ``x`` is one Hamiltonian cycle of the ``n_nodes`` nodes."""
    edges = tsp_edges(n_nodes)
    chosen = np.asarray(x) > 0.5
    if not np.isin(np.asarray(x, dtype=np.float64), (0.0, 1.0)).all():
        return False
    degree = np.bincount(edges[chosen].ravel(), minlength=n_nodes)
    return bool((degree == 2).all() and (components(n_nodes, edges, chosen) == 0).all())


def solve_tsp_batch(
    n_nodes: int,
    costs: np.ndarray,
    backend: str,
    formulation: str = "dfj",
    processes: int | None = None,
) -> np.ndarray:
    """Optimal tours ``[N, m]`` (0/1 float64) for every row of ``costs[N, m]`` (float64).

    ``formulation`` is ``"dfj"`` or ``"mtz"`` (see the module docstring), ``backend``
    ``"highs"`` or ``"gurobi"``; ``processes`` as in
    :func:`~l2obench.problems.batching.solve_in_blocks`. Raises ``RuntimeError`` when a solve
    does not end optimal.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown TSP backend {backend!r}; valid: {', '.join(BACKENDS)}")
    if formulation == "mtz":
        return _solve_mtz(n_nodes, costs, backend, processes)
    if formulation != "dfj":
        raise ValueError(f"unknown TSP formulation {formulation!r}; valid: dfj, mtz")
    solve = functools.partial(_solve_dfj_block, n_nodes, backend=backend)
    return solve_in_blocks(solve, costs, processes)


# -- DFJ: degree constraints and subtour cuts --------------------------------------------------


class _CutModel(Protocol):
    """One instance's degree-constrained model, as the cut loop drives it."""

    def solve(self, integral: bool) -> np.ndarray:
        """An optimal solution of the model with its cuts so far (its MIP or its LP)."""
        ...

    def add_cut(self, edges: np.ndarray, rhs: float) -> None:
        """Add ``Σ_{e ∈ edges} x_e ≤ rhs``."""
        ...


def _cut_subtours(
    model: _CutModel, n_nodes: int, edges: np.ndarray, chosen: np.ndarray
) -> bool:
    """Cut every connected component of the ``chosen`` edges' graph; ``False`` if it has one."""
    labels = components(n_nodes, edges, chosen)
    if (labels == 0).all():
        return False
    for label in np.unique(labels):
        inside = labels == label
        inner = np.flatnonzero(inside[edges[:, 0]] & inside[edges[:, 1]])
        model.add_cut(inner, float(inside.sum() - 1))
    return True


def _cut_loop(model: _CutModel, n_nodes: int, edges: np.ndarray) -> np.ndarray:
    """Cut the LP's disconnected supports, then the MIP's subtours: the optimal tour.

    When the LP's optimum is already a tour (often: the degree-2 relaxation with a few subtour
    cuts is tight), it is optimal for the MIP too and no MIP is solved.
    """
    # Every round adds a cut that the current solution violates by 1 and no later solution can
    # violate, so the loop ends; the cap only turns a solver's misbehaviour into an error.
    cap = 10 * n_nodes * n_nodes
    for _ in range(cap):
        x = model.solve(integral=False)
        if not _cut_subtours(model, n_nodes, edges, x > SUPPORT_TOL):
            break
    rounded = np.rint(x)
    if np.abs(x - rounded).max() <= INTEGRAL_TOL:
        return rounded  # integral with a connected support: a tour
    for _ in range(cap):
        x = np.rint(model.solve(integral=True))
        if not _cut_subtours(model, n_nodes, edges, x > 0.5):
            return x
    raise RuntimeError(f"the subtour-cut loop did not end within {cap} rounds")


def _solve_dfj_block(n_nodes: int, costs: np.ndarray, backend: str) -> np.ndarray:
    edges = tsp_edges(n_nodes)
    if backend == "highs":
        base = _highs_degree_model(n_nodes)
        return np.stack([_cut_loop(_HighsCuts(base, c), n_nodes, edges) for c in costs])
    gp = import_gurobipy()
    tours = []
    with gp.Env(empty=True) as env:
        env.setParam("OutputFlag", 0)
        env.start()
        for c in costs:
            model = _GurobiCuts(gp, env, n_nodes, c)
            tours.append(_cut_loop(model, n_nodes, edges))
            model.model.dispose()
    return np.stack(tours)


def _highs_degree_model(n_nodes: int) -> highspy.HighsLp:
    """The degree-constrained model without costs, built once per block."""
    A = degree_matrix(n_nodes).tocsc()
    n_rows, m = A.shape
    model = highspy.HighsLp()
    model.num_col_, model.num_row_ = m, n_rows
    model.col_cost_ = np.zeros(m)
    model.col_lower_, model.col_upper_ = np.zeros(m), np.ones(m)
    model.row_lower_ = model.row_upper_ = np.full(n_rows, 2.0)
    model.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    model.a_matrix_.num_col_, model.a_matrix_.num_row_ = m, n_rows
    model.a_matrix_.start_, model.a_matrix_.index_ = A.indptr, A.indices
    model.a_matrix_.value_ = A.data
    model.integrality_ = [highspy.HighsVarType.kInteger] * m
    return model


@dataclass
class _HighsCuts:
    """One instance on HiGHS: a fresh copy of the degree model, its costs, its own cuts."""

    base: highspy.HighsLp
    costs: np.ndarray

    def __post_init__(self) -> None:
        self.solver = highs_solver(is_mip=True)
        for option, value in DFJ_HIGHS_OPTIONS.items():
            self.solver.setOptionValue(option, value)
        if self.solver.passModel(self.base) == highspy.HighsStatus.kError:
            raise RuntimeError("HiGHS refused the TSP degree model")
        self.columns = np.arange(len(self.costs), dtype=np.int32)
        self.solver.changeColsCost(len(self.costs), self.columns, self.costs)
        self.integral: bool | None = True

    def solve(self, integral: bool) -> np.ndarray:
        if integral != self.integral:
            kind = highspy.HighsVarType.kInteger if integral else highspy.HighsVarType.kContinuous
            self.solver.changeColsIntegrality(
                len(self.columns), self.columns, np.full(len(self.columns), kind)
            )
            self.integral = integral
        run_highs(self.solver)
        status = self.solver.getModelStatus()
        if status != highspy.HighsModelStatus.kOptimal:
            raise RuntimeError(
                f"HiGHS did not solve a TSP instance to optimality: "
                f"{self.solver.modelStatusToString(status)}"
            )
        return np.asarray(self.solver.getSolution().col_value)

    def add_cut(self, edges: np.ndarray, rhs: float) -> None:
        self.solver.addRow(
            -highspy.kHighsInf, rhs, len(edges), edges.astype(np.int32), np.ones(len(edges))
        )


class _GurobiCuts:
    """One instance on Gurobi: binary edges, degree constraints, its own cuts."""

    def __init__(self, gp: Any, env: Any, n_nodes: int, costs: np.ndarray) -> None:
        self.grb = gp.GRB
        self.model = gp.Model(env=env)
        self.x = self.model.addMVar(len(costs), lb=0.0, ub=1.0, obj=costs, vtype=self.grb.BINARY)
        self.model.addMConstr(degree_matrix(n_nodes), self.x, "=", np.full(n_nodes, 2.0))
        self.model.ModelSense = self.grb.MINIMIZE
        self.model.Params.MIPGap = 0.0
        self.model.Params.MIPGapAbs = 0.0

    def solve(self, integral: bool) -> np.ndarray:
        self.x.VType = self.grb.BINARY if integral else self.grb.CONTINUOUS
        self.model.optimize()
        if self.model.Status != self.grb.OPTIMAL:
            raise RuntimeError(
                f"Gurobi did not solve a TSP instance to optimality (status {self.model.Status})"
            )
        return np.asarray(self.x.X)

    def add_cut(self, edges: np.ndarray, rhs: float) -> None:
        self.model.addConstr(self.x[edges].sum() <= rhs)


# -- MTZ: the compact formulation -------------------------------------------------------------


@dataclass(frozen=True)
class MTZForm:
    """The MTZ formulation as an :class:`LPForm` with its integrality mask.

    Columns: the ``2m`` directed arcs (arc ``e`` is ``i → j`` and arc ``m + e`` is ``j → i`` for
    edge ``e = (i, j)``), the order variables ``u_1 … u_{n−1}`` in ``[1, n − 1]``, and one slack
    in ``[0, 2n − 3]`` per ordering constraint, which makes ``u_j − u_i − n x_ij ≥ 1 − n`` the
    equality ``u_j − u_i − n x_ij − s_ij = 1 − n``. Rows: in-degree 1 and out-degree 1 at every
    node, then the ordering constraints for every arc between nodes other than 0.
    """

    lp: LPForm
    integer: np.ndarray  # [lp.n_vars] bool: the arcs

    @classmethod
    def build(cls, n_nodes: int) -> MTZForm:
        n = n_nodes
        edges = tsp_edges(n)
        m = len(edges)
        arcs = np.concatenate([edges, edges[:, ::-1]])
        n_arcs = 2 * m
        ordered = np.flatnonzero((arcs[:, 0] != 0) & (arcs[:, 1] != 0))
        u_col = n_arcs - 1  # column of u_v is u_col + v, v = 1 … n − 1
        s_col = n_arcs + n - 1
        arc_ids = np.arange(n_arcs)
        rows = [arcs[:, 1], n + arcs[:, 0]]  # in-degree rows 0 … n−1, out-degree rows n … 2n−1
        cols = [arc_ids, arc_ids]
        vals = [np.ones(n_arcs), np.ones(n_arcs)]
        order_rows = 2 * n + np.arange(len(ordered))
        tails, heads = arcs[ordered, 0], arcs[ordered, 1]
        rows += [order_rows] * 4
        cols += [u_col + heads, u_col + tails, ordered, s_col + np.arange(len(ordered))]
        vals += [np.ones(len(ordered)), -np.ones(len(ordered)), np.full(len(ordered), -float(n)),
                 -np.ones(len(ordered))]
        n_cols = s_col + len(ordered)
        A = sp.csr_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
            shape=(2 * n + len(ordered), n_cols),
        )
        b = np.concatenate([np.ones(2 * n), np.full(len(ordered), 1.0 - n)])
        lower = np.concatenate([np.zeros(n_arcs), np.ones(n - 1), np.zeros(len(ordered))])
        upper = np.concatenate(
            [np.ones(n_arcs), np.full(n - 1, n - 1.0), np.full(len(ordered), 2.0 * n - 3.0)]
        )
        integer = np.arange(n_cols) < n_arcs
        return cls(LPForm(A=A, b=b, lower=lower, upper=upper, sense="min"), integer)

    def price(self, costs: np.ndarray) -> np.ndarray:
        """Edge costs ``[N, m]`` as costs of the form's columns: each edge's cost on both arcs."""
        zeros = np.zeros((len(costs), self.lp.n_vars - 2 * costs.shape[1]))
        return np.hstack([costs, costs, zeros])

    def edges_of(self, solutions: np.ndarray, m: int) -> np.ndarray:
        """The undirected edge vectors ``[N, m]`` of the form's solutions."""
        return solutions[:, :m] + solutions[:, m : 2 * m]


def _solve_mtz(
    n_nodes: int, costs: np.ndarray, backend: str, processes: int | None
) -> np.ndarray:
    form = MTZForm.build(n_nodes)
    solutions, _ = solve_lp_batch(
        form.lp, form.price(costs), backend, integer=form.integer, processes=processes
    )
    return form.edges_of(solutions, costs.shape[1])
