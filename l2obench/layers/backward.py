"""How gradients pass through a fixed point: the backward mode, passed to a layer as a value.

A mode receives the operator ``fn(z, *args)``, a starting point, the operator's arguments (the
ones that carry the tape, e.g. the predicted costs) and a :class:`FixedPointSolver`, and returns
a ``z`` attached to the autograd graph together with the solve's statistics. The layer maps that
``z`` to its output. Each way of differentiating (BACKGROUND §1.2) is one subclass:

- :class:`JFB`: Jacobian-free backprop, one taped application of ``fn`` at the fixed point;
- an unrolled mode: ``K`` taped applications of ``fn`` (and no solver call, or one to warm up);
- an implicit mode: one taped application at ``z*`` plus a backward hook on its output that
  solves the adjoint system ``(I − ∂fn/∂z)ᵀ v = g`` with vector–Jacobian products and fills in
  the statistics' backward fields.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from l2obench.layers.fixed_point import FixedPointSolver, FixedPointStats, Operator


class Backward(ABC):
    """A way of returning a fixed point of ``fn`` that autograd can differentiate."""

    @abstractmethod
    def __call__(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...], solver: FixedPointSolver
    ) -> tuple[Tensor, FixedPointStats]:
        """``z ≈ fn(z, *args)`` on the tape, starting from ``z0``, and the solve's statistics."""


@dataclass(frozen=True)
class JFB(Backward):
    """Jacobian-free backprop (Wu Fung et al., AAAI 2022).

    Solves for ``z*`` with ``solver`` (no tape), then returns ``fn(z*.detach(), *args)`` on the
    tape: the gradient is that of a single application of the operator, so backward costs one
    layer and memory does not grow with the iteration count. The statistics are the solver's;
    the taped application is not counted in ``iterations``.
    """

    def __call__(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...], solver: FixedPointSolver
    ) -> tuple[Tensor, FixedPointStats]:
        z_star, stats = solver(fn, z0, args)
        return fn(z_star.detach(), *args), stats
