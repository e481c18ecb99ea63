"""The task seam: one contract for every family of learning-to-optimize task.

A *task family* (benchopt's "objective") states what a model outputs for a split of a data set
(predicted cost vectors; reconstructed images; class scores), how such outputs are scored
against the split's ground truth (:meth:`Task.score`: a ``{metric: value}`` map plus, per
metric that has them, one value per instance for paired statistics), each metric's direction,
unit and label (:class:`Metric`), the metric that ranks methods on the test split
(:attr:`Task.rank_metric`) and the validation metric that keeps a training epoch and selects a
configuration (:attr:`Task.validation`). Nothing in the runner, the sweep, the store, the
selection or the report names a family's metric: they read them from the task of the problem a
cell runs on (``Problem.task``, a registered name).

Scoring is the runner's, never a method's about itself: a method only produces outputs
(``Method.predict``), and the task scores them against ground truth the method never saw.
Families are found like problems and methods, through the entry-point group ``l2obench.tasks``.
"""

from __future__ import annotations

import functools
import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from l2obench.errors import L2OBenchError
from l2obench.record import RECORD_COLUMNS
from l2obench.registry import Registry

if TYPE_CHECKING:
    import numpy as np

Direction = Literal["min", "max"]


@dataclass(frozen=True)
class Metric:
    """One scored quantity: its record name, which way is better, its unit and its labels.

    ``name`` is the key in a record's ``metrics`` map and the column the results table and the
    aggregates (``<name>_mean``, …) carry; ``per_instance`` names the record's
    ``per_instance`` entry holding one value per test instance (what paired tests compare),
    or ``None`` when the metric has none.
    """

    name: str
    label: str  # how pages, plots and the terminal name it, e.g. "normalized regret"
    direction: Direction  # "min": lower is better; "max": higher is better
    unit: str = ""  # "" for a dimensionless quantity, else e.g. "dB"
    per_instance: str | None = None
    description: str = ""
    short: str = ""  # a short name for headers ("regret"); the label where empty

    def __post_init__(self) -> None:
        if self.direction not in ("min", "max"):
            raise ValueError(f"metric '{self.name}': direction must be 'min' or 'max', "
                             f"not {self.direction!r}")

    @property
    def sign(self) -> float:
        """``+1`` for ``min``, ``−1`` for ``max``: ``sign · value`` is lower when better."""
        return 1.0 if self.direction == "min" else -1.0

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` is strictly better than ``b``."""
        return self.sign * a < self.sign * b

    @property
    def worst(self) -> float:
        """The value every finite value is better than (``+inf`` for ``min``)."""
        return self.sign * math.inf

    @property
    def arrow(self) -> str:
        """``↓`` (lower is better) or ``↑`` (higher is better)."""
        return "↓" if self.direction == "min" else "↑"

    @property
    def short_label(self) -> str:
        """:attr:`short`, else :attr:`label`."""
        return self.short or self.label

    @property
    def axis_label(self) -> str:
        """The label with its unit, for an axis or a column: ``"PSNR (dB)"``."""
        return f"{self.label} ({self.unit})" if self.unit else self.label


@dataclass(frozen=True)
class Scores:
    """What :meth:`Task.score` returns: each metric's value, and per-instance values.

    ``values`` has one entry per metric of the task's ``metrics`` (``None`` where undefined);
    ``per_instance`` one list per metric with a ``per_instance`` name, in the split's order.
    """

    values: dict[str, float | None]
    per_instance: dict[str, list[float]] = field(default_factory=dict)


class Task(ABC):
    """A task family: what models output, how outputs are scored, which metric ranks.

    Subclasses set the class attributes and implement :meth:`score`. A task is stateless; the
    registry holds classes and :func:`get_task` an instance of each.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    #: What a model outputs for the contexts of a split, in words (``l2obench list`` shows it).
    output: ClassVar[str] = ""
    #: What the pages call the record's ``n_vars`` (one instance's output length), plural.
    n_vars_label: ClassVar[str] = "outputs per instance"
    #: The test metrics :meth:`score` returns, in the order reports show them.
    metrics: ClassVar[tuple[Metric, ...]]
    #: Statistics of a method's training the family's methods report in ``FitResult.extras``
    #: (solver iterations, say): recorded, aggregated and shown after the run's measurements.
    extras: ClassVar[tuple[Metric, ...]] = ()
    #: The name of the metric (one of :attr:`metrics`) that ranks methods on the test split.
    rank_metric: ClassVar[str]
    #: The rank metric evaluated on the validation split: what keeps a training epoch and what
    #: the tuning rule selects configurations by (its ``name`` is the record's key for it).
    validation: ClassVar[Metric]

    @staticmethod
    def checked_outputs(outputs: Any, shape: tuple[int, ...], what: str = "outputs"
                        ) -> np.ndarray:
        """``outputs`` as a float64 array, refused as :meth:`score` says: ``ValueError`` unless
        it has ``shape``, ``FloatingPointError`` if any value is NaN or infinite."""
        import numpy as np

        array = np.asarray(outputs, dtype=np.float64)
        if array.shape != tuple(shape):
            raise ValueError(f"{what} have shape {array.shape}, expected {tuple(shape)}")
        if not np.all(np.isfinite(array)):
            raise FloatingPointError(f"{what} contain NaN or infinity")
        return array

    @abstractmethod
    def score(self, problem: Any, split: Any, outputs: np.ndarray) -> Scores:
        """Score a model's ``outputs`` for ``split``'s contexts against the split's ground truth.

        Raise ``ValueError`` for outputs of the wrong shape and ``FloatingPointError`` for
        non-finite ones (the runner records the latter as a diverged cell).
        """

    def validation_score(self, problem: Any, split: Any, outputs: np.ndarray) -> float:
        """The :attr:`validation` value of ``outputs`` on the validation ``split``."""
        value = self.score(problem, split, outputs).values[self.rank_metric]
        return math.nan if value is None else float(value)

    def ideal_outputs(self, split: Any) -> np.ndarray | None:
        """The outputs that score best on ``split`` (its ground truth in the outputs' form), or
        ``None`` where the family has none: the hook of the contract test, which checks that
        they score at least as well as any perturbation of them."""
        return None

    def deploy(self, problem: Any, method: Any, features: np.ndarray) -> object:
        """What a deployed model does for ``features`` (the record's inference time): by
        default its prediction; a family whose outputs feed a further step overrides it."""
        return method.predict(features)

    # -- declarations --------------------------------------------------------------------------

    @classmethod
    def registered_name(cls) -> str:
        """The registry name (the class name for a class used without the registry)."""
        return getattr(cls, "name", cls.__name__)

    @classmethod
    def metric(cls, name: str) -> Metric:
        """The metric called ``name``: one of :attr:`metrics`, the validation metric or one of
        :attr:`extras`."""
        for metric in (*cls.metrics, cls.validation, *cls.extras):
            if metric.name == name:
                return metric
        known = ", ".join(m.name for m in (*cls.metrics, cls.validation))
        raise L2OBenchError(f"task '{cls.registered_name()}' has no metric '{name}' "
                            f"(it has {known})")

    @classmethod
    def ranking(cls) -> Metric:
        """The :attr:`rank_metric` as a :class:`Metric`."""
        return cls.metric(cls.rank_metric)

    @classmethod
    def check_declaration(cls) -> None:
        """Raise ``L2OBenchError`` where the class attributes contradict each other."""
        names = [m.name for m in cls.metrics]
        where = f"task '{cls.registered_name()}'"
        if len(set(names)) != len(names) or cls.validation.name in names:
            raise L2OBenchError(f"{where}: metric names must be distinct: {names} and "
                                f"'{cls.validation.name}'")
        every = [m.name for m in (*cls.metrics, cls.validation, *cls.extras)]
        if len(set(every)) != len(every):
            raise L2OBenchError(f"{where}: metric and extra names must be distinct: {every}")
        taken = [n for m in (*cls.metrics, cls.validation, *cls.extras)
                 for n in (m.name, m.per_instance) if n in RECORD_COLUMNS]
        if taken:
            raise L2OBenchError(f"{where}: {', '.join(taken)} name record columns; a metric "
                                f"needs a name of its own")
        if cls.rank_metric not in names:
            raise L2OBenchError(f"{where}: rank_metric '{cls.rank_metric}' is not one of "
                                f"its metrics {names}")
        if cls.validation.direction != cls.ranking().direction:
            raise L2OBenchError(f"{where}: the validation metric's direction must be the rank "
                                f"metric's ('{cls.ranking().direction}')")

    @classmethod
    def summary(cls) -> str:
        """One line for ``l2obench list``: the metrics, their directions, the ranking one."""
        metrics = ", ".join(f"{m.name} ({m.arrow}{', ' + m.unit if m.unit else ''})"
                            for m in cls.metrics)
        return (f"outputs {cls.output}; metrics {metrics}; ranks by {cls.rank_metric}, selects "
                f"by {cls.validation.name}")


task_registry: Registry[type[Task]] = Registry("task", "l2obench.tasks")
register_task = task_registry.register

#: The family of problems and methods that do not declare one (predict-then-optimize).
DEFAULT_TASK = "decision"


@functools.cache
def get_task(name: str) -> Task:
    """The instance of the task registered as ``name`` (its declaration checked)."""
    cls = task_registry.get(name)
    cls.check_declaration()
    return cls()


def task_of(families: Iterable[object]) -> Task:
    """The one task of the given family names (an empty one, as a table's missing value, is the
    default family); mixing families is an input error, since their metrics do not compare."""
    names = sorted({name if isinstance(name, str) and name else DEFAULT_TASK
                    for name in families})
    if len(names) > 1:
        raise L2OBenchError(f"these cells span task families {', '.join(names)}: their "
                            f"metrics do not compare; report or run one family at a time")
    return get_task(names[0] if names else DEFAULT_TASK)

