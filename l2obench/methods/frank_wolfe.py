"""``rfwo`` and ``rfy``: the L2-regularised decision by Frank–Wolfe over the exact oracle.

PyEPO's ``regularizedFrankWolfeOpt`` (RFWO) and ``regularizedFrankWolfeFenchelYoung`` (RFY)
compute ``x̂_λ(ĉ) = argmin_{x ∈ conv(X)} ĉᵀx + (λ/2)‖x‖²``, i.e. the projection of
``θ = −ĉ/λ`` onto ``conv(X)``, by away-step Frank–Wolfe, whose only access to the feasible set is
the linear oracle: each iteration is one oracle call for the whole batch (plus one for the
starting vertex).

The modules here are PyEPO's own (their forward and backward passes, the solution pool, the
solve-or-cache draws), with one part replaced: the Frank–Wolfe loop, :func:`away_step_frank_wolfe`.
It is PyEPO's algorithm step for step (the same directions, line search, step caps, active-set
bookkeeping, tolerances and tie-breaking), so it returns the same iterate and active set; it
differs in cost. PyEPO keeps ``2n + 2`` active-set slots per instance (``batch × (2n+2) × n``
numbers: 2.4 GB at k = 20 with a batch of 256) and scans them all twice per iteration in some
40 small PyTorch operations; here the slots grow as vertices enter (they fill from the first
free one, so the slots in use are a prefix of PyEPO's), and the loop runs in NumPy float64.

The solve runs in float64: PyEPO's default gap tolerance (1e-6) lies below what the float32 gap
of a float32 cost model resolves, so in float32 every step would run all ``max_iter`` (10 000)
iterations. Iterations per training step are recorded as the forward iterations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
import torch
from pyepo.func import regularizedFrankWolfeFenchelYoung, regularizedFrankWolfeOpt
from pyepo.func.abcmodule import optModule
from pyepo.func.utils import _solve_or_cache

from l2obench.methods.pyepo_oracle import (
    DecisionMethod,
    PoolSeed,
    ProblemOptModel,
    PyEPOMethod,
    decision_loss_param,
)
from l2obench.params import Param

#: The regularised solve's parameters (PyEPO's defaults).
FRANK_WOLFE_PARAMS: dict[str, Param] = {
    "lambd": Param(float, 1.0, "strength λ of the L2 regulariser (λ/2)‖x‖²", low=1e-12,
                   high=1e6),
    "max_iter": Param(int, 10_000, "Frank–Wolfe iterations per step at most", low=1,
                      high=10_000_000),
    "tol": Param(float, 1e-6, "Frank–Wolfe gap at which an instance has converged", low=0.0,
                 high=1e6),
}

#: PyEPO's thresholds: a weight at most this is an empty slot; vertices closer than the square
#: root of ``_SAME_VERTEX`` are one.
_EMPTY = 1e-12
_SAME_VERTEX = 1e-6
_INITIAL_SLOTS = 8


def away_step_frank_wolfe(
    lmo: Callable[[np.ndarray], np.ndarray], theta: np.ndarray, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """``argmin_{μ ∈ conv(V)} ½‖μ − θ‖²`` for every row of ``theta[B, n]``.

    ``lmo(g)`` returns ``argmax_{v ∈ V} gᵀv`` for every row of ``g`` (one oracle call). Each
    iteration takes the Frank–Wolfe or the away direction, whichever has the larger gap, with an
    exact line search capped so that no weight turns negative; an instance whose Frank–Wolfe gap
    is below ``tol`` takes no step; the loop ends when no instance is left or after
    ``max_iter`` iterations. Returns ``(μ[B, n], vertices[B, W, n], weights[B, W], iterations)``:
    the active set in PyEPO's slots (only the first ``W ≤ 2n + 2`` of them, the others empty).
    """
    batch, n = theta.shape
    capacity = 2 * n + 2
    width = min(capacity, _INITIAL_SLOTS)
    vertices = np.zeros((batch, width, n))
    weights = np.zeros((batch, width))
    norms = np.zeros((batch, width))
    rows = np.arange(batch)
    first = lmo(theta)
    vertices[:, 0], weights[:, 0], norms[:, 0] = first, 1.0, (first * first).sum(-1)
    mu = first.copy()
    iterations = 0
    for _ in range(max_iter):
        iterations += 1
        grad = mu - theta
        v = lmo(theta - mu)
        gap_fw = (grad * (mu - v)).sum(-1)
        scores = np.einsum("bwv,bv->bw", vertices, grad)
        scores[weights <= 0] = -np.inf
        away = scores.argmax(-1)
        v_away, alpha_away = vertices[rows, away], weights[rows, away]
        gap_away = (grad * (v_away - mu)).sum(-1)
        unconverged = gap_fw >= tol
        if not unconverged.any():
            break
        use_fw = gap_fw >= gap_away
        direction = np.where(use_fw[:, None], v - mu, mu - v_away)
        gap = np.where(use_fw, gap_fw, gap_away)
        gamma_max = np.where(use_fw, 1.0, alpha_away / np.maximum(1.0 - alpha_away, 1e-12))
        denom = np.maximum((direction * direction).sum(-1), 1e-12)
        gamma = np.minimum(np.maximum(gap / denom, 0.0), gamma_max) * unconverged
        mu = mu + gamma[:, None] * direction
        weights = weights * np.where(use_fw, 1.0 - gamma, 1.0 + gamma)[:, None]
        gamma_fw = gamma * use_fw
        gamma_away = gamma * ~use_fw
        v_norm = (v * v).sum(-1)
        dist = norms - 2 * np.einsum("bwv,bv->bw", vertices, v) + v_norm[:, None]
        match = (dist < _SAME_VERTEX) & (weights > 0)
        has_match = match.any(-1)
        add_new = ~has_match & use_fw & (gamma_fw > 0)
        free = weights <= _EMPTY
        if width < capacity and (add_new & ~free.any(-1)).any():
            # PyEPO's next slot is empty in every instance: open it (and a few more).
            extra = min(width, capacity - width)
            vertices = np.concatenate([vertices, np.zeros((batch, extra, n))], axis=1)
            weights = np.concatenate([weights, np.zeros((batch, extra))], axis=1)
            norms = np.concatenate([norms, np.zeros((batch, extra))], axis=1)
            match = np.concatenate([match, np.zeros((batch, extra), dtype=bool)], axis=1)
            free = weights <= _EMPTY
            width += extra
        match_idx = match.argmax(-1)
        free_idx = np.where(free.any(-1), free.argmax(-1), weights.argmin(-1))
        weights[rows, match_idx] += gamma_fw * (has_match & use_fw)
        vertices[rows, free_idx] = np.where(add_new[:, None], v, vertices[rows, free_idx])
        norms[rows, free_idx] = np.where(add_new, v_norm, norms[rows, free_idx])
        weights[rows, free_idx] = np.where(add_new, gamma_fw, weights[rows, free_idx])
        weights[rows, away] -= gamma_away
        weights = np.maximum(weights, 0.0)
        weights[weights < _EMPTY] = 0.0
    return mu, vertices, weights, iterations


class _FrankWolfeSolve:
    """Mixed into PyEPO's two modules: their ``_frank_wolfe`` by :func:`away_step_frank_wolfe`,
    its linear oracle PyEPO's solve-or-cache step, the iterations of each call logged."""

    optmodel: ProblemOptModel
    max_iter: int
    tol: float
    solve_ratio: float
    solpool: torch.Tensor | None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.iteration_log: list[int] = []

    def solve_frank_wolfe(self, theta: torch.Tensor) -> tuple[torch.Tensor, ...]:
        # PyEPO's linear oracle maximises: minimise (−θ)ᵀx for a minimisation problem.
        problem = self.optmodel.l2o_problem
        sense_sign = -problem.sign

        def lmo(g: np.ndarray) -> np.ndarray:
            if self.solve_ratio >= 1 and self.solpool is None:  # PyEPO would solve: directly
                return problem.oracle(sense_sign * g)[0]
            solution, _ = _solve_or_cache(torch.from_numpy(sense_sign * g), self)
            return solution.double().cpu().numpy()

        theta_np = theta.detach().cpu().double().numpy()
        mu, vertices, weights, iterations = away_step_frank_wolfe(
            lmo, theta_np, self.max_iter, self.tol)
        self.iteration_log.append(iterations)
        return tuple(torch.as_tensor(a, dtype=theta.dtype, device=theta.device)
                     for a in (mu, vertices, weights))


class FastRFWO(_FrankWolfeSolve, regularizedFrankWolfeOpt):
    """PyEPO's RFWO module with :func:`away_step_frank_wolfe` as its solve."""

    @torch.no_grad()
    def _frank_wolfe(self, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor,
                                                           torch.Tensor]:
        mu, vertices, weights = self.solve_frank_wolfe(theta)
        return mu, vertices, weights


class FastRFY(_FrankWolfeSolve, regularizedFrankWolfeFenchelYoung):
    """PyEPO's RFY module with :func:`away_step_frank_wolfe` as its solve."""

    @torch.no_grad()
    def _frank_wolfe(self, theta: torch.Tensor) -> torch.Tensor:
        return self.solve_frank_wolfe(theta)[0]


class FrankWolfeMethod(PyEPOMethod):
    """Shared by ``rfwo`` and ``rfy``: the parameters, float64 costs, iteration statistics."""

    params: ClassVar[dict[str, Param]] = {**PyEPOMethod.params, **FRANK_WOLFE_PARAMS}

    def frank_wolfe_options(self, pool: PoolSeed | None) -> dict[str, Any]:
        cfg = self.config
        return {"lambd": cfg["lambd"], "max_iter": cfg["max_iter"], "tol": cfg["tol"],
                "solve_ratio": cfg["solve_ratio"], "dataset": pool}

    def iteration_stats(self) -> dict[str, Any]:
        """Frank–Wolfe iterations of the training steps (``fwd_unconverged``: steps that ran
        all ``max_iter``)."""
        log: list[int] = self.pyepo_module.iteration_log
        if not log:
            return {}
        return {"fwd_iters_mean": sum(log) / len(log), "fwd_iters_max": max(log),
                "fwd_unconverged": sum(it >= self.config["max_iter"] for it in log)}


class RFWOMethod(FrankWolfeMethod, DecisionMethod):
    """RFWO (Dalle et al. 2022): the regularised decision, differentiated through its active
    face, trained by a task loss on it (MSE to ``x*`` by default, PyEPO's recipe)."""

    description = "regularised Frank–Wolfe decision (pyepo.func.regularizedFrankWolfeOpt)"
    params: ClassVar[dict[str, Param]] = {
        **FrankWolfeMethod.params,
        "loss": decision_loss_param("mse"),
    }

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        return FastRFWO(optmodel, **self.frank_wolfe_options(pool))

    def decide(self, pred_costs: torch.Tensor) -> torch.Tensor:
        return self.pyepo_module(pred_costs.double())


class RFYMethod(FrankWolfeMethod):
    """RFY (Dalle et al. 2022): the Fenchel–Young loss of the L2 regulariser against ``x*``,
    its gradient the residual ``x* − x̂_λ(ĉ)`` (no differentiation through the solve)."""

    description = "regularised Frank–Wolfe Fenchel–Young loss " \
                  "(pyepo.func.regularizedFrankWolfeFenchelYoung)"
    objective = "Fenchel-Young (L2)"

    def make_module(self, optmodel: ProblemOptModel, pool: PoolSeed | None) -> optModule:
        return FastRFY(optmodel, **self.frank_wolfe_options(pool))

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        return self.pyepo_module(self.model(features).double(), solutions.double())
