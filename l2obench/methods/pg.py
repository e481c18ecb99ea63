"""``pg``: the perturbation-gradient surrogate (``pyepo.func.perturbationGradient``)."""

from __future__ import annotations

from typing import ClassVar

import torch
from pyepo.func import perturbationGradient
from pyepo.func.abcmodule import optModule

from l2obench.methods.pyepo_oracle import PoolSeed, ProblemOptModel, PyEPOMethod
from l2obench.params import Param


class PerturbationGradientMethod(PyEPOMethod):
    """PG (Gupta & Huang 2024): a finite difference of the optimal value along the true cost,
    ``(z*(ĉ) − z*(ĉ − σc)) / σ`` (or the central difference), a surrogate of the decision's
    objective that needs the true costs only. One oracle call per step: the batch's two
    shifted cost sets solved together.
    """

    description = "perturbation gradient (pyepo.func.perturbationGradient), finite differences"
    objective = "PG"
    params: ClassVar[dict[str, Param]] = {
        **PyEPOMethod.params,
        "sigma": Param(float, 0.1, "finite-difference width σ along the true cost", low=1e-12,
                       high=1e6),
        "two_sides": Param(bool, False, "central differences (ĉ ± σc) instead of backward ones"),
    }

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        cfg = self.config
        return perturbationGradient(optmodel, sigma=cfg["sigma"], two_sides=cfg["two_sides"],
                                    solve_ratio=cfg["solve_ratio"], dataset=pool)

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        return self.pyepo_module(self.model(features), costs)
