"""The method contract: build from a problem, fit within a budget, predict, report statistics.

A method adapter receives the problem (through :class:`~l2obench.problems.base.BaseProblem`),
arrays and a device; it never sees files, the runner or the store. A method serves one task
family (``task``, :mod:`l2obench.tasks`): it produces that family's outputs
(:meth:`BaseMethod.predict`), and the runner measures time and memory around
:meth:`BaseMethod.fit` and scores the outputs itself with the family's scorer (for
predict-then-optimize, :class:`Method`: predicted costs, decided and scored with the problem's
exact oracle).
"""

from __future__ import annotations

import importlib.util
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
import torch

from l2obench.errors import MissingExtraError, ParameterError
from l2obench.params import Param, cell_params, validate_params
from l2obench.problems.base import BaseProblem, Dataset, Problem, Split, capability_doc
from l2obench.record import Budget, FitResult
from l2obench.registry import Registry
from l2obench.tasks.base import Task, get_task


class BaseMethod(ABC):
    """A way of training a model that produces a task family's outputs from contexts.

    Subclasses set ``task`` (the family they serve; a suite pairing them with a problem of
    another family is refused) and implement :meth:`fit`, :meth:`predict` and :meth:`loss`.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]] = {}
    #: Importable modules the method needs beyond l2obench's core dependencies.
    requires: ClassVar[tuple[str, ...]] = ()
    #: The pip extra that installs ``requires`` (``pip install 'l2obench[<extra>]'``).
    extra: ClassVar[str | None] = None
    #: The task family the method serves (a name in ``l2obench.tasks``).
    task: ClassVar[str] = "decision"
    #: What the method needs from a problem beyond its exact oracle (e.g. an LP form).
    needs: ClassVar[frozenset[str]] = frozenset()
    #: The family reports group it in (colours, legends): ``"dys"`` (DYS layers), ``"layer"``
    #: (other optimization layers), ``"pyepo"`` (losses over the exact oracle), ``"baseline"``,
    #: or ``"other"``.
    family: ClassVar[str] = "other"
    #: The name of the training objective (see :meth:`objective_name`), e.g. ``"MSE to x*"``.
    objective: ClassVar[str | None] = None

    def __init__(self, problem: BaseProblem, device: torch.device, seed: int,
                 **params: Any) -> None:
        self.check_available()
        self.problem = problem
        self.device = torch.device(device)
        self.seed = int(seed)
        self.config: dict[str, Any] = self.validate(params)

    @classmethod
    def validate(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The full, checked parameter set for ``params`` (defaults filled in)."""
        return validate_params(f"method '{cls.registered_name()}'", cls.params, params)

    @classmethod
    def cell_params(cls, params: dict[str, Any]) -> dict[str, Any]:
        """The checked parameters as a cell records them (:func:`~l2obench.params.cell_params`:
        defaults filled in, except those of parameters declared ``omit_default``)."""
        return cell_params(cls.params, cls.validate(params))

    @classmethod
    def registered_name(cls) -> str:
        """The registry name (the class name for a class used without the registry)."""
        return getattr(cls, "name", cls.__name__)

    @classmethod
    def unmet_needs(cls, problem: type[BaseProblem]) -> list[str]:
        """What the method needs that ``problem`` does not offer, directly or by implication
        (:meth:`Problem.capabilities`); empty when they pair."""
        return sorted(cls.needs - problem.capabilities())

    @classmethod
    def check_applicable(cls, problem: type[BaseProblem]) -> None:
        """Raise :class:`ParameterError` naming the reason when the method cannot run on
        ``problem``: another task family, or a capability the problem does not offer."""
        if cls.task != problem.task:
            raise ParameterError(
                f"method '{cls.registered_name()}' serves task family '{cls.task}'; problem "
                f"'{problem.registered_name()}' is of family '{problem.task}'")
        missing = cls.unmet_needs(problem)
        if missing:
            raise ParameterError(
                f"method '{cls.registered_name()}' cannot run on problem "
                f"'{problem.registered_name()}': it needs "
                + ", ".join(f"{c} ({capability_doc(c)})" for c in missing)
                + ", which the problem does not offer"
            )

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
                f"method '{cls.registered_name()}' needs {', '.join(missing)}: {cls.install_hint()}"
            )

    @abstractmethod
    def fit(self, data: Dataset, budget: Budget) -> FitResult:
        """Train on ``data.train``, select the model on ``data.val``, within ``budget``."""

    @abstractmethod
    def predict(self, features: np.ndarray) -> np.ndarray:
        """The task family's outputs for contexts ``[N, n_features]`` (what its scorer scores)."""

    @abstractmethod
    def loss(self, split: Any) -> float:
        """The method's training objective evaluated on ``split`` (the record's test loss)."""

    @classmethod
    def task_family(cls) -> Task:
        """The task family the method serves (its metrics, their directions)."""
        return get_task(cls.task)

    def validation_score(self, split: Any) -> float:
        """The task family's validation metric of this model's outputs on ``split``: what
        training keeps its best epoch by (``training.run_epochs``, in the metric's
        direction)."""
        task = self.task_family()
        return task.validation_score(self.problem, split, self.predict(split.features))

    def objective_name(self) -> str:
        """The name of :meth:`loss`'s objective (the record's ``objective``): test losses are
        comparable between methods only where it is the same. :attr:`objective`, else the
        method's name."""
        return self.objective or self.registered_name()


class Method(BaseMethod):
    """A predict-then-optimize method: a model that predicts costs (and possibly decisions)
    from contexts; the runner decides with the exact oracle and scores the regret."""

    problem: Problem
    #: Whether the method has its own decision layer (then ``predict_decisions`` is meaningful).
    outputs_decisions: ClassVar[bool] = False

    def predict(self, features: np.ndarray) -> np.ndarray:
        """The family's outputs: the predicted costs."""
        return self.predict_costs(features)

    @abstractmethod
    def predict_costs(self, features: np.ndarray) -> np.ndarray:
        """Predicted cost vectors ``[N, n_vars]`` for contexts ``[N, n_features]``."""

    def predict_decisions(self, features: np.ndarray) -> np.ndarray | None:
        """The method's own decisions ``[N, n_vars]``, or ``None`` when it has no decision layer."""
        return None

    @abstractmethod
    def loss(self, split: Split) -> float:
        """The method's training objective evaluated on ``split`` (the record's test loss)."""


method_registry: Registry[type[BaseMethod]] = Registry("method", "l2obench.methods")
register_method = method_registry.register
