"""``two-stage``: fit the cost model to true costs by MSE, decide with the exact oracle."""

from __future__ import annotations

import torch
from torch.nn import functional as F

from l2obench.methods.torch_method import TorchMethod


class TwoStage(TorchMethod):
    """Predict-then-optimise without the optimisation in training: MSE on costs."""

    description = "MLP cost model trained by MSE on costs; decisions from the exact oracle"
    family = "baseline"
    objective = "MSE to c"

    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        return F.mse_loss(self.model(features), costs)
