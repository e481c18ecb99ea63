"""``nid``: negative identity backpropagation (``pyepo.func.negativeIdentity``)."""

from __future__ import annotations

from typing import ClassVar

from pyepo.func import negativeIdentity
from pyepo.func.abcmodule import optModule

from l2obench.methods.pyepo_oracle import (
    DecisionMethod,
    PoolSeed,
    ProblemOptModel,
    PyEPOMethod,
    decision_loss_param,
)
from l2obench.params import Param


class NegativeIdentityMethod(DecisionMethod):
    """Negative identity backpropagation (Sahoo et al. 2023): the solver's Jacobian taken as
    ``−I`` (``+I`` for a maximisation), a hyperparameter-free black-box gradient.

    One oracle call per step (the forward solve); the backward pass solves nothing. Trained, as
    in PyEPO's recipe, on the L1 distance of the decision's true objective to the optimal one.
    """

    description = "negative identity backprop (pyepo.func.negativeIdentity), objective L1"
    params: ClassVar[dict[str, Param]] = {
        **PyEPOMethod.params,
        "loss": decision_loss_param("objective"),
    }

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        return negativeIdentity(optmodel, solve_ratio=self.config["solve_ratio"], dataset=pool)
