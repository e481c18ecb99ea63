"""The implicit DYS layer in JAX: the operator of :mod:`l2obench.layers.dys` with JFB gradients.

The layer computes what :class:`~l2obench.layers.dys.DYSLayer` with ``Picard`` and ``JFB``
computes, from the same float64 problem data (:class:`~l2obench.layers.lp_data.DYSProblemData`):
the same operator (``∇f = w + γx``), the same per-instance stopping rule, the same sign
convention for ``sense == "max"`` and the same dense or factored storage of ``P_aff``. What
differs is how the loop runs:

- The fixed-point loop is one ``jax.lax.while_loop``, compiled with the rest of a ``jax.jit``
  function. Shapes inside it are fixed, so converged instances cannot leave the batch as they do
  in the PyTorch solver: they are *masked* instead. Instance ``i`` stops at the first ``k`` with
  ``‖z_{k,i} − z_{k−1,i}‖₂ ≤ tol``, its ``z`` is frozen at ``z_{k,i}`` and its count at ``k``;
  the loop ends when every instance has stopped or after ``max_iter`` steps. Results and counts
  equal the PyTorch solver's, but each step still computes the whole batch, so a batch costs as
  many full-batch steps as its slowest instance needs.
- JFB is expressed with ``jax.lax.stop_gradient``: the loop sees no tangents (a ``while_loop``
  cannot be reverse-differentiated anyway) and the output is ``P_box(T(stop_gradient(z*); w))``,
  one differentiable application of the operator at the fixed point.

The layer is an immutable pytree (its arrays are leaves, its settings static), so it is passed
to jit-compiled functions as an argument rather than baked into them as constants.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse

from l2obench.layers.lp_data import AffineForm, DYSProblemData, StoredForm, resolve_affine_form
from l2obench.problems.base import LPForm, Sense


class SolveStats(NamedTuple):
    """Per-instance results of a solve: operator applications and whether ``tol`` was met.

    ``iterations[i]`` is ``max_iter`` for an instance that never met the tolerance, as in
    :class:`~l2obench.layers.fixed_point.FixedPointStats`.
    """

    iterations: jax.Array  # int [N]
    converged: jax.Array  # bool [N]


def picard(
    fn: Callable[..., jax.Array],
    z0: jax.Array,
    args: tuple[Any, ...],
    *,
    tol: float,
    max_iter: int,
) -> tuple[jax.Array, SolveStats]:
    """``z_{k+1} = fn(z_k, *args)`` from ``z0[N, ...]``, stopping each instance on its own.

    The stopping rule and results are those of :class:`~l2obench.layers.fixed_point.Picard`
    (the norm is over all non-batch entries of an instance); stopped instances are masked, not
    removed (see the module docstring). Not differentiable: call it on stopped gradients.
    """
    n = z0.shape[0]
    frozen_shape = (n,) + (1,) * (z0.ndim - 1)

    def running(state: tuple[jax.Array, ...]) -> jax.Array:
        k, _, _, done = state
        return (k < max_iter) & ~jnp.all(done)

    def step(state: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
        k, z, iterations, done = state
        z_next = fn(z, *args)
        stops = (jnp.linalg.norm((z_next - z).reshape(n, -1), axis=1) <= tol) & ~done
        z = jnp.where(done.reshape(frozen_shape), z, z_next)
        iterations = jnp.where(stops, k + 1, iterations)
        return k + 1, z, iterations, done | stops

    start = (
        jnp.asarray(0, jnp.int32),
        z0,
        jnp.full((n,), max_iter, jnp.int32),
        jnp.zeros((n,), bool),
    )
    _, z, iterations, converged = jax.lax.while_loop(running, step, start)
    return z, SolveStats(iterations=iterations, converged=converged)


@dataclasses.dataclass(frozen=True)
class DYSLayerJax:
    """``w[N, n] ↦ (x[N, n], stats)``: the DYS solution of the regularised LP for each cost row.

    Build it with :meth:`from_lp` or :meth:`from_data`; the operator, its arguments and the
    output are those of :class:`~l2obench.layers.dys.DYSLayer` (``0 < α < 2/γ``, ``γ > 0``).
    ``P_aff(v) = M v + c`` is stored as the dense projector ``M`` (form ``"dense"``), as the
    sparse ``A`` and dense ``K = (AAᵀ)⁺`` (form ``"factored"``), or as the sparse ``A`` and the
    factors' eigenbases of a declared Kronecker-sum ``A Aᵀ`` (form ``"kronecker"``), chosen as for
    the PyTorch layer.
    """

    lower: jax.Array  # [n]
    upper: jax.Array  # [n]
    c: jax.Array  # [n], the least-norm solution of A x = b
    M: jax.Array | None  # [n, n] for the dense form
    A: jsparse.BCOO | None  # [m, n] for the factored form
    K: jax.Array | None  # [m, m] for the factored form
    U1: jax.Array | None  # [k1, k1] for the Kronecker form
    U2: jax.Array | None  # [k2, k2]
    inv_eig: jax.Array | None  # [k1, k2]
    alpha: float
    gamma: float
    tol: float
    max_iter: int
    sense: Sense
    form: StoredForm

    @classmethod
    def from_lp(cls, lp: LPForm, **kwargs: Any) -> DYSLayerJax:
        """The layer for ``lp``; keyword arguments as for :meth:`from_data`."""
        return cls.from_data(DYSProblemData.from_lp(lp), **kwargs)

    @classmethod
    def from_data(
        cls,
        data: DYSProblemData,
        alpha: float = 0.05,
        gamma: float = 5e-4,
        tol: float = 1e-2,
        max_iter: int = 10_000,
        dtype: jnp.dtype | type = jnp.float32,
        device: jax.Device | None = None,
        affine_form: AffineForm = "auto",
    ) -> DYSLayerJax:
        """Convert ``data`` to ``dtype`` arrays on ``device`` (JAX's default device if None).

        ``tol`` and ``max_iter`` are the solver settings of :func:`picard`.
        """
        if not alpha > 0:
            raise ValueError(f"alpha must be positive, not {alpha}")
        if not gamma > 0:
            raise ValueError(f"gamma must be positive, not {gamma}")
        if not tol > 0:
            raise ValueError(f"tol must be positive, not {tol}")
        if max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, not {max_iter}")
        device = device if device is not None else jax.devices()[0]
        device_type = "cuda" if device.platform in ("gpu", "cuda") else device.platform
        spectrum = data.affine.kronecker
        form = resolve_affine_form(
            affine_form, data.n_vars, device_type, kronecker=spectrum is not None
        )

        def put(array: np.ndarray) -> jax.Array:
            return jax.device_put(np.asarray(array, dtype=dtype), device)

        M = A = K = U1 = U2 = inv_eig = None
        if form == "dense":
            M = put(data.affine.projector())
        else:
            coo = data.affine.A.tocoo()
            indices = np.stack([coo.row, coo.col], axis=1).astype(np.int32)
            A = jsparse.BCOO((put(coo.data), jax.device_put(indices, device)), shape=coo.shape)
        if form == "factored":
            K = put(data.affine.K)
        elif form == "kronecker":
            assert spectrum is not None
            U1, U2, inv_eig = put(spectrum.U1), put(spectrum.U2), put(spectrum.inv_eig)
        return cls(
            lower=put(data.lower),
            upper=put(data.upper),
            c=put(data.affine.c),
            M=M,
            A=A,
            K=K,
            U1=U1,
            U2=U2,
            inv_eig=inv_eig,
            alpha=float(alpha),
            gamma=float(gamma),
            tol=float(tol),
            max_iter=int(max_iter),
            sense=data.sense,
            form=form,
        )

    @property
    def n_vars(self) -> int:
        return int(self.lower.shape[0])

    def linear(self, v: jax.Array) -> jax.Array:
        """``M v`` for every row of ``v[N, n]``: the linear part of ``P_aff``."""
        if self.M is not None:
            return v @ self.M
        assert self.A is not None
        return v - (self.A.T @ self.gram_pinv(self.A @ v.T)).T

    def gram_pinv(self, r: jax.Array) -> jax.Array:
        """``(A Aᵀ)⁺ r`` for ``r[m, N]``, one column per instance."""
        if self.K is not None:
            return self.K @ r
        assert self.U1 is not None and self.U2 is not None and self.inv_eig is not None
        k1, k2 = self.inv_eig.shape
        R = r.reshape(k1, k2, -1)
        S = jnp.einsum("ai,ajn,jb->ibn", self.U1, R, self.U2) * self.inv_eig[:, :, None]
        return jnp.einsum("ia,ajn,bj->ibn", self.U1, S, self.U2).reshape(k1 * k2, -1)

    def operator(self, z: jax.Array, shift: jax.Array) -> jax.Array:
        """One DYS step ``T(z; w)`` for every row, given ``shift = P_aff(∓α w)`` (sign applied)."""
        x = jnp.clip(z, self.lower, self.upper)
        y = self.linear((2.0 - self.alpha * self.gamma) * x - z) + shift
        return z - x + y

    def __call__(
        self, w: jax.Array, z0: jax.Array | None = None
    ) -> tuple[jax.Array, SolveStats]:
        """Decisions ``x[N, n]`` for costs ``w[N, n]`` (warm start ``z0``) and the solve's stats.

        ``x`` is differentiable w.r.t. ``w`` (and what ``w`` depends on) by JFB only.
        """
        if w.ndim != 2 or w.shape[1] != self.n_vars:
            raise ValueError(f"w must have shape [N, {self.n_vars}], not {tuple(w.shape)}")
        if w.dtype != self.lower.dtype:
            raise ValueError(f"w has dtype {w.dtype}, the layer {self.lower.dtype}")
        if z0 is None:
            z0 = jnp.zeros_like(w)
        elif z0.shape != w.shape:
            raise ValueError(f"z0 has shape {tuple(z0.shape)}, w {tuple(w.shape)}")
        shift = self.linear((-self.alpha if self.sense == "min" else self.alpha) * w) + self.c
        z_star, stats = picard(
            self.operator,
            jax.lax.stop_gradient(z0),
            (jax.lax.stop_gradient(shift),),
            tol=self.tol,
            max_iter=self.max_iter,
        )
        z = self.operator(jax.lax.stop_gradient(z_star), shift)
        return jnp.clip(z, self.lower, self.upper), stats


jax.tree_util.register_dataclass(
    DYSLayerJax,
    data_fields=["lower", "upper", "c", "M", "A", "K", "U1", "U2", "inv_eig"],
    meta_fields=["alpha", "gamma", "tol", "max_iter", "sense", "form"],
)
