"""Shortest path on a grid: generator, LP form and oracles against independent references.

References are PyEPO (data generator, arc order), networkx (shortest paths) and highspy driven
directly from this file, never the code under test.
"""

from __future__ import annotations

import highspy
import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp
import torch
from pyepo.data.shortestpath import genData
from pyepo.model.utils import _get_grid_arcs

from l2obench.errors import ParameterError
from l2obench.problems.base import LPForm, problem_registry
from l2obench.problems.lp_solvers import solve_lp_batch
from l2obench.problems.shortest_path import ShortestPath


def pyepo_arcs(k: int) -> np.ndarray:
    return np.array(_get_grid_arcs((k, k)), dtype=np.int64)


def incidence(k: int) -> tuple[sp.csr_matrix, np.ndarray]:
    """Node-arc incidence matrix and right-hand side built from PyEPO's arc list."""
    arcs = pyepo_arcs(k)
    m = len(arcs)
    rows = np.concatenate([arcs[:, 0], arcs[:, 1]])
    cols = np.concatenate([np.arange(m), np.arange(m)])
    values = np.concatenate([-np.ones(m), np.ones(m)])
    A = sp.csr_matrix((values, (rows, cols)), shape=(k * k, m))
    b = np.zeros(k * k)
    b[0], b[-1] = -1.0, 1.0
    return A, b


def networkx_lengths(k: int, costs: np.ndarray) -> np.ndarray:
    """Shortest 0 → k²−1 path lengths by Bellman-Ford (exact for negative costs on a DAG)."""
    arcs = pyepo_arcs(k)
    lengths = []
    for row in np.asarray(costs, dtype=np.float64):
        graph = nx.DiGraph()
        graph.add_weighted_edges_from(
            (int(t), int(h), float(w)) for (t, h), w in zip(arcs, row, strict=True)
        )
        lengths.append(nx.bellman_ford_path_length(graph, 0, k * k - 1))
    return np.array(lengths)


def highs_lengths(k: int, costs: np.ndarray) -> np.ndarray:
    """Shortest path lengths from the LP, built row by row with highspy in this file."""
    A, b = incidence(k)
    m = A.shape[1]
    solver = highspy.Highs()
    solver.setOptionValue("output_flag", False)
    solver.addVars(m, np.zeros(m), np.ones(m))
    for row in range(A.shape[0]):
        cols = A.indices[A.indptr[row] : A.indptr[row + 1]]
        vals = A.data[A.indptr[row] : A.indptr[row + 1]]
        solver.addRow(b[row], b[row], len(cols), cols.astype(np.int32), vals)
    lengths = []
    for row in np.asarray(costs, dtype=np.float64):
        for e, cost in enumerate(row):
            solver.changeColCost(e, cost)
        solver.run()
        assert solver.getModelStatus() == highspy.HighsModelStatus.kOptimal
        lengths.append(solver.getInfo().objective_function_value)
    return np.array(lengths)


def assert_valid_paths(k: int, costs: np.ndarray, solutions: np.ndarray, objectives: np.ndarray):
    """Each row is a 0/1 source-target path (A x = b) priced at ``objectives``."""
    A, b = incidence(k)
    assert solutions.shape == costs.shape
    assert np.isin(solutions, (0.0, 1.0)).all()
    np.testing.assert_array_equal(A @ solutions.T, np.repeat(b[:, None], len(costs), axis=1))
    assert (solutions.sum(axis=1) == 2 * (k - 1)).all()
    priced = np.einsum("ij,ij->i", np.asarray(costs, dtype=np.float64), solutions)
    np.testing.assert_allclose(objectives, priced, rtol=1e-12, atol=1e-12)


def random_costs(k: int, n: int, seed: int) -> np.ndarray:
    """Costs of both signs (about a third negative)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.4, 1.0, (n, 2 * k * (k - 1)))


def test_registered() -> None:
    assert problem_registry.get("shortest-path") is ShortestPath
    assert ShortestPath.size_param == "k"


@pytest.mark.parametrize(
    ("k", "splits", "n_features", "deg", "noise", "seed"),
    [
        (5, (100, 20, 30), 5, 4, 0.5, 0),
        (3, (7, 1, 2), 3, 1, 0.0, 135),
        (8, (40, 10, 10), 6, 6, 0.25, 12345),
    ],
)
def test_generator_matches_pyepo(k, splits, n_features, deg, noise, seed) -> None:
    n_train, n_val, n_test = splits
    problem = ShortestPath(
        k=k,
        n_train=n_train,
        n_val=n_val,
        n_test=n_test,
        n_features=n_features,
        deg=deg,
        noise=noise,
        seed=seed,
    )
    data = problem.generate()
    x, c = genData(sum(splits), n_features, (k, k), deg=deg, noise_width=noise, seed=seed)
    assert [len(data.train), len(data.val), len(data.test)] == list(splits)
    features = np.concatenate([data.train.features, data.val.features, data.test.features])
    costs = np.concatenate([data.train.costs, data.val.costs, data.test.costs])
    assert costs.dtype == np.float32
    np.testing.assert_array_equal(features, x.astype(np.float32))
    np.testing.assert_array_equal(costs, c)
    objectives = np.concatenate([data.train.objectives, data.val.objectives, data.test.objectives])
    np.testing.assert_allclose(objectives, networkx_lengths(k, c), rtol=1e-9)
    solutions = np.concatenate([data.train.solutions, data.val.solutions, data.test.solutions])
    assert_valid_paths(k, c, solutions.astype(np.float64), objectives)


@pytest.mark.parametrize("k", [2, 3, 5, 8, 13])
def test_arcs_and_lp_form(k: int) -> None:
    problem = ShortestPath(k=k)
    np.testing.assert_array_equal(problem.arcs, pyepo_arcs(k))
    assert problem.arcs.dtype == np.int64
    lp = problem.lp()
    assert isinstance(lp, LPForm)
    assert lp.A.shape == (k * k, 2 * k * (k - 1))
    assert problem.n_vars == 2 * k * (k - 1)
    assert lp.A.format == "csr"
    assert lp.A.dtype == np.float64
    A, b = incidence(k)
    np.testing.assert_array_equal(lp.A.toarray(), A.toarray())
    np.testing.assert_array_equal(lp.b, b)
    np.testing.assert_array_equal(lp.lower, np.zeros(A.shape[1]))
    np.testing.assert_array_equal(lp.upper, np.ones(A.shape[1]))
    assert lp.sense == "min"
    assert problem.lp() is lp


@pytest.mark.parametrize("k", [2, 3, 5, 8])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dp_oracle_matches_networkx(k: int, seed: int) -> None:
    costs = random_costs(k, 50, seed)
    assert (costs < 0).any()
    solutions, objectives = ShortestPath(k=k).oracle(costs)
    assert objectives.dtype == np.float64 and objectives.shape == (50,)
    np.testing.assert_allclose(objectives, networkx_lengths(k, costs), rtol=1e-9, atol=1e-12)
    assert_valid_paths(k, costs, solutions, objectives)


def test_dp_oracle_accepts_float32_and_torch() -> None:
    k = 5
    costs = random_costs(k, 20, 7).astype(np.float32)
    reference = networkx_lengths(k, costs)
    problem = ShortestPath(k=k)
    for given in (costs, torch.from_numpy(costs).requires_grad_()):
        solutions, objectives = problem.oracle(given)
        np.testing.assert_allclose(objectives, reference, rtol=1e-9)
        assert_valid_paths(k, costs, solutions, objectives)


@pytest.mark.parametrize("k", [3, 6])
def test_oracles_match_highs(k: int) -> None:
    costs = random_costs(k, 30, 11)
    reference = highs_lengths(k, costs)
    for backend in ("dp", "highs"):
        solutions, objectives = ShortestPath(k=k, oracle=backend).oracle(costs)
        np.testing.assert_allclose(objectives, reference, rtol=1e-9, atol=1e-9)
        assert_valid_paths(k, costs, solutions, objectives)


def test_lp_solvers_respect_sense_and_integrality() -> None:
    """A ``max`` form gives the longest path, as minus the shortest path under negated costs."""
    k = 4
    A, b = incidence(k)
    m = A.shape[1]
    costs = random_costs(k, 10, 3)
    longest = -networkx_lengths(k, -costs)
    lp = LPForm(A=A, b=b, lower=np.zeros(m), upper=np.ones(m), sense="max")
    for integer in (False, True):
        solutions, objectives = solve_lp_batch(lp, costs, "highs", integer=integer)
        np.testing.assert_allclose(objectives, longest, rtol=1e-9)
        assert_valid_paths(k, costs, np.rint(solutions), objectives)
    with pytest.raises(ValueError, match="unknown LP backend"):
        solve_lp_batch(lp, costs, "cplex")


def test_gurobi_backend() -> None:
    pytest.importorskip("gurobipy")
    k = 5
    costs = random_costs(k, 10, 5)
    solutions, objectives = ShortestPath(k=k, oracle="gurobi").oracle(costs)
    np.testing.assert_allclose(objectives, networkx_lengths(k, costs), rtol=1e-9, atol=1e-9)
    assert_valid_paths(k, costs, solutions, objectives)


def test_large_grid() -> None:
    k = 100
    rng = np.random.default_rng(0)
    costs = rng.uniform(0.1, 2.0, (64, 2 * k * (k - 1)))
    solutions, objectives = ShortestPath(k=k).oracle(costs)
    assert_valid_paths(k, costs, solutions, objectives)
    arcs = pyepo_arcs(k)
    for row in range(2):
        graph = nx.DiGraph()
        graph.add_weighted_edges_from(
            (int(t), int(h), float(w)) for (t, h), w in zip(arcs, costs[row], strict=True)
        )
        expected = nx.dijkstra_path_length(graph, 0, k * k - 1)
        assert objectives[row] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("params", [{"k": 1}, {"k": 0}, {"oracle": "cplex"}, {"noise": 1.5}])
def test_bad_parameters(params: dict) -> None:
    with pytest.raises(ParameterError):
        ShortestPath(**params)
