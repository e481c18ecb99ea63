"""The implicit DYS layer methods (PyTorch): one layer, the backward mode passed as a value.

``dys-jfb`` trains the cost model through the DYS layer with Jacobian-free backprop,
``dys-unrolled`` by backprop through ``K`` taped iterations, ``dys-implicit`` by implicit
differentiation with an iterative adjoint solve. Each is a subclass that returns its
:class:`Backward` value from :meth:`DYSMethod.make_backward` and declares its extra parameters,
nothing more. What they share (the layer's settings, warm starts, how the solve runs on the
device) is declared and built here once.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from l2obench.implicit.backward import JFB, Backward, Implicit, ImplicitFreeSet, Unrolled
from l2obench.implicit.fixed_point import Anderson, FixedPointSolver, FixedPointStats, Picard
from l2obench.implicit.linear_solvers import (
    GMRES,
    ConjugateGradientNormal,
    FixedPointIteration,
    FreeSetCG,
    LinearSolver,
)
from l2obench.layers.dys import DYSLayer
from l2obench.layers.lp_data import STORED_FORMS
from l2obench.methods.torch_method import TORCH_PARAMS, TorchMethod
from l2obench.params import Param
from l2obench.problems.base import Capability, Problem, Split

DYS_PARAMS: dict[str, Param] = {
    **TORCH_PARAMS,
    "alpha": Param(float, 0.05, "DYS step size α", low=1e-8, high=10.0),
    "gamma": Param(float, 5e-4, "quadratic regulariser γ (makes the operator contractive)",
                   low=1e-12, high=10.0),
    "tol": Param(float, 1e-2, "per-instance stop: ‖z_{k+1} − z_k‖ ≤ tol", low=1e-12, high=1e3),
    "max_iter": Param(int, 10_000, "cap on forward iterations per solve", low=1,
                      high=10_000_000),
    # Added after the shortest-path baseline was published: left out of cells (and their ids)
    # at their defaults, so that its records keep their cells (``Param.omit_default``).
    "warm_start": Param(bool, False, "start each training instance's solve at its fixed point "
                        "of the previous epoch", omit_default=True),
    "projection": Param(str, "auto", "storage of the affine projection (auto: the measured "
                        "rule for the size and device)", choices=("auto", *STORED_FORMS),
                        omit_default=True),
}

#: The layer-side parameters of the PyTorch methods: how the forward solve runs on the device.
#: Neither changes the fixed point or the stopping rule, only the time a solve takes; like
#: ``warm_start``, both are left out of cells at their defaults.
DEVICE_PARAMS: dict[str, Param] = {
    "check_every": Param(int, 0, "steps between the host's looks at which instances stopped "
                         "(0: 1 on CPU, 8 on CUDA; results do not depend on it)", low=0,
                         high=10_000, omit_default=True),
    "chunk": Param(int, 0, "instances solved together (0: the measured rule for the size and "
                   "device)", low=0, high=1_000_000, omit_default=True),
}

#: ``check_every = 0``: by device type. On a CPU a look costs nothing; on a GPU each is a
#: synchronisation, and a stopped instance iterates on until the next one.
CHECK_EVERY = {"cpu": 1, "cuda": 8}

#: ``chunk = 0`` on a CPU: instances per slice of the batch, so that one ``[chunk, n]`` float32
#: array takes about this many bytes; a solve's working arrays then stay in the processor's caches.
#: Measured in ``benchmarks/results/dys-scale.md`` ("Chunked solves"): it pays on the largest grids
#: and costs a little on mid-sized ones, where the whole batch was faster. Other devices solve the
#: whole batch at once.
CHUNK_BYTES = 1 << 19


def resolve_check_every(config: dict[str, Any], device: torch.device) -> int:
    """The host's look interval that ``config`` names on ``device``."""
    return config["check_every"] or CHECK_EVERY.get(device.type, CHECK_EVERY["cuda"])


def resolve_chunk(config: dict[str, Any], n_vars: int, device: torch.device) -> int | None:
    """The solve's chunk size that ``config`` names for ``n_vars`` variables on ``device``."""
    if config["chunk"]:
        return int(config["chunk"])
    if device.type != "cpu":
        return None
    return max(1, CHUNK_BYTES // (4 * n_vars))


#: The forward solver's parameters, for the methods that solve to a tolerance.
SOLVER_PARAMS: dict[str, Param] = {
    "solver": Param(str, "picard", "forward fixed-point solver", choices=("picard", "anderson")),
    "memory": Param(int, 5, "Anderson: residuals kept for the extrapolation", low=1, high=100),
}


def make_solver(
    config: dict[str, Any], check_every: int = 1, chunk: int | None = None
) -> FixedPointSolver:
    """The forward solver a method's configuration names, with its tolerance and cap."""
    if config["solver"] == "anderson":
        return Anderson(tol=config["tol"], max_iter=config["max_iter"], memory=config["memory"],
                        check_every=check_every, chunk=chunk)
    return Picard(tol=config["tol"], max_iter=config["max_iter"], check_every=check_every,
                  chunk=chunk)


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
    """MLP cost model → DYS layer → decisions, trained by MSE against the optimal decisions.

    With ``warm_start`` each training instance's solve starts where that instance's previous
    one ended (its fixed point of the previous epoch) instead of at ``z = 0``: the same
    operator and stopping rule, fewer iterations once the model changes little between epochs.
    It is off by default because it costs regret: the test ``‖z_{k+1} − z_k‖ ≤ tol`` bounds the
    step, not the distance to the fixed point, and with the operator barely contractive
    (``1 − αγ`` close to 1) a solve started at last epoch's point can meet it still near that
    point, so that the training decisions lag the model (the regret and iterations are in
    ``benchmarks/results/dys-scale.md``, "Warm starts"; the lag is the likely cause, not measured).
    Validation is scored from the predicted costs by the exact oracle and never
    solves the layer, so only training instances have a previous solve.
    """

    params: ClassVar[dict[str, Param]] = {**DYS_PARAMS, **SOLVER_PARAMS, **DEVICE_PARAMS}
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
            affine_form=self.config["projection"],
        )
        self.tally = IterationTally()
        self.warm: torch.Tensor | None = None  # [n_train, n_lp] last fixed points, if warm

    def make_solver(self) -> FixedPointSolver:
        """The forward solver: the one the parameters name, run as they say on the device."""
        n_lp = self.problem.n_vars + self.problem.n_aux
        return make_solver(self.config, resolve_check_every(self.config, self.device),
                           resolve_chunk(self.config, n_lp, self.device))

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

    def solve(
        self, features: torch.Tensor, z0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, FixedPointStats]:
        """:meth:`decide` (from ``z0`` if given), with the statistics of the layer's solve."""
        w = F.pad(self.model(features), (0, self.problem.n_aux))
        x, stats = self.layer(w, z0)
        return x[:, : self.problem.n_vars], stats

    def training_tensors(self, split: Split) -> tuple[torch.Tensor, ...]:
        """Features, costs, solutions and, with ``warm_start``, each instance's index."""
        tensors = super().training_tensors(split)
        if not self.config.get("warm_start", False):
            return tensors
        n_lp = self.problem.n_vars + self.problem.n_aux
        self.warm = torch.zeros(len(split), n_lp, device=self.device)
        return (*tensors, torch.arange(len(split), device=self.device))

    def batch_loss(
        self,
        features: torch.Tensor,
        costs: torch.Tensor,
        solutions: torch.Tensor,
        index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The MSE of the decisions; ``index`` (training with ``warm_start``) names the
        instances, whose solves start at, and store, their last fixed points."""
        warm = self.warm if index is not None else None
        decisions, stats = self.solve(features, None if warm is None else warm[index])
        if warm is not None and stats.z_star is not None:
            warm[index] = stats.z_star
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
    ``max_iter``, nor a warm start (the ``K`` steps are the model, from ``z = 0``). Memory grows
    linearly in ``K``: one boolean per variable and instance per taped step (the clamp's
    derivative, :class:`~l2obench.layers.dys._DYSStep`).
    """

    description = "DYS layer, backprop through K unrolled iterations (memory O(K))"
    params: ClassVar[dict[str, Param]] = {
        **{k: p for k, p in DYS_PARAMS.items() if k not in ("max_iter", "warm_start")},
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

    Why the adjoint is solved on the free coordinates by default (``free-cg``): at the reference
    α = 0.05, γ = 5e-4 and tol = 1e-2 the adjoint system is nearly singular. ``J`` has
    eigenvalues ``1 − αγ`` (on flows around cycles of arcs strictly inside the box:
    ``‖v‖ ≈ ‖g‖/(αγ)``) and exactly 1 (on directions in the range of ``Aᵀ`` supported on
    clamped arcs; the system stays consistent and these reach neither ``x`` nor the costs).
    Fixed-point iteration then needs of order ``1/(αγ) = 4·10⁴`` iterations and returns a
    truncated sum at any practical cap; GMRES is not guaranteed for singular systems and stalls
    in float32; CG on the normal equations (``cg``) returns the least-norm solution but needs
    more iterations as the grid grows, up to its cap on the larger grids, and in float32 its
    relative residual cannot go far below ``ε₃₂/(αγ) ≈ 5e-3`` (hence its ``bwd_tol`` of 2e-2;
    on small grids its gradient then agrees closely with the float64 implicit gradient:
    benchmarks/results/defaults.md, "Measurements behind the defaults"). ``free-cg`` gets the same
    gradient from the Laplacian system of the arcs strictly inside the box
    (:meth:`~l2obench.layers.dys.DYSLayer.free_set_adjoint`), which is well posed:
    Jacobi-preconditioned CG there reaches a relative residual of ``bwd_tol`` in float32 in a number
    of iterations set by that graph, not by ``αγ`` (tests/test_backward_modes.py checks it against
    CG on ``(I − J)ᵀ v = g`` in float64; ``python -m benchmarks.studies.dys_scale adjoint`` measures
    iterations and errors by size). Steps whose solve misses the tolerance are counted
    (``bwd_unconverged``).
    """

    description = "DYS layer, implicit (Jacobian-based) backprop with an iterative adjoint solve"
    params: ClassVar[dict[str, Param]] = {
        **DYS_PARAMS,
        **SOLVER_PARAMS,
        **DEVICE_PARAMS,
        "linear_solver": Param(str, "free-cg", "adjoint solver: CG on the free coordinates, or "
                               "one for (I − J)ᵀ v = g", choices=("free-cg", *LINEAR_SOLVERS)),
        "bwd_tol": Param(float, 1e-3, "adjoint stop: relative residual ≤ bwd_tol (of the free "
                         "coordinates' system for free-cg, of (I − J)ᵀ v = g otherwise)",
                         low=1e-12, high=1.0),
        "bwd_max_iter": Param(int, 500, "cap on adjoint solver iterations per step", low=1),
    }

    def make_backward(self) -> Backward:
        tol, max_iter = self.config["bwd_tol"], self.config["bwd_max_iter"]
        if self.config["linear_solver"] == "free-cg":
            return ImplicitFreeSet(FreeSetCG(tol=tol, max_iter=max_iter))
        return Implicit(LINEAR_SOLVERS[self.config["linear_solver"]](tol=tol, max_iter=max_iter))
