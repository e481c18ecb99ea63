"""l2obench: benchmarks for learning-to-optimize and predict-then-optimize methods.

The public API: the registries and their decorators (to add a problem or a method), the
contracts to implement, and :func:`load_results` to read any results folder.
"""

__version__ = "0.1.0"

from l2obench.methods.base import (
    Budget,
    FitResult,
    Method,
    method_registry,
    register_method,
)
from l2obench.params import Param
from l2obench.problems.base import (
    Dataset,
    LPForm,
    Problem,
    Split,
    problem_registry,
    register_problem,
)
from l2obench.store import load_results

__all__ = [
    "Budget",
    "Dataset",
    "FitResult",
    "LPForm",
    "Method",
    "Param",
    "Problem",
    "Split",
    "__version__",
    "load_results",
    "method_registry",
    "problem_registry",
    "register_method",
    "register_problem",
]
