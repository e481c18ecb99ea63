"""The implicit DYS layer methods (PyTorch): one layer, the backward mode passed as a value.

``dys-jfb`` trains the cost model through the DYS layer with Jacobian-free backprop; further
backward modes (unrolled, implicit) are subclasses that return another :class:`Backward` value
from :meth:`DYSMethod.make_backward`, nothing more.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from l2obench.layers.backward import JFB, Backward
from l2obench.layers.dys import DYSLayer
from l2obench.layers.fixed_point import FixedPointStats, Picard
from l2obench.methods.base import register_method
from l2obench.methods.torch_method import TORCH_PARAMS, TorchMethod
from l2obench.params import Param
from l2obench.problems.base import Problem

DYS_PARAMS: dict[str, Param] = {
    **TORCH_PARAMS,
    "alpha": Param(float, 0.05, "DYS step size α", low=1e-8, high=10.0),
    "gamma": Param(float, 5e-4, "quadratic regulariser γ (makes the operator contractive)",
                   low=1e-12, high=10.0),
    "tol": Param(float, 1e-2, "per-instance stop: ‖z_{k+1} − z_k‖ ≤ tol", low=1e-12, high=1e3),
    "max_iter": Param(int, 10_000, "cap on forward iterations per solve", low=1),
}


@dataclass
class IterationTally:
    """Running totals of the layer's per-instance iteration counts over training steps."""

    instances: int = 0
    iterations: int = 0
    max_iterations: int = 0
    unconverged: int = 0
    backward_steps: int = 0
    backward_iterations: int = 0

    def add(self, stats: FixedPointStats) -> None:
        self.instances += int(stats.iterations.numel())
        self.iterations += int(stats.iterations.sum())
        self.max_iterations = max(self.max_iterations, int(stats.iterations.max()))
        self.unconverged += int((~stats.converged).sum())
        if stats.backward_iterations is not None:
            self.backward_steps += 1
            self.backward_iterations += int(stats.backward_iterations)

    def summary(self) -> dict[str, Any]:
        """The record's iteration columns (``None`` where nothing was counted)."""
        if not self.instances:
            return {}
        return {
            "fwd_iters_mean": self.iterations / self.instances,
            "fwd_iters_max": self.max_iterations,
            "fwd_unconverged": self.unconverged,
            "bwd_iters_mean": (
                self.backward_iterations / self.backward_steps if self.backward_steps else None
            ),
        }


class DYSMethod(TorchMethod):
    """MLP cost model → DYS layer → decisions, trained by MSE against the optimal decisions."""

    params: ClassVar[dict[str, Param]] = DYS_PARAMS
    outputs_decisions = True

    def __init__(self, problem: Problem, device: torch.device, seed: int, **params: Any) -> None:
        super().__init__(problem, device, seed, **params)
        self.layer = DYSLayer(
            problem.lp(),
            alpha=self.config["alpha"],
            gamma=self.config["gamma"],
            solver=Picard(tol=self.config["tol"], max_iter=self.config["max_iter"]),
            backward=self.make_backward(),
            device=self.device,
        )
        self.tally = IterationTally()

    @abstractmethod
    def make_backward(self) -> Backward:
        """How gradients flow through the fixed point: the one thing DYS variants change."""

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        decisions = self.layer(self.model(features))
        if self.model.training:
            self.tally.add(self.layer.last_stats)
        return F.mse_loss(decisions, solutions)

    def iteration_stats(self) -> dict[str, Any]:
        return self.tally.summary()

    @torch.no_grad()
    def predict_decisions(self, features: np.ndarray) -> np.ndarray:
        self.model.eval()
        return self.layer(self.model(self.tensor(features))).double().cpu().numpy()


@register_method("dys-jfb")
class DYSJFB(DYSMethod):
    """DYS layer trained with Jacobian-free backprop (one tape step at the fixed point)."""

    description = "implicit DYS layer, JFB backward (Wu Fung et al. 2022; McKenzie et al. 2024)"

    def make_backward(self) -> Backward:
        return JFB()
