"""``aimle``: adaptive implicit MLE (``pyepo.func.adaptiveImplicitMLE``)."""

from __future__ import annotations

from typing import ClassVar

from pyepo.func import adaptiveImplicitMLE
from pyepo.func.abcmodule import optModule

from l2obench.methods.imle import PERTURB_AND_MAP_PARAMS, sum_of_gamma
from l2obench.methods.pyepo_oracle import DecisionMethod, PoolSeed, ProblemOptModel, PyEPOMethod
from l2obench.params import Param


class AIMLEMethod(DecisionMethod):
    """AI-MLE (Minervini, Franceschi & Niepert 2023): I-MLE whose step ``λ`` follows
    ``α‖ĉ‖/‖∂ℓ/∂x‖``, ``α`` adapted online from the gradient's sparsity (module state kept across
    the steps of one fit). Two oracle calls per step, as I-MLE.
    """

    description = "adaptive implicit MLE (pyepo.func.adaptiveImplicitMLE)"
    params: ClassVar[dict[str, Param]] = {**PyEPOMethod.params, **PERTURB_AND_MAP_PARAMS}

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        cfg = self.config
        return adaptiveImplicitMLE(
            optmodel, n_samples=cfg["n_samples"], sigma=cfg["sigma"],
            distribution=sum_of_gamma(cfg, self.seed), two_sides=cfg["two_sides"],
            solve_ratio=cfg["solve_ratio"], dataset=pool,
        )
