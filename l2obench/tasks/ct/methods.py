"""The CT family's methods as l2obench methods: each wraps a named reconstructor
(:mod:`l2obench.tasks.ct.reconstructors`); the learned ones train by MSE to the images in
l2obench's shared training loop, which keeps the epoch of highest validation PSNR."""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch

from l2obench.methods.base import BaseMethod
from l2obench.params import Param
from l2obench.problems.base import Dataset
from l2obench.record import Budget, FitResult
from l2obench.tasks.ct.problem import RAY_TRANSFORM
from l2obench.tasks.ct.reconstructors import METHODS, Learned, Reconstructor, build
from l2obench.training import train

TRAIN_PARAMS: dict[str, Param] = {
    "lr": Param(float, 1e-3, "Adam learning rate", low=1e-8, high=10.0),
    "batch_size": Param(int, 8, "mini-batch size", low=1, high=100_000),
}


class _CTMethod(BaseMethod):
    task = "ct"
    needs = frozenset({RAY_TRANSFORM})
    objective = "MSE to the image"
    reconstructor: ClassVar[str]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        torch.manual_seed(self.seed)
        self.op = self.problem.operator(self.device)  # type: ignore[attr-defined]
        own = {k: v for k, v in self.config.items() if k not in TRAIN_PARAMS}
        self.method: Reconstructor = build(self.reconstructor, self.op, **own)

    def _sinograms(self, features: np.ndarray) -> torch.Tensor:
        return torch.as_tensor(np.asarray(features, np.float32), device=self.device).reshape(
            -1, *self.op.geometry.sinogram_shape)

    def fit(self, data: Dataset[Any], budget: Budget) -> FitResult:
        if not isinstance(self.method, Learned):
            return FitResult(epochs=1, best_epoch=1, val_score=self.validation_score(data.val))
        model = self.method.model
        tensors = (self._sinograms(data.train.features),
                   torch.as_tensor(data.train.targets, device=self.device).reshape(
                       -1, self.problem.size, self.problem.size))
        return train(model, lambda d, x: ((model(d) - x) ** 2).mean(), tensors,
                     lambda: self.validation_score(data.val), budget,
                     direction=self.task_family().validation.direction,
                     lr=self.config["lr"], batch_size=self.config["batch_size"], seed=self.seed)

    def predict(self, features: np.ndarray) -> np.ndarray:
        images = self.method.reconstruct(self._sinograms(features))
        return images.reshape(len(images), -1).double().cpu().numpy()

    def loss(self, split: Any) -> float:
        return float(((self.predict(split.features) - split.targets) ** 2).mean())


class FBPMethod(_CTMethod):
    reconstructor = "fbp"
    description = METHODS["fbp"].description
    family = "baseline"


class TVMinMethod(_CTMethod):
    reconstructor = "tv-min"
    description = METHODS["tv-min"].description
    family = "baseline"
    objective = "TV subject to the fidelity bound"
    params: ClassVar[dict[str, Param]] = {
        "fidelity": Param(float, 0.02, "bound on ‖Ax − d‖ / ‖d‖", low=1e-6, high=0.99),
        "max_iter": Param(int, 2000, "PDHG iterations at most", low=1, high=1_000_000),
        "balance": Param(float, 30.0, "PDHG's dual/primal step ratio", low=1e-6, high=1e6),
    }


class UNetMethod(_CTMethod):
    reconstructor = "unet"
    description = METHODS["unet"].description
    family = "baseline"  # the papers' learned baseline (FBPConvNet), not an optimization layer
    params: ClassVar[dict[str, Param]] = {
        **TRAIN_PARAMS, "width": Param(int, 32, "channels of the first level", low=1, high=512)}


class FFPNMethod(_CTMethod):
    reconstructor = "ffpn"
    description = METHODS["ffpn"].description
    family = "layer"
    params: ClassVar[dict[str, Param]] = {
        **TRAIN_PARAMS,
        "channels": Param(int, 44, "channels of the residual CNN", low=1, high=512),
        "max_iter": Param(int, 50, "fixed-point iterations at most", low=1, high=100_000),
    }


_RESTORE = Param(int, 500, "feasibility-restoring steps at most", low=1, high=1_000_000)
_L2O_PARAMS: dict[str, Param] = {
    **TRAIN_PARAMS,
    "channels": Param(int, 2, "output channels of K", low=1, high=64),
    "max_iter": Param(int, 100, "L-ADMM iterations at most", low=1, high=100_000),
    "restore_steps": _RESTORE,
}


class L2OJFBMethod(_CTMethod):
    reconstructor = "l2o-jfb"
    description = METHODS["l2o-jfb"].description
    family = "layer"
    params = _L2O_PARAMS


class L2OImplicitMethod(_CTMethod):
    reconstructor = "l2o-implicit"
    description = METHODS["l2o-implicit"].description
    family = "layer"
    params = _L2O_PARAMS


class L2OUnrolledMethod(_CTMethod):
    reconstructor = "l2o-unrolled"
    description = METHODS["l2o-unrolled"].description
    family = "layer"
    params: ClassVar[dict[str, Param]] = {
        **TRAIN_PARAMS,
        "channels": Param(int, 2, "output channels of K", low=1, high=64),
        "K": Param(int, 20, "unrolled L-ADMM steps", low=1, high=10_000),
        "restore_steps": _RESTORE,
    }
