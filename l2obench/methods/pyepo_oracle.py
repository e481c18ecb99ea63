"""What every PyEPO-based method shares: the oracle as a PyEPO model, the solution pool, the base.

The losses are PyEPO 2.2.7's own modules (``pyepo.func``); what l2obench supplies is the solver
behind them, the problem's batched exact oracle, through :class:`ProblemOptModel`. No Gurobi
licence is involved and any problem size works.

**How the solves are batched.** PyEPO 2.2.7 has exactly one batch-solve path: in
``pyepo.func.utils._solve_batch`` a model that is an ``optMpaxModel`` receives the whole batch
of cost vectors through ``_setFullObj(costs)`` and is solved by one ``batch_optimize(c)`` call;
every other ``optModel`` is solved one row at a time through ``setObj``/``solve``.
:class:`ProblemOptModel` therefore subclasses ``optMpaxModel`` to take that path, and overrides
every member that would touch JAX or MPAX: every solve a PyEPO module asks for (a batch, all
``batch × n_samples`` perturbed costs, one Frank–Wolfe iteration of a whole batch) is one call
of the problem's oracle. PyEPO's JAX front end and ``optDataset`` also dispatch on
``optMpaxModel`` but hand it JAX arrays; the adapter serves the PyTorch modules only.

**The solution pool.** PyEPO's modules cache solutions when ``solve_ratio < 1`` (and the
contrastive and ranking losses always do): the pool is seeded from a training ``optDataset``
and grows with every solve. :class:`PoolSeed` is the training split in that form, built from
the solutions l2obench already has, so nothing is solved twice. PyEPO deduplicates every solved
batch (``torch.unique`` over its rows, then an L1 distance to the pool) before it appends the new
rows; :func:`grow_pool` gives the same pool but first checks, with the distances alone, whether
any row is new, which, once the pool holds the optima a model predicts, none is: the sort is
skipped at almost every step.
"""

from __future__ import annotations

import types
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from pyepo import EPO
from pyepo.data.dataset import optDataset
from pyepo.func._common import require_solution_pool, solution_pool_tolerance
from pyepo.func.abcmodule import optModule
from pyepo.func.utils import _solve_batch
from pyepo.model.mpax import optMpaxModel
from pyepo.model.opt import optModel
from torch.nn import functional as F

from l2obench.errors import L2OBenchError
from l2obench.methods.torch_method import TORCH_PARAMS, TorchMethod
from l2obench.params import Param
from l2obench.problems.base import Dataset, Problem, Split
from l2obench.record import Budget, FitResult


class ProblemOptModel(optMpaxModel):
    """An l2obench :class:`Problem` as a PyEPO ``optModel`` whose batch solves are one oracle call.

    It follows MPAX's conventions, which PyEPO's batch path assumes: :meth:`setObj` stores the
    cost of the *minimisation* form (``−c`` for a maximisation problem) in ``self.c``, and
    :meth:`batch_optimize` minimises ``cᵀx`` for every row and returns minimisation-form
    objectives, which PyEPO negates back for a maximisation problem. Only the problem contract
    (``oracle``, ``n_vars``, ``sense``) is used. Not for ``pyepo.data.optDataset`` or the JAX
    front end (their MPAX paths need JAX); l2obench's ``Problem.generate`` provides the data.

    ``calls`` and ``rows`` count the oracle calls made through the adapter and the instances
    they solved (iteration statistics of the methods that iterate over the oracle).
    """

    # optMpaxModel implements these with JAX; optModel's generic versions are the right ones.
    __repr__ = optModel.__repr__
    copy = optModel.copy
    addConstr = optModel.addConstr

    def __init__(self, problem: Problem) -> None:
        # Not ``self.problem``: PyEPO reads ``model.problem`` as one of its compiled DSL problems.
        self.l2o_problem = problem
        self.modelSense = EPO.MINIMIZE if problem.sense == "min" else EPO.MAXIMIZE
        self._sign = problem.sign
        self.calls = 0
        self.rows = 0
        # optMpaxModel.__init__ needs JAX and compiles a PDHG solver; only optModel's is wanted.
        optModel.__init__(self)

    def _getModel(self) -> tuple[None, list[Any]]:
        """No solver model: the problem's oracle is the solver."""
        return None, []

    @property
    def num_cost(self) -> int:
        return self.l2o_problem.n_vars

    def setObj(self, c: np.ndarray | torch.Tensor | list[float]) -> None:
        """Set the cost of one instance ``[n]`` or of a batch ``[B, n]`` (kept on its device)."""
        self.c = self._sign * torch.as_tensor(c)

    def solve(self) -> tuple[np.ndarray, float]:
        """Solve the one instance set by :meth:`setObj`: its solution and (true) objective."""
        solutions, objectives, _ = self.batch_optimize(self.c.reshape(1, -1))
        return solutions[0].cpu().numpy(), self._sign * float(objectives[0])

    def batch_optimize(self, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, None]:
        """Minimise ``cᵀx`` for every row of ``c[B, n]`` with one call of the problem's oracle.

        Returns float64 solutions and minimisation-form objectives on ``c``'s device, and no
        solver status (the oracle is exact or raises).
        """
        self.calls += 1
        self.rows += int(c.shape[0])
        # The oracle solves in the problem's own sense, under the true costs ``±c``.
        solutions, objectives = self.l2o_problem.oracle(self._sign * c)
        return (
            torch.as_tensor(solutions, device=c.device),
            self._sign * torch.as_tensor(objectives, device=c.device),
            None,
        )


class PoolSeed(optDataset):
    """A training split as the ``optDataset`` PyEPO's modules seed their solution pool from.

    PyEPO reads only ``dataset.sols`` for the pool (``pyepo.func.runtime.init_solution_pool``)
    and builds an ``optDataset`` by solving every instance; this one takes the split's
    solutions, already exact, and solves nothing (``optDataset.__init__`` is not called).
    ``sols`` holds each distinct solution once (in first-seen order): PyEPO's pool is their
    ``torch.unique``, the same sorted rows as that of every instance's solution, whose sort
    over all the rows cost more than the rest of a short fit's set-up.
    """

    def __init__(self, optmodel: optModel, split: Split) -> None:
        self.model = optmodel
        self.feats = torch.as_tensor(split.features, dtype=torch.float32)
        self.costs = torch.as_tensor(split.costs, dtype=torch.float32)
        solutions = np.ascontiguousarray(split.solutions, dtype=np.float32)
        rows = solutions.view(np.dtype((np.void, solutions.dtype.itemsize * solutions.shape[1])))
        _, first = np.unique(rows.ravel(), return_index=True)
        self.sols = torch.as_tensor(solutions[np.sort(first)])
        self.objs = torch.as_tensor(split.objectives, dtype=torch.float32).reshape(-1, 1)


def grow_pool(solutions: torch.Tensor, pool: torch.Tensor) -> torch.Tensor:
    """``pyepo.func.utils._update_solution_pool(solutions, pool)``, the same tensor, cheaper.

    PyEPO appends the distinct rows of ``solutions`` (``torch.unique``'s sorted order) whose L1
    distance to every pool member exceeds its tolerance. A row's distances do not depend on the
    other rows, so the new rows are found first, from ``solutions`` as they are, and only they
    are deduplicated and sorted: the same rows in the same order, and when none is new (most
    steps once the pool holds the optima the model predicts) the pool itself, unsorted, uncopied.
    """
    if solutions.device != pool.device:
        solutions = solutions.to(pool.device)
    if pool.dtype != solutions.dtype:
        pool = pool.to(solutions.dtype)
    tol = solution_pool_tolerance(solutions.shape[-1])
    is_new = (torch.cdist(solutions, pool, p=1.0) > tol).all(dim=1)
    if not bool(is_new.any()):
        return pool
    return torch.cat((pool, torch.unique(solutions[is_new], dim=0)), dim=0)


def refresh_solution_pool(module: optModule, cost: torch.Tensor) -> torch.Tensor:
    """``optModule._refresh_solution_pool`` (PyEPO 2.2.7) with :func:`grow_pool` for its update:
    solve with probability ``solve_ratio`` and grow the pool, then return the pool on ``cost``'s
    device and dtype. The contrastive and ranking modules call it at every forward pass."""
    if module._branch_rng.uniform() <= module.solve_ratio:
        solutions, _ = _solve_batch(cost, module.optmodel, module.processes, module.pool)
        if module.solpool is not None:
            pool = grow_pool(solutions, module.solpool)
            module.solpool = pool.to(cost.device) if pool.device != cost.device else pool
    pool = require_solution_pool(module.solpool)
    if pool.device != cost.device or pool.dtype != cost.dtype:
        pool = pool.to(device=cost.device, dtype=cost.dtype)
        module.solpool = pool
    return pool


#: PyEPO's solution caching, a parameter of every method whose module solves during training.
SOLVE_RATIO = Param(
    float, 1.0, "share of steps that call the oracle; the others take the best solution of the "
    "pool (seeded with the training solutions, grown with every solve)", low=0.0, high=1.0,
    omit_default=True,
)


class PyEPOMethod(TorchMethod):
    """A PyTorch method trained through a PyEPO loss module solved by the problem's oracle.

    The module is built by :meth:`prepare` at the start of :meth:`fit` (it may need the training
    split: the solution pool), from :meth:`make_module`. PyEPO draws its solve-or-cache choice
    from a ``RandomState`` it seeds with ``None`` in most modules; l2obench seeds it with the
    cell's seed so that a cell reproduces.
    """

    family = "pyepo"
    params: ClassVar[dict[str, Param]] = {**TORCH_PARAMS, "solve_ratio": SOLVE_RATIO}
    #: Whether the module needs the solution pool whatever ``solve_ratio`` is (NCE, CMAP, LTR).
    needs_pool: ClassVar[bool] = False

    def __init__(self, problem: Problem, device: torch.device, seed: int, **params: Any) -> None:
        super().__init__(problem, device, seed, **params)
        self.optmodel = ProblemOptModel(problem)
        self._module: optModule | None = None

    @abstractmethod
    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        """The PyEPO module this method trains with, on ``optmodel``, its pool seeded by
        ``pool`` (``None`` when it needs no pool)."""

    def prepare(self, train: Split) -> None:
        """Build the PyEPO module for training on ``train`` (a fresh pool, a seeded RNG)."""
        pool = (PoolSeed(self.optmodel, train)
                if self.needs_pool or self.config["solve_ratio"] < 1 else None)
        module = self.make_module(self.optmodel, pool)
        module._branch_rng = np.random.RandomState(self.seed)
        # The same pool as PyEPO's own refresh, without its per-step sort (see grow_pool).
        module._refresh_solution_pool = types.MethodType(refresh_solution_pool, module)
        self._module = module

    @property
    def pyepo_module(self) -> optModule:
        """The module built by :meth:`prepare` (which :meth:`fit` calls)."""
        if self._module is None:
            raise L2OBenchError(f"method '{self.registered_name()}': call fit() (or prepare()) "
                                "before using its loss")
        return self._module

    def fit(self, data: Dataset, budget: Budget) -> FitResult:
        self.prepare(data.train)
        return super().fit(data, budget)


#: Task losses on a decision: the L1 distance of its true objective to the optimal one, its
#: true-cost regret, or its L1 or squared distance to ``x*`` (each with its objective's name).
DECISION_LOSSES = {"objective": "L1 to z*", "regret": "regret", "l1": "L1 to x*",
                   "mse": "MSE to x*"}


def decision_loss_param(default: str) -> Param:
    """The ``loss`` parameter of a method whose PyEPO module returns a decision."""
    return Param(str, default, "task loss on the module's decision: |cᵀx̂ − cᵀx*| (PyEPO's "
                 "objective-value L1), the signed regret, or its L1 or squared distance to x*",
                 choices=tuple(DECISION_LOSSES))


def decision_loss(
    kind: str, decisions: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor, sign: float
) -> torch.Tensor:
    """The batch mean of task loss ``kind`` on ``decisions`` (see :data:`DECISION_LOSSES`).

    ``"objective"`` is PyEPO's recipe for its black-box modules, ``|cᵀx̂ − cᵀx*|``.
    ``"regret"`` is ``sign · cᵀ(x̂ − x*)``, signed by the problem's sense: the same number for
    any decision in the convex hull of the feasible set (where regret is never negative), but
    not the same gradient where the regret is zero: there the objective L1 has none, the regret
    still the true cost.
    """
    if kind == "objective":
        return F.l1_loss((decisions * costs).sum(dim=-1), (solutions * costs).sum(dim=-1))
    if kind == "regret":
        return (sign * ((decisions - solutions) * costs).sum(dim=-1)).mean()
    if kind == "l1":
        return F.l1_loss(decisions, solutions)
    if kind == "mse":
        return F.mse_loss(decisions, solutions)
    raise ValueError(f"unknown decision loss {kind!r}; valid: {', '.join(DECISION_LOSSES)}")


class DecisionMethod(PyEPOMethod):
    """A PyEPO module that returns a decision (PyEPO's "pattern B"), trained by the task loss
    its ``loss`` parameter names."""

    def objective_name(self) -> str:
        return DECISION_LOSSES[self.config["loss"]]

    def decide(self, pred_costs: torch.Tensor) -> torch.Tensor:
        """The module's decision for ``pred_costs`` (a tensor with a gradient)."""
        return self.pyepo_module(pred_costs)

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        decisions = self.decide(self.model(features))
        return decision_loss(
            self.config["loss"], decisions, costs.to(decisions.dtype),
            solutions.to(decisions.dtype), self.problem.sign,
        )
