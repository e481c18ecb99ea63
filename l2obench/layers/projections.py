"""Euclidean projections onto the two sets whose intersection is an LP's feasible region.

A linear program in :class:`~l2obench.problems.base.LPForm` has the feasible set
``C = C_box ∩ C_aff`` with ``C_box = {lower ≤ x ≤ upper}`` and ``C_aff = {x : A x = b}``. Each
projection alone is cheap and batches over instances, which is what makes Davis–Yin splitting a
good layer: :class:`BoxProjection` is a clamp and :class:`AffineProjection` is a fixed linear map
plus a constant, whose matrices are computed once per problem.

Both are :class:`torch.nn.Module` s whose precomputed tensors are buffers, so they follow the
layer through ``.to(device)``. Inputs have the batch dimension first: ``v`` is ``[N, n_vars]``.
The matrices themselves are computed in NumPy float64 by :mod:`l2obench.layers.lp_data`, which
the JAX layer shares.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from l2obench.layers.lp_data import (
    DENSE_MAX_VARS,
    AffineData,
    AffineForm,
    GridIncidence,
    StoredForm,
    resolve_affine_form,
)
from l2obench.problems.base import LPForm

__all__ = ["DENSE_MAX_VARS", "AffineForm", "AffineProjection", "BoxProjection"]


class BoxProjection(nn.Module):
    """``P_box(z) = clamp(z, lower, upper)``, elementwise; bounds may be infinite.

    When every variable has the same bounds (a shortest path's ``0 ≤ x ≤ 1``) the clamp takes
    them as two numbers, which is a lighter kernel than clamping against two bound tensors.
    """

    lower: Tensor
    upper: Tensor

    def __init__(
        self,
        lower: np.ndarray | Tensor,
        upper: np.ndarray | Tensor,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__()
        lower_t = torch.as_tensor(lower, dtype=dtype, device=device).reshape(-1)
        upper_t = torch.as_tensor(upper, dtype=dtype, device=device).reshape(-1)
        if lower_t.shape != upper_t.shape:
            raise ValueError(
                f"lower {tuple(lower_t.shape)} and upper {tuple(upper_t.shape)} differ"
            )
        if bool((lower_t > upper_t).any()):
            raise ValueError("lower bound above upper bound: the box is empty")
        self.register_buffer("lower", lower_t)
        self.register_buffer("upper", upper_t)
        self.uniform: tuple[float, float] | None = None
        same = lower_t.numel() and bool((lower_t == lower_t[0]).all())
        if same and bool((upper_t == upper_t[0]).all()):
            self.uniform = (float(lower_t[0]), float(upper_t[0]))

    @classmethod
    def from_lp(
        cls,
        lp: LPForm,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
    ) -> BoxProjection:
        """The projection onto ``lp``'s bounds."""
        return cls(lp.lower, lp.upper, dtype=dtype, device=device)

    def forward(self, z: Tensor) -> Tensor:
        """Clamp every row of ``z[N, n]`` to the box."""
        if self.uniform is not None:
            return torch.clamp(z, *self.uniform)
        return torch.clamp(z, self.lower, self.upper)

    def jacobian_mask(self, z: Tensor) -> Tensor:
        """The diagonal of ``∂P_box/∂z`` (almost everywhere): True where ``lower < z < upper``.

        This is ``D`` in the closed form of the DYS Jacobian (docs/methods.md).
        """
        return (z > self.lower) & (z < self.upper)

    def derivative_mask(self, z: Tensor) -> Tensor:
        """The derivative autograd gives the clamp: True where ``lower ≤ z ≤ upper``.

        It differs from :meth:`jacobian_mask` only at ``z`` exactly on a bound, where the clamp
        has no derivative; a hand-written backward that must equal autograd's uses this one.
        """
        if self.uniform is not None:
            low, high = self.uniform
            return (z >= low) & (z <= high)
        return (z >= self.lower) & (z <= self.upper)


class AffineProjection(nn.Module):
    """``P_aff(v) = v − Aᵀ K (A v − b)`` onto ``{x : A x = b}``, with ``K = (A Aᵀ)⁺``.

    ``K`` is computed once here in float64 by :class:`~l2obench.layers.lp_data.AffineData`;
    eigenvalues of ``A Aᵀ`` below ``rtol · λ_max`` count as zero, because ``A`` may have
    redundant rows (a flow-conservation matrix has rank ``n_nodes − 1``). Written as
    ``P_aff(v) = M v + c`` with the symmetric projector ``M = I − Aᵀ K A``, its complement
    ``I − M = Aᵀ K A`` (:meth:`complement`, the projector onto the row space of ``A``) and the
    least-norm solution ``c = Aᵀ K b`` of ``A x = b``, an application is stored in one of these
    forms:

    - ``"dense"``: ``I − M`` as an ``n × n`` matrix, one matrix product per application; fastest
      for small ``n``, but its memory and work grow as ``n²``.
    - ``"factored"``: ``A`` as a sparse CSR matrix and ``K`` as a dense ``m × m`` matrix; an
      application is ``Aᵀ(K (A v))`` (two sparse products and one of ``m²`` work). This is the
      form for large LPs without known structure.
    - ``"kronecker"``: sparse ``A`` and ``K`` applied through the eigenvectors of the two small
      factors of a declared Kronecker sum ``A Aᵀ = L₁ ⊗ I + I ⊗ L₂`` (``gram_kronecker``, as
      for grid graphs): ``O(m (k₁ + k₂))`` work per vector instead of ``O(m²)``, and no
      ``m × m`` matrix at all, which is what makes a 100×100 grid affordable.
    - ``"grid"``: the Kronecker eigenbases again, and ``A`` applied as the difference stencils
      of a grid (:class:`~l2obench.layers.lp_data.GridIncidence`, detected from ``A``): the
      batch stays in its ``[N, n]`` rows throughout (the sparse products want one column per
      instance, hence two transposing copies per application), and when the arcs' columns are
      affine in the grid coordinates, as in PyEPO's order, the arc fields are strided views of
      those rows, not copies.
    - ``"dct"``: the grid's stencils, and ``K`` by the fast Poisson solver: on a grid of path
      Laplacians the eigenbases are the DCT-II basis, applied by FFTs in ``O(m log k)``
      instead of ``O(m k)`` work per vector.
    - ``"auto"`` (default): the measured rule of
      :func:`~l2obench.layers.lp_data.resolve_affine_form` for ``device``'s type. The form is
      fixed here; moving the module later with ``.to()`` keeps it.

    When ``b`` is not in the range of ``A`` the constraints are inconsistent, and the map
    projects onto the least-squares solutions of ``A x = b`` instead.
    """

    Q: Tensor
    A: Tensor
    At: Tensor
    A_sq: Tensor
    K: Tensor
    U1: Tensor
    U1t: Tensor
    U2: Tensor
    U2t: Tensor
    inv_eig: Tensor
    right_idx: Tensor
    down_idx: Tensor
    cos1: Tensor
    sin1: Tensor
    cos2: Tensor
    sin2: Tensor
    c: Tensor

    def __init__(
        self,
        A: sp.spmatrix | sp.sparray | np.ndarray,
        b: np.ndarray,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        form: AffineForm = "auto",
        rtol: float | None = None,
        gram_kronecker: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        super().__init__()
        data = AffineData.from_constraints(A, b, rtol, gram_kronecker)
        device_type = torch.device(device).type if device is not None else "cpu"
        self.form: StoredForm = resolve_affine_form(form, data, device_type)
        self.m, self.n = (int(d) for d in data.A.shape)

        as_t: dict[str, Any] = {"dtype": dtype, "device": device}
        self.register_buffer("c", torch.as_tensor(data.c, **as_t))
        self.grid: GridIncidence | None = None
        self.strides: tuple[tuple[int, int, int], tuple[int, int, int]] | None = None
        if self.form in ("grid", "dct"):
            self._init_grid(data, dtype, device)
            return
        with warnings.catch_warnings():  # torch flags sparse CSR tensors as beta
            warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support.*")
            warnings.filterwarnings("ignore", message=".*Sparse invariant checks.*")
            self.register_buffer("A", _to_torch_csr(data.A, dtype, device))
            self.register_buffer("At", _to_torch_csr(data.A.T.tocsr(), dtype, device))
            self.register_buffer("A_sq", _to_torch_csr(data.A.multiply(data.A).tocsr(), dtype,
                                                       device))
        if self.form == "dense":
            self.register_buffer("Q", torch.as_tensor(data.complement(), **as_t))
        elif self.form == "factored":
            self.register_buffer("K", torch.as_tensor(data.K, **as_t))
        else:
            assert data.kronecker is not None
            self._register_eigenbases(data, as_t)

    def _register_eigenbases(self, data: AffineData, as_t: dict[str, Any]) -> None:
        assert data.kronecker is not None
        spectrum = data.kronecker
        for name, U in (("U1", spectrum.U1), ("U2", spectrum.U2)):
            self.register_buffer(name, torch.as_tensor(U, **as_t))
            self.register_buffer(name + "t", torch.as_tensor(np.ascontiguousarray(U.T), **as_t))
        self.register_buffer("inv_eig", torch.as_tensor(spectrum.inv_eig, **as_t))

    def _init_grid(self, data: AffineData, dtype: torch.dtype,
                   device: torch.device | str | None) -> None:
        assert data.grid is not None
        as_t: dict[str, Any] = {"dtype": dtype, "device": device}
        self.grid = data.grid
        self.strides = data.grid.strides()
        as_index: dict[str, Any] = {"dtype": torch.long, "device": device}
        self.register_buffer("right_idx", torch.as_tensor(data.grid.right.reshape(-1), **as_index))
        self.register_buffer("down_idx", torch.as_tensor(data.grid.down.reshape(-1), **as_index))
        if self.form == "grid":
            self._register_eigenbases(data, as_t)
            return
        self.register_buffer("inv_eig", torch.as_tensor(data.grid.inv_eig_dct(data.rtol), **as_t))
        for axis, k in enumerate(data.grid.shape, start=1):
            theta = np.pi * np.arange(k // 2 + 1) / (2 * k)
            self.register_buffer(f"cos{axis}", torch.as_tensor(np.cos(theta), **as_t))
            self.register_buffer(f"sin{axis}", torch.as_tensor(np.sin(theta), **as_t))

    @classmethod
    def from_lp(
        cls,
        lp: LPForm,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str | None = None,
        form: AffineForm = "auto",
        rtol: float | None = None,
    ) -> AffineProjection:
        """The projection onto ``lp``'s equality constraints, with its declared Gram structure."""
        return cls(
            lp.A, lp.b, dtype=dtype, device=device, form=form, rtol=rtol,
            gram_kronecker=lp.gram_kronecker,
        )

    def forward(self, v: Tensor) -> Tensor:
        """Project every row of ``v[N, n]`` onto ``{x : A x = b}``."""
        return self.linear(v, shift=self.c)

    def linear(self, v: Tensor, shift: Tensor | None = None) -> Tensor:
        """``M v (+ shift)`` for every row of ``v[N, n]``: the linear part of ``P_aff``.

        ``shift`` is ``[n]`` or ``[N, n]``; with ``shift = c`` this is ``P_aff(v)``.
        Differentiable; ``M`` is symmetric, so it is also the map's own vector–Jacobian product.
        """
        mv = v - self.complement(v)
        return mv if shift is None else mv + shift

    def complement(self, v: Tensor) -> Tensor:
        """``(I − M) v = Aᵀ K A v`` for every row of ``v[N, n]``, differentiable.

        The projection onto the row space of ``A``; the DYS step is written with it
        (:meth:`~l2obench.layers.dys.DYSLayer.operator`). It is symmetric, so under autograd its
        vector–Jacobian product is another application (itself differentiable, for second
        derivatives), never a backward pass through the sparse products or stencils.
        """
        if self.form == "dense":
            return v @ self.Q
        if torch.is_grad_enabled() and v.requires_grad:
            return _Complement.apply(v, self)
        return self._complement(v)

    def _complement(self, v: Tensor) -> Tensor:
        """:meth:`complement` without a tape."""
        if self.form == "dense":
            return v @ self.Q
        if self.grid is not None:
            return self.constraint_t(self._gram_grid(self.constraint_grid(v)))
        # Sparse CSR products want one contiguous column per instance; the result goes back to
        # rows, because the clamps, norms and row indexing around the projection are several
        # times slower on a column-major [N, n] view than the two transposing copies.
        out = self.At @ self._gram_columns(self.A @ v.T.contiguous())
        return out.T.contiguous()

    def _gram_columns(self, r: Tensor) -> Tensor:
        """``K r`` for ``r[m, N]``, one column per instance (the CSR forms)."""
        if self.form == "factored":
            return self.K @ r
        # In the [k1, k2, N] view of r, U1 acts on the first axis (one flat product) and U2 on
        # the second (k1 products of [k2, k2] by [k2, N]); no transposes of the batch.
        k1, k2 = self.inv_eig.shape
        n = r.shape[1]
        S = (self.U1t @ r.reshape(k1, k2 * n)).reshape(k1, k2, n)
        S = (self.U2t @ S) * self.inv_eig[:, :, None]
        S = (self.U1 @ S.reshape(k1, k2 * n)).reshape(k1, k2, n)
        return (self.U2 @ S).reshape(k1 * k2, n)

    # -- the constraint matrix on rows of instances ---------------------------------------

    def constraint(self, v: Tensor) -> Tensor:
        """``A v`` for every row of ``v[N, n]``: ``[N, m]``, contiguous."""
        if self.grid is not None:
            return self.constraint_grid(v).reshape(v.shape[0], self.m)
        return (self.A @ v.T.contiguous()).T.contiguous()

    def constraint_t(self, y: Tensor) -> Tensor:
        """``Aᵀ y`` for every row of ``y[N, m]`` (or ``[N, k₁, k₂]`` on a grid): ``[N, n]``."""
        if self.grid is None:
            return (self.At @ y.T.contiguous()).T.contiguous()
        k1, k2 = self.grid.shape
        Y = y.reshape(y.shape[0], k1, k2)
        out = Y.new_empty(Y.shape[0], self.n)
        d_right = torch.sub(Y[:, :, 1:], Y[:, :, :-1], out=self._right(out, write=True))
        d_down = torch.sub(Y[:, 1:, :], Y[:, :-1, :], out=self._down(out, write=True))
        if self.strides is None:
            out.index_copy_(1, self.right_idx, d_right.reshape(Y.shape[0], -1))
            out.index_copy_(1, self.down_idx, d_down.reshape(Y.shape[0], -1))
        return out

    def constraint_abs(self, d: Tensor) -> Tensor:
        """``(A ∘ A) d`` for every row of ``d[N, n]`` (entrywise squares of ``A``): ``[N, m]``.

        For ``d`` a 0/1 mask of arcs this is each node's degree in the masked graph, the
        diagonal of ``A diag(d) Aᵀ``.
        """
        if self.grid is None:
            return (self.A_sq @ d.T.contiguous()).T.contiguous()
        return self.constraint_grid(d, signs=False).reshape(d.shape[0], self.m)

    def constraint_grid(self, v: Tensor, signs: bool = True) -> Tensor:
        """``A v`` on a grid as the node field ``[N, k₁, k₂]``: each node's inflow minus its
        outflow (with ``signs=False``, their sum: ``(A ∘ A) v``)."""
        assert self.grid is not None
        k1, k2 = self.grid.shape
        v = v.contiguous()
        right, down = self._right(v), self._down(v)
        out = v.new_empty(v.shape[0], k1, k2)
        out[:, :, 0].zero_()
        out[:, :, 1:].copy_(right)
        if signs:
            out[:, :, :-1].sub_(right)
        else:
            out[:, :, :-1].add_(right)
        out[:, 1:, :].add_(down)
        if signs:
            out[:, :-1, :].sub_(down)
        else:
            out[:, :-1, :].add_(down)
        return out

    def _right(self, v: Tensor, write: bool = False) -> Tensor:
        """The right arcs of rows ``v[N, n]`` as ``[N, k₁, k₂ − 1]``: a strided view of ``v``
        when the layout allows, else a copy (or, to be written, a fresh tensor)."""
        assert self.grid is not None
        k1, k2 = self.grid.shape
        return self._field(v, (k1, k2 - 1), 0, self.right_idx, write)

    def _down(self, v: Tensor, write: bool = False) -> Tensor:
        """The down arcs of rows ``v[N, n]`` as ``[N, k₁ − 1, k₂]``, as :meth:`_right`."""
        assert self.grid is not None
        k1, k2 = self.grid.shape
        return self._field(v, (k1 - 1, k2), 1, self.down_idx, write)

    def _field(self, v: Tensor, shape: tuple[int, int], which: int, idx: Tensor,
               write: bool) -> Tensor:
        N = v.shape[0]
        if self.strides is not None:
            offset, si, sj = self.strides[which]
            return v.as_strided((N, *shape), (v.stride(0), si, sj), v.storage_offset() + offset)
        if write:
            return v.new_empty(N, *shape)
        return v.index_select(1, idx).view(N, *shape)

    def _gram_grid(self, Y: Tensor) -> Tensor:
        """``K r`` for node fields ``Y[N, k₁, k₂]`` of a grid (row ``i·k₂ + j`` ↔ ``(i, j)``)."""
        if self.form == "dct":
            S = _dct(_dct(Y, 2, self.cos2, self.sin2), 1, self.cos1, self.sin1)
            S.mul_(self.inv_eig)
            return _idct(_idct(S, 2, self.cos2, self.sin2), 1, self.cos1, self.sin1)
        S = torch.matmul(torch.matmul(self.U1t, Y), self.U2)
        S.mul_(self.inv_eig)
        return torch.matmul(torch.matmul(self.U1, S), self.U2t)


def _dct(x: Tensor, dim: int, cos: Tensor, sin: Tensor) -> Tensor:
    """The unnormalised DCT-II ``X_j = Σ_i x_i cos(π j (i + ½) / k)`` along ``dim``, by one real
    FFT of length ``k`` (Makhoul's reordering); ``cos``, ``sin`` of ``π j / (2k)``, ``j ≤ k/2``."""
    x = x.movedim(dim, -1)
    k = x.shape[-1]
    V = torch.view_as_real(torch.fft.rfft(torch.cat([x[..., ::2], x[..., 1::2].flip(-1)], -1)))
    re = V[..., 0] * cos + V[..., 1] * sin  # Re(V e^{−iπj/2k})
    im = V[..., 1] * cos - V[..., 0] * sin  # Im(V e^{−iπj/2k})
    return torch.cat([re, im[..., 1 : (k + 1) // 2].flip(-1).neg_()], -1).movedim(-1, dim)


def _idct(X: Tensor, dim: int, cos: Tensor, sin: Tensor) -> Tensor:
    """The inverse of :func:`_dct` along ``dim``."""
    X = X.movedim(dim, -1)
    k = X.shape[-1]
    half = k // 2 + 1
    re = X[..., :half]
    im = torch.cat([torch.zeros_like(X[..., :1]), X.flip(-1)[..., : k // 2]], -1).neg_()
    # V_j = e^{iπj/2k} (X_j − i X_{k−j}), then x is the reordered inverse real FFT of V.
    V = torch.complex(re * cos - im * sin, re * sin + im * cos)
    v = torch.fft.irfft(V, n=k)
    x = torch.empty_like(v)
    x[..., ::2] = v[..., : (k + 1) // 2]
    x[..., 1::2] = v[..., (k + 1) // 2 :].flip(-1)
    return x.movedim(-1, dim)


class _Complement(torch.autograd.Function):
    """``v ↦ (I − M) v`` in a structured form, with the symmetric map as its own backward.

    Backpropagating through the sparse products or stencils would record and transpose each
    of them; since ``I − M`` is symmetric its vector–Jacobian product is one more application,
    itself differentiable.
    """

    @staticmethod
    def forward(v: Tensor, proj: AffineProjection) -> Tensor:
        return proj._complement(v)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, AffineProjection], output: Tensor) -> None:
        ctx.proj = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return ctx.proj.complement(grad), None


def _to_torch_csr(
    A: sp.csr_matrix, dtype: torch.dtype, device: torch.device | str | None
) -> Tensor:
    csr = torch.sparse_csr_tensor(
        torch.as_tensor(A.indptr, dtype=torch.int64),
        torch.as_tensor(A.indices, dtype=torch.int64),
        torch.as_tensor(A.data, dtype=dtype),
        size=A.shape,
        check_invariants=True,
    )
    return csr.to(device)
