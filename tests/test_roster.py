"""The PyEPO roster against PyEPO itself: each method's loss and gradient equal those of PyEPO's
own module solved by PyEPO's own Gurobi model, on 5×5 shortest path and a 10-item knapsack.

The l2obench side is the registered method (its cost model, its batch loss, its oracle through
``ProblemOptModel``, its pool and seeds); the PyEPO side is the module of ``pyepo.func`` on
``pyepo.model.grb.shortestPathModel`` / ``knapsackModel`` (gurobipy's bundled licence covers
both), trained by the task loss of PyEPO's own training recipes, with a copy of the same cost
model and the same seeds. Two consecutive steps are compared, so that state carried between
steps (solution pools, noise streams, AI-MLE's adaptive step) is compared too. Everything runs
in float64; the tolerance is 1e-7 relative (CaVE: PyEPO rounds its binding normals and
projections to float32, so 2e-5).
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from l2obench.methods.base import Budget, Method, method_registry
from l2obench.methods.pyepo_oracle import PyEPOMethod
from l2obench.methods.torch_method import TorchMethod
from l2obench.problems.base import Problem, Split
from l2obench.problems.binding import BindingConstraints
from l2obench.problems.knapsack import Knapsack
from l2obench.problems.shortest_path import ShortestPath

gurobipy = pytest.importorskip("gurobipy")
pyepo_func = pytest.importorskip("pyepo.func")

CPU = torch.device("cpu")
SEED = 3
BATCH = 8
STEPS = 2


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """PyEPO's progress bars and Gurobi's licence banner stay out of the test output."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


def shortest_path() -> tuple[Problem, Any]:
    from pyepo.model.grb import shortestPathModel

    with quiet():
        return ShortestPath(k=5, n_train=64, n_val=8, n_test=8, seed=1), shortestPathModel((5, 5))


def knapsack() -> tuple[Problem, Any]:
    from pyepo.model.grb import knapsackModel

    problem = Knapsack(n_items=10, dim=2, n_train=64, n_val=8, n_test=8, seed=1)
    with quiet():
        model = knapsackModel(weights=problem.weights, capacity=np.full(2, 20.0))
    model._model.setParam("MIPGap", 0.0)  # PyEPO's default gap (1e-4) is not an exact oracle
    return problem, model


PROBLEMS = {"shortest-path": shortest_path, "knapsack": knapsack}


@pytest.fixture(scope="module", params=list(PROBLEMS))
def setting(request: pytest.FixtureRequest) -> tuple[Problem, Any, Split]:
    """A problem, PyEPO's Gurobi model of it and a training split without ties.

    Knapsack values are integers, so optima tie (14 of these 64 instances have two); HiGHS and
    Gurobi then pick different ones, and the solution pools would differ. A jitter below the
    values' unit makes every optimum unique.
    """
    problem, grb_model = PROBLEMS[request.param]()
    split = problem.generate().train
    if request.param == "knapsack":
        jitter = np.random.default_rng(0).uniform(0.0, 1e-2, split.costs.shape)
        split = problem.make_split(split.features, split.costs + jitter)
    return problem, grb_model, split


# -- PyEPO's recipe losses (the task loss of each "pattern B" module) --------------------------


def objective_l1(module: nn.Module, pred: torch.Tensor, c: torch.Tensor, w: torch.Tensor
                 ) -> torch.Tensor:
    """DBB and NID: ``nn.L1Loss()`` between the decision's objective and the optimal one."""
    zp = (module(pred) * c).sum(1).view(-1, 1)
    return nn.L1Loss()(zp, (w * c).sum(1).view(-1, 1))


def solution_l1(module: nn.Module, pred: torch.Tensor, c: torch.Tensor, w: torch.Tensor
                ) -> torch.Tensor:
    """I-MLE and AI-MLE: ``nn.L1Loss()`` between the decision and the optimal one."""
    return nn.L1Loss()(module(pred), w)


def solution_mse(module: nn.Module, pred: torch.Tensor, c: torch.Tensor, w: torch.Tensor
                 ) -> torch.Tensor:
    """DPO and RFWO: ``nn.MSELoss()`` between the decision and the optimal one."""
    return nn.MSELoss()(module(pred), w)


def against_solutions(module: nn.Module, pred: torch.Tensor, c: torch.Tensor, w: torch.Tensor
                      ) -> torch.Tensor:
    return module(pred, w)


def against_costs(module: nn.Module, pred: torch.Tensor, c: torch.Tensor, w: torch.Tensor
                  ) -> torch.Tensor:
    return module(pred, c)


@dataclass
class Case:
    """One method configuration and its PyEPO reference."""

    method: str
    params: dict[str, Any]
    module: Callable[..., nn.Module]  # (gurobi model, pool dataset or None, seed) -> module
    loss: Callable[..., torch.Tensor]
    pool: bool = False
    problems: tuple[str, ...] = tuple(PROBLEMS)
    ids: str = field(default="")
    rtol: dict[str, float] = field(default_factory=dict)  # per problem, if not 1e-7

    def __str__(self) -> str:
        return self.ids or self.method


def f(name: str) -> Any:
    return getattr(pyepo_func, name)


#: Near convergence Frank–Wolfe's linear problems are nearly tied (their costs flatten on the
#: optimal face); two exact MIP solvers may return different vertices within their 1e-9
#: optimality tolerances, and after 40 iterations the gradients differ by ~1e-6 relative.
FRANK_WOLFE_MIP_RTOL = {"knapsack": 1e-5}

CASES = [
    Case("nid", {}, lambda m, d, s: f("negativeIdentity")(m), objective_l1),
    Case("nid", {"solve_ratio": 0.5}, lambda m, d, s: f("negativeIdentity")(
        m, solve_ratio=0.5, dataset=d), objective_l1, pool=True, ids="nid-cached"),
    Case("pertopt", {"perturbation": "multiplicative", "n_samples": 4},
         lambda m, d, s: f("perturbedFenchelYoungMul")(m, n_samples=4, sigma=1.0, seed=s),
         against_solutions, ids="pfyl-mul"),
    Case("pertopt", {"perturbation": "multiplicative", "loss": "dpo", "n_samples": 4},
         lambda m, d, s: f("perturbedOptMul")(m, n_samples=4, sigma=1.0, seed=s),
         solution_mse, ids="dpo-mul"),
    Case("pertopt", {"loss": "dpo", "n_samples": 4, "variance_reduction": False},
         lambda m, d, s: f("perturbedOpt")(m, n_samples=4, seed=s, variance_reduction=False),
         solution_mse, ids="dpo-no-variance-reduction"),
    Case("imle", {"n_samples": 4},
         lambda m, d, s: f("implicitMLE")(m, n_samples=4, sigma=1.0, lambd=10, distribution=(
             pyepo_sum_of_gamma(5.0, 10, s))), solution_l1),
    Case("imle", {"n_samples": 3, "two_sides": True, "sigma": 0.5, "lambd": 5.0, "kappa": 2.0,
                  "n_iterations": 4},
         lambda m, d, s: f("implicitMLE")(m, n_samples=3, sigma=0.5, lambd=5.0, two_sides=True,
                                          distribution=pyepo_sum_of_gamma(2.0, 4, s)),
         solution_l1, ids="imle-two-sided"),
    Case("aimle", {"n_samples": 4},
         lambda m, d, s: f("adaptiveImplicitMLE")(m, n_samples=4, sigma=1.0, distribution=(
             pyepo_sum_of_gamma(5.0, 10, s))), solution_l1),
    Case("aimle", {"n_samples": 2, "two_sides": True},
         lambda m, d, s: f("adaptiveImplicitMLE")(m, n_samples=2, two_sides=True, distribution=(
             pyepo_sum_of_gamma(5.0, 10, s))), solution_l1, ids="aimle-two-sided"),
    Case("pg", {}, lambda m, d, s: f("perturbationGradient")(m), against_costs),
    Case("pg", {"two_sides": True, "sigma": 0.5},
         lambda m, d, s: f("perturbationGradient")(m, sigma=0.5, two_sides=True), against_costs,
         ids="pg-two-sided"),
    Case("rfwo", {"max_iter": 40}, lambda m, d, s: f("regularizedFrankWolfeOpt")(m, max_iter=40),
         solution_mse, rtol=FRANK_WOLFE_MIP_RTOL),
    Case("rfwo", {"lambd": 0.5}, lambda m, d, s: f("regularizedFrankWolfeOpt")(m, lambd=0.5),
         solution_mse, problems=("shortest-path",), ids="rfwo-converged"),
    Case("rfy", {"max_iter": 40},
         lambda m, d, s: f("regularizedFrankWolfeFenchelYoung")(m, max_iter=40),
         against_solutions, rtol=FRANK_WOLFE_MIP_RTOL),
    Case("rfy", {}, lambda m, d, s: f("regularizedFrankWolfeFenchelYoung")(m),
         against_solutions, problems=("shortest-path",), ids="rfy-converged"),
    Case("rfy", {"max_iter": 30, "solve_ratio": 0.5},
         lambda m, d, s: f("regularizedFrankWolfeFenchelYoung")(m, max_iter=30, solve_ratio=0.5,
                                                                dataset=d),
         against_solutions, pool=True, problems=("shortest-path",), ids="rfy-cached"),
    Case("nce", {}, lambda m, d, s: f("noiseContrastiveEstimation")(m, dataset=d),
         against_solutions, pool=True),
    Case("nce", {"solve_ratio": 0.5},
         lambda m, d, s: f("noiseContrastiveEstimation")(m, solve_ratio=0.5, dataset=d),
         against_solutions, pool=True, ids="nce-cached"),
    Case("cmap", {"solve_ratio": 0.5},
         lambda m, d, s: f("contrastiveMAP")(m, solve_ratio=0.5, dataset=d), against_solutions,
         pool=True),
    Case("ltr", {"kind": "pointwise"},
         lambda m, d, s: f("pointwiseLearningToRank")(m, dataset=d), against_costs, pool=True,
         ids="ltr-pointwise"),
    Case("ltr", {"kind": "pairwise", "solve_ratio": 0.5},
         lambda m, d, s: f("pairwiseLearningToRank")(m, solve_ratio=0.5, dataset=d),
         against_costs, pool=True, ids="ltr-pairwise"),
    Case("ltr", {"kind": "listwise"},
         lambda m, d, s: f("listwiseLearningToRank")(m, dataset=d), against_costs, pool=True,
         ids="ltr-listwise"),
    Case("spo+", {"solve_ratio": 0.5},
         lambda m, d, s: f("SPOPlus")(m, solve_ratio=0.5, dataset=d),
         lambda mod, p, c, w: mod(p, c, w, (c * w).sum(1)), pool=True, ids="spo+-cached"),
    Case("blackbox", {"loss": "objective", "solve_ratio": 0.5},
         lambda m, d, s: f("blackboxOpt")(m, lambd=10, solve_ratio=0.5, dataset=d),
         objective_l1, pool=True, ids="dbb-objective-cached"),
]


def pyepo_sum_of_gamma(kappa: float, n_iterations: int, seed: int) -> Any:
    from pyepo.func.utils import sumGammaDistribution

    return sumGammaDistribution(kappa=kappa, n_iterations=n_iterations, seed=seed)


def batches(split: Split) -> list[tuple[torch.Tensor, ...]]:
    """``STEPS`` consecutive float64 batches of the training split."""
    out = []
    for step in range(STEPS):
        rows = slice(step * BATCH, (step + 1) * BATCH)
        out.append(tuple(torch.as_tensor(a[rows], dtype=torch.float64)
                         for a in (split.features, split.costs, split.solutions)))
    return out


def l2obench_steps(method: Any, split: Split) -> list[tuple[float, list[torch.Tensor]]]:
    """The method's batch loss and its cost model's gradients at each step."""
    results = []
    for features, costs, solutions in batches(split):
        method.model.zero_grad()
        loss = method.batch_loss(features, costs, solutions)
        loss.backward()
        results.append((float(loss.detach()),
                        [p.grad.clone() for p in method.model.parameters()]))
    return results


def reference_steps(model: nn.Module, module: nn.Module, loss: Callable[..., torch.Tensor],
                    split: Split) -> list[tuple[float, list[torch.Tensor]]]:
    """PyEPO's module and recipe loss on the same batches, from a copy of the cost model."""
    results = []
    for features, costs, solutions in batches(split):
        model.zero_grad()
        value = loss(module, model(features), costs, solutions)
        value.backward()
        results.append((float(value.detach()), [grad(p).clone() for p in model.parameters()]))
    return results


def grad(parameter: torch.Tensor) -> torch.Tensor:
    """``parameter``'s gradient, which the backward pass must have filled."""
    assert parameter.grad is not None
    return parameter.grad


def built_method(problem: Problem, name: str, params: dict[str, Any], split: Split) -> Any:
    """The registered method in float64 (hidden = 0: PyEPO's linear model), prepared on
    ``split``."""
    method = method_registry.get(name)(problem, CPU, SEED, hidden=0, **params)
    assert isinstance(method, TorchMethod)
    method.model.double()
    if isinstance(method, PyEPOMethod):
        method.prepare(split)
    return method


def assert_steps_equal(ours: list, ref: list, rtol: float) -> None:
    for step, ((loss_a, grads_a), (loss_b, grads_b)) in enumerate(zip(ours, ref, strict=True)):
        assert loss_a == pytest.approx(loss_b, rel=rtol, abs=rtol), f"loss at step {step}"
        for grad_a, grad_b in zip(grads_a, grads_b, strict=True):
            torch.testing.assert_close(grad_a, grad_b, rtol=rtol, atol=rtol,
                                       msg=f"gradient at step {step}")


#: The cases that run Frank–Wolfe to convergence take seconds each: the slow lane's.
SLOW = {"rfwo-converged", "rfy-converged"}


@pytest.mark.parametrize("case", [pytest.param(c, marks=pytest.mark.slow) if str(c) in SLOW else c
                                  for c in CASES], ids=str)
def test_loss_and_gradient_equal_pyepo_on_gurobi(setting: tuple, case: Case, request) -> None:
    problem, grb_model, split = setting
    problem_name = request.node.callspec.params["setting"]
    if problem_name not in case.problems:
        pytest.skip(f"{case} is compared on shortest path only (its knapsack MIPs are slow)")
    method = built_method(problem, case.method, case.params, split)
    model = copy.deepcopy(method.model)
    with quiet():
        pool = None
        if case.pool:
            from pyepo.data.dataset import optDataset

            pool = optDataset(grb_model, split.features, split.costs)
        module: Any = case.module(grb_model, pool, SEED)  # PyEPO's (untyped) module
    # PyEPO seeds its solve-or-cache draws with None; l2obench with the cell's seed.
    module._branch_rng = np.random.RandomState(SEED)
    ours = l2obench_steps(method, split)
    with quiet():
        ref = reference_steps(model, module, case.loss, split)
    assert_steps_equal(ours, ref, rtol=case.rtol.get(problem_name, 1e-7))


# -- CaVE: the binding constraints and the loss against optDatasetConstrs ---------------------


def pyepo_binding(grb_model: Any, split: Split) -> Any:
    from pyepo.data.dataset import optDatasetConstrs

    with quiet():
        return optDatasetConstrs(grb_model, split.features, split.costs)


def test_binding_constraints_equal_pyepo_on_gurobi(setting: tuple) -> None:
    """The normals derived from the LP form: PyEPO's rows, orientation and order."""
    problem, grb_model, split = setting
    dataset = pyepo_binding(grb_model, split)
    binding = BindingConstraints(problem.lp(), problem.n_vars)
    tight_rows = 0
    for solution, theirs in zip(split.solutions, dataset.ctrs, strict=True):
        ours = binding.normals(solution).toarray()
        theirs = theirs.numpy()
        theirs = theirs[np.abs(theirs).sum(axis=1) > 1e-7]
        np.testing.assert_allclose(ours, theirs, rtol=1e-6)
        tight_rows += len(ours)
    assert tight_rows > len(split) * problem.n_vars // 2  # bounds bind at every 0/1 entry


@pytest.mark.parametrize("params", [{}, {"max_iter": 20}, {"solve_ratio": 0.5,
                                                            "inner_ratio": 0.3}],
                         ids=["cave+", "converged", "hybrid"])
def test_cave_equals_pyepo_on_gurobi(setting: tuple, params: dict[str, Any]) -> None:
    from pyepo.data.dataset import collate_tight_constraints
    from pyepo.func import coneAlignedCosine

    problem, grb_model, split = setting
    method = built_method(problem, "cave", params, split)
    model = copy.deepcopy(method.model)
    dataset = pyepo_binding(grb_model, split)
    module = coneAlignedCosine(grb_model, max_iter=params.get("max_iter", 3),
                               solve_ratio=params.get("solve_ratio", 1.0),
                               inner_ratio=params.get("inner_ratio", 0.2))
    module._branch_rng = np.random.RandomState(SEED)
    ours = l2obench_steps(method, split)
    ref = []
    for step in range(STEPS):
        items = [dataset[i] for i in range(step * BATCH, (step + 1) * BATCH)]
        features, _, _, _, tight = collate_tight_constraints(items)
        model.zero_grad()
        value = module(model(features.double()), tight.double())
        value.backward()
        ref.append((float(value.detach()), [p.grad.clone() for p in model.parameters()]))
    assert_steps_equal(ours, ref, rtol=2e-5)


def test_cached_cone_solvers_give_fresh_results() -> None:
    """Clarabel's q update on a kept solver: the same iterates as a new solver."""
    from l2obench.methods.cone_projection import Cone, ConeProjection

    problem = ShortestPath(k=4, n_train=16, n_val=4, n_test=4)
    split = problem.generate().train
    binding = BindingConstraints(problem.lp(), problem.n_vars)
    cone = Cone(binding.normals(split.solutions[0]), b"0")
    rng = np.random.default_rng(0)
    kept, fresh = ConeProjection(3), ConeProjection(3, cache_nnz=0)
    for _ in range(4):
        v = rng.normal(size=problem.n_vars)
        np.testing.assert_array_equal(kept.project(v, cone), fresh.project(v, cone))
    assert len(kept._solvers) == 1 and not fresh._solvers


# -- training, oracle calls, applicability ------------------------------------------------------

NEW_METHODS = [
    ("nid", {}), ("imle", {}), ("aimle", {}), ("pg", {}), ("rfwo", {"max_iter": 20}),
    ("rfy", {"max_iter": 20}), ("nce", {}), ("cmap", {}), ("ltr", {"kind": "pointwise"}),
    ("ltr", {"kind": "pairwise"}), ("ltr", {"kind": "listwise"}), ("cave", {}),
    ("pertopt", {"perturbation": "multiplicative"}),
]


@pytest.mark.parametrize("problem_name", ["shortest-path",
                                          pytest.param("knapsack", marks=pytest.mark.slow)])
@pytest.mark.parametrize("name, params", NEW_METHODS)
def test_trains_two_epochs_through_fit(problem_name: str, name: str, params: dict) -> None:
    problem = (ShortestPath(k=5, n_train=48, n_val=16, n_test=16) if problem_name == "shortest-path"
               else Knapsack(n_items=10, n_train=48, n_val=16, n_test=16))
    data = problem.generate()
    method = method_registry.get(name)(problem, CPU, seed=0, batch_size=16, **params)
    assert isinstance(method, Method)
    result = method.fit(data, Budget(max_epochs=2))
    assert result.epochs == 2 and result.best_epoch in (1, 2)
    assert len(result.history) == 2
    assert all(np.isfinite(h["train_loss"]) for h in result.history)
    pred = method.predict_costs(data.test.features)
    assert pred.shape == data.test.costs.shape and np.isfinite(pred).all()
    assert np.isfinite(method.loss(data.test))
    if name in ("rfwo", "rfy"):
        assert result.fwd_iters_mean is not None and result.fwd_iters_max is not None
        assert 1 <= result.fwd_iters_max <= 20


def batch_of(problem: Problem, n: int) -> tuple[Split, tuple[torch.Tensor, ...]]:
    split = problem.generate().train
    tensors = tuple(torch.as_tensor(a[:n]) for a in (split.features, split.costs,
                                                    split.solutions))
    return split, tensors


@pytest.mark.parametrize(
    "name, params, rows",
    [
        ("nid", {}, [16]),
        # I-MLE: the perturbed forward solve, then the shifted backward solve (both shifts in
        # one call when two-sided), each over all batch × n_samples perturbed costs
        ("imle", {"n_samples": 3}, [48, 48]),
        ("imle", {"n_samples": 3, "two_sides": True}, [48, 96]),
        ("aimle", {"n_samples": 3}, [48, 48]),
        ("pg", {}, [32]),  # ĉ and ĉ − σc solved together
        ("pg", {"two_sides": True}, [32]),
        ("pertopt", {"perturbation": "multiplicative", "n_samples": 3}, [48]),
        ("nce", {}, [16]), ("cmap", {}, [16]), ("ltr", {}, [16]),
        ("nce", {"solve_ratio": 0.0}, []),  # pool look-ups only
        ("ltr", {"solve_ratio": 0.0}, []),
        ("spo+", {"solve_ratio": 0.0}, []),
        ("cave", {}, []),  # projections onto the binding cones: no oracle
    ],
)
def test_oracle_calls_per_step(monkeypatch: pytest.MonkeyPatch, name: str, params: dict,
                               rows: list[int]) -> None:
    """One batched call where the mathematics allows, each for the whole batch."""
    problem = ShortestPath(k=4, n_train=32, n_val=8, n_test=8)
    split, (features, costs, solutions) = batch_of(problem, 16)
    method = method_registry.get(name)(problem, CPU, seed=0, **params)
    assert isinstance(method, TorchMethod)
    if isinstance(method, PyEPOMethod):
        method.prepare(split)
    solved: list[int] = []
    oracle = problem.oracle

    def counting_oracle(costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        solved.append(len(costs))
        return oracle(costs)

    monkeypatch.setattr(problem, "oracle", counting_oracle)
    method.batch_loss(features, costs, solutions).backward()
    assert solved == rows


@pytest.mark.parametrize("name", ["rfwo", "rfy"])
def test_frank_wolfe_calls_the_oracle_once_per_iteration(monkeypatch: pytest.MonkeyPatch,
                                                         name: str) -> None:
    """1 + iterations calls, each for the whole batch, reported as the step's iterations."""
    problem = ShortestPath(k=4, n_train=32, n_val=8, n_test=8)
    split, (features, costs, solutions) = batch_of(problem, 16)
    method = method_registry.get(name)(problem, CPU, seed=0, max_iter=30)
    assert isinstance(method, PyEPOMethod)
    method.prepare(split)
    rows: list[int] = []
    oracle = problem.oracle

    def counting_oracle(costs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rows.append(len(costs))
        return oracle(costs)

    monkeypatch.setattr(problem, "oracle", counting_oracle)
    method.model.train()
    method.batch_loss(features, costs, solutions).backward()
    stats = method.iteration_stats()
    assert rows == [16] * len(rows) and len(rows) == stats["fwd_iters_max"] + 1
    assert 1 <= stats["fwd_iters_max"] <= 30


def test_cave_is_refused_where_the_problem_lacks_what_it_needs() -> None:
    from l2obench.errors import ParameterError
    from l2obench.methods.cave import CaVEMethod

    class NoLP(ShortestPath):
        offers = frozenset()

    with pytest.raises(ParameterError, match=r"cannot run on problem .*binary"):
        CaVEMethod.check_applicable(NoLP)
    CaVEMethod.check_applicable(ShortestPath)
    CaVEMethod.check_applicable(Knapsack)


def test_new_parameters_leave_published_cell_ids_unchanged() -> None:
    """``spo+``, ``pertopt`` and ``blackbox`` gained parameters (``solve_ratio``,
    ``perturbation``, ``variance_reduction``) declared ``omit_default``: the published baseline's
    protocol still expands to the cells its records were made from."""
    import dataclasses

    from l2obench.record import Budget as RecordBudget
    from l2obench.store import load_records
    from l2obench.suite import expand, load_suite
    from tests.conftest import REPO

    suite = dataclasses.replace(load_suite("shortest-path"),
                                budget=RecordBudget(max_epochs=100, max_seconds=60.0))
    names = ["spo+", "pertopt", "blackbox"]
    cells = expand(suite, device="cpu", sizes=[5, 10, 20, 30], seeds=[0, 1, 2],
                   method_names=names)
    published = [r for r in load_records(REPO / "results" / "shortest-path") if r.method in names]
    assert len(published) == 36
    assert {r.cell_id for r in published} <= {c.cell_id for c in cells}
    given = {"perturbation": "multiplicative"}
    assert method_registry.get("pertopt").cell_params(given)["perturbation"] == "multiplicative"
    assert "solve_ratio" not in method_registry.get("spo+").cell_params({})


@pytest.mark.parametrize("max_iter", [5, 60, pytest.param(10_000, marks=pytest.mark.slow)])
def test_frank_wolfe_solve_equals_pyepos(max_iter: int) -> None:
    """The compact NumPy loop returns PyEPO's iterate and active set (in PyEPO's first slots)."""
    from pyepo.func import regularizedFrankWolfeOpt
    from pyepo.func.regularized import _away_step_frank_wolfe

    from l2obench.methods.frank_wolfe import FastRFWO
    from l2obench.methods.pyepo_oracle import ProblemOptModel

    problem = ShortestPath(k=5, n_train=16, n_val=4, n_test=4)
    theta = -torch.as_tensor(problem.generate().train.costs[:12], dtype=torch.float64)
    theta += torch.as_tensor(np.random.default_rng(0).normal(0, 0.3, theta.shape))
    ours = FastRFWO(ProblemOptModel(problem), max_iter=max_iter)
    mu, vertices, weights = ours._frank_wolfe(theta)
    reference = regularizedFrankWolfeOpt(ProblemOptModel(problem), max_iter=max_iter)
    mu_ref, vertices_ref, weights_ref = _away_step_frank_wolfe(reference, theta)
    width = vertices.shape[1]
    assert width < vertices_ref.shape[1] and not weights_ref[:, width:].any()
    torch.testing.assert_close(mu, mu_ref, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(weights, weights_ref[:, :width], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(vertices, vertices_ref[:, :width])
    assert ours.iteration_log[-1] <= max_iter
