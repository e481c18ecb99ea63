"""``cvx-net``: a cvxpylayers layer over the problem's conic form, trained by MSE to ``x*``.

The layer solves ``min ±wᵀx + (γ/2)‖x‖²`` subject to ``A x = b``, ``lower ≤ x ≤ upper`` and
every second-order cone ``‖F x‖₂ ≤ t`` of the problem's :class:`ConicForm` (an LP form is one
with no cones; ``−wᵀx`` for a maximisation problem; ``w`` prices the decision variables, the
form's auxiliary columns cost nothing) and differentiates through the program's optimality
conditions; the quadratic term makes the decision a differentiable function of ``w``. This is
the fpo-dys "CVX-net" baseline (``½‖x‖²``, i.e. ``γ = 1``). cvxpylayers solves in float64, one
cone program per instance, which is why it is the slowest method on large problems (the
published baseline, results/shortest-path/, records its times and time-outs). diffcp spreads a
batch's solves over a pool of threads, one per CPU of the machine unless told otherwise; the
layer tells it the cell's share (:func:`~l2obench.process_pool.available_cpus`), so that a cell
given one thread solves on one core. cvxpy and cvxpylayers are optional (the ``cvx`` extra) and
imported only when the layer is built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.linalg
import scipy.sparse as sp
import torch
from torch.nn import functional as F

from l2obench.methods.torch_method import TORCH_PARAMS, TorchMethod
from l2obench.params import Param
from l2obench.problems.base import Capability, ConicForm, Problem
from l2obench.process_pool import available_cpus

if TYPE_CHECKING:
    from cvxpylayers.torch import CvxpyLayer


def independent_rows(A: sp.spmatrix) -> np.ndarray:
    """Sorted indices of a maximal linearly independent set of rows of ``A``.

    A flow-conservation matrix has one redundant row per connected component; an equality
    constraint block with dependent rows makes the QP's KKT system singular, so the layer keeps
    only these rows. Rank-revealing QR with column pivoting of a dense ``Aᵀ`` (fine for the
    sizes cvxpylayers can handle at all).
    """
    dense_t = A.toarray().T
    _, r, pivots = scipy.linalg.qr(dense_t, mode="economic", pivoting=True)
    diagonal = np.abs(np.diag(r))
    if diagonal.size == 0 or diagonal[0] == 0.0:
        return np.empty(0, dtype=np.int64)
    tol = diagonal[0] * max(dense_t.shape) * np.finfo(float).eps
    return np.sort(pivots[: int((diagonal > tol).sum())])


#: The cone solver behind the layer's forward solve (diffcp's ``solve_method``): Clarabel, an
#: interior-point method that meets its ``1e-8`` tolerances. diffcp's default, SCS (a
#: first-order method at tolerance 1e-4), stopped visibly short of the program's optimum and
#: overran second-order-cone constraints, at no lower cost per solve
#: (``benchmarks/studies/cvx_net_solver.py``; figures in ``benchmarks/results/comparisons.md``).
LAYER_SOLVER_ARGS = {"solve_method": "Clarabel"}


def share_of_cpus(differentiated: bool) -> dict[str, int]:
    """diffcp's thread counts for a batch's solves (and, where the layer is ``differentiated``,
    their derivatives): the process's share of the CPUs. diffcp's default, ``-1``, is every CPU
    of the machine, whatever ``--threads`` says; its solve-only path takes no backward count."""
    cpus = available_cpus()
    return {"n_jobs_forward": cpus, **({"n_jobs_backward": cpus} if differentiated else {})}


def qp_layer(form: ConicForm, gamma: float, n_priced: int) -> CvxpyLayer:
    """A cvxpylayers layer ``w[B, n_priced] ↦ (x[B, form.n_vars],)``: the regularised program.

    ``w`` prices the first ``n_priced`` variables; any further ones (auxiliary columns such as
    slacks) have zero cost. Without cones the program is a QP; with them a second-order-cone
    program.
    """
    import cvxpy as cp
    from cvxpylayers.torch import CvxpyLayer

    lp = form.linear
    rows = independent_rows(lp.A)
    x = cp.Variable(lp.n_vars)
    w = cp.Parameter(n_priced)
    constraints = [lp.A[rows] @ x == lp.b[rows]]
    lower, upper = np.asarray(lp.lower, dtype=float), np.asarray(lp.upper, dtype=float)
    for bound, side in ((lower, 1.0), (upper, -1.0)):
        finite = np.flatnonzero(np.isfinite(bound))
        if finite.size:
            constraints.append(side * x[finite] >= side * bound[finite])
    constraints += [cp.SOC(cp.Constant(cone.bound), cone.F @ x) for cone in form.cones]
    objective = lp.sign * w @ x[:n_priced] + gamma / 2 * cp.sum_squares(x)
    problem = cp.Problem(cp.Minimize(objective), constraints)
    return CvxpyLayer(problem, parameters=[w], variables=[x], solver_args=LAYER_SOLVER_ARGS)


class CvxNet(TorchMethod):
    """MLP cost model → cvxpylayers QP (or SOCP) layer → decisions, trained by MSE to ``x*``."""

    description = ("cvxpylayers QP layer over the LP or conic form (fpo-dys CVX-net), MSE to the "
                   "optimal decisions")
    params: ClassVar[dict[str, Param]] = {
        **TORCH_PARAMS,
        "gamma": Param(float, 1.0, "weight γ of the quadratic regulariser (γ/2)‖x‖²",
                       low=1e-8, high=1e6),
    }
    requires = ("cvxpylayers", "cvxpy")
    extra = "cvx"
    outputs_decisions = True
    needs = frozenset({Capability.CONIC_FORM})
    family = "layer"
    objective = "MSE to x*"

    def __init__(self, problem: Problem, device: torch.device, seed: int, **params: Any) -> None:
        super().__init__(problem, device, seed, **params)
        self.layer = qp_layer(problem.conic(), self.config["gamma"], problem.n_vars)

    def decisions(self, features: torch.Tensor) -> torch.Tensor:
        """The layer's float64 decisions ``[N, n_vars]`` for a batch of contexts (cvxpylayers
        needs float64); the form's auxiliary columns are dropped."""
        w = self.model(features).double()
        # cvxpylayers differentiates where autograd records and w needs a gradient
        differentiated = torch.is_grad_enabled() and w.requires_grad
        (x,) = self.layer(w, solver_args=share_of_cpus(differentiated))
        return x[:, : self.problem.n_vars]

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        return F.mse_loss(self.decisions(features), solutions.double())

    @torch.no_grad()
    def predict_decisions(self, features: np.ndarray) -> np.ndarray:
        self.model.eval()
        return self.decisions(self.tensor(features)).cpu().numpy()
