"""The contract every registered problem passes, whatever its family: parameters, seeded data,
shapes, bad input; and, for the predict-then-optimize family, a batched, exact-looking oracle
that takes any array type and refuses bad costs. Each problem's own tests check its generator
and oracle against independent references (PyEPO, brute force, networkx, scipy, cvxpy)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from l2obench.errors import ParameterError
from l2obench.problems.base import BaseProblem, Problem, problem_registry
from l2obench.tasks.base import get_task, task_registry

#: Small instances: the size and split sizes each problem is drawn at here.
SMALL: dict[str, dict[str, Any]] = {
    "shortest-path": {"k": 3}, "knapsack": {"n_items": 6}, "tsp": {"n_nodes": 5},
    "portfolio": {"n_assets": 6}, "noisy-signals": {"n": 8}, "classification": {"width": 4},
    "ct": {"size": 16},
}
SPLITS = {"n_train": 6, "n_val": 4, "n_test": 5}
PROBLEMS = sorted(SMALL)
DECISION = [name for name in PROBLEMS if name in problem_registry
            and issubclass(problem_registry.get(name), Problem)]


#: The test family's problem passes the same contract (registered for this module's tests).
pytestmark = pytest.mark.usefixtures("denoise_family")


def build(name: str, **params: Any) -> BaseProblem:
    return problem_registry.get(name)(**{**SMALL[name], **SPLITS, **params})


@pytest.mark.parametrize("name", sorted({*problem_registry.names(), *PROBLEMS}))
def test_a_registered_problem_declares_what_the_suites_read(name: str) -> None:
    cls = problem_registry.get(name)
    assert cls.registered_name() == name and cls.task in task_registry
    assert cls.size_param in cls.params and "seed" in cls.params
    for capability in cls.capabilities():
        assert isinstance(capability, str) and capability


@pytest.mark.parametrize("name", PROBLEMS)
def test_data_are_seeded_and_shaped(name: str) -> None:
    problem = build(name, seed=3)
    first, again, other = problem.generate(), build(name, seed=3).generate(), \
        build(name, seed=4).generate()
    for split, n in zip((first.train, first.val, first.test), SPLITS.values(), strict=True):
        assert len(split) == n and split.features.shape == (n, problem.n_features)
    np.testing.assert_array_equal(first.test.features, again.test.features)
    assert not np.array_equal(first.test.features, other.test.features)


@pytest.mark.parametrize("name", PROBLEMS)
def test_the_ideal_outputs_score_best(name: str) -> None:
    """The family's scorer puts the ground truth at least as high as any perturbation of it."""
    problem = build(name, seed=5)
    task = get_task(problem.task)
    test = problem.generate().test
    ideal = task.ideal_outputs(test)
    assert ideal is not None and ideal.shape == (len(test), problem.n_vars)
    rank = task.ranking()
    best = task.score(problem, test, ideal).values[rank.name]
    rng = np.random.default_rng(0)
    for scale in (0.1, 1.0):
        noisy = ideal + scale * rng.standard_normal(ideal.shape) * np.abs(ideal).mean()
        value = task.score(problem, test, noisy).values[rank.name]
        assert best is not None and value is not None and not rank.better(value, best)
    with pytest.raises(ValueError, match="shape"):
        task.score(problem, test, ideal[:, :-1])
    with pytest.raises(FloatingPointError):
        task.score(problem, test, np.full_like(ideal, np.nan))


@pytest.mark.parametrize("name", DECISION)
def test_the_oracle_is_batched_and_consistent(name: str) -> None:
    problem = build(name, seed=6)
    assert isinstance(problem, Problem)
    test = problem.generate().test
    solutions, objectives = problem.oracle(test.costs.astype(np.float64))
    assert solutions.shape == (len(test), problem.n_vars) and objectives.shape == (len(test),)
    np.testing.assert_allclose(objectives, test.objectives, rtol=1e-6, atol=1e-9)
    priced = np.einsum("ij,ij->i", test.costs.astype(np.float64), solutions)
    np.testing.assert_allclose(priced, objectives, rtol=1e-6, atol=1e-8)
    for given in (test.costs, torch.from_numpy(test.costs).requires_grad_()):
        np.testing.assert_allclose(problem.oracle(given)[1], objectives, rtol=1e-5)
    one_by_one = [problem.oracle(test.costs[i : i + 1])[1][0] for i in range(len(test))]
    np.testing.assert_allclose(one_by_one, objectives, rtol=1e-9)  # a row's answer is its own


@pytest.mark.parametrize("name", DECISION)
def test_the_oracle_refuses_bad_costs(name: str) -> None:
    problem = build(name)
    assert isinstance(problem, Problem)
    n = problem.n_vars
    solutions, objectives = problem.oracle(np.zeros((0, n)))
    assert solutions.shape == (0, n) and objectives.shape == (0,)
    for shape in [(3, n - 1), (n,), (n, 3 if n != 3 else 4), (2, 3, n)]:
        with pytest.raises(ValueError, match="shape"):
            problem.oracle(np.ones(shape))
    for bad in (np.inf, np.nan):
        costs = np.ones((2, n))
        costs[1, 0] = bad
        with pytest.raises(ValueError, match="finite"):
            problem.oracle(costs)


@pytest.mark.parametrize("name", PROBLEMS)
def test_bad_parameters_are_refused_by_name(name: str) -> None:
    cls = problem_registry.get(name)
    size = cls.params[cls.size_param]
    for params in ({cls.size_param: (size.low or 1) - 1}, {cls.size_param: 2.5},
                   {"not_a_parameter": 1}, {"seed": -1}):
        with pytest.raises(ParameterError, match=f"problem '{name}'"):
            cls(**params)
