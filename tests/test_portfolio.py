"""Portfolio: generator, conic oracle, its form and regret against independent references.

References: PyEPO's ``genData`` (data) and ``portfolioModel`` (its Gurobi model, when gurobipy is
installed), the same program stated in cvxpy on the covariance itself and solved by SCS (a
first-order solver, not Clarabel), and a KKT certificate computed here (multipliers by
non-negative least squares on the active constraints); never the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pyepo.data.portfolio import genData
from scipy.optimize import nnls

from l2obench.errors import L2OBenchError, ParameterError
from l2obench.metrics import decision_quality, instance_regrets
from l2obench.problems import batching
from l2obench.problems.base import Capability, problem_registry
from l2obench.problems.conic_solvers import solve_conic_batch
from l2obench.problems.portfolio import Portfolio

FEASIBILITY_TOL = 1e-6


def small(n_assets: int = 12, **params) -> Portfolio:
    return Portfolio(n_assets=n_assets, n_train=20, n_val=4, n_test=6, **params)


def assert_feasible(problem: Portfolio, solutions: np.ndarray) -> None:
    assert np.abs(solutions.sum(axis=1) - 1.0).max() <= FEASIBILITY_TOL
    assert solutions.min() >= -FEASIBILITY_TOL and solutions.max() <= 1.0 + FEASIBILITY_TOL
    risk = np.einsum("ij,jk,ik->i", solutions, problem.covariance, solutions)
    assert (risk <= problem.risk_level * (1 + FEASIBILITY_TOL)).all()


def kkt_residual(problem: Portfolio, returns: np.ndarray, x: np.ndarray) -> float:
    """The smallest stationarity residual ``‖r − λ1 − 2μΣx + α − β‖ / ‖r‖`` over multipliers
    that are admissible at ``x``: ``μ ≥ 0`` only if the risk budget is active, ``α ≥ 0`` on the
    shares at 0 and ``β ≥ 0`` on those at 1, ``λ`` free. Zero (to the solver's accuracy) at
    a feasible ``x`` certifies that ``x`` maximises ``rᵀx``: the program is convex."""
    n = len(x)
    sigma_x = problem.covariance @ x
    columns = [np.ones(n), -np.ones(n)]  # λ = λ⁺ − λ⁻
    if x @ sigma_x >= problem.risk_level * (1 - 1e-6):
        columns.append(2 * sigma_x)
    for i in np.flatnonzero(x <= 1e-6):
        columns.append(-np.eye(n)[i])  # −α_i
    for i in np.flatnonzero(x >= 1 - 1e-6):
        columns.append(np.eye(n)[i])  # +β_i
    _, residual = nnls(np.stack(columns, axis=1), returns)
    return residual / np.linalg.norm(returns)


def scs_objectives(problem: Portfolio, returns: np.ndarray) -> np.ndarray:
    cp = pytest.importorskip("cvxpy")
    x = cp.Variable(problem.n_vars)
    r = cp.Parameter(problem.n_vars)
    program = cp.Problem(
        cp.Maximize(r @ x),
        [cp.sum(x) == 1, x >= 0, x <= 1,
         cp.quad_form(x, cp.psd_wrap(problem.covariance)) <= problem.risk_level],
    )
    best = []
    for row in returns:
        r.value = row
        program.solve(solver="SCS", eps_abs=1e-10, eps_rel=1e-10, max_iters=200_000)
        assert program.status == "optimal"
        best.append(program.value)
    return np.array(best)


def test_registered() -> None:
    assert problem_registry.get("portfolio") is Portfolio
    assert Portfolio.size_param == "n_assets"
    assert Portfolio.capabilities() == {Capability.CONIC_FORM}
    problem = small()
    assert problem.sense == "max" and problem.n_vars == 12 and problem.n_aux == 0
    with pytest.raises(L2OBenchError, match="problem 'portfolio' has no LP form"):
        problem.lp()


@pytest.mark.parametrize(
    ("n_assets", "splits", "n_features", "deg", "noise_level", "seed"),
    [
        (10, (30, 10, 10), 5, 4, 1.0, 0),
        (7, (5, 2, 3), 3, 1, 0.5, 135),
        (50, (20, 5, 5), 6, 2, 2.0, 12345),
    ],
)
def test_generator_matches_pyepo(n_assets, splits, n_features, deg, noise_level, seed) -> None:
    problem = Portfolio(n_assets=n_assets, n_train=splits[0], n_val=splits[1],
                        n_test=splits[2], n_features=n_features, deg=deg,
                        noise_level=noise_level, seed=seed)
    data = problem.generate()
    cov, x, r = genData(sum(splits), n_features, n_assets, deg=deg, noise_level=noise_level,
                        seed=seed)
    np.testing.assert_array_equal(problem.covariance, cov)
    assert problem.risk_level == 2.25 * np.mean(cov)
    features = np.concatenate([data.train.features, data.val.features, data.test.features])
    costs = np.concatenate([data.train.costs, data.val.costs, data.test.costs])
    assert costs.dtype == np.float32
    np.testing.assert_array_equal(features, x.astype(np.float32))
    np.testing.assert_array_equal(costs, r)
    solutions = np.concatenate([data.train.solutions, data.val.solutions, data.test.solutions])
    assert_feasible(problem, solutions.astype(np.float64))
    # The cone is the risk budget: its factor is a factor of PyEPO's covariance over the budget.
    (cone,) = problem.conic().cones
    assert cone.bound == 1.0
    np.testing.assert_allclose((cone.F.T @ cone.F).toarray() * problem.risk_level, cov,
                               rtol=0, atol=1e-18)


def test_oracle_is_optimal_by_kkt_and_matches_scs() -> None:
    problem = Portfolio(n_assets=30, n_train=12, n_val=1, n_test=1, seed=1)
    returns = problem.generate().train.costs.astype(np.float64)
    solutions, objectives = problem.oracle(returns)
    assert solutions.dtype == np.float64 and objectives.dtype == np.float64
    assert_feasible(problem, solutions)
    np.testing.assert_allclose(objectives, np.einsum("ij,ij->i", returns, solutions), rtol=1e-14)
    np.testing.assert_allclose(objectives, scs_objectives(problem, returns), rtol=0, atol=1e-6)
    # The shares are determined less sharply than the objective (the optimum is flat along
    # some directions): stationarity to 1e-5 of ‖r‖.
    for r, x in zip(returns, solutions, strict=True):
        assert kkt_residual(problem, r, x) <= 1e-5


def test_oracle_on_costs_of_any_sign_and_scale() -> None:
    """Negative, tiny, huge and all-zero returns: feasible and optimal (the program's optimum
    does not change under positive scaling, and the oracle's answer does not either)."""
    problem = small(seed=2)
    rng = np.random.default_rng(2)
    returns = rng.normal(0.0, 1.0, (5, 12))
    solutions, _ = problem.oracle(returns)
    for scale in (1e-9, 1e6):
        scaled, _ = problem.oracle(scale * returns)
        np.testing.assert_allclose(scaled, solutions, rtol=0, atol=1e-10)
    for r, x in zip(returns, solutions, strict=True):
        assert kkt_residual(problem, r, x) <= 1e-5
    zero, objectives = problem.oracle(np.zeros((1, 12)))
    assert_feasible(problem, zero)
    assert objectives[0] == 0.0


def test_no_noise_means_no_risk_budget() -> None:
    """τ = 0: Σ = 0, the risk budget holds everywhere, and the best asset takes everything."""
    problem = small(noise_level=0.0, seed=3)
    assert problem.conic().cones == ()
    returns = problem.generate().test.costs
    solutions, objectives = problem.oracle(returns)
    best = np.eye(12)[returns.argmax(axis=1)]
    np.testing.assert_allclose(solutions, best, atol=1e-6)
    np.testing.assert_allclose(objectives, returns.max(axis=1), rtol=1e-6)


def test_oracle_matches_pyepo_gurobi_model() -> None:
    pytest.importorskip("gurobipy")
    from pyepo.model.grb.portfolio import portfolioModel

    problem = Portfolio(n_assets=50, n_train=10, n_val=1, n_test=1, seed=4)
    returns = problem.generate().train.costs
    model = portfolioModel(50, problem.covariance)
    assert model.risk_level == problem.risk_level
    reference = []
    for r in returns:
        model.setObj(r)
        reference.append(model.solve()[1])
    _, objectives = problem.oracle(returns)
    # Gurobi's barrier stops at its default QCP tolerance (1e-6); the objectives are ~0.2.
    np.testing.assert_allclose(objectives, reference, rtol=0, atol=2e-6)
    _, tight = Portfolio(n_assets=50, seed=4, oracle="gurobi").oracle(returns)
    np.testing.assert_allclose(tight, objectives, rtol=0, atol=1e-8)


def test_oracle_accepts_float32_and_torch() -> None:
    problem = small(seed=5)
    returns = problem.generate().test.costs
    reference, _ = problem.oracle(returns.astype(np.float64))
    for given in (returns, torch.from_numpy(returns).requires_grad_()):
        solutions, _ = problem.oracle(given)
        np.testing.assert_allclose(solutions, reference, atol=1e-9)


def test_processes_change_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    problem = small(seed=6)
    returns = np.random.default_rng(6).normal(0.1, 0.05, (20, 12))
    monkeypatch.setattr(batching, "BLOCK_ROWS", 6)
    serial = solve_conic_batch(problem.conic(), returns, "clarabel", processes=1)[0]
    monkeypatch.setattr(batching, "PARALLEL_MIN_SECONDS", 0.0)
    parallel = solve_conic_batch(problem.conic(), returns, "clarabel", processes=2)[0]
    np.testing.assert_array_equal(parallel, serial)


@pytest.mark.parametrize(
    "params",
    [{"n_assets": 0}, {"gamma": 0.5}, {"noise_level": -1.0}, {"oracle": "mosek"}, {"deg": 0},
     {"noise": 0.5}],
)
def test_bad_parameters(params: dict) -> None:
    with pytest.raises(ParameterError, match="problem 'portfolio'"):
        Portfolio(**params)


def test_regret_of_a_maximisation() -> None:
    """Exact returns: regret 0; other predictions: the expected return given up, positive."""
    problem = small(n_assets=20, seed=7)
    test = problem.generate().test
    quality = decision_quality(problem, test, test.costs)
    assert quality.norm_regret == 0.0 and quality.accuracy == 1.0
    predicted = np.random.default_rng(7).normal(0.0, 1.0, test.costs.shape)
    regrets = instance_regrets(problem, test, predicted)
    chosen, _ = problem.oracle(predicted)
    realised = np.einsum("ij,ij->i", test.costs.astype(np.float64), chosen)
    np.testing.assert_allclose(regrets, test.objectives - realised, rtol=1e-9, atol=1e-12)
    assert (regrets >= -1e-7).all() and (regrets > 1e-4).all()
    assert decision_quality(problem, test, predicted).norm_regret == pytest.approx(
        (test.objectives - realised).sum() / np.abs(test.objectives).sum(), rel=1e-9)
