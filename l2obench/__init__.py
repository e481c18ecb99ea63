"""l2obench: benchmarks for learning-to-optimize and predict-then-optimize methods.

The public API: the registries and their decorators (to add a problem or a method), the
contracts to implement, and :func:`load_results` to read any results folder. Names are imported
when first used, so ``import l2obench`` (and any of its light modules) loads neither PyTorch nor
pandas.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: Public name -> the module that defines it.
_EXPORTS = {
    "Budget": "l2obench.record",
    "Cell": "l2obench.record",
    "FitResult": "l2obench.record",
    "Record": "l2obench.record",
    "Status": "l2obench.record",
    "BaseMethod": "l2obench.methods.base",
    "Method": "l2obench.methods.base",
    "method_registry": "l2obench.methods.base",
    "register_method": "l2obench.methods.base",
    "Param": "l2obench.params",
    "BaseProblem": "l2obench.problems.base",
    "Capability": "l2obench.problems.base",
    "ConicForm": "l2obench.problems.base",
    "Dataset": "l2obench.problems.base",
    "LPForm": "l2obench.problems.base",
    "Problem": "l2obench.problems.base",
    "SecondOrderCone": "l2obench.problems.base",
    "Split": "l2obench.problems.base",
    "problem_registry": "l2obench.problems.base",
    "register_problem": "l2obench.problems.base",
    "load_results": "l2obench.store",
    "Metric": "l2obench.tasks.base",
    "Scores": "l2obench.tasks.base",
    "Task": "l2obench.tasks.base",
    "register_task": "l2obench.tasks.base",
    "task_registry": "l2obench.tasks.base",
}

__all__ = [*sorted(_EXPORTS), "__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'l2obench' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # the names as a type checker sees them (re-exported)
    from l2obench.methods.base import BaseMethod as BaseMethod
    from l2obench.methods.base import Method as Method
    from l2obench.methods.base import method_registry as method_registry
    from l2obench.methods.base import register_method as register_method
    from l2obench.params import Param as Param
    from l2obench.problems.base import BaseProblem as BaseProblem
    from l2obench.problems.base import Capability as Capability
    from l2obench.problems.base import ConicForm as ConicForm
    from l2obench.problems.base import Dataset as Dataset
    from l2obench.problems.base import LPForm as LPForm
    from l2obench.problems.base import Problem as Problem
    from l2obench.problems.base import SecondOrderCone as SecondOrderCone
    from l2obench.problems.base import Split as Split
    from l2obench.problems.base import problem_registry as problem_registry
    from l2obench.problems.base import register_problem as register_problem
    from l2obench.record import Budget as Budget
    from l2obench.record import Cell as Cell
    from l2obench.record import FitResult as FitResult
    from l2obench.record import Record as Record
    from l2obench.record import Status as Status
    from l2obench.store import load_results as load_results
    from l2obench.tasks.base import Metric as Metric
    from l2obench.tasks.base import Scores as Scores
    from l2obench.tasks.base import Task as Task
    from l2obench.tasks.base import register_task as register_task
    from l2obench.tasks.base import task_registry as task_registry
