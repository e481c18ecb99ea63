"""The problem contract: parameters, generated data, optional forms and a batched exact oracle.

A problem is built from validated parameters (its size among them), draws train/val/test data
from one seeded draw and solves many cost vectors exactly at once. Beyond that it may offer
(:class:`Capability`) a linear-programming form for the layers that solve over one (``A x = b``,
bounds, sense: :class:`LPForm`), a conic form for layers that take second-order cones as well
(:class:`ConicForm`; every LP form is one), or 0/1 decisions. Methods state what they need, and a
pairing that cannot work is refused before it runs. Methods and the runner see a problem only
through this class.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Literal, TypeVar

import numpy as np
import scipy.sparse as sp

from l2obench.errors import L2OBenchError
from l2obench.params import Param, validate_params
from l2obench.registry import Registry

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike

Sense = Literal["min", "max"]


def sense_sign(sense: Sense) -> float:
    """``+1`` for a minimisation, ``−1`` for a maximisation: ``sign · cᵀx`` is minimised.

    The one place the sense becomes arithmetic; everything that turns a problem into a
    minimisation (regret, losses, layers) multiplies by this sign.
    """
    if sense not in ("min", "max"):
        raise ValueError(f"sense must be 'min' or 'max', not {sense!r}")
    return 1.0 if sense == "min" else -1.0


class Capability(StrEnum):
    """The built-in names of what a problem offers beyond its data (and, in its family, its
    scorer), and a method may need. Capabilities are an open set of names: a plugin adds its
    own with :func:`declare_capability`, and ``offers`` and ``needs`` hold plain strings too."""

    LP_FORM = "lp-form"
    CONIC_FORM = "conic-form"
    BINARY = "binary"
    SLACK_FORM = "slack-form"

    @property
    def doc(self) -> str:
        return capability_doc(self)


#: What each capability means, by name: the built-ins' and those plugins declare.
CAPABILITY_DOCS: dict[str, str] = {
    Capability.LP_FORM: "an LP form or LP relaxation of its decisions, lp()",
    Capability.CONIC_FORM: "a convex conic form of its decisions (linear constraints and "
                           "second-order cones), conic()",
    Capability.BINARY: "decisions that are 0/1 vectors",
    Capability.SLACK_FORM: "an LP form whose auxiliary columns are slacks, each in one row only, "
                           "so that the constraints binding at a decision follow from it",
}

#: Capabilities that come with another: an LP form is a conic form without cones.
IMPLIED_CAPABILITIES: dict[str, frozenset[str]] = {
    Capability.LP_FORM: frozenset({Capability.CONIC_FORM}),
}


def declare_capability(name: str, doc: str) -> str:
    """Declare a capability a plugin's problems offer and its methods need (e.g. a forward
    operator of a reconstruction problem), with what it means; returns ``name``."""
    existing = CAPABILITY_DOCS.setdefault(name, doc)
    if existing != doc:
        raise L2OBenchError(f"capability '{name}' is declared twice, with different meanings")
    return name


def capability_doc(name: str) -> str:
    """What capability ``name`` means (as declared)."""
    return CAPABILITY_DOCS.get(name, "an undeclared capability")


@dataclass(frozen=True)
class LPForm:
    """``min`` or ``max`` of ``cᵀx`` subject to ``A x = b`` and ``lower ≤ x ≤ upper``.

    ``A`` is sparse (CSR); it may have redundant rows (a flow-conservation matrix has rank
    ``n_nodes - 1``), and consumers that project onto ``A x = b`` must allow for it.

    ``gram_kronecker = (L₁, L₂)``, optional, declares that ``A Aᵀ = L₁ ⊗ I + I ⊗ L₂`` (a
    Kronecker sum of two small symmetric matrices, as the Laplacian of a grid graph is).
    Projections onto ``A x = b`` then apply ``(A Aᵀ)⁺`` from the factors' spectra instead of an
    ``m × m`` matrix; the declaration is checked against ``A`` where it is used.
    """

    A: sp.csr_matrix
    b: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    sense: Sense
    gram_kronecker: tuple[np.ndarray, np.ndarray] | None = None

    @property
    def n_vars(self) -> int:
        return int(self.A.shape[1])

    @property
    def n_constraints(self) -> int:
        return int(self.A.shape[0])

    @property
    def sign(self) -> float:
        """:func:`sense_sign` of the form's sense."""
        return sense_sign(self.sense)


@dataclass(frozen=True)
class SecondOrderCone:
    """The constraint ``‖F x‖₂ ≤ bound`` on a form's variables ``x``.

    ``F`` is sparse (CSR), ``[k, n_vars]``; a quadratic constraint ``xᵀ Σ x ≤ r`` with
    ``Σ = Fᵀ F`` is the cone with ``bound = √r`` (any factor of ``Σ`` will do, and a sparse or
    low-rank one keeps the solvers fast).
    """

    F: sp.csr_matrix
    bound: float


@dataclass(frozen=True)
class ConicForm:
    """``min`` or ``max`` of ``cᵀx`` over the linear part and every second-order cone.

    ``linear`` holds the objective sense, the equalities ``A x = b`` and the bounds; each cone in
    ``cones`` adds ``‖F x‖₂ ≤ bound``. The program is convex, so a cone solver (Clarabel) solves
    it exactly and a differentiable convex layer (cvxpylayers) can solve a regularised version of
    it. A problem with an LP form has this form with no cones (:meth:`Problem.conic`); a problem
    with a cone has no LP form (its ``linear`` part alone is only a relaxation of the feasible
    set, not offered as one).
    """

    linear: LPForm
    cones: tuple[SecondOrderCone, ...] = ()

    def __post_init__(self) -> None:
        for cone in self.cones:
            if cone.F.shape[1] != self.linear.n_vars:
                raise ValueError(
                    f"a cone's F has {cone.F.shape[1]} columns; the form has "
                    f"{self.linear.n_vars} variables"
                )
            if not cone.bound >= 0.0:
                raise ValueError(f"a cone's bound must be non-negative, got {cone.bound}")

    @property
    def n_vars(self) -> int:
        return self.linear.n_vars

    @property
    def sense(self) -> Sense:
        return self.linear.sense

    @property
    def sign(self) -> float:
        """:func:`sense_sign` of the form's sense."""
        return self.linear.sign


@dataclass(frozen=True)
class Split:
    """One split of a predict-then-optimize data set: contexts, true costs and the exact
    optimum under them (another task family's problems use a split type of their own)."""

    features: np.ndarray  # (N, n_features) float32
    costs: np.ndarray  # (N, n_vars) float32
    solutions: np.ndarray  # (N, n_vars) float32, optimal decisions under `costs`
    objectives: np.ndarray  # (N,) float64, optimal objective values under `costs`

    def __len__(self) -> int:
        return int(self.features.shape[0])


#: A split of any task family: it has ``features`` (the contexts) and a length.
S = TypeVar("S")


@dataclass(frozen=True)
class Dataset(Generic[S]):
    """Train, validation and test splits drawn together from one distribution (``Split`` for
    the predict-then-optimize family, a family's own split type otherwise)."""

    train: S
    val: S
    test: S


class BaseProblem(ABC):
    """What every problem has, whatever its task family: parameters, a size, seeded data.

    Subclasses declare ``params`` (one of them, named by ``size_param``, is the problem size the
    suites sweep over), ``task`` (the registered name of the task family that scores models on
    it, :mod:`l2obench.tasks`) and implement :meth:`generate` and :attr:`n_vars`. The
    predict-then-optimize family's problems subclass :class:`Problem`, which adds the exact
    oracle and the optional forms; another family's problems subclass this class with what its
    task's scorer needs (their splits may be of their own type, with ``features`` and a
    length).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    params: ClassVar[dict[str, Param]]
    size_param: ClassVar[str]
    #: The task family that scores models on this problem (a name in ``l2obench.tasks``).
    task: ClassVar[str] = "decision"
    #: What the problem offers methods beyond its data (and, in its family, its scorer).
    offers: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, **params: Any) -> None:
        self.config: dict[str, Any] = self.validate(params)

    @classmethod
    def validate(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """The full, checked parameter set for ``params`` (defaults filled in), without building
        the problem."""
        return validate_params(f"problem '{cls.registered_name()}'", cls.params, params)

    @classmethod
    def registered_name(cls) -> str:
        """The registry name (the class name for a class used without the registry)."""
        return getattr(cls, "name", cls.__name__)

    @classmethod
    def capabilities(cls) -> frozenset[str]:
        """What the problem offers, with what that implies (:data:`IMPLIED_CAPABILITIES`)."""
        implied = [IMPLIED_CAPABILITIES.get(c, frozenset()) for c in cls.offers]
        return cls.offers.union(*implied)

    @property
    def size(self) -> int:
        """The value of the size parameter (e.g. the grid side ``k``)."""
        return int(self.config[self.size_param])

    @property
    def n_features(self) -> int:
        return int(self.config["n_features"])

    @property
    @abstractmethod
    def n_vars(self) -> int:
        """The length of one instance's output (decision variables; pixels): the record's
        ``n_vars``."""

    @abstractmethod
    def generate(self) -> Dataset[Any]:
        """Draw train, val and test splits from one seeded draw."""

    @classmethod
    def defaults(cls) -> Mapping[str, Any]:
        return {name: p.default for name, p in cls.params.items()}


class Problem(BaseProblem):
    """A family of optimisation problems with a data generator and an exact oracle: the
    problems of the predict-then-optimize task family (``task = "decision"``).

    Subclasses implement :meth:`generate` and :meth:`oracle`, and list in ``offers`` what else
    they provide: with :attr:`Capability.LP_FORM` they implement :meth:`lp` (which also gives
    :meth:`conic`, :attr:`n_vars` and :attr:`sense`); a problem with a conic form but no LP form
    implements :meth:`conic` and overrides :attr:`n_vars` and :attr:`sense`.
    """

    @property
    def n_vars(self) -> int:
        """The decision variables: the length of a cost vector, a solution and a decision.

        They are the first ``n_vars`` columns of :meth:`lp`. A form may have further columns
        after them (:attr:`n_aux`, e.g. the slacks that turn ``W x ≤ b`` into equalities),
        which the objective prices at zero: a method that solves over ``lp()`` appends that many
        zero costs to a cost vector and keeps the first ``n_vars`` entries of the result. By
        default there are none; a problem with auxiliary columns overrides this property, and
        so does a problem without an LP form.
        """
        return self.lp().n_vars

    @property
    def n_aux(self) -> int:
        """How many auxiliary (zero-cost) columns :meth:`conic` (and :meth:`lp`, which it
        extends) has after the decision variables; 0 for a problem with neither form."""
        if Capability.CONIC_FORM not in self.capabilities():
            return 0
        return self.conic().n_vars - self.n_vars

    @property
    def sense(self) -> Sense:
        """``"min"`` or ``"max"``: the LP form's by default (a problem without one overrides)."""
        return self.lp().sense

    @property
    def sign(self) -> float:
        """:func:`sense_sign` of the problem's sense: ``sign · cᵀx`` is minimised."""
        return sense_sign(self.sense)

    def lp(self) -> LPForm:
        """The linear-programming form (or LP relaxation) of one instance (see :attr:`n_vars`).

        Only problems that offer :attr:`Capability.LP_FORM` have one; they override this.
        """
        raise L2OBenchError(f"problem '{self.registered_name()}' has no LP form")

    def conic(self) -> ConicForm:
        """The conic form of one instance: linear constraints and second-order cones.

        By default the LP form without cones, for problems that offer
        :attr:`Capability.LP_FORM`; a problem whose feasible set needs a cone offers
        :attr:`Capability.CONIC_FORM` and overrides this. Its columns follow :attr:`n_vars`
        like those of :meth:`lp`.
        """
        if Capability.LP_FORM in self.offers:
            return ConicForm(self.lp())
        raise L2OBenchError(f"problem '{self.registered_name()}' has no conic form")

    @abstractmethod
    def generate(self) -> Dataset[Split]:
        """Draw train, val and test splits from one seeded draw."""

    @abstractmethod
    def oracle(self, costs: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Solve each row of ``costs[N, n_vars]`` exactly.

        Returns ``(solutions[N, n_vars], objectives[N])``, objectives in float64.
        """

    def make_split(self, features: np.ndarray, costs: np.ndarray) -> Split:
        """A split whose solutions and objectives come from this problem's exact oracle."""
        answer = self.oracle(costs)
        n = len(costs)
        if not (isinstance(answer, tuple) and len(answer) == 2
                and np.shape(answer[0]) == (n, self.n_vars) and np.shape(answer[1]) == (n,)):
            raise TypeError(
                f"{type(self).__name__}.oracle must return (solutions[N, n_vars], "
                f"objectives[N]) for costs[N, n_vars]; for N = {n}, n_vars = {self.n_vars} it "
                f"returned {_shapes(answer)}")
        solutions, objectives = answer
        return Split(
            features=np.ascontiguousarray(features, dtype=np.float32),
            costs=np.ascontiguousarray(costs, dtype=np.float32),
            solutions=np.ascontiguousarray(solutions, dtype=np.float32),
            objectives=np.asarray(objectives, dtype=np.float64),
        )


def _shapes(value: Any) -> str:
    """What an oracle returned, by its shapes: ``a tuple of shapes (5, 3), (5,)``."""
    if isinstance(value, tuple):
        return "a tuple of shapes " + ", ".join(str(np.shape(v)) for v in value)
    return f"{type(value).__name__} of shape {np.shape(value)}"


#: The parameters every PyEPO-style generator shares: split sizes, features, noise and seed.
DATA_PARAMS: dict[str, Param] = {
    "n_train": Param(int, 1000, "number of training instances", low=1, high=10_000_000),
    "n_val": Param(int, 200, "number of validation instances", low=1, high=10_000_000),
    "n_test": Param(int, 200, "number of test instances", low=1, high=10_000_000),
    "n_features": Param(int, 5, "dimension p of the context features", low=1, high=100_000),
    "noise": Param(
        float, 0.5, "half-width ē of the multiplicative noise U[1−ē, 1+ē]", low=0.0, high=1.0
    ),
    "seed": Param(int, 0, "seed of the single numpy RandomState draw", low=0, high=2**32 - 1),
}


problem_registry: Registry[type[BaseProblem]] = Registry("problem", "l2obench.problems")
register_problem = problem_registry.register
