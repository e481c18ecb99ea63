"""Three denoisers: the observation itself, ridge regression in closed form, and a linear
filter trained by l2obench's shared training loop (which keeps the epoch of highest
validation PSNR, the family's selection metric)."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from l2obench.methods.base import BaseMethod
from l2obench.params import Param
from l2obench.problems.base import Dataset
from l2obench.record import Budget, FitResult
from l2obench.training import train
from tests.denoise_family.task import DenoiseSplit


class _Denoiser(BaseMethod):
    task = "denoise"
    family = "baseline"
    objective = "MSE to the signal"

    def loss(self, split: Any) -> float:
        return float(((self.predict(split.features) - split.targets) ** 2).mean())


class IdentityDenoiser(_Denoiser):
    """Returns the noisy observation: the floor every denoiser should beat."""

    description = "the observation itself"

    def fit(self, data: Dataset[DenoiseSplit], budget: Budget) -> FitResult:
        return FitResult(epochs=1)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64)


class RidgeDenoiser(_Denoiser):
    """The affine map minimising ``‖[Y 1] W − X‖² + λ‖W‖²`` over the training signals."""

    description = "ridge regression from observation to signal, closed form"
    params: ClassVar[dict[str, Param]] = {
        "ridge": Param(float, 1e-3, "the ridge weight λ", low=0.0, high=1e6)}

    def fit(self, data: Dataset[DenoiseSplit], budget: Budget) -> FitResult:
        y = self._design(data.train.features)
        gram = y.T @ y + self.config["ridge"] * np.eye(y.shape[1])
        self.weights = np.linalg.solve(gram, y.T @ data.train.targets.astype(np.float64))
        return FitResult(epochs=1, best_epoch=1, val_score=self.validation_score(data.val),
                         extras={"gram_condition": float(np.linalg.cond(gram))})

    def predict(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(self._design(features) @ self.weights)

    @staticmethod
    def _design(features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, dtype=np.float64)
        return np.hstack([x, np.ones((len(x), 1))])


class LinearDenoiser(_Denoiser):
    """An affine filter trained by Adam on the MSE, in l2obench's training loop."""

    description = "affine filter trained by Adam on the MSE"
    params: ClassVar[dict[str, Param]] = {
        "lr": Param(float, 1e-2, "Adam learning rate", low=1e-8, high=10.0),
        "batch_size": Param(int, 32, "mini-batch size", low=1, high=100_000),
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        torch.manual_seed(self.seed)
        n = self.problem.n_vars
        self.model = nn.Linear(n, n).to(self.device)

    def fit(self, data: Dataset[DenoiseSplit], budget: Budget) -> FitResult:
        tensors = tuple(torch.as_tensor(a, device=self.device)
                        for a in (data.train.features, data.train.targets))
        return train(self.model, lambda x, y: ((self.model(x) - y) ** 2).mean(), tensors,
                     lambda: self.validation_score(data.val), budget,
                     direction=self.task_family().validation.direction,
                     lr=self.config["lr"], batch_size=self.config["batch_size"], seed=self.seed)

    @torch.no_grad()
    def predict(self, features: np.ndarray) -> np.ndarray:
        self.model.eval()
        x = torch.as_tensor(np.asarray(features, dtype=np.float32), device=self.device)
        return self.model(x).double().cpu().numpy()
