"""The implicit Davis–Yin splitting (DYS) layer: an LP's regularised solution, as a map of costs.

For an LP in :class:`~l2obench.problems.base.LPForm` and a batch of cost vectors ``w``, the layer
returns ``x(w) = argmin_{x ∈ C} wᵀx + (γ/2)‖x‖²`` over ``C = C_box ∩ C_aff``, found as the fixed
point of the three-operator splitting of docs/methods.md. How the fixed point is found and how
gradients pass through it are values given to the layer (a :class:`FixedPointSolver` and a
:class:`Backward` mode), not flags.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from l2obench.implicit.backward import JFB, Backward
from l2obench.implicit.fixed_point import FixedPointSolver, FixedPointStats, Picard
from l2obench.implicit.linear_solvers import FreeSetCG
from l2obench.layers.projections import AffineForm, AffineProjection, BoxProjection
from l2obench.problems.base import LPForm


class DYSLayer(nn.Module):
    """``w[N, n] ↦ x[N, n]``: the DYS solution of the regularised LP for each cost row.

    The operator, with ``∇f(x) = w + γx`` (the gradient of ``f`` at ``x``, as in docs/methods.md)::

        x = P_box(z)
        y = P_aff(2x − z − α(w + γx))
        T(z; w) = z − x + y

    and the output is ``x = P_box(z)`` at the ``z`` returned by the backward mode (for JFB, one
    taped application of ``T`` at the fixed point ``z*``). ``x`` is feasible for the box exactly
    and for ``A x = b`` up to the solver's tolerance.

    The fpo-dys code evaluates the gradient at ``z`` instead (``w + γz``). The two operators
    differ only along ``z − x`` (in the box's normal cone, rescaled by ``1 + αγ``), so they have
    the same output ``x`` at the fixed point and the same JFB gradient, but different ``∂T/∂z``,
    which implicit differentiation uses (docs/methods.md); ``w + γx`` is the textbook DYS step.

    For ``lp.sense == "max"`` the layer maximises ``wᵀx − (γ/2)‖x‖²``: it negates ``w`` once,
    on entry, and minimises ``−wᵀx + (γ/2)‖x‖²``; gradients w.r.t. ``w`` account for the sign.

    Arguments: ``alpha`` is the step size (convergence needs ``0 < α < 2/γ``), ``gamma > 0`` the
    regularisation that makes the operator contractive; ``solver`` and ``backward`` are values;
    ``dtype`` and ``device`` place the precomputed projections (they move with ``.to()``);
    ``affine_form`` chooses how ``P_aff`` is stored (:class:`AffineProjection`).

    A forward returns ``(x, stats)``: the decisions and the solve's :class:`FixedPointStats`,
    as the JAX layer does. A backward mode that iterates in the backward pass fills the
    statistics' backward fields when that pass runs.
    """

    def __init__(
        self,
        lp: LPForm,
        alpha: float = 0.05,
        gamma: float = 5e-4,
        solver: FixedPointSolver = Picard(),  # noqa: B008 (an immutable value)
        backward: Backward = JFB(),  # noqa: B008 (an immutable value)
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        affine_form: AffineForm = "auto",
    ) -> None:
        super().__init__()
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, not {alpha}")
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, not {gamma}")
        self.alpha = float(alpha)
        self.gamma = float(gamma)
        self.sign = lp.sign
        self.n_vars = lp.n_vars
        self.solver = solver
        self.backward = backward
        self.box = BoxProjection.from_lp(lp, dtype=dtype, device=device)
        self.aff = AffineProjection.from_lp(lp, dtype=dtype, device=device, form=affine_form)
        self.step = DYSOperator(self)

    def operator(self, z: Tensor, shift: Tensor) -> Tensor:
        """One DYS step ``T(z; w)`` for every row, given ``shift = P_aff(−α w)`` (sign applied).

        ``P_aff`` is affine, so ``P_aff(2x − z − α(w + γx)) = M((2 − αγ)x − z) + P_aff(−αw)``: the
        part that depends on ``w`` only is computed once per forward, not once per iteration.
        With ``M = I − N`` (``N = Aᵀ K A``, :meth:`AffineProjection.complement`) the step is

            T(z; w) = (1 − αγ) x + shift + N(z − (2 − αγ) x),   x = P_box(z),

        one application of ``N`` and four passes over the batch. On the tape it is one node
        (:class:`_DYSStep`) that keeps only the clamp's derivative, a boolean per entry, for
        its backward pass.
        """
        if torch.is_grad_enabled() and (z.requires_grad or shift.requires_grad):
            return _DYSStep.apply(z, shift, self)
        return self._step(z, shift)

    def _step(self, z: Tensor, shift: Tensor) -> Tensor:
        """:meth:`operator` without a tape."""
        x = self.box(z)
        damp = 1.0 - self.alpha * self.gamma
        out = self.aff.complement(torch.add(z, x, alpha=-(1.0 + damp)))
        return out.add_(x, alpha=damp).add_(shift)

    def free_set_adjoint(
        self, z_star: Tensor, g: Tensor, solver: FreeSetCG
    ) -> tuple[Tensor, int, Tensor]:
        """The implicit adjoint at ``z*`` for the gradient ``g = ∂ℓ/∂z``, solved on the free
        coordinates: ``(v, iterations, converged[N])``.

        With ``D`` the clamp's derivative at ``z*`` and ``J = ∂T/∂z`` there, the implicit
        gradient ``gᵀ(I − J)⁻¹ ∂T/∂shift`` reaches the costs only through ``M``, and on that
        part it equals ``Π_D g / (αγ)``, ``Π_D`` the orthogonal projector onto
        ``{u : u = D u, A u = 0}`` (flows on the free coordinates): from ``(I − J) u = M r``
        follow ``A D u = 0`` and ``⟨t, r⟩ = αγ ⟨t, D u⟩`` for every such ``t``. So ``v =
        Π_D g / (αγ)`` gives the gradient of the adjoint solve exactly, and differs from its
        solution only by directions that ``M`` removes. ``Π_D g = D g − D Aᵀ y`` with
        ``(A D Aᵀ) y = A D g``: a Laplacian system of the free arcs' graph, in ``m`` unknowns,
        well posed where the ``n``-dimensional adjoint system is nearly singular (``J`` has
        eigenvalues ``1 − αγ``), solved by ``solver`` with a Jacobi preconditioner.
        """
        aff = self.aff
        free = self.box.derivative_mask(z_star)
        zero = torch.zeros((), dtype=g.dtype, device=g.device)
        free_g = torch.where(free, g, zero)
        rhs = aff.constraint(free_g)
        degree = aff.constraint_abs(free.to(g.dtype))
        precond = torch.where(degree > 0, 1.0 / degree.clamp_min(1e-30), torch.ones_like(degree))

        def laplacian(y: Tensor) -> Tensor:
            return aff.constraint(torch.where(free, aff.constraint_t(y), zero))

        scale = torch.linalg.vector_norm(free_g, dim=1)
        y, iterations, converged = solver.solve(laplacian, rhs, precond, scale)
        v = torch.where(free, g - aff.constraint_t(y), zero)
        return v.div_(self.alpha * self.gamma), iterations, converged

    def forward(self, w: Tensor, z0: Tensor | None = None) -> tuple[Tensor, FixedPointStats]:
        """The decisions ``x[N, n]`` for costs ``w[N, n]``, optionally warm-started at ``z0``,
        and the statistics of the solve.

        ``x`` is differentiable w.r.t. ``w`` through the backward mode only (the solver's
        iterations are not taped).
        """
        if w.dim() != 2 or w.shape[1] != self.n_vars:
            raise ValueError(f"w must have shape [N, {self.n_vars}], not {tuple(w.shape)}")
        if w.dtype != self.box.lower.dtype:
            raise ValueError(f"w has dtype {w.dtype}, the layer {self.box.lower.dtype}")
        if z0 is None:
            z0 = torch.zeros_like(w, memory_format=torch.contiguous_format)
        elif z0.shape != w.shape:
            raise ValueError(f"z0 has shape {tuple(z0.shape)}, w {tuple(w.shape)}")
        shift = self.aff((-self.alpha * self.sign) * w)
        z, stats = self.backward(self.step, z0, (shift,), self.solver)
        return self.box(z), stats


class DYSOperator:
    """The layer's operator as a value for its backward mode: ``fn(z, shift)`` is
    :meth:`DYSLayer.operator`, and ``fn.free_set_adjoint`` its implicit adjoint on the free
    coordinates (:meth:`DYSLayer.free_set_adjoint`, for
    :class:`~l2obench.implicit.backward.ImplicitFreeSet`)."""

    def __init__(self, layer: DYSLayer) -> None:
        self.layer = layer

    def __call__(self, z: Tensor, shift: Tensor) -> Tensor:
        return self.layer.operator(z, shift)

    def free_set_adjoint(
        self, z_star: Tensor, g: Tensor, solver: FreeSetCG
    ) -> tuple[Tensor, int, Tensor]:
        return self.layer.free_set_adjoint(z_star, g, solver)


class _DYSStep(torch.autograd.Function):
    """One taped DYS step that saves only the clamp's derivative ``D`` (one boolean per entry).

    Autograd through the step's own operations would keep several ``[N, n]`` tensors per step,
    which is what limits ``K`` in unrolled differentiation. The vector–Jacobian product needs
    only ``D``: with ``T = (1 − αγ) x + shift + N(z − (2 − αγ) x)``, ``x = P_box(z)``,

        gᵀ ∂T/∂z = D ⊙ (1 − αγ)(g − N g) + (1 − D) ⊙ N g,      gᵀ ∂T/∂shift = g,

    written with differentiable operations, so second derivatives (GMRES's Jacobian–vector
    products) pass through it. ``D`` follows autograd's convention for the clamp (1 on the
    bounds), so gradients equal those of the plain operations.
    """

    @staticmethod
    def forward(ctx: Any, z: Tensor, shift: Tensor, layer: DYSLayer) -> Tensor:
        ctx.layer = layer
        ctx.shift_shape = shift.shape
        if ctx.needs_input_grad[0]:  # JFB differentiates at a detached z*: nothing to keep
            ctx.save_for_backward(layer.box.derivative_mask(z))
        return layer._step(z, shift)

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor | None, Tensor | None, None]:
        layer: DYSLayer = ctx.layer
        grad_z = None
        if ctx.needs_input_grad[0]:
            (free,) = ctx.saved_tensors
            comp = layer.aff.complement(g)
            damp = 1.0 - layer.alpha * layer.gamma
            grad_z = torch.where(free, (g - comp) * damp, comp)
        grad_shift = g.sum_to_size(ctx.shift_shape) if ctx.needs_input_grad[1] else None
        return grad_z, grad_shift, None
