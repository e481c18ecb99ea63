"""The DYS layer's forward solve to tolerance: the inner loop of every DYS method."""

from __future__ import annotations

import torch

from l2obench.layers.dys import DYSLayer
from l2obench.measure import synchronize

from .common import BATCH, SIZES, asv_attributes, dataset, device


class DYSForward:
    """One batch of 256 true cost vectors through ``DYSLayer`` with its defaults (α, γ, the
    forward solver and its tolerance), without a tape: the solve each training step starts with.

    The costs are the problem's true costs, so the work is the same at every commit and the
    iteration count is a property of the solver, not of a model's training state.
    """

    params = (list(SIZES),)
    param_names = ("k",)
    version = "1"
    timeout = 300

    def setup(self, k: int) -> None:
        problem, data = dataset(k, BATCH, 1)
        self.device = device()
        self.layer = DYSLayer(problem.lp(), device=self.device)
        self.costs = torch.as_tensor(data.train.costs, device=self.device)

    def solve(self) -> None:
        """The forward solve, finished on the device."""
        with torch.no_grad():
            _, self.stats = self.layer(self.costs)
        synchronize(self.device)

    def time_forward_solve(self, k: int) -> None:
        self.solve()

    @asv_attributes(unit="iterations per instance")
    def track_forward_iterations(self, k: int) -> float:
        """Operator applications per instance, mean over the batch."""
        self.solve()
        return float(self.stats.iterations.float().mean())
