"""``rfwo`` and ``rfy``: the L2-regularised decision by Frank–Wolfe over the exact oracle.

PyEPO's ``regularizedFrankWolfeOpt`` (RFWO) and ``regularizedFrankWolfeFenchelYoung`` (RFY)
compute ``argmin_{x ∈ conv(X)} ĉᵀx + (λ/2)‖x‖²`` by away-step Frank–Wolfe, whose only access to
the feasible set is the linear oracle: each iteration is one oracle call for the whole batch
(plus one for the starting vertex), so a step costs ``1 + iterations`` calls, counted and
reported as the forward iterations of the record.

The solve runs in float64: PyEPO's default gap tolerance (1e-6) lies below what the float32 gap
of a float32 cost model resolves, so in float32 every step would run all ``max_iter`` (10 000)
iterations.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from pyepo.func import regularizedFrankWolfeFenchelYoung, regularizedFrankWolfeOpt
from pyepo.func.abcmodule import optModule

from l2obench.methods.pyepo_oracle import (
    DecisionMethod,
    PoolSeed,
    ProblemOptModel,
    PyEPOMethod,
    decision_loss_param,
)
from l2obench.params import Param

#: The regularised solve's parameters (PyEPO's defaults).
FRANK_WOLFE_PARAMS: dict[str, Param] = {
    "lambd": Param(float, 1.0, "strength λ of the L2 regulariser (λ/2)‖x‖²", low=1e-12,
                   high=1e6),
    "max_iter": Param(int, 10_000, "Frank–Wolfe iterations per step at most", low=1,
                      high=10_000_000),
    "tol": Param(float, 1e-6, "Frank–Wolfe gap at which an instance has converged", low=0.0,
                 high=1e6),
}


class FrankWolfeStats:
    """Frank–Wolfe iterations of each training step, read from the adapter's call count."""

    def __init__(self, optmodel: ProblemOptModel, max_iter: int) -> None:
        self.optmodel = optmodel
        self.max_iter = max_iter
        self.iterations: list[int] = []
        self._before = 0

    def start(self) -> None:
        self._before = self.optmodel.calls

    def stop(self) -> None:
        """Record the step begun by :meth:`start` (its first call is the starting vertex)."""
        self.iterations.append(self.optmodel.calls - self._before - 1)

    def summary(self) -> dict[str, Any]:
        if not self.iterations:
            return {}
        return {
            "fwd_iters_mean": sum(self.iterations) / len(self.iterations),
            "fwd_iters_max": max(self.iterations),
            "fwd_unconverged": sum(it >= self.max_iter for it in self.iterations),
        }


class FrankWolfeMethod(PyEPOMethod):
    """Shared by ``rfwo`` and ``rfy``: the parameters, float64 costs, iteration statistics."""

    params: ClassVar[dict[str, Param]] = {**PyEPOMethod.params, **FRANK_WOLFE_PARAMS}

    def prepare(self, train: Any) -> None:
        super().prepare(train)
        self.stats = FrankWolfeStats(self.optmodel, self.config["max_iter"])

    def frank_wolfe_options(self, pool: PoolSeed | None) -> dict[str, Any]:
        cfg = self.config
        return {"lambd": cfg["lambd"], "max_iter": cfg["max_iter"], "tol": cfg["tol"],
                "solve_ratio": cfg["solve_ratio"], "dataset": pool}

    def counted(self, loss: Any, *args: torch.Tensor) -> torch.Tensor:
        """``loss(*args)``, its Frank–Wolfe iterations recorded when the model is training."""
        if not self.model.training:
            return loss(*args)
        self.stats.start()
        value = loss(*args)
        self.stats.stop()
        return value

    def iteration_stats(self) -> dict[str, Any]:
        return self.stats.summary()


class RFWOMethod(FrankWolfeMethod, DecisionMethod):
    """RFWO (Dalle et al. 2022): the regularised decision, differentiated through its active
    face, trained by a task loss on it (MSE to ``x*`` by default, PyEPO's recipe)."""

    description = "regularised Frank–Wolfe decision (pyepo.func.regularizedFrankWolfeOpt)"
    params: ClassVar[dict[str, Param]] = {
        **FrankWolfeMethod.params,
        "loss": decision_loss_param("mse"),
    }

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        return regularizedFrankWolfeOpt(optmodel, **self.frank_wolfe_options(pool))

    def decide(self, pred_costs: torch.Tensor) -> torch.Tensor:
        return self.counted(self.pyepo_module, pred_costs.double())


class RFYMethod(FrankWolfeMethod):
    """RFY (Dalle et al. 2022): the Fenchel–Young loss of the L2 regulariser against ``x*``,
    its gradient the residual ``x* − x̂_λ(ĉ)`` (no differentiation through the solve)."""

    description = "regularised Frank–Wolfe Fenchel–Young loss " \
                  "(pyepo.func.regularizedFrankWolfeFenchelYoung)"

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        return regularizedFrankWolfeFenchelYoung(optmodel, **self.frank_wolfe_options(pool))

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        return self.counted(self.pyepo_module, self.model(features).double(), solutions.double())
