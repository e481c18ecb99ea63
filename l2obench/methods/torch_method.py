"""Shared machinery of the PyTorch methods: the cost model, data on the device, the training loop.

A PyTorch method only states its batch loss (and, if it has one, its decision layer); fitting,
model selection on the task's validation score and cost prediction live here once.
"""

from __future__ import annotations

import dataclasses
from abc import abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from l2obench.methods.base import Method
from l2obench.params import Param
from l2obench.problems.base import Dataset, Problem, Split
from l2obench.record import Budget, FitResult
from l2obench.training import train as train_model

#: Parameters every PyTorch method has: the cost model and the optimiser.
TORCH_PARAMS: dict[str, Param] = {
    "lr": Param(float, 1e-2, "Adam learning rate", low=1e-8, high=10.0),
    "batch_size": Param(int, 256, "mini-batch size", low=1, high=1_000_000),
    "hidden": Param(int, 50, "hidden width of the MLP cost model (0: a linear model)", low=0,
                    high=100_000),
}


def cost_model(n_features: int, hidden: int, n_out: int) -> nn.Module:
    """The cost predictor ``features -> costs``: an MLP with one hidden layer (or linear)."""
    if hidden == 0:
        return nn.Linear(n_features, n_out)
    return nn.Sequential(nn.Linear(n_features, hidden), nn.ReLU(), nn.Linear(hidden, n_out))


class TorchMethod(Method):
    """A method whose cost model is a PyTorch module trained by :func:`l2obench.training.train`."""

    params: ClassVar[dict[str, Param]] = TORCH_PARAMS

    def __init__(self, problem: Problem, device: torch.device, seed: int, **params: Any) -> None:
        super().__init__(problem, device, seed, **params)
        torch.manual_seed(self.seed)
        self.model = cost_model(problem.n_features, self.config["hidden"], problem.n_vars).to(
            self.device
        )

    def tensor(self, array: np.ndarray) -> torch.Tensor:
        """``array`` as a float32 tensor on the method's device."""
        return torch.as_tensor(np.asarray(array, dtype=np.float32), device=self.device)

    @abstractmethod
    def batch_loss(
        self, features: torch.Tensor, costs: torch.Tensor, solutions: torch.Tensor
    ) -> torch.Tensor:
        """The training loss of one mini-batch (a scalar with a gradient)."""

    def training_tensors(self, split: Split) -> tuple[torch.Tensor, ...]:
        """The tensors whose rows :meth:`batch_loss` gets in training: features, costs and
        solutions (a method may append more, e.g. the instances' indices)."""
        return tuple(self.tensor(a) for a in (split.features, split.costs, split.solutions))

    def fit(self, data: Dataset, budget: Budget) -> FitResult:
        train_data = self.training_tensors(data.train)
        run = train_model(
            self.model,
            self.batch_loss,
            train_data,
            lambda: self.validation_score(data.val),
            budget,
            direction=self.task_family().validation.direction,
            lr=self.config["lr"],
            batch_size=self.config["batch_size"],
            seed=self.seed,
        )
        return dataclasses.replace(run, **self.iteration_stats())

    def iteration_stats(self) -> dict[str, Any]:
        """Forward/backward iteration statistics gathered during training (none by default)."""
        return {}

    @torch.no_grad()
    def predict_costs(self, features: np.ndarray) -> np.ndarray:
        self.model.eval()
        return self.model(self.tensor(features)).double().cpu().numpy()

    @torch.no_grad()
    def loss(self, split: Split) -> float:
        self.model.eval()
        tensors = (self.tensor(a) for a in (split.features, split.costs, split.solutions))
        return float(self.batch_loss(*tensors))
