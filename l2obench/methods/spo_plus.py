"""``spo+``: the SPO+ loss (``pyepo.func.SPOPlus``) on the problem's exact, batched oracle."""

from __future__ import annotations

import torch
from pyepo.func import SPOPlus
from pyepo.func.abcmodule import optModule

from l2obench.methods.pyepo_oracle import PoolSeed, ProblemOptModel, PyEPOMethod


class SPOPlusMethod(PyEPOMethod):
    """SPO+ (Elmachtoub & Grigas 2022): convex surrogate of regret, one exact solve per sample.

    One oracle call per step: the batch's ``2ĉ − c``; the subgradient reuses its solutions.
    """

    description = "SPO+ loss (pyepo.func.SPOPlus) on the problem's exact batched oracle"
    objective = "SPO+"

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        return SPOPlus(optmodel, solve_ratio=self.config["solve_ratio"], dataset=pool)

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        objectives = (costs * solutions).sum(dim=-1)  # z*(c): the solutions are optimal under c
        return self.pyepo_module(self.model(features), costs, solutions, objectives)
