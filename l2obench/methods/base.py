"""The method contract: build from a problem, fit within a budget, predict, report statistics.

A method adapter receives the problem (through :class:`~l2obench.problems.base.Problem`), arrays
and a device; it never sees files, the runner or the store. The runner measures time and memory
around :meth:`Method.fit` and computes every metric itself from the predicted costs (and
decisions) with the problem's exact oracle.
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from l2obench.errors import MissingExtraError
from l2obench.params import Param, validate_params
from l2obench.problems.base import Dataset, Problem, Split
from l2obench.registry import Registry


@dataclass(frozen=True)
class Budget:
    """How long a method may train: whichever of epochs or seconds runs out first."""

    max_epochs: int | None = None
    max_seconds: float | None = None


@dataclass
class FitResult:
    """What training reports about itself (never a metric of its decisions)."""

    epochs: int  # completed epochs
    best_epoch: int | None = None  # epoch of the selected model (model selection on val)
    stopped_by: str = "epochs"  # "epochs" | "seconds"
    fwd_iters_mean: float | None = None  # per-instance forward iterations, mean over training
    fwd_iters_max: int | None = None
    bwd_iters_mean: float | None = None
    fwd_unconverged: int | None = None  # instances that hit max_iter during training
    bwd_unconverged: int | None = None  # training steps whose backward solve missed its tol
    history: list[dict[str, float]] = field(default_factory=list)


class Method(ABC):
    """A way of training a model that predicts costs (and possibly decisions) from contexts."""

    name: ClassVar[str]
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    #: Importable modules the method needs beyond l2obench's core dependencies.
    requires: ClassVar[tuple[str, ...]] = ()
    #: The pip extra that installs ``requires`` (``pip install 'l2obench[<extra>]'``).
    extra: ClassVar[str | None] = None
    #: Whether the method has its own decision layer (then ``predict_decisions`` is meaningful).
    outputs_decisions: ClassVar[bool] = False

    def __init__(self, problem: Problem, device: torch.device, seed: int, **params: Any) -> None:
        self.check_available()
        self.problem = problem
        self.device = torch.device(device)
        self.seed = int(seed)
        self.config: dict[str, Any] = self.validate(params)

    @classmethod
    def validate(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The full, checked parameter set for ``params`` (defaults filled in)."""
        return validate_params(f"method '{cls.name}'", cls.params, params)

    @classmethod
    def missing_requirements(cls) -> list[str]:
        """The modules in ``requires`` that cannot be imported here."""
        return [mod for mod in cls.requires if importlib.util.find_spec(mod) is None]

    @classmethod
    def install_hint(cls) -> str:
        target = f"l2obench[{cls.extra}]" if cls.extra else " ".join(cls.requires)
        return f"pip install '{target}'"

    @classmethod
    def check_available(cls) -> None:
        """Raise :class:`MissingExtraError` with an install hint when a requirement is missing."""
        missing = cls.missing_requirements()
        if missing:
            raise MissingExtraError(
                f"method '{cls.name}' needs {', '.join(missing)}: {cls.install_hint()}"
            )

    @abstractmethod
    def fit(self, data: Dataset, budget: Budget) -> FitResult:
        """Train on ``data.train``, select the model on ``data.val``, within ``budget``."""

    @abstractmethod
    def predict_costs(self, features: np.ndarray) -> np.ndarray:
        """Predicted cost vectors ``[N, n_vars]`` for contexts ``[N, n_features]``."""

    def predict_decisions(self, features: np.ndarray) -> np.ndarray | None:
        """The method's own decisions ``[N, n_vars]``, or ``None`` when it has no decision layer."""
        return None

    @abstractmethod
    def loss(self, split: Split) -> float:
        """The method's training objective evaluated on ``split`` (the record's test loss)."""


method_registry: Registry[type[Method]] = Registry(
    "method",
    "l2obench.methods",
    builtins=(
        "l2obench.methods.dys",
        "l2obench.methods.dys_jax",
        "l2obench.methods.two_stage",
        "l2obench.methods.pyepo_losses",
        "l2obench.methods.cvx_net",
    ),
)
register_method = method_registry.register
