"""PyEPO's losses on l2obench's exact oracle: ``spo+``, ``pertopt`` and ``blackbox``.

The losses are PyEPO's own modules (``pyepo.func.SPOPlus``, ``perturbedFenchelYoung``,
``perturbedOpt``, ``blackboxOpt``); what l2obench supplies is the solver behind them, the
problem's batched exact oracle, through :class:`ProblemOptModel`. No Gurobi licence is involved
and any problem size works.

**How the solves are batched.** PyEPO 2.2.7 has exactly one batch-solve path: in
``pyepo.func.utils._solve_batch`` a model that is an ``optMpaxModel`` receives the whole batch
of cost vectors through ``_setFullObj(costs)`` and is solved by one ``batch_optimize(c)`` call;
every other ``optModel`` is solved one row at a time through ``setObj``/``solve``.
:class:`ProblemOptModel` therefore subclasses ``optMpaxModel`` to take that path, and overrides
every member that would touch JAX or MPAX: a training step costs one oracle call for the whole
batch (SPO+, or all ``batch × n_samples`` perturbed costs for the perturbed losses), two for the
black-box loss (forward and backward). PyEPO's JAX front end and ``optDataset`` also dispatch on
``optMpaxModel`` but hand it JAX arrays; the adapter serves the PyTorch modules only.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from pyepo import EPO
from pyepo.func import SPOPlus, blackboxOpt, perturbedFenchelYoung, perturbedOpt
from pyepo.func.abcmodule import optModule
from pyepo.model.mpax import optMpaxModel
from pyepo.model.opt import optModel
from torch.nn import functional as F

from l2obench.methods.torch_method import TORCH_PARAMS, TorchMethod
from l2obench.params import Param
from l2obench.problems.base import Problem


class ProblemOptModel(optMpaxModel):
    """An l2obench :class:`Problem` as a PyEPO ``optModel`` whose batch solves are one oracle call.

    It follows MPAX's conventions, which PyEPO's batch path assumes: :meth:`setObj` stores the
    cost of the *minimisation* form (``−c`` for a maximisation problem) in ``self.c``, and
    :meth:`batch_optimize` minimises ``cᵀx`` for every row and returns minimisation-form
    objectives, which PyEPO negates back for a maximisation problem. Only the problem contract
    (``oracle``, ``n_vars``, ``sense``) is used. Not for ``pyepo.data.optDataset`` or the JAX
    front end (their MPAX paths need JAX); l2obench's ``Problem.generate`` provides the data.
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
        # The oracle solves in the problem's own sense, under the true costs ``±c``.
        solutions, objectives = self.l2o_problem.oracle(self._sign * c)
        return (
            torch.as_tensor(solutions, device=c.device),
            self._sign * torch.as_tensor(objectives, device=c.device),
            None,
        )


class PyEPOMethod(TorchMethod):
    """A PyTorch method trained through a PyEPO loss module solved by the problem's oracle."""

    family = "pyepo"

    def __init__(self, problem: Problem, device: torch.device, seed: int, **params: Any) -> None:
        super().__init__(problem, device, seed, **params)
        self.pyepo_module = self.make_module(ProblemOptModel(problem))

    @abstractmethod
    def make_module(self, optmodel: ProblemOptModel) -> optModule:
        """The PyEPO module this method trains with, built on ``optmodel``."""


class SPOPlusMethod(PyEPOMethod):
    """SPO+ (Elmachtoub & Grigas 2022): convex surrogate of regret, one exact solve per sample."""

    description = "SPO+ loss (pyepo.func.SPOPlus) on the problem's exact batched oracle"
    objective = "SPO+"

    def make_module(self, optmodel: ProblemOptModel) -> optModule:
        return SPOPlus(optmodel)

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        objectives = (costs * solutions).sum(dim=-1)  # z*(c): the solutions are optimal under c
        return self.pyepo_module(self.model(features), costs, solutions, objectives)


class PerturbedMethod(PyEPOMethod):
    """Perturbed optimisers (Berthet et al. 2020) with Gaussian noise on the predicted costs.

    ``loss="pfyl"``: the perturbed Fenchel–Young loss against ``x*``. ``loss="dpo"``: the
    expected perturbed decision (``pyepo.func.perturbedOpt``) trained by MSE to ``x*``, as the
    fpo-dys PertOpt baseline trains it. Either way one step solves all ``batch × n_samples``
    perturbed instances in one oracle call.
    """

    description = "perturbed optimiser: Fenchel–Young loss or MSE of the expected decision"
    params: ClassVar[dict[str, Param]] = {
        **TORCH_PARAMS,
        "loss": Param(str, "pfyl", "perturbed Fenchel–Young loss, or MSE of the DPO decision",
                      choices=("pfyl", "dpo")),
        "n_samples": Param(int, 10, "Monte Carlo perturbations per instance", low=1),
        "sigma": Param(float, 1.0, "standard deviation of the Gaussian perturbation",
                       low=1e-12, high=1e6),
    }

    def objective_name(self) -> str:
        return "Fenchel-Young" if self.config["loss"] == "pfyl" else "MSE to x*"

    def make_module(self, optmodel: ProblemOptModel) -> optModule:
        module = perturbedFenchelYoung if self.config["loss"] == "pfyl" else perturbedOpt
        return module(
            optmodel, n_samples=self.config["n_samples"], sigma=self.config["sigma"], seed=self.seed
        )

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        pred_costs = self.model(features)
        if self.config["loss"] == "pfyl":
            return self.pyepo_module(pred_costs, solutions)
        return F.mse_loss(self.pyepo_module(pred_costs), solutions)


class BlackboxMethod(PyEPOMethod):
    """Differentiable black-box solver (Vlastelica et al. 2020): interpolated solver gradients.

    The decision ``x*(ĉ)`` is the exact oracle's; the loss on it is, by default
    (``loss="regret"``), its regret under the true costs, ``±(cᵀx*(ĉ) − cᵀx*(c))`` signed by the
    problem's sense: PyEPO's DBB examples train the L1 distance between the realised and the
    optimal objective, which is the same number since regret is never negative.
    ``loss="l1"`` is the L1 distance of the decision to ``x*``, the fpo-dys Black-box baseline.
    """

    description = "differentiable black-box solver (pyepo.func.blackboxOpt), regret or L1 loss"
    params: ClassVar[dict[str, Param]] = {
        **TORCH_PARAMS,
        "lambd": Param(float, 10.0, "interpolation strength λ of the backward solve",
                       low=1e-12, high=1e6),
        "loss": Param(str, "regret", "true-cost regret of the decision, or its L1 distance to x*",
                      choices=("regret", "l1")),
    }

    def objective_name(self) -> str:
        return "L1 to x*" if self.config["loss"] == "l1" else "regret"

    def make_module(self, optmodel: ProblemOptModel) -> optModule:
        return blackboxOpt(optmodel, lambd=self.config["lambd"])

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        decisions = self.pyepo_module(self.model(features))
        if self.config["loss"] == "l1":
            return F.l1_loss(decisions, solutions)
        return (self.problem.sign * ((decisions - solutions) * costs).sum(dim=-1)).mean()
