"""``imle``: implicit maximum-likelihood estimation (``pyepo.func.implicitMLE``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pyepo.func import implicitMLE
from pyepo.func.abcmodule import optModule
from pyepo.func.utils import sumGammaDistribution

from l2obench.methods.pyepo_oracle import (
    DecisionMethod,
    PoolSeed,
    ProblemOptModel,
    PyEPOMethod,
    decision_loss_param,
)
from l2obench.params import Param

#: The perturb-and-MAP parameters I-MLE and AI-MLE share: samples, temperature, sum-of-gamma
#: noise, one- or two-sided differences (PyEPO's defaults).
PERTURB_AND_MAP_PARAMS: dict[str, Param] = {
    "n_samples": Param(int, 10, "noise samples per instance", low=1),
    "sigma": Param(float, 1.0, "noise temperature σ", low=1e-12, high=1e6),
    "kappa": Param(float, 5.0, "κ of the sum-of-gamma noise (its Gamma shape is 1/κ)",
                   low=1e-6, high=1e6),
    "n_iterations": Param(int, 10, "Gamma terms summed in each sum-of-gamma draw", low=1,
                          high=10_000),
    "two_sides": Param(bool, False, "central differences (perturb both ways) instead of "
                       "one-sided"),
    "loss": decision_loss_param("l1"),
}


def sum_of_gamma(config: dict[str, Any], seed: int) -> sumGammaDistribution:
    """PyEPO's sum-of-gamma noise sampler for ``config``, seeded with the cell's seed."""
    return sumGammaDistribution(kappa=config["kappa"], n_iterations=config["n_iterations"],
                                seed=seed)


class IMLEMethod(DecisionMethod):
    """I-MLE (Niepert, Minervini & Franceschi 2021): perturb-and-MAP with sum-of-gamma noise,
    the gradient a finite difference of the perturbed decisions towards ``ĉ + λ·∂ℓ/∂x``.

    Two oracle calls per step, each over all ``batch × n_samples`` perturbed costs: the forward
    solve and the shifted backward solve (both shifts in one call when two-sided). The decision
    loss is the L1 distance to ``x*`` by default, as in PyEPO's recipe.
    """

    description = "implicit MLE (pyepo.func.implicitMLE), sum-of-gamma perturb-and-MAP"
    params: ClassVar[dict[str, Param]] = {
        **PyEPOMethod.params,
        **PERTURB_AND_MAP_PARAMS,
        "lambd": Param(float, 10.0, "finite-difference step λ of the backward solve",
                       low=1e-12, high=1e6),
    }

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        cfg = self.config
        return implicitMLE(
            optmodel, n_samples=cfg["n_samples"], sigma=cfg["sigma"], lambd=cfg["lambd"],
            distribution=sum_of_gamma(cfg, self.seed), two_sides=cfg["two_sides"],
            solve_ratio=cfg["solve_ratio"], dataset=pool,
        )
