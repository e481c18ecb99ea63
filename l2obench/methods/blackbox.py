"""``blackbox``: the differentiable black-box solver (``pyepo.func.blackboxOpt``, DBB)."""

from __future__ import annotations

from typing import ClassVar

from pyepo.func import blackboxOpt
from pyepo.func.abcmodule import optModule

from l2obench.methods.pyepo_oracle import (
    DecisionMethod,
    PoolSeed,
    ProblemOptModel,
    PyEPOMethod,
    decision_loss_param,
)
from l2obench.params import Param


class BlackboxMethod(DecisionMethod):
    """Differentiable black-box solver (Vlastelica et al. 2020): interpolated solver gradients.

    The decision ``x*(ĉ)`` is the exact oracle's; the backward pass solves ``ĉ ± λ·∂ℓ/∂x`` once
    more: two oracle calls per step. The loss on the decision is, by default, its true-cost
    regret (PyEPO's recipe: the L1 distance between the realised and the optimal objective);
    ``loss="l1"`` is the L1 distance of the decision to ``x*``, the fpo-dys Black-box baseline.
    """

    description = "differentiable black-box solver (pyepo.func.blackboxOpt), regret or L1 loss"
    params: ClassVar[dict[str, Param]] = {
        **PyEPOMethod.params,
        "lambd": Param(float, 10.0, "interpolation strength λ of the backward solve",
                       low=1e-12, high=1e6),
        "loss": decision_loss_param("regret"),
    }

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        return blackboxOpt(optmodel, lambd=self.config["lambd"],
                           solve_ratio=self.config["solve_ratio"], dataset=pool)
