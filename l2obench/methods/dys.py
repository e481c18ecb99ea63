"""The implicit DYS layer methods (PyTorch): one layer, the backward mode passed as a value.

``dys-jfb`` trains the cost model through the DYS layer with Jacobian-free backprop,
``dys-unrolled`` by backprop through ``K`` taped iterations, ``dys-implicit`` by implicit
differentiation with an iterative adjoint solve. Each is a subclass that returns its
:class:`Backward` value from :meth:`DYSMethod.make_backward` and declares its extra parameters,
nothing more.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from l2obench.layers.backward import JFB, Backward, Implicit, Unrolled
from l2obench.layers.dys import DYSLayer
from l2obench.layers.fixed_point import Anderson, FixedPointSolver, FixedPointStats, Picard
from l2obench.layers.linear_solvers import (
    GMRES,
    ConjugateGradientNormal,
    FixedPointIteration,
    LinearSolver,
)
from l2obench.methods.torch_method import TORCH_PARAMS, TorchMethod
from l2obench.params import Param
from l2obench.problems.base import Capability, Problem

DYS_PARAMS: dict[str, Param] = {
    **TORCH_PARAMS,
    "alpha": Param(float, 0.05, "DYS step size α", low=1e-8, high=10.0),
    "gamma": Param(float, 5e-4, "quadratic regulariser γ (makes the operator contractive)",
                   low=1e-12, high=10.0),
    "tol": Param(float, 1e-2, "per-instance stop: ‖z_{k+1} − z_k‖ ≤ tol", low=1e-12, high=1e3),
    "max_iter": Param(int, 10_000, "cap on forward iterations per solve", low=1,
                      high=10_000_000),
}


#: The forward solver's parameters, for the methods that solve to a tolerance.
SOLVER_PARAMS: dict[str, Param] = {
    "solver": Param(str, "picard", "forward fixed-point solver", choices=("picard", "anderson")),
    "memory": Param(int, 5, "Anderson: residuals kept for the extrapolation", low=1, high=100),
}


def make_solver(config: dict[str, Any]) -> FixedPointSolver:
    """The forward solver a method's configuration names, with its tolerance and cap."""
    if config["solver"] == "anderson":
        return Anderson(tol=config["tol"], max_iter=config["max_iter"], memory=config["memory"])
    return Picard(tol=config["tol"], max_iter=config["max_iter"])


@dataclass
class IterationTally:
    """The layer's iteration statistics over the training steps, summed into record columns.

    Forward counts are per instance and known when the layer returns; backward counts are per
    step and filled into the step's :class:`FixedPointStats` when its backward pass runs, so the
    tally keeps each step's statistics and sums them when asked.
    """

    steps: list[FixedPointStats] = field(default_factory=list)

    def add(self, stats: FixedPointStats) -> None:
        self.steps.append(stats)

    def summary(self) -> dict[str, Any]:
        """The record's iteration columns (none when nothing was counted)."""
        if not self.steps:
            return {}
        iterations = torch.cat([s.iterations.cpu() for s in self.steps])
        unconverged = sum(int((~s.converged).sum()) for s in self.steps)
        solved = [s for s in self.steps if s.backward_iterations is not None]
        backward = {
            "bwd_iters_mean": sum(s.backward_iterations or 0 for s in solved) / len(solved),
            "bwd_unconverged": sum(not s.backward_converged for s in solved),
        } if solved else {}
        return {
            "fwd_iters_mean": float(iterations.double().mean()),
            "fwd_iters_max": int(iterations.max()),
            "fwd_unconverged": unconverged,
            **backward,
        }


class DYSMethod(TorchMethod):
    """MLP cost model → DYS layer → decisions, trained by MSE against the optimal decisions."""

    params: ClassVar[dict[str, Param]] = {**DYS_PARAMS, **SOLVER_PARAMS}
    outputs_decisions = True
    needs = frozenset({Capability.LP_FORM})
    family = "dys"
    objective = "MSE to x*"

    def __init__(self, problem: Problem, device: torch.device, seed: int, **params: Any) -> None:
        super().__init__(problem, device, seed, **params)
        self.layer = DYSLayer(
            problem.lp(),
            alpha=self.config["alpha"],
            gamma=self.config["gamma"],
            solver=self.make_solver(),
            backward=self.make_backward(),
            device=self.device,
        )
        self.tally = IterationTally()

    def make_solver(self) -> FixedPointSolver:
        """The forward solver: the one the parameters name."""
        return make_solver(self.config)

    @abstractmethod
    def make_backward(self) -> Backward:
        """How gradients flow through the fixed point: the one thing DYS variants change."""

    def decide(self, features: torch.Tensor) -> torch.Tensor:
        """The layer's decisions ``[N, n_vars]`` for a batch of contexts.

        The layer solves over the whole LP form: the predicted costs get zeros appended for
        its auxiliary columns (slacks), and only the decision variables are returned.
        """
        decisions, _ = self.solve(features)
        return decisions

    def solve(self, features: torch.Tensor) -> tuple[torch.Tensor, FixedPointStats]:
        """:meth:`decide`, with the statistics of the layer's solve."""
        w = F.pad(self.model(features), (0, self.problem.n_aux))
        x, stats = self.layer(w)
        return x[:, : self.problem.n_vars], stats

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        decisions, stats = self.solve(features)
        if self.model.training:
            self.tally.add(stats)
        return F.mse_loss(decisions, solutions)

    def iteration_stats(self) -> dict[str, Any]:
        return self.tally.summary()

    @torch.no_grad()
    def predict_decisions(self, features: np.ndarray) -> np.ndarray:
        self.model.eval()
        return self.decide(self.tensor(features)).double().cpu().numpy()


class DYSJFB(DYSMethod):
    """DYS layer trained with Jacobian-free backprop (one tape step at the fixed point)."""

    description = "implicit DYS layer, JFB backward (Wu Fung et al. 2022; McKenzie et al. 2024)"

    def make_backward(self) -> Backward:
        return JFB()


class DYSUnrolled(DYSMethod):
    """DYS layer trained by backprop through ``K`` taped iterations from ``z = 0``.

    The layer is ``K`` iterations in evaluation too (the model that was trained); ``tol`` only
    decides which instances the record counts as converged after ``K`` steps, and there is no
    ``max_iter``. Memory grows linearly in ``K``.
    """

    description = "DYS layer, backprop through K unrolled iterations (memory O(K))"
    params: ClassVar[dict[str, Param]] = {
        **{k: p for k, p in DYS_PARAMS.items() if k != "max_iter"},
        "tol": Param(float, DYS_PARAMS["tol"].default,
                     "counted as converged if the K-th step has ‖z_K − z_{K−1}‖ ≤ tol",
                     low=1e-12, high=1e3),
        "K": Param(int, 50, "number of unrolled (taped) iterations", low=1, high=100_000),
    }

    def make_solver(self) -> FixedPointSolver:
        return Picard(tol=self.config["tol"])  # unused: the K taped steps are the solve

    def make_backward(self) -> Backward:
        return Unrolled(self.config["K"])


#: The adjoint solvers of ``dys-implicit``, by parameter value.
LINEAR_SOLVERS: dict[str, type[LinearSolver]] = {
    "cg": ConjugateGradientNormal,
    "gmres": GMRES,
    "fixed-point": FixedPointIteration,
}


class DYSImplicit(DYSMethod):
    """DYS layer trained by implicit differentiation: the adjoint ``(I − J)ᵀ v = g`` per step.

    Why ``cg`` (CG on the normal equations) by default: at the reference α = 0.05, γ = 5e-4
    and tol = 1e-2 the adjoint system is nearly singular. ``J`` has eigenvalues ``1 − αγ`` (on
    flows around cycles of arcs strictly inside the box: ``‖v‖ ≈ ‖g‖/(αγ)``) and exactly 1 (on
    directions in the range of ``Aᵀ`` supported on clamped arcs; the system stays consistent and
    these reach neither ``x`` nor the costs). Fixed-point iteration then needs of order
    ``1/(αγ) = 4·10⁴`` iterations and returns a truncated sum at any practical cap; GMRES is not
    guaranteed for singular systems and stalls in float32; CG returns the least-norm solution,
    in few iterations on the suite's grids. In float32 the relative residual cannot go far below
    ``ε₃₂/(αγ) ≈ 5e-3`` there, so ``bwd_tol = 2e-2``: CG meets it, and its gradient then agrees
    closely with the float64 implicit gradient (the float32 forward, not the residual, dominates
    the difference). The iteration counts and the gradient's error were measured on 5×5 to
    20×20 grids: benchmarks/RESULTS.md, "Measurements behind the defaults". Steps whose solve
    misses the tolerance are counted (``bwd_unconverged``).
    """

    description = "DYS layer, implicit (Jacobian-based) backprop with an iterative adjoint solve"
    params: ClassVar[dict[str, Param]] = {
        **DYS_PARAMS,
        **SOLVER_PARAMS,
        "linear_solver": Param(str, "cg", "adjoint solver", choices=tuple(LINEAR_SOLVERS)),
        "bwd_tol": Param(float, 2e-2, "adjoint stop: ‖residual_i‖ ≤ bwd_tol · ‖g_i‖",
                         low=1e-12, high=1.0),
        "bwd_max_iter": Param(int, 500, "cap on adjoint solver iterations per step", low=1),
    }

    def make_backward(self) -> Backward:
        solver = LINEAR_SOLVERS[self.config["linear_solver"]]
        return Implicit(solver(tol=self.config["bwd_tol"], max_iter=self.config["bwd_max_iter"]))
