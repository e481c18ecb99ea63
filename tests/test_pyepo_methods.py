"""Tests of the PyEPO-based methods (``spo+``, ``pertopt``, ``blackbox``) and ``cvx-net``.

References: the oracle adapter against the problem's oracle; PyEPO's own modules on PyEPO's
Gurobi ``shortestPathModel`` (when gurobipy is installed; its bundled licence covers 5×5);
SPO+ against its closed form computed here from networkx shortest paths; a maximisation
problem against the same problem stated as a minimisation. The method modules are imported
explicitly so that they register even before they are listed among the registry's built-ins.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import networkx as nx
import numpy as np
import pytest
import torch
from numpy.typing import ArrayLike
from pyepo.func import SPOPlus, blackboxOpt, perturbedFenchelYoung, perturbedOpt
from pyepo.func.abcmodule import optModule
from pyepo.model.opt import optModel

from l2obench.methods import cvx_net, pyepo_oracle
from l2obench.methods.base import Budget, Method, method_registry
from l2obench.problems.base import LPForm
from l2obench.problems.shortest_path import ShortestPath
from l2obench.process_pool import available_cpus

CPU = torch.device("cpu")
K = 5
BATCH = 8


class MaxShortestPath(ShortestPath):
    """The grid shortest path stated as a maximisation: ``max cᵀx`` is the path minimising −c."""

    def lp(self) -> LPForm:
        return dataclasses.replace(super().lp(), sense="max")

    def oracle(self, costs: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        solutions, objectives = super().oracle(-torch.as_tensor(costs))
        return solutions, -objectives


def networkx_paths(arcs: np.ndarray, costs: np.ndarray) -> np.ndarray:
    """0/1 arc vectors of the shortest top-left → bottom-right paths (Bellman–Ford: any sign)."""
    target = int(arcs.max())
    index = {(int(t), int(h)): e for e, (t, h) in enumerate(arcs)}
    solutions = np.zeros_like(costs, dtype=np.float64)
    for row, cost in enumerate(costs):
        graph = nx.DiGraph()
        for (tail, head), c in zip(arcs.tolist(), cost.tolist(), strict=True):
            graph.add_edge(tail, head, weight=c)
        path = nx.bellman_ford_path(graph, 0, target)
        for tail, head in itertools.pairwise(path):
            solutions[row, index[(tail, head)]] = 1.0
    return solutions


@pytest.fixture(scope="module")
def problem() -> ShortestPath:
    return ShortestPath(k=K)


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted costs (some negative, so 2ĉ − c is of either sign) and true costs, float64."""
    rng = np.random.default_rng(7)
    m = 2 * K * (K - 1)
    true_costs = rng.uniform(0.1, 2.0, (BATCH, m))
    pred_costs = rng.normal(0.5, 1.0, (BATCH, m))
    return torch.tensor(pred_costs), torch.tensor(true_costs)


def spo_plus(model: optModel, pred: torch.Tensor, costs: torch.Tensor, sols: torch.Tensor
             ) -> tuple[torch.Tensor, torch.Tensor]:
    """PyEPO's SPO+ loss (mean) and its gradient with respect to the predicted costs."""
    pred = pred.clone().requires_grad_(True)
    loss = SPOPlus(model)(pred, costs, sols, (costs * sols).sum(dim=-1))
    loss.backward()
    assert pred.grad is not None
    return loss.detach(), pred.grad


def test_adapter_solves_like_the_oracle(problem: ShortestPath, batch) -> None:
    _, costs = batch
    expected_sols, expected_objs = problem.oracle(costs)
    adapter = pyepo_oracle.ProblemOptModel(problem)
    assert adapter.num_cost == problem.n_vars
    for row in range(BATCH):  # PyEPO's one-at-a-time interface
        adapter.setObj(costs[row].numpy())
        sol, obj = adapter.solve()
        np.testing.assert_array_equal(sol, expected_sols[row])
        assert obj == pytest.approx(expected_objs[row], rel=1e-12)
    adapter.setObj(costs)  # the batch interface PyEPO's modules use
    sols, objs, _ = adapter.batch_optimize(adapter.c)
    np.testing.assert_array_equal(sols.numpy(), expected_sols)
    np.testing.assert_allclose(objs.numpy(), expected_objs, rtol=1e-12)


def test_adapter_keeps_the_problem_sense(batch) -> None:
    """On a maximisation problem the adapter returns the maximiser and its (true) objective."""
    _, costs = batch
    max_problem = MaxShortestPath(k=K)
    adapter = pyepo_oracle.ProblemOptModel(max_problem)
    adapter.setObj(-costs[0])
    sol, obj = adapter.solve()
    expected_sol, expected_obj = ShortestPath(k=K).oracle(costs[:1])
    np.testing.assert_array_equal(sol, expected_sol[0])
    assert obj == pytest.approx(-expected_obj[0], rel=1e-12)


@pytest.mark.parametrize("pool_dtype", [torch.float32, torch.float64])
def test_pool_grows_as_pyepo_grows_it(pool_dtype: torch.dtype) -> None:
    """``grow_pool`` returns PyEPO's ``_update_solution_pool`` pool, row for row: batches with
    nothing new, some new rows (repeated, unsorted), rows within PyEPO's L1 tolerance of a
    member, and a pool of another dtype."""
    from pyepo.func.utils import _update_solution_pool

    rng = np.random.default_rng(0)
    n = 12
    pool = torch.as_tensor(rng.integers(0, 2, (6, n)), dtype=pool_dtype)
    batches = [pool[[3, 0, 3]].float(),  # nothing new
               torch.as_tensor(rng.integers(0, 2, (16, n)), dtype=torch.float32),
               (pool[[1, 2]] + 1e-5).float(),  # within the tolerance: not new
               torch.as_tensor(rng.random((8, n)), dtype=torch.float32)]
    fresh = torch.as_tensor(rng.integers(0, 2, (2, n)), dtype=torch.float32)
    batches.append(torch.cat([fresh[[1, 0, 1]], pool[:2].float()]))  # new rows, one twice
    for solutions in batches:
        expected = _update_solution_pool(solutions, pool)
        pool = pyepo_oracle.grow_pool(solutions, pool)
        assert pool.dtype == expected.dtype
        torch.testing.assert_close(pool, expected, rtol=0, atol=0)
    assert len(pool) > 6  # the pool grew


def test_pool_seed_gives_pyepos_initial_pool(problem: ShortestPath) -> None:
    """The seed holds each training solution once; PyEPO's pool from it is the one it builds
    from every instance's solution (``torch.unique`` of them all)."""
    from l2obench.problems.knapsack import Knapsack

    for prob in (problem, Knapsack(n_train=300)):
        split = prob.generate().train
        seed = pyepo_oracle.PoolSeed(pyepo_oracle.ProblemOptModel(prob), split)
        every = torch.as_tensor(split.solutions, dtype=torch.float32)
        assert len(seed.sols) < len(every)  # instances share optima
        assert torch.equal(torch.unique(seed.sols, dim=0), torch.unique(every, dim=0))


def test_spo_plus_matches_its_closed_form(problem: ShortestPath, batch) -> None:
    """``mean(−min (2ĉ−c)ᵀx + 2ĉᵀx*(c) − z*(c))``, gradient ``2(x*(c) − x*(2ĉ−c)) / B``."""
    pred, costs = batch
    x_true = networkx_paths(problem.arcs, costs.numpy())
    x_spo = networkx_paths(problem.arcs, (2 * pred - costs).numpy())
    p, c = pred.numpy(), costs.numpy()
    per_sample = (
        -np.einsum("ij,ij->i", 2 * p - c, x_spo)
        + 2 * np.einsum("ij,ij->i", p, x_true)
        - np.einsum("ij,ij->i", c, x_true)
    )
    loss, grad = spo_plus(
        pyepo_oracle.ProblemOptModel(problem), pred, costs, torch.tensor(x_true)
    )
    assert float(loss) == pytest.approx(per_sample.mean(), rel=1e-12)
    np.testing.assert_allclose(grad.numpy(), 2 * (x_true - x_spo) / BATCH, atol=1e-15)


@pytest.mark.parametrize(
    "make_module, call",
    [
        pytest.param(SPOPlus, lambda mod, p, c, x: mod(p, c, x, (c * x).sum(-1)), id="spo+"),
        pytest.param(lambda m: perturbedFenchelYoung(m, n_samples=5, seed=3),
                     lambda mod, p, c, x: mod(p, x), id="pfyl"),
        pytest.param(lambda m: perturbedOpt(m, n_samples=5, seed=3),
                     lambda mod, p, c, x: ((mod(p) - x) ** 2).mean(), id="dpo"),
        pytest.param(lambda m: blackboxOpt(m, lambd=10),
                     lambda mod, p, c, x: ((mod(p) - x) * c).sum(-1).mean(), id="dbb"),
    ],
)
def test_losses_match_pyepo_on_gurobi(
    problem: ShortestPath,
    batch,
    make_module: Callable[[optModel], optModule],
    call: Callable[..., torch.Tensor],
) -> None:
    """Each PyEPO loss: same value and gradient on the oracle as on PyEPO's Gurobi model."""
    pytest.importorskip("gurobipy")
    from pyepo.model.grb import shortestPathModel

    pred, costs = batch
    sols = torch.as_tensor(problem.oracle(costs)[0])
    results = []
    for model in (pyepo_oracle.ProblemOptModel(problem), shortestPathModel(grid=(K, K))):
        leaf = pred.clone().requires_grad_(True)
        loss = call(make_module(model), leaf, costs, sols)
        loss.backward()
        results.append((loss.detach(), leaf.grad))
    (loss_ours, grad_ours), (loss_grb, grad_grb) = results
    assert float(loss_ours) == pytest.approx(float(loss_grb), rel=1e-6, abs=1e-9)
    np.testing.assert_allclose(grad_ours.numpy(), grad_grb.numpy(), rtol=1e-6, atol=1e-9)


def test_spo_plus_on_a_maximisation_problem(problem: ShortestPath, batch) -> None:
    """SPO+ of (−ĉ, −c) on the max form equals SPO+ of (ĉ, c) on the min form; gradient negated."""
    pred, costs = batch
    sols = torch.as_tensor(problem.oracle(costs)[0])
    loss_min, grad_min = spo_plus(pyepo_oracle.ProblemOptModel(problem), pred, costs, sols)
    loss_max, grad_max = spo_plus(
        pyepo_oracle.ProblemOptModel(MaxShortestPath(k=K)), -pred, -costs, sols
    )
    assert float(loss_max) == pytest.approx(float(loss_min), rel=1e-12)
    np.testing.assert_allclose(grad_max.numpy(), -grad_min.numpy(), atol=1e-15)


@pytest.mark.parametrize(
    "name, params, calls_per_step",
    [
        ("spo+", {}, 1),
        ("pertopt", {"loss": "pfyl", "n_samples": 4}, 1),
        ("pertopt", {"loss": "dpo", "n_samples": 4}, 1),
        ("blackbox", {}, 2),  # the forward solve and the interpolated backward solve
    ],
)
def test_one_oracle_call_per_batch(
    monkeypatch: pytest.MonkeyPatch, name: str, params: dict, calls_per_step: int
) -> None:
    problem = ShortestPath(k=4, n_train=64, n_val=8, n_test=8)
    data = problem.generate().train
    method = method_registry.get(name)(problem, CPU, seed=0, **params)
    assert isinstance(method, pyepo_oracle.PyEPOMethod)
    method.prepare(data)
    rows: list[int] = []
    oracle = problem.oracle

    def counting_oracle(costs):
        rows.append(len(costs))
        return oracle(costs)

    monkeypatch.setattr(problem, "oracle", counting_oracle)
    tensors = (method.tensor(a) for a in (data.features, data.costs, data.solutions))
    method.batch_loss(*tensors).backward()
    samples = params.get("n_samples", 1)
    assert rows == [len(data) * samples] * calls_per_step


@pytest.mark.parametrize("name, loss", [("spo+", None), ("blackbox", "regret"),
                                        ("blackbox", "l1")])
def test_losses_follow_the_problem_sense(name: str, loss: str | None) -> None:
    """A max-form problem with negated costs and a negated linear model: same loss, −gradient."""
    params = {"hidden": 0, **({"loss": loss} if loss else {})}
    split = ShortestPath(k=4, n_train=32, n_val=8, n_test=8).generate().train
    results = []
    for problem, sign in ((ShortestPath(k=4), 1.0), (MaxShortestPath(k=4), -1.0)):
        method = method_registry.get(name)(problem, CPU, seed=0, **params)
        assert isinstance(method, pyepo_oracle.PyEPOMethod)
        method.prepare(split)
        with torch.no_grad():
            for parameter in method.model.parameters():
                parameter.mul_(sign)
        features, costs, sols = (method.tensor(a) for a in (split.features, split.costs,
                                                              split.solutions))
        loss_value = method.batch_loss(features, sign * costs, sols)
        loss_value.backward()
        weight = method.model.weight  # hidden = 0: the model is one linear layer
        assert isinstance(weight, torch.Tensor) and weight.grad is not None
        results.append((float(loss_value.detach()), weight.grad.clone()))
    (loss_min, grad_min), (loss_max, grad_max) = results
    assert loss_max == pytest.approx(loss_min, rel=1e-5)
    torch.testing.assert_close(grad_max, -grad_min)


METHODS = [
    ("spo+", {}),
    ("pertopt", {"loss": "pfyl"}),
    ("pertopt", {"loss": "dpo"}),
    ("blackbox", {"loss": "regret"}),
    ("blackbox", {"loss": "l1"}),
    ("cvx-net", {}),
]


@pytest.mark.parametrize("name, params", METHODS)
def test_methods_train_and_predict(name: str, params: dict) -> None:
    cls = method_registry.get(name)
    if cls.missing_requirements():
        pytest.skip(f"{name} needs {', '.join(cls.missing_requirements())}")
    problem = ShortestPath(k=3, n_train=60, n_val=20, n_test=20)
    data = problem.generate()
    method = cls(problem, CPU, seed=0, batch_size=16, **params)
    assert isinstance(method, Method)
    result = method.fit(data, Budget(max_epochs=2))
    assert result.epochs == 2
    assert result.best_epoch in (1, 2)
    pred = method.predict_costs(data.test.features)
    assert pred.shape == data.test.costs.shape
    assert np.isfinite(pred).all()
    assert np.isfinite(method.loss(data.test))
    if type(method).outputs_decisions:
        decisions = method.predict_decisions(data.test.features)
        assert decisions is not None
        lp = problem.lp()
        np.testing.assert_allclose(lp.A @ decisions.T, np.tile(lp.b[:, None], len(decisions)),
                                   atol=1e-4)


def test_independent_rows_drop_the_redundant_flow_row(problem: ShortestPath) -> None:
    A = problem.lp().A
    rows = cvx_net.independent_rows(A)
    assert len(rows) == K * K - 1
    assert np.linalg.matrix_rank(A[rows].toarray()) == len(rows)


@pytest.mark.parametrize("share", [1, 2])
def test_cvx_net_solves_on_the_cells_share_of_the_cpus(
        problem: ShortestPath, monkeypatch: pytest.MonkeyPatch, share: int) -> None:
    """diffcp spreads a batch's solves over one thread per CPU of the machine unless told; the
    layer tells it the cell's share (``--threads``), forward and backward."""
    if method_registry.get("cvx-net").missing_requirements():
        pytest.skip("cvx-net needs the cvx extra")
    import diffcp

    from l2obench.process_pool import limit_cpus

    asked: list[tuple[str, object, object]] = []

    def spy(name: str) -> Callable[..., object]:
        real = getattr(diffcp, name)

        def solve(*args: object, **kwargs: object) -> object:
            asked.append((name, kwargs.get("n_jobs_forward"), kwargs.get("n_jobs_backward")))
            return real(*args, **kwargs)
        return solve

    for name in ("solve_and_derivative_batch", "solve_only_batch"):
        monkeypatch.setattr(diffcp, name, spy(name))
    data = problem.generate()
    method = cvx_net.CvxNet(problem, CPU, seed=0)
    limit_cpus(share)
    try:
        method.batch_loss(torch.as_tensor(data.train.features[:4], dtype=torch.float32),
                          torch.as_tensor(data.train.costs[:4]),
                          torch.as_tensor(data.train.solutions[:4])).backward()
        method.predict_decisions(data.test.features[:4])
    finally:
        limit_cpus(None)
    n = min(share, available_cpus())
    assert asked == [("solve_and_derivative_batch", n, n), ("solve_only_batch", n, None)]
