"""``nce`` and ``cmap``: contrastive losses against PyEPO's solution pool."""

from __future__ import annotations

import torch
from pyepo.func import contrastiveMAP, noiseContrastiveEstimation
from pyepo.func.abcmodule import optModule

from l2obench.methods.pyepo_oracle import PoolSeed, ProblemOptModel, PyEPOMethod


class ContrastiveMethod(PyEPOMethod):
    """A loss of ``ĉ`` on ``x*`` against the members of the solution pool (Mulamba et al. 2021).

    The pool starts as the distinct training solutions; a step calls the oracle on the batch's
    predicted costs with probability ``solve_ratio`` (one call) and adds the new solutions to
    the pool, and otherwise solves nothing.
    """

    needs_pool = True

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        return self.pyepo_module(self.model(features), solutions)


class NCEMethod(ContrastiveMethod):
    """NCE: the mean margin ``ĉᵀx* − ĉᵀx`` over the pool (sign by the problem's sense)."""

    description = "noise-contrastive estimation over the solution pool " \
                  "(pyepo.func.noiseContrastiveEstimation)"
    objective = "NCE"

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        return noiseContrastiveEstimation(optmodel, solve_ratio=self.config["solve_ratio"],
                                          dataset=pool)


class CMAPMethod(ContrastiveMethod):
    """CMAP: the margin against the pool's best solution under ``ĉ`` only (max-margin NCE)."""

    description = "contrastive MAP over the solution pool (pyepo.func.contrastiveMAP)"
    objective = "CMAP"

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        return contrastiveMAP(optmodel, solve_ratio=self.config["solve_ratio"], dataset=pool)
