"""How gradients pass through a fixed point: the backward mode, passed to a layer as a value.

A mode receives the operator ``fn(z, *args)``, a starting point, the operator's arguments (the
ones that carry the tape, e.g. the predicted costs) and a :class:`FixedPointSolver`, and returns
a ``z`` attached to the autograd graph together with the solve's statistics. The layer maps that
``z`` to its output. Each way of differentiating (docs/methods.md) is one subclass:

- :class:`JFB`: Jacobian-free backprop, one taped application of ``fn`` at the fixed point;
- :class:`Unrolled`: ``K`` taped applications of ``fn`` from the starting point, no solver call;
- :class:`Implicit`: one taped application at ``z*`` plus a backward hook on its output that
  solves the adjoint system ``(I − ∂fn/∂z)ᵀ v = g`` with vector–Jacobian products (a
  :class:`~l2obench.implicit.linear_solvers.LinearSolver` value) and fills in the statistics'
  backward fields;
- :class:`ImplicitFreeSet`: the same gradient from a smaller, well-posed system on the free
  coordinates, for operators that provide it (the DYS layer's,
  :meth:`~l2obench.layers.dys.DYSLayer.free_set_adjoint`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor

from l2obench.implicit.fixed_point import FixedPointSolver, FixedPointStats, Operator
from l2obench.implicit.linear_solvers import (
    ConjugateGradientNormal,
    FreeSetCG,
    LinearSolver,
    row_norms,
)


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
        _, z, stats = _step_at_fixed_point(fn, z0, args, solver)
        return z, stats


def _step_at_fixed_point(
    fn: Operator, z0: Tensor, args: tuple[Any, ...], solver: FixedPointSolver
) -> tuple[Tensor, Tensor, FixedPointStats]:
    """``(z*, fn(z*, *args), stats)``: a tape-free solve, then one application on the tape.

    ``z*`` is detached, so the taped application passes gradients to ``args`` only: it is
    ``∂fn/∂args`` at the fixed point, with no path back into the solver's iterations.
    """
    z_star, stats = solver(fn, z0, args)
    z_star = z_star.detach()
    return z_star, fn(z_star, *args), stats


@dataclass(frozen=True)
class Unrolled(Backward):
    """Backprop through ``K`` iterations of ``fn`` from ``z0``, all on the tape (docs/methods.md).

    The returned ``z`` is the ``K``-th iterate, in training and in evaluation alike: the layer
    *is* ``K`` steps, converged or not, and ``solver`` is never called. Memory grows linearly in
    ``K`` (every step keeps its inputs for the backward pass). The statistics say what was done:
    ``iterations = K`` for every instance, and ``converged[i]`` whether instance ``i``'s last
    step moved it by at most the solver's ``tol`` (``‖z_K − z_{K−1}‖₂ ≤ tol``, the stopping test
    :class:`~l2obench.implicit.fixed_point.Picard` would have applied), or ``True`` for a solver
    without a ``tol`` attribute.
    """

    K: int = 50

    def __post_init__(self) -> None:
        if self.K < 1:
            raise ValueError(f"K must be at least 1, not {self.K}")

    def __call__(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...], solver: FixedPointSolver
    ) -> tuple[Tensor, FixedPointStats]:
        z = z0
        for _ in range(self.K):
            z_prev, z = z, fn(z, *args)
        tol = getattr(solver, "tol", None)
        last_step = row_norms((z - z_prev).detach())
        converged = (
            last_step <= tol if tol is not None else torch.ones_like(last_step, dtype=torch.bool)
        )
        iterations = torch.full_like(converged, self.K, dtype=torch.long)
        return z, FixedPointStats(iterations=iterations, converged=converged, z_star=z.detach())


@dataclass(frozen=True)
class Implicit(Backward):
    """Jacobian-based backprop by the implicit function theorem (docs/methods.md).

    Forward: the solver's ``z*`` (no tape), then ``z = fn(z*, *args)`` on the tape, exactly as
    :class:`JFB`. A hook on ``z`` replaces the incoming gradient ``g = ∂ℓ/∂z`` by the solution
    ``v`` of the adjoint system ``(I − J)ᵀ v = g``, ``J = ∂fn/∂z`` at ``z*``, found by
    ``linear_solver`` from vector–Jacobian products; autograd then carries ``v`` through the
    taped application into ``args``, giving ``vᵀ ∂fn/∂args = gᵀ (I − J)⁻¹ ∂fn/∂args``, which is
    ``gᵀ dz*/d args``. (``fn(z*) ≈ z*``, and ``J (I − J)⁻¹ + I = (I − J)⁻¹``, so backprop through
    the one taped step adds nothing beyond that.)

    The products ``uᵀJ`` differentiate a second application ``fn(z_in, *args)`` that the hook
    builds on its own tape, from a fresh leaf ``z_in`` (a detached copy of ``z*``) and detached
    ``args``, and releases when it returns. So ``z*`` never requires grad in the forward graph:
    the main backward pass computes no gradient with respect to it, nothing accumulates in a
    ``.grad``, nothing reaches the solver's inputs, and forward memory is that of :class:`JFB`.
    The price is one more application of ``fn`` per backward, negligible against the solve.

    When the hook runs it sets ``stats.backward_iterations`` (the linear solver's iterations) and
    ``stats.backward_converged`` (whether every instance met its tolerance) on the statistics
    returned with ``z``. Under ``torch.no_grad`` no hook is registered and the mode is JFB. The
    default solver is the one ``dys-implicit`` defaults to, for the reasons given there. ``v``
    carries no graph, so gradients of second order through this mode are not supported.
    """

    linear_solver: LinearSolver = ConjugateGradientNormal()  # noqa: RUF009 (an immutable value)

    def __call__(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...], solver: FixedPointSolver
    ) -> tuple[Tensor, FixedPointStats]:
        z_star, z, stats = _step_at_fixed_point(fn, z0, args, solver)
        if z.requires_grad:
            detached = tuple(a.detach() if isinstance(a, Tensor) else a for a in args)
            z.register_hook(lambda g: self._adjoint(fn, z_star, detached, stats, g))
        return z, stats

    def _adjoint(
        self, fn: Operator, z_star: Tensor, args: tuple[Any, ...], stats: FixedPointStats, g: Tensor
    ) -> Tensor:
        """``v = (I − J)⁻ᵀ g`` by the linear solver; records its iterations in ``stats``."""
        with torch.enable_grad():
            z_in = z_star.clone().requires_grad_(True)
            out = fn(z_in, *args)

        def vjp(u: Tensor) -> Tensor:
            (grad,) = torch.autograd.grad(
                out, z_in, u, retain_graph=True, create_graph=u.requires_grad
            )
            return grad

        v, iterations, converged = self.linear_solver(vjp, g.detach())
        stats.backward_iterations = iterations
        stats.backward_converged = bool(converged.all())
        return v


@runtime_checkable
class FreeSetOperator(Protocol):
    """An operator that solves its own implicit adjoint on the free coordinates."""

    def __call__(self, z: Tensor, *args: Any) -> Tensor: ...

    def free_set_adjoint(
        self, z_star: Tensor, g: Tensor, solver: FreeSetCG
    ) -> tuple[Tensor, int, Tensor]: ...


@dataclass(frozen=True)
class ImplicitFreeSet(Backward):
    """Implicit differentiation with the adjoint solved on the free coordinates.

    Forward as :class:`Implicit` (and :class:`JFB`): the solver's ``z*``, then one taped
    application ``z = fn(z*, *args)``. The hook on ``z`` replaces ``g = ∂ℓ/∂z`` by
    ``fn.free_set_adjoint(z*, g, solver)``, a ``v`` that carries the implicit gradient to the
    arguments exactly (see :meth:`~l2obench.layers.dys.DYSLayer.free_set_adjoint` for why),
    from a Laplacian system on the coordinates inside the box instead of the nearly singular
    ``(I − J)ᵀ v = g``. ``fn`` must be a :class:`FreeSetOperator`; the statistics'
    backward fields are filled in as by :class:`Implicit`.
    """

    solver: FreeSetCG = FreeSetCG()  # noqa: RUF009 (an immutable value)

    def __call__(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...], solver: FixedPointSolver
    ) -> tuple[Tensor, FixedPointStats]:
        if not isinstance(fn, FreeSetOperator):
            raise TypeError("ImplicitFreeSet needs an operator with free_set_adjoint (the DYS "
                            f"layer's), not {type(fn).__name__}")
        z_star, z, stats = _step_at_fixed_point(fn, z0, args, solver)
        if z.requires_grad:
            z.register_hook(lambda g: self._adjoint(fn, z_star, stats, g))
        return z, stats

    def _adjoint(
        self, fn: FreeSetOperator, z_star: Tensor, stats: FixedPointStats, g: Tensor
    ) -> Tensor:
        v, iterations, converged = fn.free_set_adjoint(z_star, g.detach(), self.solver)
        stats.backward_iterations = iterations
        stats.backward_converged = bool(converged.all())
        return v
