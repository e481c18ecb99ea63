"""``pertopt``: perturbed optimisers, PyEPO's DPO and PFYL modules, additive or multiplicative."""

from __future__ import annotations

from typing import ClassVar

import torch
from pyepo.func import (
    perturbedFenchelYoung,
    perturbedFenchelYoungMul,
    perturbedOpt,
    perturbedOptMul,
)
from pyepo.func.abcmodule import optModule
from torch.nn import functional as F

from l2obench.methods.pyepo_oracle import PoolSeed, ProblemOptModel, PyEPOMethod
from l2obench.params import Param

#: ``(loss, perturbation)`` → PyEPO's module.
_MODULES = {
    ("pfyl", "additive"): perturbedFenchelYoung,
    ("pfyl", "multiplicative"): perturbedFenchelYoungMul,
    ("dpo", "additive"): perturbedOpt,
    ("dpo", "multiplicative"): perturbedOptMul,
}


class PerturbedMethod(PyEPOMethod):
    """Perturbed optimisers (Berthet et al. 2020; Dalle et al. 2022) on the predicted costs.

    ``loss="pfyl"``: the perturbed Fenchel–Young loss against ``x*``. ``loss="dpo"``: the
    expected perturbed decision trained by MSE to ``x*`` (PyEPO's recipe, and the fpo-dys
    PertOpt baseline). ``perturbation="additive"`` adds Gaussian noise ``σξ``;
    ``"multiplicative"`` multiplies each cost by ``exp(σξ − σ²/2)``, which keeps its sign (PyEPO
    pairs it with a cost model whose outputs have the intended sign). Either way one step solves
    all ``batch × n_samples`` perturbed instances in one oracle call, with PyEPO's own noise
    seeded by the cell's seed.
    """

    description = "perturbed optimiser: Fenchel–Young loss or MSE of the expected decision"
    params: ClassVar[dict[str, Param]] = {
        **PyEPOMethod.params,
        "loss": Param(str, "pfyl", "perturbed Fenchel–Young loss, or MSE of the DPO decision",
                      choices=("pfyl", "dpo")),
        "n_samples": Param(int, 10, "Monte Carlo perturbations per instance", low=1),
        "sigma": Param(float, 1.0, "standard deviation of the Gaussian perturbation",
                       low=1e-12, high=1e6),
        "perturbation": Param(str, "additive", "Gaussian noise added to the costs, or a "
                              "log-normal factor multiplying them (sign-preserving)",
                              choices=("additive", "multiplicative"), omit_default=True),
        "variance_reduction": Param(bool, True, "leave-one-out baseline in DPO's backward "
                                    "estimator (loss = dpo only)", omit_default=True),
    }

    def objective_name(self) -> str:
        if self.config["loss"] == "dpo":
            return "MSE to x*"
        return "Fenchel-Young" + (" (multiplicative)"
                                  if self.config["perturbation"] == "multiplicative" else "")

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        cfg = self.config
        options = {"n_samples": cfg["n_samples"], "sigma": cfg["sigma"], "seed": self.seed,
                   "solve_ratio": cfg["solve_ratio"], "dataset": pool}
        if cfg["loss"] == "dpo":
            options["variance_reduction"] = cfg["variance_reduction"]
        return _MODULES[cfg["loss"], cfg["perturbation"]](optmodel, **options)

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        pred_costs = self.model(features)
        if self.config["loss"] == "pfyl":
            return self.pyepo_module(pred_costs, solutions)
        return F.mse_loss(self.pyepo_module(pred_costs), solutions)
