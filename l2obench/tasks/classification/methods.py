"""The classification methods: one network, four ways to train it (:mod:`.modes`).

``implicit-jfb``, ``implicit-jacobian``, ``implicit-unrolled`` and ``explicit`` build the same
:class:`~.network.ImplicitClassifier` (width from the problem's size, parameters from the seed
alone, so every method starts from the same ones) and differ only in the backward mode. Each
trains by Adam on the cross-entropy and keeps the epoch of best validation accuracy
(:func:`~.fit.fit_classifier`); its outputs are class scores.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from torch.nn import functional as F

from l2obench.methods.base import BaseMethod
from l2obench.params import Param
from l2obench.problems.base import Dataset
from l2obench.record import Budget, FitResult
from l2obench.tasks.classification.fit import fit_classifier, predict_logits
from l2obench.tasks.classification.modes import ModeSettings, build_classifier
from l2obench.tasks.classification.network import Architecture, ImplicitClassifier
from l2obench.tasks.classification.splits import LabelledSplit

COMMON: dict[str, Param] = {
    "lr": Param(float, 1e-3, "Adam learning rate", low=1e-8, high=10.0),
    "batch_size": Param(int, 64, "mini-batch size", low=1, high=1_000_000),
    "contraction": Param(float, 0.5, "Lipschitz bound γ of the latent map", low=1e-3,
                         high=0.999),
}
FORWARD: dict[str, Param] = {
    "tol": Param(float, 1e-3, "forward fixed-point tolerance (per instance step norm)",
                 low=1e-12, high=10.0),
    "max_iter": Param(int, 200, "forward fixed-point iteration cap", low=1, high=1_000_000),
}


class _ClassifierMethod(BaseMethod):
    task = "classification"
    family = "layer"
    objective = "cross-entropy"
    mode: ClassVar[str]
    #: The batch of the evaluation passes (no tape: larger than a training batch).
    EVAL_BATCH = 512

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.config
        settings = ModeSettings(
            forward_tol=cfg.get("tol", 1e-3), forward_max_iter=cfg.get("max_iter", 200),
            cg_tol=cfg.get("cg_tol", 1e-4), cg_max_iter=cfg.get("cg_max_iter", 100),
            unroll_steps=cfg.get("K", 10))
        self.input_shape: tuple[int, ...] = self.problem.input_shape  # type: ignore[attr-defined]
        self.model: ImplicitClassifier = build_classifier(
            self.input_shape, self.problem.n_vars,
            Architecture(width=self.problem.size, contraction=cfg["contraction"]),
            self.mode, settings, seed=self.seed, device=self.device)

    def fit(self, data: Dataset[LabelledSplit], budget: Budget) -> FitResult:
        return fit_classifier(
            self.model, data.train, budget,
            validate=lambda: self.validation_score(data.val),
            direction=self.task_family().validation.direction,
            lr=self.config["lr"], batch_size=self.config["batch_size"], seed=self.seed,
            device=self.device)

    def _inputs(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float32).reshape(-1, *self.input_shape)

    def predict(self, features: np.ndarray) -> np.ndarray:
        return predict_logits(self.model, self._inputs(features), batch_size=self.EVAL_BATCH,
                              device=self.device).astype(np.float64)

    def loss(self, split: Any) -> float:
        logits = torch.as_tensor(self.predict(split.features))
        return float(F.cross_entropy(logits, torch.as_tensor(split.labels)))


class ImplicitJFB(_ClassifierMethod):
    """Jacobian-free backprop through the fixed point (Wu Fung et al., AAAI 2022)."""

    description = "implicit network trained by Jacobian-free backprop"
    mode = "jfb"
    params: ClassVar[dict[str, Param]] = {**COMMON, **FORWARD}


class ImplicitJacobian(_ClassifierMethod):
    """The implicit-function-theorem gradient, its adjoint solved by batched CG."""

    description = "implicit network, Jacobian-based gradient (adjoint by CG)"
    mode = "jacobian"
    params: ClassVar[dict[str, Param]] = {
        **COMMON, **FORWARD,
        "cg_tol": Param(float, 1e-4, "adjoint CG relative tolerance", low=1e-14, high=1.0),
        "cg_max_iter": Param(int, 100, "adjoint CG iteration cap", low=1, high=1_000_000),
    }


class ImplicitUnrolled(_ClassifierMethod):
    """Backprop through ``K`` taped iterations of the latent map from zero."""

    description = "the implicit network's map unrolled K times, backprop through all"
    mode = "unrolled"
    params: ClassVar[dict[str, Param]] = {
        **COMMON, "K": Param(int, 10, "unrolled iterations", low=1, high=100_000)}


class Explicit(_ClassifierMethod):
    """The same network applied once, ``z = T(0; x)``: the explicit control."""

    description = "the same parameters, one pass (explicit network)"
    family = "baseline"
    mode = "explicit"
    params: ClassVar[dict[str, Param]] = dict(COMMON)
