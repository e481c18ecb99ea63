"""TSP: generator, exact oracle, LP relaxation and regret against independent references.

References: PyEPO's ``genData`` (data), a brute force over every tour (n ≤ 8), the Gavish–Graves
single-commodity-flow formulation built here and solved by ``scipy.optimize.milp``, PyEPO's own
Gurobi models (when gurobipy is installed), and a tour walk written here; never the code under
test.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from pyepo.data.tsp import genData
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from l2obench.errors import ParameterError
from l2obench.metrics import decision_quality, instance_regrets
from l2obench.problems import batching
from l2obench.problems.base import Capability, problem_registry
from l2obench.problems.tsp import TSP
from l2obench.problems.tsp_solvers import MTZForm, solve_tsp_batch


def edge_list(n: int) -> list[tuple[int, int]]:
    return list(itertools.combinations(range(n), 2))


def random_costs(n: int, rows: int, seed: int) -> np.ndarray:
    """Edge costs of both signs, i.i.d.: far from metric (no triangle inequality)."""
    return np.random.default_rng(seed).normal(0.5, 1.0, (rows, n * (n - 1) // 2))


def all_tours(n: int) -> np.ndarray:
    """The 0/1 edge vectors of all (n − 1)!/2 tours of n ≥ 3 nodes."""
    index = {e: k for k, e in enumerate(edge_list(n))}
    tours = []
    for perm in itertools.permutations(range(1, n)):
        if perm[0] > perm[-1]:  # each cycle once, not once per direction
            continue
        cycle = (0, *perm)
        x = np.zeros(len(index))
        for a, b in zip(cycle, (*cycle[1:], 0), strict=True):
            x[index[(min(a, b), max(a, b))]] = 1.0
        tours.append(x)
    return np.array(tours)


def brute_force(n: int, costs: np.ndarray) -> np.ndarray:
    return (np.asarray(costs, dtype=np.float64) @ all_tours(n).T).min(axis=1)


def gavish_graves(n: int, costs: np.ndarray) -> np.ndarray:
    """Optimal tour lengths by the single-commodity-flow formulation (scipy's MIP solver).

    Directed arcs ``x_ij`` (in- and out-degree 1) carry flows ``y_ij ≤ (n − 1) x_ij``; node 0
    sends ``n − 1`` units and every other node keeps one, so the arcs used connect every node
    to 0: one tour.
    """
    arcs = [(i, j) for i in range(n) for j in range(n) if i != j]
    a = len(arcs)
    rows = []
    bounds_lo: list[float] = []
    bounds_hi: list[float] = []

    def row() -> np.ndarray:
        return np.zeros(2 * a)

    for v in range(n):
        into, out = row(), row()
        for k, (i, j) in enumerate(arcs):
            into[k] += j == v
            out[k] += i == v
        rows += [into, out]
        bounds_lo += [1, 1]
        bounds_hi += [1, 1]
    for v in range(n):
        flow = row()
        for k, (i, j) in enumerate(arcs):
            flow[a + k] += (i == v) - (j == v)  # out minus in
        rows.append(flow)
        net = n - 1 if v == 0 else -1
        bounds_lo.append(net)
        bounds_hi.append(net)
    for k in range(a):
        cap = row()
        cap[a + k], cap[k] = 1.0, -(n - 1.0)
        rows.append(cap)
        bounds_lo.append(-np.inf)
        bounds_hi.append(0.0)
    constraint = LinearConstraint(np.array(rows), bounds_lo, bounds_hi)
    index = {e: k for k, e in enumerate(edge_list(n))}
    best = []
    for cost in np.asarray(costs, dtype=np.float64):
        c = np.zeros(2 * a)
        c[:a] = [cost[index[(min(i, j), max(i, j))]] for i, j in arcs]
        result = milp(c, constraints=constraint, integrality=np.r_[np.ones(a), np.zeros(a)],
                      bounds=Bounds(0, np.r_[np.ones(a), np.full(a, np.inf)]))
        assert result.success
        best.append(result.fun)
    return np.array(best)


def walk_is_one_tour(n: int, x: np.ndarray) -> bool:
    """Follow the chosen edges from node 0: one cycle through all n nodes, nothing else."""
    if not np.isin(x, (0.0, 1.0)).all() or x.sum() != n:
        return False
    neighbours: dict[int, list[int]] = {v: [] for v in range(n)}
    for (i, j), chosen in zip(edge_list(n), x, strict=True):
        if chosen:
            neighbours[i].append(j)
            neighbours[j].append(i)
    if any(len(nb) != 2 for nb in neighbours.values()):
        return False
    previous, node, seen = 0, neighbours[0][0], {0}
    while node != 0:
        seen.add(node)
        previous, node = node, next(v for v in neighbours[node] if v != previous)
    return len(seen) == n


def assert_tours(n: int, costs: np.ndarray, solutions: np.ndarray, objectives: np.ndarray) -> None:
    assert solutions.shape == costs.shape and objectives.shape == (len(costs),)
    assert solutions.dtype == np.float64 and objectives.dtype == np.float64
    assert all(walk_is_one_tour(n, x) for x in solutions)
    priced = np.einsum("ij,ij->i", np.asarray(costs, dtype=np.float64), solutions)
    np.testing.assert_allclose(objectives, priced, rtol=1e-12, atol=1e-12)


def test_registered() -> None:
    assert problem_registry.get("tsp") is TSP
    assert TSP.size_param == "n_nodes"
    assert TSP.capabilities() == {Capability.LP_FORM, Capability.CONIC_FORM, Capability.BINARY}


@pytest.mark.parametrize(
    ("n_nodes", "splits", "n_features", "deg", "noise", "seed"),
    [
        (6, (30, 10, 10), 5, 4, 0.5, 0),
        (7, (5, 2, 3), 3, 3, 0.0, 135),  # odd degree: feature costs of either sign
        (8, (20, 5, 5), 6, 1, 0.25, 12345),
        (20, (4, 2, 2), 5, 4, 0.5, 7),
    ],
)
def test_generator_matches_pyepo(n_nodes, splits, n_features, deg, noise, seed) -> None:
    problem = TSP(n_nodes=n_nodes, n_train=splits[0], n_val=splits[1], n_test=splits[2],
                  n_features=n_features, deg=deg, noise=noise, seed=seed)
    data = problem.generate()
    x, c = genData(sum(splits), n_features, n_nodes, deg=deg, noise_width=noise, seed=seed)
    assert [len(data.train), len(data.val), len(data.test)] == list(splits)
    features = np.concatenate([data.train.features, data.val.features, data.test.features])
    costs = np.concatenate([data.train.costs, data.val.costs, data.test.costs])
    assert costs.dtype == np.float32
    np.testing.assert_array_equal(features, x.astype(np.float32))
    np.testing.assert_array_equal(costs, c)
    np.testing.assert_array_equal(problem.edges, np.array(edge_list(n_nodes)))
    objectives = np.concatenate([data.train.objectives, data.val.objectives, data.test.objectives])
    solutions = np.concatenate([data.train.solutions, data.val.solutions, data.test.solutions])
    assert_tours(n_nodes, c, solutions.astype(np.float64), objectives)
    if n_nodes <= 8:
        np.testing.assert_allclose(objectives, brute_force(n_nodes, c), rtol=1e-12)
    np.testing.assert_array_equal(problem.generate().test.costs, data.test.costs)


@pytest.mark.parametrize("n_nodes", [3, 4, 5, 6, 7, 8])
def test_oracle_matches_brute_force(n_nodes: int) -> None:
    problem = TSP(n_nodes=n_nodes)
    costs = random_costs(n_nodes, 40, n_nodes)
    assert (costs < 0).any()
    solutions, objectives = problem.oracle(costs)
    np.testing.assert_allclose(objectives, brute_force(n_nodes, costs), rtol=1e-12, atol=1e-12)
    assert_tours(n_nodes, costs, solutions, objectives)


@pytest.mark.parametrize(("n_nodes", "rows"), [(9, 6), (12, 4)])
def test_oracle_matches_gavish_graves(n_nodes: int, rows: int) -> None:
    """On random non-metric costs of both signs and on the generator's own costs."""
    problem = TSP(n_nodes=n_nodes, n_train=rows, n_val=1, n_test=1, deg=3, seed=n_nodes)
    for costs in (random_costs(n_nodes, rows, 100 + n_nodes),
                  problem.generate().train.costs.astype(np.float64)):
        solutions, objectives = problem.oracle(costs)
        np.testing.assert_allclose(objectives, gavish_graves(n_nodes, costs), rtol=1e-9,
                                   atol=1e-9)
        assert_tours(n_nodes, costs, solutions, objectives)


def test_mtz_formulation_agrees() -> None:
    costs = random_costs(8, 8, 3)
    solutions, objectives = TSP(n_nodes=8, formulation="mtz").oracle(costs)
    np.testing.assert_allclose(objectives, brute_force(8, costs), rtol=1e-12)
    assert_tours(8, costs, solutions, objectives)
    form = MTZForm.build(8)
    assert form.lp.n_vars == 2 * 28 + 7 + 7 * 6 and form.integer.sum() == 56


def pyepo_objectives(model, costs: np.ndarray) -> np.ndarray:
    objectives = []
    for cost in costs:
        model.setObj(cost)
        objectives.append(model.solve()[1])
    return np.array(objectives)


def test_oracle_matches_pyepo_gurobi_models() -> None:
    """PyEPO's DFJ (lazy cuts in Gurobi's callback) equals the oracle; its GG model stops at
    Gurobi's default relative MIP gap (1e-4), so it is never better and at most that worse."""
    pytest.importorskip("gurobipy")
    from pyepo.model.grb.tsp import tspDFJModel, tspGGModel

    problem = TSP(n_nodes=15, n_train=8, n_val=1, n_test=1, seed=3)
    costs = problem.generate().train.costs
    _, objectives = problem.oracle(costs)
    np.testing.assert_allclose(objectives, pyepo_objectives(tspDFJModel(15), costs), rtol=1e-6)
    gg = pyepo_objectives(tspGGModel(15), costs)
    assert (objectives <= gg + 1e-6).all() and (gg <= objectives * (1 + 1e-4) + 1e-6).all()


def test_gurobi_backend() -> None:
    pytest.importorskip("gurobipy")
    costs = random_costs(8, 10, 4)
    solutions, objectives = TSP(n_nodes=8, oracle="gurobi").oracle(costs)
    np.testing.assert_allclose(objectives, brute_force(8, costs), rtol=1e-9)
    assert_tours(8, costs, solutions, objectives)


def test_oracle_accepts_float32_and_torch() -> None:
    costs = random_costs(7, 6, 5).astype(np.float32)
    reference = brute_force(7, costs.astype(np.float64))
    for given in (costs, torch.from_numpy(costs).requires_grad_()):
        solutions, objectives = TSP(n_nodes=7).oracle(given)
        np.testing.assert_allclose(objectives, reference, rtol=1e-6)
        assert_tours(7, costs, solutions, objectives)


def test_processes_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks spread over worker processes give exactly the serial tours, in order."""
    costs = np.round(random_costs(8, 30, 6), 1)  # rounded costs: tied tours are common
    monkeypatch.setattr(batching, "BLOCK_ROWS", 7)
    serial = solve_tsp_batch(8, costs, "highs", processes=1)
    forked = []
    real = batching.map_in_processes

    def spy(fn, items, workers):
        forked.append((len(items), workers))
        return real(fn, items, workers)

    monkeypatch.setattr(batching, "map_in_processes", spy)
    monkeypatch.setattr(batching, "PARALLEL_MIN_SECONDS", 0.0)
    parallel = solve_tsp_batch(8, costs, "highs", processes=2)
    assert forked == [(4, 2)]  # 5 blocks; the first is solved here
    np.testing.assert_array_equal(parallel, serial)
    np.testing.assert_allclose((costs * serial).sum(1), brute_force(8, costs), rtol=1e-12)


def test_lp_form_is_the_degree_relaxation() -> None:
    problem = TSP(n_nodes=7)
    lp = problem.lp()
    m = 21
    assert lp.A.shape == (7, m) and lp.A.format == "csr" and lp.sense == "min"
    expected = np.zeros((7, m))
    for k, (i, j) in enumerate(edge_list(7)):
        expected[i, k] = expected[j, k] = 1.0
    np.testing.assert_array_equal(lp.A.toarray(), expected)
    np.testing.assert_array_equal(lp.b, np.full(7, 2.0))
    np.testing.assert_array_equal(lp.lower, np.zeros(m))
    np.testing.assert_array_equal(lp.upper, np.ones(m))
    assert problem.n_vars == m and problem.n_aux == 0 and problem.lp() is lp
    # A relaxation: its optimum bounds the tour from below, and every tour is feasible in it.
    costs = random_costs(7, 10, 8)
    best = brute_force(7, costs)
    for cost, tour_length in zip(costs, best, strict=True):
        relaxed = linprog(cost, A_eq=expected, b_eq=np.full(7, 2.0), bounds=(0, 1))
        assert relaxed.fun <= tour_length + 1e-9
    np.testing.assert_allclose(all_tours(7) @ expected.T, 2.0)


def test_relaxation_vertex_can_be_two_subtours() -> None:
    """Two cheap triangles: the relaxation's optimum is both of them, not a tour; the oracle's
    answer is a tour."""
    index = {e: k for k, e in enumerate(edge_list(6))}
    cost = np.full(15, 10.0)
    for i, j in [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5)]:
        cost[index[(i, j)]] = 1.0
    relaxed = linprog(cost, A_eq=TSP(n_nodes=6).lp().A.toarray(), b_eq=np.full(6, 2.0),
                      bounds=(0, 1))
    assert relaxed.fun == pytest.approx(6.0)
    solutions, objectives = TSP(n_nodes=6).oracle(cost[None])
    assert walk_is_one_tour(6, solutions[0]) and objectives[0] == pytest.approx(24.0)


@pytest.mark.parametrize(
    "params",
    [{"n_nodes": 2}, {"n_nodes": 5000}, {"oracle": "cplex"}, {"formulation": "gg"},
     {"noise": 1.5}, {"deg": 0}, {"n_nodes": 4.5}],
)
def test_bad_parameters(params: dict) -> None:
    with pytest.raises(ParameterError, match="problem 'tsp'"):
        TSP(**params)


def test_regret() -> None:
    """Exact costs: regret 0 and every instance solved; other costs: the tours' excess length
    over the optimum, normalised by the optimal lengths, positive."""
    problem = TSP(n_nodes=8, n_train=1, n_val=1, n_test=25, seed=9)
    test = problem.generate().test
    quality = decision_quality(problem, test, test.costs)
    assert quality.norm_regret == 0.0 and quality.accuracy == 1.0
    predicted = random_costs(8, 25, 9)
    regrets = instance_regrets(problem, test, predicted)
    best = brute_force(8, test.costs)
    chosen, _ = problem.oracle(predicted)
    realised = np.einsum("ij,ij->i", test.costs.astype(np.float64), chosen)
    np.testing.assert_allclose(regrets, realised - best, rtol=1e-9, atol=1e-9)
    assert (regrets >= -1e-9).all() and (regrets > 0).any()
    assert decision_quality(problem, test, predicted).norm_regret == pytest.approx(
        (realised - best).sum() / np.abs(best).sum(), rel=1e-9)
