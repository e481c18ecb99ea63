"""``cave``: cone-aligned vector estimation (Tang & Khalil 2024), PyEPO's ``coneAlignedCosine``.

The loss of a predicted cost ``ĉ`` is ``1 − cos(−ĉ, p)`` (``ĉ`` itself for a maximisation),
``p`` the projection of ``−ĉ`` onto the cone spanned by the normals of the constraints binding
at the true optimum ``x*``: costs in that cone make ``x*`` optimal. No oracle is called during
training. With probability ``1 − solve_ratio`` a step replaces the projection by CaVE Hybrid's
heuristic, ``(1 − r)·(−ĉ)/‖ĉ‖ + r·(mean unit normal)``, ``r = inner_ratio``.

PyEPO's module takes the binding normals from ``optDatasetConstrs``, which reads them off a
Gurobi model, as one dense padded tensor per batch. Here they come from the problem's LP form
(:mod:`l2obench.problems.binding`), once per distinct optimum, and the projections from
:mod:`l2obench.methods.cone_projection`: the same quadratic program with the same Clarabel
settings, so the same loss (tests check it against PyEPO's module on its Gurobi data), at a
fraction of the cost and with no licence.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from l2obench.methods.cone_projection import Cone, ConeProjection
from l2obench.methods.torch_method import TORCH_PARAMS, TorchMethod
from l2obench.params import Param
from l2obench.problems.base import Capability, Dataset, Problem
from l2obench.problems.binding import BINDING_TOL, BindingConstraints
from l2obench.record import Budget, FitResult


class CaVEMethod(TorchMethod):
    """CaVE: align the predicted cost with the normal cone of the true optimum."""

    description = "cone-aligned cosine loss (pyepo.func.coneAlignedCosine) over the LP form"
    family = "pyepo"
    objective = "CaVE"
    needs = frozenset({Capability.LP_FORM, Capability.BINARY, Capability.SLACK_FORM})
    requires = ("clarabel",)
    params: ClassVar[dict[str, Param]] = {
        **TORCH_PARAMS,
        "max_iter": Param(int, 3, "Clarabel iterations of each projection (3: CaVE+, left "
                          "unconverged on purpose)", low=1, high=10_000),
        "solve_ratio": Param(float, 1.0, "probability per step of the projection; the other "
                             "steps take CaVE Hybrid's heuristic", low=0.0, high=1.0),
        "inner_ratio": Param(float, 0.2, "weight of the mean binding normal in the heuristic",
                             low=0.0, high=1.0),
    }

    def __init__(self, problem: Problem, device: torch.device, seed: int, **params: Any) -> None:
        super().__init__(problem, device, seed, **params)
        self.binding = BindingConstraints(problem.lp(), problem.n_vars)
        self.projection = ConeProjection(self.config["max_iter"])
        self.cones: dict[bytes, Cone] = {}
        self.branch_rng = np.random.RandomState(self.seed)

    def fit(self, data: Dataset, budget: Budget) -> FitResult:
        self.branch_rng = np.random.RandomState(self.seed)
        return super().fit(data, budget)

    def cone(self, solution: np.ndarray) -> Cone:
        """The normal cone at the optimal decision ``solution`` (derived once per decision)."""
        key = solution.tobytes()
        cone = self.cones.get(key)
        if cone is None:
            if np.any(np.minimum(np.abs(solution), np.abs(solution - 1)) > BINDING_TOL):
                raise ValueError("cave needs binary optimal decisions; got a fractional one")
            cone = Cone(self.binding.normals(solution), key)
            self.cones[key] = cone
        return cone

    def targets(self, signed_costs: torch.Tensor, solutions: torch.Tensor) -> torch.Tensor:
        """The projection (or this step's heuristic) each signed cost is aligned with."""
        values = signed_costs.detach().cpu().double().numpy()
        cones = [self.cone(row) for row in solutions.detach().cpu().numpy()]
        if self.branch_rng.uniform() <= self.config["solve_ratio"]:
            rows = [self.projection.project(v, cone) for v, cone in zip(values, cones,
                                                                          strict=True)]
        else:
            r = self.config["inner_ratio"]
            norms = np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-8)
            mean = np.stack([cone.unit_mean for cone in cones])
            rows = list((1 - r) * values / norms + r * mean)
        return torch.as_tensor(np.stack(rows), dtype=signed_costs.dtype,
                               device=signed_costs.device)

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        signed = -self.problem.sign * self.model(features)  # −ĉ for a minimisation
        with torch.no_grad():
            target = self.targets(signed, solutions)
        return (1.0 - F.cosine_similarity(signed, target, dim=1)).mean()
