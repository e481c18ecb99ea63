"""Knapsack: generator, LP relaxation, oracles (enumeration and MIP) and max-problem regret
against independent references.

References are PyEPO (data generator), brute-force enumeration of every item set, and
``scipy.optimize.milp`` / ``linprog`` on the inequality form ``W x ≤ capacity`` built in this
file, never the code under test.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import highspy
import numpy as np
import pytest
import torch
from pyepo.data.knapsack import genData
from scipy.optimize import Bounds, LinearConstraint, linprog, milp

from l2obench import process_pool
from l2obench.errors import ParameterError
from l2obench.methods.base import Budget, Method, method_registry
from l2obench.metrics import decision_quality, instance_regrets
from l2obench.problems import batching, knapsack_sets, lp_solvers
from l2obench.problems.base import LPForm, problem_registry
from l2obench.problems.knapsack import Knapsack
from l2obench.suite import builtin_suites, load_suite


def random_values(n: int, rows: int, seed: int) -> np.ndarray:
    """Item values of both signs (about a fifth negative), off PyEPO's integer grid."""
    return np.random.default_rng(seed).normal(2.0, 2.0, (rows, n))


def brute_force(weights: np.ndarray, capacity: float, values: np.ndarray) -> np.ndarray:
    """The best total value of every row of ``values``, over all 2ⁿ item sets."""
    n = weights.shape[1]
    sets = np.array(list(itertools.product((0.0, 1.0), repeat=n)))
    feasible = sets[(sets @ weights.T <= capacity + 1e-9).all(axis=1)]
    return (values @ feasible.T).max(axis=1)


def scipy_milp(weights: np.ndarray, capacity: float, values: np.ndarray) -> np.ndarray:
    """The best total value of every row, by scipy's MIP solver on ``W x ≤ capacity``."""
    n = weights.shape[1]
    constraint = LinearConstraint(weights, -np.inf, capacity)
    best = []
    for row in values:
        result = milp(-row, constraints=constraint, integrality=np.ones(n), bounds=Bounds(0, 1))
        assert result.success
        best.append(-result.fun)
    return np.array(best)


def assert_valid_item_sets(
    problem: Knapsack, values: np.ndarray, solutions: np.ndarray, objectives: np.ndarray
) -> None:
    """Each row is a 0/1 item set within the capacity, priced at ``objectives``."""
    assert solutions.shape == values.shape
    assert np.isin(solutions, (0.0, 1.0)).all()
    assert (solutions @ problem.weights.T <= problem.config["capacity"] + 1e-9).all()
    priced = np.einsum("ij,ij->i", np.asarray(values, dtype=np.float64), solutions)
    np.testing.assert_allclose(objectives, priced, rtol=1e-12, atol=1e-12)


def test_registered() -> None:
    assert problem_registry.get("knapsack") is Knapsack
    assert Knapsack.size_param == "n_items"


@pytest.mark.parametrize(
    ("n_items", "dim", "splits", "n_features", "deg", "noise", "seed"),
    [
        (10, 2, (60, 20, 20), 5, 4, 0.5, 0),
        (12, 1, (7, 1, 2), 3, 1, 0.0, 135),
        (8, 3, (30, 10, 10), 6, 6, 0.25, 12345),
    ],
)
def test_generator_matches_pyepo(n_items, dim, splits, n_features, deg, noise, seed) -> None:
    problem = Knapsack(n_items=n_items, dim=dim, n_train=splits[0], n_val=splits[1],
                       n_test=splits[2], n_features=n_features, deg=deg, noise=noise, seed=seed)
    data = problem.generate()
    weights, x, c = genData(sum(splits), n_features, n_items, dim=dim, deg=deg,
                            noise_width=noise, seed=seed)
    np.testing.assert_array_equal(problem.weights, weights)
    assert [len(data.train), len(data.val), len(data.test)] == list(splits)
    features = np.concatenate([data.train.features, data.val.features, data.test.features])
    costs = np.concatenate([data.train.costs, data.val.costs, data.test.costs])
    assert costs.dtype == np.float32
    np.testing.assert_array_equal(features, x.astype(np.float32))
    np.testing.assert_array_equal(costs, c)
    objectives = np.concatenate([data.train.objectives, data.val.objectives, data.test.objectives])
    np.testing.assert_allclose(objectives, brute_force(weights, 20.0, c), rtol=1e-12)
    solutions = np.concatenate([data.train.solutions, data.val.solutions, data.test.solutions])
    assert_valid_item_sets(problem, c, solutions.astype(np.float64), objectives)
    # The draw depends on the seed alone: generating again gives the same data.
    np.testing.assert_array_equal(problem.generate().test.costs, data.test.costs)


@pytest.mark.parametrize(("n_items", "dim", "capacity"), [(1, 1, 20.0), (7, 2, 20.0),
                                                          (30, 3, 12.5)])
def test_lp_form_is_the_relaxation(n_items: int, dim: int, capacity: float) -> None:
    problem = Knapsack(n_items=n_items, dim=dim, capacity=capacity)
    lp = problem.lp()
    assert isinstance(lp, LPForm)
    assert problem.n_vars == n_items
    assert problem.n_aux == dim
    assert lp.A.shape == (dim, n_items + dim)
    assert lp.A.format == "csr" and lp.A.dtype == np.float64
    np.testing.assert_array_equal(lp.A.toarray(), np.hstack([problem.weights, np.eye(dim)]))
    np.testing.assert_array_equal(lp.b, np.full(dim, capacity))
    np.testing.assert_array_equal(lp.lower, np.zeros(n_items + dim))
    np.testing.assert_array_equal(lp.upper, np.r_[np.ones(n_items), np.full(dim, capacity)])
    assert lp.sense == "max" and problem.sense == "max"
    assert problem.lp() is lp
    # The relaxation's optimum, solved over the form with zero-cost slacks, is the optimum of
    # the inequality form max cᵀx, W x ≤ capacity, 0 ≤ x ≤ 1.
    values = random_values(n_items, 5, 1)
    priced = np.pad(values, ((0, 0), (0, dim)))
    _, relaxed = lp_solvers.solve_lp_batch(lp, priced, "highs")
    for row, objective in zip(values, relaxed, strict=True):
        ref = linprog(-row, A_ub=problem.weights, b_ub=np.full(dim, capacity), bounds=(0, 1))
        assert objective == pytest.approx(-ref.fun, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("oracle", ["auto", "highs"])
@pytest.mark.parametrize(("n_items", "dim", "seed"), [(1, 1, 0), (6, 1, 1), (10, 2, 2),
                                                      (12, 3, 3)])
def test_oracle_matches_brute_force(n_items: int, dim: int, seed: int, oracle: str) -> None:
    problem = Knapsack(n_items=n_items, dim=dim, seed=seed, oracle=oracle)
    assert (problem._maximal_sets is None) == (oracle == "highs")
    values = random_values(n_items, 40, seed)
    assert (values < 0).any()
    solutions, objectives = problem.oracle(values)
    assert objectives.dtype == np.float64 and objectives.shape == (40,)
    np.testing.assert_allclose(objectives, brute_force(problem.weights, 20.0, values),
                               rtol=1e-9, atol=1e-9)
    assert_valid_item_sets(problem, values, solutions, objectives)


def test_oracle_matches_scipy_milp_on_larger_instances() -> None:
    problem = Knapsack(n_items=60, dim=2, seed=4)
    assert problem._maximal_sets is not None  # about 55 000 item sets fit: enumerated
    values = random_values(60, 10, 4)
    solutions, objectives = problem.oracle(values)
    np.testing.assert_allclose(objectives, scipy_milp(problem.weights, 20.0, values), rtol=1e-9)
    assert_valid_item_sets(problem, values, solutions, objectives)


@pytest.mark.parametrize(("n_items", "dim", "capacity", "seed"),
                         [(8, 1, 20.0, 0), (12, 2, 20.0, 1), (10, 3, 25.0, 2), (9, 2, 2.0, 3)])
def test_maximal_sets_are_every_maximal_set(n_items: int, dim: int, capacity: float,
                                            seed: int) -> None:
    """The enumeration finds exactly the item sets that fit and to which no item can be added,
    as a brute force over all 2ⁿ sets finds them (capacity 2: no item fits, only the empty
    set)."""
    weights = Knapsack(n_items=n_items, dim=dim, seed=seed).weights
    sets = knapsack_sets.maximal_sets(weights, np.full(dim, capacity))
    assert sets is not None and sets.dtype == bool
    fits = [frozenset(np.flatnonzero(s)) for s in itertools.product((False, True), repeat=n_items)
            if (weights @ np.array(s) <= capacity + 1e-9).all()]
    maximal = {s for s in fits if not any(s < t for t in fits)}
    assert {frozenset(np.flatnonzero(row)) for row in sets} == maximal
    assert len(sets) == len(maximal)


def test_enumeration_gives_way_to_highs_beyond_its_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where more item sets fit than the limit, ``auto`` solves MIPs, with the same optima; at
    PyEPO's capacity that happens by 100 items."""
    assert Knapsack(n_items=100, seed=0)._maximal_sets is None
    monkeypatch.setattr(knapsack_sets, "MAX_SETS", 50)
    problem = Knapsack(n_items=11, seed=9)
    assert problem._maximal_sets is None
    values = random_values(11, 20, 9)
    solutions, objectives = problem.oracle(values)
    np.testing.assert_allclose(objectives, brute_force(problem.weights, 20.0, values), rtol=1e-9)
    assert_valid_item_sets(problem, values, solutions, objectives)


def test_enumeration_equals_highs_on_pyepo_data(monkeypatch: pytest.MonkeyPatch) -> None:
    """At the suite's first size (20 items), on PyEPO's values and on the noisy, partly negative
    values a model predicts early in training, in chunks of any size: the optima HiGHS finds."""
    monkeypatch.setattr(knapsack_sets, "_CHUNK_ENTRIES", 3000)  # several chunks of rows
    problem = Knapsack(n_items=20, n_train=100, n_val=10, n_test=10, seed=2)
    costs = problem.generate().train.costs.astype(np.float64)
    noisy = costs + np.random.default_rng(2).normal(0.0, 3.0, costs.shape)
    mip = Knapsack(n_items=20, seed=2, oracle="highs")
    np.testing.assert_array_equal(mip.weights, problem.weights)
    for values in (costs, noisy):
        solutions, objectives = problem.oracle(values)
        np.testing.assert_allclose(objectives, mip.oracle(values)[1], rtol=1e-12, atol=1e-12)
        assert_valid_item_sets(problem, values, solutions, objectives)


def test_oracle_accepts_float32_and_torch() -> None:
    problem = Knapsack(n_items=9, seed=5)
    values = random_values(9, 8, 5).astype(np.float32)
    reference = brute_force(problem.weights, 20.0, values.astype(np.float64))
    for given in (values, torch.from_numpy(values).requires_grad_()):
        solutions, objectives = problem.oracle(given)
        np.testing.assert_allclose(objectives, reference, rtol=1e-6)
        assert_valid_item_sets(problem, values, solutions, objectives)


def test_gurobi_backend() -> None:
    pytest.importorskip("gurobipy")
    problem = Knapsack(n_items=11, dim=2, seed=6, oracle="gurobi")
    values = random_values(11, 10, 6)
    solutions, objectives = problem.oracle(values)
    np.testing.assert_allclose(objectives, brute_force(problem.weights, 20.0, values), rtol=1e-9)
    assert_valid_item_sets(problem, values, solutions, objectives)


def test_processes_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks spread over worker processes give exactly the serial solutions, in order."""
    problem = Knapsack(n_items=12, seed=7)
    values = np.ceil(random_values(12, 50, 7))  # integer values: tied optima are common
    lp, priced, integer = problem.lp(), np.pad(values, ((0, 0), (0, 2))), np.arange(14) < 12
    monkeypatch.setattr(batching, "BLOCK_ROWS", 8)
    serial, _ = lp_solvers.solve_lp_batch(lp, priced, "highs", integer=integer, processes=1)

    forked = []
    real = batching.map_in_processes

    def spy(fn, items, workers):
        forked.append((len(items), workers))
        return real(fn, items, workers)

    monkeypatch.setattr(batching, "map_in_processes", spy)
    monkeypatch.setattr(batching, "PARALLEL_MIN_SECONDS", 0.0)
    parallel, _ = lp_solvers.solve_lp_batch(lp, priced, "highs", integer=integer, processes=3)
    assert forked == [(6, 3)]  # 7 blocks (the last of 2 rows); the first is solved here
    np.testing.assert_array_equal(parallel, serial)
    np.testing.assert_allclose(np.einsum("ij,ij->i", values, serial[:, :12]),
                               brute_force(problem.weights, 20.0, values), rtol=1e-12)


def test_a_cpu_share_keeps_the_exact_solves_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """A cell given one thread (``--threads 1``) solves its batches in its own process instead of
    forking a worker per CPU, with the same solutions."""
    problem = Knapsack(n_items=10, seed=3)
    values = np.ceil(random_values(10, 40, 3))
    lp, priced, integer = problem.lp(), np.pad(values, ((0, 0), (0, 2))), np.arange(12) < 10
    monkeypatch.setattr(batching, "BLOCK_ROWS", 8)
    monkeypatch.setattr(batching, "PARALLEL_MIN_SECONDS", 0.0)
    monkeypatch.setattr(process_pool.os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    forked: list[int] = []
    real = batching.map_in_processes

    def spy(fn, items, workers):
        forked.append(workers)
        return real(fn, items, workers)

    monkeypatch.setattr(batching, "map_in_processes", spy)
    try:
        process_pool.limit_cpus(1)
        assert process_pool.available_cpus() == 1
        alone, _ = lp_solvers.solve_lp_batch(lp, priced, "highs", integer=integer)
        assert forked == []
        process_pool.limit_cpus(2)
        shared, _ = lp_solvers.solve_lp_batch(lp, priced, "highs", integer=integer)
        assert forked == [2]  # its share, not the 4 CPUs it may run on
    finally:
        process_pool.limit_cpus(None)
    assert process_pool.available_cpus() == 4
    np.testing.assert_array_equal(alone, shared)
    with pytest.raises(ValueError, match="at least 1"):
        process_pool.limit_cpus(0)


def test_oracle_runs_after_other_highs_threads() -> None:
    """HiGHS refuses a thread count other than its process-wide scheduler's; the oracle copes."""
    highspy.Highs.resetGlobalScheduler(True)  # whatever ran before in this process
    other = highspy.Highs()
    other.setOptionValue("output_flag", False)
    other.setOptionValue("threads", 2)
    other.addVar(0.0, 1.0)
    other.changeColCost(0, 1.0)
    assert other.run() == highspy.HighsStatus.kOk
    problem = Knapsack(n_items=6, dim=1, seed=8)
    values = random_values(6, 3, 8)
    _, objectives = problem.oracle(values)
    np.testing.assert_allclose(objectives, brute_force(problem.weights, 20.0, values), rtol=1e-9)


def test_bad_integrality_mask() -> None:
    lp = Knapsack(n_items=4).lp()
    with pytest.raises(ValueError, match="boolean mask of shape"):
        lp_solvers.solve_lp_batch(lp, np.ones((1, 6)), "highs", integer=np.ones(5, dtype=bool))


@pytest.mark.parametrize(
    "params",
    [{"n_items": 0}, {"n_items": -3}, {"n_items": 10**6}, {"dim": 0}, {"capacity": 0.0},
     {"capacity": -1.0}, {"oracle": "cplex"}, {"noise": 1.5}, {"deg": 0}, {"n_items": 2.5}],
)
def test_bad_parameters(params: dict) -> None:
    with pytest.raises(ParameterError, match="problem 'knapsack'"):
        Knapsack(**params)


def test_regret_of_a_maximisation() -> None:
    """Regret is the value lost against the best item set, never negative, normalized by the
    total best value: exact values predict regret 0, negated values pick nothing (regret 1)."""
    problem = Knapsack(n_items=10, n_train=1, n_val=1, n_test=30, seed=9)
    test = problem.generate().test
    assert (test.costs >= 1).all()
    assert decision_quality(problem, test, test.costs).norm_regret == 0.0
    assert decision_quality(problem, test, test.costs).accuracy == 1.0
    assert decision_quality(problem, test, -test.costs).norm_regret == pytest.approx(1.0)
    assert decision_quality(problem, test, -test.costs).accuracy == 0.0

    predicted = random_values(10, 30, 9)
    regrets = instance_regrets(problem, test, predicted)
    best = brute_force(problem.weights, 20.0, test.costs.astype(np.float64))
    chosen, _ = problem.oracle(predicted)
    realised = np.einsum("ij,ij->i", test.costs.astype(np.float64), chosen)
    np.testing.assert_allclose(regrets, best - realised, rtol=1e-9, atol=1e-9)
    assert (regrets >= -1e-9).all() and (regrets > 0).any()
    quality = decision_quality(problem, test, predicted)
    assert quality.norm_regret == pytest.approx((best - realised).sum() / best.sum(), rel=1e-9)
    assert quality.accuracy == pytest.approx(np.mean(best - realised <= 1e-3 * best))


#: Parameters under which each layer converges tightly on an 8-item knapsack.
LAYERS = {
    "dys-jfb": {"alpha": 1.0, "gamma": 1e-2, "tol": 1e-4, "max_iter": 20_000},
    "dys-implicit": {"alpha": 1.0, "gamma": 1e-2, "tol": 1e-4, "max_iter": 20_000},
    "dys-jfb-jax": {"alpha": 1.0, "gamma": 1e-2, "tol": 1e-4, "max_iter": 20_000},
    "dys-unrolled": {"alpha": 1.0, "gamma": 1e-2, "K": 2000},
    "cvx-net": {},
}


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_decision_layers_respect_the_capacity(name: str) -> None:
    """A layer over the LP form (with its slack columns) returns item decisions within the
    capacity: the slack columns were priced at zero and dropped, not mistaken for items."""
    method_cls = method_registry.get(name)
    if method_cls.missing_requirements():
        pytest.skip(f"{name} needs {method_cls.install_hint()}")
    problem = Knapsack(n_items=8, n_train=24, n_val=8, n_test=8, seed=10)
    data = problem.generate()
    method = method_cls(problem, torch.device("cpu"), seed=0, **LAYERS[name])
    assert isinstance(method, Method)
    assert method.fit(data, Budget(max_epochs=1)).epochs == 1
    decisions = method.predict_decisions(data.test.features)
    assert decisions is not None and decisions.shape == (8, 8)
    assert (decisions >= -1e-6).all() and (decisions <= 1 + 1e-6).all()
    assert (decisions @ problem.weights.T <= 20.0 + 1e-2).all()
    assert method.predict_costs(data.test.features).shape == (8, 8)


def test_every_method_fits_through_the_contract() -> None:
    """Methods that decide with the exact oracle train on a maximisation MIP unchanged."""
    problem = Knapsack(n_items=6, n_train=32, n_val=8, n_test=8, seed=11)
    data = problem.generate()
    for name in ("two-stage", "spo+", "pertopt", "blackbox"):
        method = method_registry.get(name)(problem, torch.device("cpu"), seed=0)
        assert isinstance(method, Method)
        assert method.fit(data, Budget(max_epochs=1)).epochs == 1
        quality = decision_quality(problem, data.test, method.predict_costs(data.test.features))
        assert 0.0 <= quality.norm_regret <= 1.0
        assert np.isfinite(method.loss(data.test))


@pytest.mark.slow
def test_highs_prints_nothing() -> None:
    """HiGHS's banner would land in every cell's output; the oracle keeps it off stdout."""
    probe = ("import numpy as np; from l2obench.problems.knapsack import Knapsack; "
             "Knapsack(n_items=3).oracle(np.ones((1, 3)))")
    out = subprocess.run([sys.executable, "-c", probe], check=True, capture_output=True,
                         text=True)
    assert out.stdout == ""


def test_builtin_suite_runs_every_method() -> None:
    assert "knapsack" in builtin_suites()
    suite = load_suite("knapsack")
    assert suite.problem == "knapsack"
    assert suite.sizes == [20, 100, 500, 750]
    assert suite.data["dim"] == 2 and suite.data["deg"] == 4 and suite.data["noise"] == 0.5
    assert (suite.data["n_train"], suite.data["n_val"], suite.data["n_test"]) == (1000, 200, 200)
    builtin = [name for name in method_registry.names()  # other tests register test methods
               if method_registry.get(name).__module__.startswith("l2obench.methods.")]
    # Each built-in method at least once (pertopt twice: additive and multiplicative), no other,
    # but those the suite leaves out, saying why.
    assert {spec.name for spec in suite.methods} | set(suite.left_out) == set(builtin)
    assert all(why.strip() for why in suite.left_out.values())
    quick = load_suite("knapsack", quick=True)
    assert max(quick.sizes) <= 20
