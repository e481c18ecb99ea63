"""The implicit DYS layer in JAX: the operator of :mod:`l2obench.layers.dys` with JFB gradients.

The layer computes what :class:`~l2obench.layers.dys.DYSLayer` with ``Picard`` and ``JFB``
computes, from the same float64 problem data (:class:`~l2obench.layers.lp_data.DYSProblemData`):
the same operator (``∇f = w + γx``), the same per-instance stopping rule, the same sign
convention for ``sense == "max"`` and the same dense or factored storage of ``P_aff``. What
differs is how the loop runs:

- The fixed-point loop (:func:`picard`) is driven from the host in compiled chunks. A chunk is
  one ``jax.lax.while_loop`` over a batch of fixed shape, in which stopped instances are
  *masked* (frozen); it ends as soon as few enough instances are left running that a smaller
  batch holds them, and the host then copies the running instances into a batch of that size
  (through host memory: free on CPU, a few small transfers per solve on a GPU). So converged
  instances leave the computation, as in the PyTorch solver, and a batch costs about the sum
  of its instances' iterations rather than the batch size times the slowest instance's. Batch
  sizes are *bucketed* (:func:`bucket`: powers of two from :data:`MIN_BUCKET`, capped at the
  batch's own size) so that a solve compiles only a few shapes.
- JFB is split in two: :meth:`DYSLayerJax.solve` finds ``z*`` with no tangents (the host loop
  cannot be traced, and a ``while_loop`` cannot be reverse-differentiated anyway), and
  :meth:`DYSLayerJax.output` is traceable: ``P_box(T(stop_gradient(z*); w))``, one
  differentiable application of the operator at the fixed point. A training step therefore
  solves first and then differentiates a jit-compiled function of ``z*``.

The layer is an immutable pytree (its arrays are leaves, its settings static), so it is passed
to jit-compiled functions as an argument rather than baked into them as constants.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import sparse as jsparse

from l2obench.layers.lp_data import AffineForm, DYSProblemData, StoredForm, resolve_affine_form
from l2obench.problems.base import LPForm, Sense, sense_sign

#: An operator ``fn(consts, z, *args) -> z_new``: ``consts`` is a pytree shared by every
#: instance (the layer), each array in ``args`` is batch-aligned with ``z``. It is a static
#: argument of the compiled chunks, so pass a module-level function or an unbound method.
Operator = Callable[..., jax.Array]


class SolveStats(NamedTuple):
    """Per-instance results of a solve: operator applications and whether ``tol`` was met.

    ``iterations[i]`` is ``max_iter`` for an instance that never met the tolerance, as in
    :class:`~l2obench.implicit.fixed_point.FixedPointStats`.
    """

    iterations: jax.Array  # int [N]
    converged: jax.Array  # bool [N]


#: The smallest batch a solve compacts to. Below it a step costs little more than its dispatch,
#: so smaller batches would only add shapes to compile (each compiled chunk takes about a
#: second on CPU).
MIN_BUCKET = 32


def bucket(n_live: int, n: int) -> int:
    """The batch size that holds ``n_live`` running instances of a batch of ``n``.

    The smallest power of two ``≥ n_live`` and ``≥`` :data:`MIN_BUCKET`, or ``n`` if that is
    smaller: each halving of the running instances compiles one more shape, and at most half
    of a batch above :data:`MIN_BUCKET` rows is padding.
    """
    return min(n, max(MIN_BUCKET, 1 << (n_live - 1).bit_length()))


def _floor(size: int) -> int:
    """How few live rows a chunk of ``size`` rows runs down to: those of the next smaller bucket
    (0, i.e. until every row has stopped, when there is none)."""
    return 1 << ((size - 1).bit_length() - 1) if size > MIN_BUCKET else 0


@functools.partial(jax.jit, static_argnames="fn")
def _chunk(
    fn: Operator,
    consts: Any,
    z: jax.Array,
    args: tuple[jax.Array, ...],
    live: jax.Array,
    k: jax.Array,
    floor: jax.Array,
    tol: jax.Array,
    max_iter: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """Iterate the ``live`` rows of ``z[B, ...]`` from step ``k`` until at most ``floor`` rows
    are live or step ``max_iter`` is done.

    A row stops at the first step ``k`` with ``‖z_k − z_{k−1}‖₂ ≤ tol`` and keeps ``z_k``; rows
    that are not live (stopped, or padding) are computed but frozen. Returns the rows' ``z``,
    ``live``, the step at which each stopped (``max_iter`` if it did not), and the last step.
    """
    n = z.shape[0]
    frozen_shape = (n,) + (1,) * (z.ndim - 1)

    State = tuple[jax.Array, jax.Array, jax.Array, jax.Array]

    def running(state: State) -> jax.Array:
        k, _, live, _ = state
        return (k < max_iter) & (jnp.sum(live) > floor)

    def step(state: State) -> State:
        k, z, live, stopped_at = state
        z_next = fn(consts, z, *args)
        stops = (jnp.linalg.norm((z_next - z).reshape(n, -1), axis=1) <= tol) & live
        z = jnp.where(live.reshape(frozen_shape), z_next, z)
        return k + 1, z, live & ~stops, jnp.where(stops, k + 1, stopped_at)

    start = (k.astype(jnp.int32), z, live, jnp.full((n,), max_iter, jnp.int32))
    k, z, live, stopped_at = jax.lax.while_loop(running, step, start)
    return z, live, stopped_at, k


def picard(
    fn: Operator,
    consts: Any,
    z0: jax.Array,
    args: tuple[jax.Array, ...],
    *,
    tol: float,
    max_iter: int,
) -> tuple[jax.Array, SolveStats]:
    """``z_{k+1} = fn(consts, z_k, *args)`` from ``z0[N, ...]``, stopping each instance on its own.

    The stopping rule and results are those of :class:`~l2obench.implicit.fixed_point.Picard`
    (the norm is over all non-batch entries of an instance). Runs on concrete arrays, one
    compiled chunk at a time, the running instances compacted between chunks into a batch of
    :func:`bucket` size (see the module docstring); it cannot be traced or differentiated.
    """
    n, place = z0.shape[0], z0.sharding
    z_star = np.array(z0)
    iterations = np.full(n, max_iter, np.int32)
    converged = np.zeros(n, bool)
    z, live, rows, k = z0, np.ones(n, bool), np.arange(n), 0
    while True:
        z, live_out, stopped_at, k_out = _chunk(
            fn, consts, z, args, live, k, _floor(z.shape[0]), tol, max_iter
        )
        # The batch's first len(rows) rows are the instances `rows`; the rest is padding.
        z_host, live_host = np.asarray(z), np.asarray(live_out)
        z_star[rows] = z_host[: rows.size]
        iterations[rows] = np.asarray(stopped_at)[: rows.size]
        converged[rows] = ~live_host[: rows.size]
        k, running = int(k_out), np.flatnonzero(live_host)
        if running.size == 0 or k >= max_iter:
            break
        size = bucket(running.size, n)
        keep = np.concatenate([running, np.full(size - running.size, running[0])])
        live = np.arange(size) < running.size
        rows = rows[running]
        z = jax.device_put(z_host[keep], place)
        args = tuple(jax.device_put(np.asarray(a)[keep], place) for a in args)
    stats = SolveStats(
        iterations=jax.device_put(iterations, place), converged=jax.device_put(converged, place)
    )
    return jax.device_put(z_star, place), stats


@dataclasses.dataclass(frozen=True)
class DYSLayerJax:
    """``w[N, n] ↦ (x[N, n], stats)``: the DYS solution of the regularised LP for each cost row.

    Build it with :meth:`from_lp` or :meth:`from_data`; the operator, its arguments and the
    output are those of :class:`~l2obench.layers.dys.DYSLayer` (``0 < α < 2/γ``, ``γ > 0``).
    The complement ``I − M = Aᵀ K A`` of ``P_aff``'s linear part is stored as a dense matrix
    ``Q`` (form ``"dense"``), as the sparse ``A`` and dense ``K = (AAᵀ)⁺`` (``"factored"``), as
    the sparse ``A`` and the factors' eigenbases of a declared Kronecker-sum ``A Aᵀ``
    (``"kronecker"``), as a grid's difference stencils (gathers of the arcs' columns, which XLA
    fuses with the arithmetic around them) with those eigenbases (``"grid"``) or with the DCT
    (``"dct"``), chosen as for the PyTorch layer.
    """

    lower: jax.Array  # [n]
    upper: jax.Array  # [n]
    c: jax.Array  # [n], the least-norm solution of A x = b
    Q: jax.Array | None  # [n, n] for the dense form
    A: jsparse.BCOO | None  # [m, n] for the factored and Kronecker forms
    K: jax.Array | None  # [m, m] for the factored form
    U1: jax.Array | None  # [k1, k1] for the Kronecker and grid forms
    U2: jax.Array | None  # [k2, k2]
    inv_eig: jax.Array | None  # [k1, k2]
    right: jax.Array | None  # int [k1, k2 − 1]: the columns of the right arcs (grid, dct forms)
    down: jax.Array | None  # int [k1 − 1, k2]: the down arcs
    heads: jax.Array | None  # int [n]: each arc's head node
    tails: jax.Array | None  # int [n]
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
        affine = data.affine
        form = resolve_affine_form(affine_form, affine, device_type)

        def put(array: np.ndarray) -> jax.Array:
            return jax.device_put(np.asarray(array, dtype=dtype), device)

        def put_index(array: np.ndarray) -> jax.Array:
            return jax.device_put(np.asarray(array, dtype=np.int32), device)

        arrays: dict[str, Any] = dict.fromkeys(
            ("Q", "A", "K", "U1", "U2", "inv_eig", "right", "down", "heads", "tails"))
        if form == "dense":
            arrays["Q"] = put(affine.complement())
        elif form in ("factored", "kronecker"):
            coo = affine.A.tocoo()
            indices = np.stack([coo.row, coo.col], axis=1).astype(np.int32)
            arrays["A"] = jsparse.BCOO((put(coo.data), jax.device_put(indices, device)),
                                       shape=coo.shape)
        else:
            grid = affine.grid
            assert grid is not None
            k1, k2 = grid.shape
            node = np.arange(k1 * k2).reshape(k1, k2)
            tails = np.empty(affine.n_vars, dtype=np.int64)
            tails[grid.right.ravel()] = node[:, :-1].ravel()
            tails[grid.down.ravel()] = node[:-1, :].ravel()
            heads = np.empty(affine.n_vars, dtype=np.int64)
            heads[grid.right.ravel()] = node[:, 1:].ravel()
            heads[grid.down.ravel()] = node[1:, :].ravel()
            arrays.update(right=put_index(grid.right), down=put_index(grid.down),
                          heads=put_index(heads), tails=put_index(tails))
        if form == "factored":
            arrays["K"] = put(affine.K)
        elif form in ("kronecker", "grid"):
            spectrum = affine.kronecker
            assert spectrum is not None
            arrays.update(U1=put(spectrum.U1), U2=put(spectrum.U2), inv_eig=put(spectrum.inv_eig))
        elif form == "dct":
            assert affine.grid is not None
            arrays["inv_eig"] = put(affine.grid.inv_eig_dct(affine.rtol))
        return cls(
            lower=put(data.lower),
            upper=put(data.upper),
            c=put(affine.c),
            **arrays,
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
        return v - self.complement(v)

    def complement(self, v: jax.Array) -> jax.Array:
        """``(I − M) v = Aᵀ K A v`` for every row of ``v[N, n]``."""
        if self.Q is not None:
            return v @ self.Q
        if self.right is not None:
            return self._gradient(self._gram_grid(self._divergence(v)))
        assert self.A is not None
        return (self.A.T @ self.gram_pinv(self.A @ v.T)).T

    def gram_pinv(self, r: jax.Array) -> jax.Array:
        """``(A Aᵀ)⁺ r`` for ``r[m, N]``, one column per instance (the sparse forms)."""
        if self.K is not None:
            return self.K @ r
        assert self.U1 is not None and self.U2 is not None and self.inv_eig is not None
        # As in the PyTorch layer: in the [k1, k2, N] view of r, U1 acts on the first axis (one
        # flat product) and U2 on the second (k1 batched products); no transposes of the batch,
        # and about half the time of the equivalent einsums on XLA's CPU backend.
        k1, k2 = self.inv_eig.shape
        n = r.shape[1]
        S = (self.U1.T @ r.reshape(k1, k2 * n)).reshape(k1, k2, n)
        S = (self.U2.T @ S) * self.inv_eig[:, :, None]
        S = (self.U1 @ S.reshape(k1, k2 * n)).reshape(k1, k2, n)
        return (self.U2 @ S).reshape(k1 * k2, n)

    def _divergence(self, v: jax.Array) -> jax.Array:
        """``A v`` on a grid as node fields ``[N, k1, k2]``: inflow minus outflow."""
        assert self.right is not None and self.down is not None
        right, down = v[:, self.right], v[:, self.down]
        before, after = ((0, 0), (0, 0), (1, 0)), ((0, 0), (0, 0), (0, 1))
        above, below = ((0, 0), (1, 0), (0, 0)), ((0, 0), (0, 1), (0, 0))
        flow = jnp.pad(right, before) - jnp.pad(right, after)
        return flow + jnp.pad(down, above) - jnp.pad(down, below)

    def _gradient(self, S: jax.Array) -> jax.Array:
        """``Aᵀ y`` for node fields ``S[N, k1, k2]``: head minus tail on every arc, ``[N, n]``."""
        assert self.heads is not None and self.tails is not None
        flat = S.reshape(S.shape[0], -1)
        return flat[:, self.heads] - flat[:, self.tails]

    def _gram_grid(self, Y: jax.Array) -> jax.Array:
        """``(A Aᵀ)⁺`` on node fields ``Y[N, k1, k2]``: eigenbases (grid) or DCT (dct form)."""
        assert self.inv_eig is not None
        if self.form == "dct":
            S = jax.scipy.fft.dct(jax.scipy.fft.dct(Y, axis=2), axis=1) * self.inv_eig
            return jax.scipy.fft.idct(jax.scipy.fft.idct(S, axis=2), axis=1)
        assert self.U1 is not None and self.U2 is not None
        S = (self.U1.T @ Y @ self.U2) * self.inv_eig
        return self.U1 @ S @ self.U2.T

    def operator(self, z: jax.Array, shift: jax.Array) -> jax.Array:
        """One DYS step ``T(z; w)`` for every row, given ``shift = P_aff(∓α w)`` (sign applied),
        written as the PyTorch layer's: ``(1 − αγ) x + shift + (I − M)(z − (2 − αγ) x)``."""
        x = jnp.clip(z, self.lower, self.upper)
        damp = 1.0 - self.alpha * self.gamma
        return damp * x + shift + self.complement(z - (1.0 + damp) * x)

    def shift(self, w: jax.Array) -> jax.Array:
        """``P_aff(∓α w)`` for every row of ``w``: the part of ``T(·; w)`` that depends on ``w``."""
        return self.linear((-self.alpha * sense_sign(self.sense)) * w) + self.c

    def solve(self, w: jax.Array, z0: jax.Array | None = None) -> tuple[jax.Array, SolveStats]:
        """The fixed points ``z*[N, n]`` of ``T(·; w)`` for costs ``w[N, n]`` (warm start ``z0``).

        Runs :func:`picard` on concrete arrays: call it outside ``jax.jit`` and ``jax.grad``,
        then pass ``z*`` to :meth:`output` there.
        """
        if w.ndim != 2 or w.shape[1] != self.n_vars:
            raise ValueError(f"w must have shape [N, {self.n_vars}], not {tuple(w.shape)}")
        if w.dtype != self.lower.dtype:
            raise ValueError(f"w has dtype {w.dtype}, the layer {self.lower.dtype}")
        if z0 is None:
            z0 = jnp.zeros_like(w)
        elif z0.shape != w.shape:
            raise ValueError(f"z0 has shape {tuple(z0.shape)}, w {tuple(w.shape)}")
        shift = _shift(self, w)
        return picard(
            DYSLayerJax.operator, self, z0, (shift,), tol=self.tol, max_iter=self.max_iter
        )

    def output(self, w: jax.Array, z_star: jax.Array) -> jax.Array:
        """Decisions ``x = P_box(T(z*; w))``, differentiable w.r.t. ``w`` by JFB (traceable).

        ``z*`` is a constant to differentiation: the gradient is that of one application of
        the operator at the fixed point.
        """
        z = self.operator(jax.lax.stop_gradient(z_star), self.shift(w))
        return jnp.clip(z, self.lower, self.upper)

    def __call__(
        self, w: jax.Array, z0: jax.Array | None = None
    ) -> tuple[jax.Array, SolveStats]:
        """Decisions ``x[N, n]`` for costs ``w[N, n]`` (warm start ``z0``) and the solve's stats.

        :meth:`solve` then :meth:`output`, on concrete arrays: the forward pass only. Gradients
        come from differentiating :meth:`output` at the ``z*`` of :meth:`solve`.
        """
        z_star, stats = self.solve(w, z0)
        return _output(self, w, z_star), stats


jax.tree_util.register_dataclass(
    DYSLayerJax,
    data_fields=["lower", "upper", "c", "Q", "A", "K", "U1", "U2", "inv_eig", "right", "down",
                 "heads", "tails"],
    meta_fields=["alpha", "gamma", "tol", "max_iter", "sense", "form"],
)

_shift = jax.jit(DYSLayerJax.shift)
_output = jax.jit(DYSLayerJax.output)
