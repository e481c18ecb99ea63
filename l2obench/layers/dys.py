"""The implicit Davis–Yin splitting (DYS) layer: an LP's regularised solution, as a map of costs.

For an LP in :class:`~l2obench.problems.base.LPForm` and a batch of cost vectors ``w``, the layer
returns ``x(w) = argmin_{x ∈ C} wᵀx + (γ/2)‖x‖²`` over ``C = C_box ∩ C_aff``, found as the fixed
point of the three-operator splitting of BACKGROUND §1.1. How the fixed point is found and how
gradients pass through it are values given to the layer (a :class:`FixedPointSolver` and a
:class:`Backward` mode), not flags.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from l2obench.layers.backward import JFB, Backward
from l2obench.layers.fixed_point import FixedPointSolver, FixedPointStats, Picard
from l2obench.layers.projections import AffineForm, AffineProjection, BoxProjection
from l2obench.problems.base import LPForm


class DYSLayer(nn.Module):
    """``w[N, n] ↦ x[N, n]``: the DYS solution of the regularised LP for each cost row.

    The operator, with ``∇f(x) = w + γx`` (the gradient of ``f`` at ``x``, as in BACKGROUND
    §1.1)::

        x = P_box(z)
        y = P_aff(2x − z − α(w + γx))
        T(z; w) = z − x + y

    and the output is ``x = P_box(z)`` at the ``z`` returned by the backward mode (for JFB, one
    taped application of ``T`` at the fixed point ``z*``). ``x`` is feasible for the box exactly
    and for ``A x = b`` up to the solver's tolerance.

    The fpo-dys code evaluates the gradient at ``z`` instead (``w + γz``). The two operators
    differ only along ``z − x`` (in the box's normal cone, rescaled by ``1 + αγ``), so they have
    the same output ``x`` at the fixed point and the same JFB gradient, but different ``∂T/∂z``,
    which implicit differentiation uses (BACKGROUND §1.2); ``w + γx`` is the textbook DYS step.

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

    def operator(self, z: Tensor, shift: Tensor) -> Tensor:
        """One DYS step ``T(z; w)`` for every row, given ``shift = P_aff(−α w)`` (sign applied).

        ``P_aff`` is affine, so ``P_aff(2x − z − α(w + γx)) = M((2 − αγ)x − z) + P_aff(−αw)``: the
        part that depends on ``w`` only is computed once per forward, not once per iteration.
        """
        x = self.box(z)
        y = self.aff.linear(torch.mul(x, 2.0 - self.alpha * self.gamma).sub_(z), shift=shift)
        return y.sub_(x).add_(z)

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
        z, stats = self.backward(self.operator, z0, (shift,), self.solver)
        return self.box(z), stats
