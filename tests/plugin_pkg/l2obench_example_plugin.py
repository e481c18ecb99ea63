"""A third-party package that adds a method and a problem to l2obench through entry points."""

from typing import ClassVar

import numpy as np

from l2obench import Budget, Dataset, FitResult, Method, Param, Split
from l2obench.problems.shortest_path import ShortestPath


class MeanCost(Method):
    """Predicts the mean training cost vector for every context."""

    description = "mean of the training costs (a plugin test)"
    params: ClassVar[dict[str, Param]] = {
        "shrink": Param(float, 1.0, "multiplies the mean", low=0.0)
    }

    def fit(self, data: Dataset, budget: Budget) -> FitResult:
        self.mean = data.train.costs.mean(axis=0) * self.config["shrink"]
        return FitResult(epochs=1)

    def predict_costs(self, features: np.ndarray) -> np.ndarray:
        return np.tile(self.mean, (len(features), 1))

    def loss(self, split: Split) -> float:
        return float(((self.predict_costs(split.features) - split.costs) ** 2).mean())


class SmallGrid(ShortestPath):
    """The grid shortest path with small data sets by default."""

    description = "shortest path with 60 training instances (a plugin test)"
