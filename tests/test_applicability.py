"""Which method runs on which problem: every applicable pairing trains, every other is refused.

The pairings come from the registries (every registered method against ``tsp`` and
``portfolio``), so a method added later is covered without editing this file. References for
``cvx-net``'s conic layer: the same regularised program solved by cvxpy with Clarabel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from l2obench.errors import ParameterError
from l2obench.methods.base import Method, method_registry
from l2obench.metrics import decision_quality
from l2obench.problems.base import Capability, Dataset, Problem, problem_registry
from l2obench.record import Budget
from l2obench.suite import SuiteError, parse_suite

CPU = torch.device("cpu")

#: Small instances of the two problems whose contracts differ most from the LP problems'.
PROBLEMS: dict[str, dict] = {
    "tsp": {"n_nodes": 6, "n_train": 32, "n_val": 8, "n_test": 8, "seed": 1},
    "portfolio": {"n_assets": 8, "n_train": 32, "n_val": 8, "n_test": 8, "seed": 1},
}

#: Every built-in method of the problems' task family (another family's are refused by family, a
#: test of the task seam's; the methods other test modules register in this process are theirs).
PAIRS = [(p, m) for p in PROBLEMS for m in method_registry.names()
         if method_registry.get(m).__module__.startswith("l2obench.")
         and method_registry.get(m).task == problem_registry.get(p).task]
#: Pairings that take several seconds (JAX compiles; many exact TSP solves per step): the full
#: lane only.
SLOW = {("tsp", "dys-jfb-jax"), ("tsp", "blackbox"), ("tsp", "pertopt"), ("tsp", "rfwo"),
        ("tsp", "rfy"), ("portfolio", "rfwo"), ("portfolio", "rfy")}
APPLICABLE = [pytest.param(p, m, marks=[pytest.mark.slow] if (p, m) in SLOW else [])
              for p, m in PAIRS
              if not method_registry.get(m).unmet_needs(problem_registry.get(p))]


@pytest.fixture(scope="module")
def instances() -> dict[str, tuple[Problem, Dataset[Any]]]:
    built = {}
    for name, params in PROBLEMS.items():
        problem = problem_registry.get(name)(**params)
        assert isinstance(problem, Problem)
        built[name] = (problem, problem.generate())
    return built


@pytest.mark.parametrize(("problem_name", "method_name"), APPLICABLE)
def test_applicable_methods_train_two_epochs(problem_name: str, method_name: str,
                                             instances) -> None:
    method_cls = method_registry.get(method_name)
    if method_cls.missing_requirements():
        pytest.skip(f"{method_name} needs {method_cls.install_hint()}")
    problem, data = instances[problem_name]
    method = method_cls(problem, CPU, seed=0)
    assert isinstance(method, Method)
    fit = method.fit(data, Budget(max_epochs=2))
    assert fit.epochs == 2
    predicted = method.predict_costs(data.test.features)
    assert predicted.shape == data.test.costs.shape and np.isfinite(predicted).all()
    quality = decision_quality(problem, data.test, predicted)
    assert np.isfinite(quality.norm_regret) and quality.norm_regret >= -1e-9
    assert np.isfinite(method.loss(data.test))
    decisions = method.predict_decisions(data.test.features)
    if type(method).outputs_decisions:
        assert decisions is not None and decisions.shape == data.test.costs.shape


@pytest.mark.parametrize(("problem_name", "method_name"), PAIRS)
def test_other_pairings_are_refused_with_the_reason(problem_name: str, method_name: str) -> None:
    method_cls = method_registry.get(method_name)
    problem_cls = problem_registry.get(problem_name)
    missing = method_cls.unmet_needs(problem_cls)
    if not missing:
        method_cls.check_applicable(problem_cls)  # no error
        return
    with pytest.raises(ParameterError) as info:
        method_cls.check_applicable(problem_cls)
    message = str(info.value)
    assert f"method '{method_name}' cannot run on problem '{problem_name}'" in message
    for capability in missing:
        assert str(capability) in message


def test_the_expected_pairings() -> None:
    """The layers over an LP form do not run on portfolio; cvx-net and the oracle-only methods
    do; everything but CaVE runs on TSP (CaVE's cones need the binding constraints of the
    formulation whose vertices are the decisions: the degree-2 relaxation's are not tours)."""
    portfolio, tsp = problem_registry.get("portfolio"), problem_registry.get("tsp")
    for name in ("dys-jfb", "dys-unrolled", "dys-implicit", "dys-jfb-jax"):
        assert method_registry.get(name).unmet_needs(portfolio) == [Capability.LP_FORM]
    for name in ("cvx-net", "two-stage", "spo+", "pertopt", "blackbox"):
        assert not method_registry.get(name).unmet_needs(portfolio)
    for name in method_registry.names():
        if method_registry.get(name).task != tsp.task:
            continue
        assert method_registry.get(name).unmet_needs(tsp) == \
            ([Capability.SLACK_FORM] if name == "cave" else [])


def test_a_suite_pairing_an_lp_layer_with_portfolio_is_refused() -> None:
    raw = {"name": "bad", "problem": "portfolio", "sizes": [8], "budget": {"max_epochs": 1},
           "methods": [{"name": "two-stage"}, {"name": "dys-jfb"}]}
    with pytest.raises(SuiteError, match=r"bad.toml: key 'methods\[1\].name': method 'dys-jfb' "
                                         r"cannot run on problem 'portfolio': it needs lp-form"):
        parse_suite(raw, "bad.toml")


def test_cvx_net_layer_takes_the_risk_cone(instances) -> None:
    """cvx-net's layer on portfolio is the regularised conic program: feasible decisions equal to
    cvxpy's own solve of ``max wᵀx − (γ/2)‖x‖²`` over the budget, the bounds and the cone."""
    cp = pytest.importorskip("cvxpy")
    if method_registry.get("cvx-net").missing_requirements():
        pytest.skip("cvx-net needs the cvx extra")
    problem, data = instances["portfolio"]
    method = method_registry.get("cvx-net")(problem, CPU, seed=0, gamma=0.1)
    assert isinstance(method, Method)
    decisions = method.predict_decisions(data.test.features)
    assert decisions is not None
    w = method.predict_costs(data.test.features)
    x = cp.Variable(problem.n_vars)
    cost = cp.Parameter(problem.n_vars)
    program = cp.Problem(
        cp.Maximize(cost @ x - 0.05 * cp.sum_squares(x)),
        [cp.sum(x) == 1, x >= 0, x <= 1,
         cp.quad_form(x, cp.psd_wrap(problem.covariance)) <= problem.risk_level],
    )
    for row, decision in zip(w, decisions, strict=True):
        cost.value = row
        program.solve(solver="CLARABEL")
        np.testing.assert_allclose(decision, x.value, atol=1e-4)
    risk = np.einsum("ij,jk,ik->i", decisions, problem.covariance, decisions)
    assert (risk <= problem.risk_level * (1 + 1e-3)).all()
    np.testing.assert_allclose(decisions.sum(axis=1), 1.0, atol=1e-5)
