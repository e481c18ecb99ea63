"""The conic form and its batched solves, on programs whose optimum is known independently.

References: HiGHS through ``scipy.optimize.linprog`` for LP forms, a closed form for a linear
objective over a ball, and the problems' own exact oracles where those are not conic solvers.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linprog

from l2obench.errors import L2OBenchError
from l2obench.problems import conic_solvers
from l2obench.problems.base import Capability, ConicForm, LPForm, SecondOrderCone
from l2obench.problems.knapsack import Knapsack
from l2obench.problems.portfolio import Portfolio
from l2obench.problems.shortest_path import ShortestPath
from l2obench.problems.tsp import TSP


@pytest.mark.parametrize("backend", ["clarabel", "gurobi"])
def test_an_lp_form_is_a_conic_form(backend: str) -> None:
    """An LP problem's conic form is its LP form without cones; solved as a cone program it has
    the LP's optimum (redundant flow-conservation rows included)."""
    if backend == "gurobi":
        pytest.importorskip("gurobipy")
    problem = ShortestPath(k=4)
    form = problem.conic()
    assert form.linear is problem.lp() and form.cones == ()
    costs = np.random.default_rng(0).uniform(0.1, 2.0, (20, problem.n_vars))
    _, objectives = conic_solvers.solve_conic_batch(form, costs, backend)
    np.testing.assert_allclose(objectives, problem.oracle(costs)[1], rtol=1e-7)


def test_maximisation_with_slack_columns() -> None:
    problem = Knapsack(n_items=8, seed=1)
    values = np.random.default_rng(1).normal(1.0, 1.0, (6, 8))
    priced = np.pad(values, ((0, 0), (0, 2)))
    _, objectives = conic_solvers.solve_conic_batch(problem.conic(), priced, "clarabel")
    for row, objective in zip(values, objectives, strict=True):
        ref = linprog(-row, A_ub=problem.weights, b_ub=np.full(2, 20.0), bounds=(0, 1))
        assert objective == pytest.approx(-ref.fun, rel=1e-7, abs=1e-8)


def test_a_ball_with_free_variables() -> None:
    """``min cᵀx`` over ``‖x‖ ≤ 2`` with no finite bounds is ``−2‖c‖`` at ``x = −2c/‖c‖``."""
    n = 5
    linear = LPForm(A=sp.csr_matrix((0, n)), b=np.zeros(0), lower=np.full(n, -np.inf),
                    upper=np.full(n, np.inf), sense="min")
    form = ConicForm(linear, (SecondOrderCone(F=sp.identity(n, format="csr"), bound=2.0),))
    costs = np.random.default_rng(2).normal(size=(7, n))
    solutions, objectives = conic_solvers.solve_conic_batch(form, costs, "clarabel")
    norms = np.linalg.norm(costs, axis=1)
    np.testing.assert_allclose(objectives, -2 * norms, rtol=1e-8)
    np.testing.assert_allclose(solutions, -2 * costs / norms[:, None], atol=1e-7)


def test_reduced_accuracy_falls_back_to_the_default_tolerances(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Tolerances Clarabel cannot reach end 'AlmostSolved'; the instance is solved again at
    Clarabel's defaults instead of failing."""
    problem = Portfolio(n_assets=20, seed=3)
    returns = np.random.default_rng(3).normal(0.1, 0.05, (4, 20))
    reference = problem.oracle(returns)[1]
    monkeypatch.setattr(conic_solvers, "CLARABEL_TOL", 1e-15)
    np.testing.assert_allclose(problem.oracle(returns)[1], reference, rtol=0, atol=1e-9)


def test_form_validation() -> None:
    linear = TSP(n_nodes=4).lp()
    with pytest.raises(ValueError, match="3 columns; the form has 6 variables"):
        ConicForm(linear, (SecondOrderCone(F=sp.csr_matrix((2, 3)), bound=1.0),))
    with pytest.raises(ValueError, match="non-negative"):
        ConicForm(linear, (SecondOrderCone(F=sp.csr_matrix((2, 6)), bound=-1.0),))
    with pytest.raises(ValueError, match="unknown conic backend"):
        conic_solvers.solve_conic_batch(ConicForm(linear), np.ones((1, 6)), "mosek")


def test_capabilities_imply_a_conic_form() -> None:
    for cls in (ShortestPath, Knapsack, TSP):
        assert Capability.LP_FORM in cls.capabilities()
        assert Capability.CONIC_FORM in cls.capabilities()
    assert Portfolio.capabilities() == {Capability.CONIC_FORM}
    with pytest.raises(L2OBenchError, match="no LP form"):
        Portfolio().lp()
