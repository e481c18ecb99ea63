"""Decision-quality metrics, computed from true costs with the problem's exact oracle.

These functions are the only place regret is defined; minimisation and maximisation are
handled by the problem's sign (:func:`~l2obench.problems.base.sense_sign`), so no method has to
know the problem's sense to be scored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l2obench.problems.base import Problem, Split

#: An instance counts as solved when its regret is below this fraction of |optimal objective|.
ACCURACY_RTOL = 1e-3


@dataclass(frozen=True)
class DecisionQuality:
    """Normalized regret (PyEPO's definition), the share of instances solved optimally, and the
    regret of each instance (what paired comparisons between methods use)."""

    norm_regret: float
    accuracy: float
    regrets: np.ndarray


def instance_regrets(problem: Problem, split: Split, pred_costs: np.ndarray) -> np.ndarray:
    """Regret of each instance: true-cost loss of the exact decision under the predicted cost."""
    pred_costs = np.asarray(pred_costs, dtype=np.float64)
    if pred_costs.shape != split.costs.shape:
        raise ValueError(
            f"predicted costs have shape {pred_costs.shape}, expected {split.costs.shape}"
        )
    if not np.all(np.isfinite(pred_costs)):
        raise FloatingPointError("predicted costs contain NaN or infinity")
    decisions, _ = problem.oracle(pred_costs)
    realised = np.einsum("ij,ij->i", split.costs.astype(np.float64), decisions.astype(np.float64))
    gap = realised - split.objectives
    return problem.sign * gap


def decision_quality(problem: Problem, split: Split, pred_costs: np.ndarray) -> DecisionQuality:
    """``Σ regret / Σ |optimal objective|`` and the share of instances with ~zero regret."""
    regrets = instance_regrets(problem, split, pred_costs)
    scale = np.abs(split.objectives)
    norm_regret = float(regrets.sum() / max(scale.sum(), np.finfo(float).tiny))
    solved = regrets <= ACCURACY_RTOL * np.maximum(scale, np.finfo(float).tiny)
    return DecisionQuality(norm_regret=norm_regret, accuracy=float(solved.mean()),
                           regrets=regrets)


def normalized_regret(problem: Problem, split: Split, pred_costs: np.ndarray) -> float:
    """PyEPO's normalized regret of predicted costs on ``split``."""
    return decision_quality(problem, split, pred_costs).norm_regret
