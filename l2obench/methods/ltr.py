"""``ltr``: learning-to-rank losses over PyEPO's solution pool (pointwise, pairwise, listwise)."""

from __future__ import annotations

from typing import ClassVar

import torch
from pyepo.func import listwiseLearningToRank, pairwiseLearningToRank, pointwiseLearningToRank
from pyepo.func.abcmodule import optModule

from l2obench.methods.pyepo_oracle import PoolSeed, ProblemOptModel, PyEPOMethod
from l2obench.params import Param

_MODULES = {
    "pointwise": pointwiseLearningToRank,
    "pairwise": pairwiseLearningToRank,
    "listwise": listwiseLearningToRank,
}


class LTRMethod(PyEPOMethod):
    """Learning to rank (Mandi et al. 2022): score the pool's solutions by ``ĉ`` as ``c`` scores
    them. ``pointwise``: squared error of each score; ``pairwise``: a hinge between the best
    solution under ``c`` and every other; ``listwise``: cross-entropy of the two softmax
    rankings. The pool and ``solve_ratio`` behave as for ``nce``.
    """

    description = "learning to rank over the solution pool (pyepo.func.*LearningToRank)"
    needs_pool = True
    params: ClassVar[dict[str, Param]] = {
        **PyEPOMethod.params,
        "kind": Param(str, "listwise", "which ranking loss", choices=tuple(_MODULES)),
    }

    def objective_name(self) -> str:
        return f"{self.config['kind']} LTR"

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        return _MODULES[self.config["kind"]](optmodel, solve_ratio=self.config["solve_ratio"],
                                             dataset=pool)

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        return self.pyepo_module(self.model(features), costs)
