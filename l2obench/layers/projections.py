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
    StoredForm,
    resolve_affine_form,
)
from l2obench.problems.base import LPForm

__all__ = ["DENSE_MAX_VARS", "AffineForm", "AffineProjection", "BoxProjection"]


class BoxProjection(nn.Module):
    """``P_box(z) = clamp(z, lower, upper)``, elementwise; bounds may be infinite."""

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
        return torch.clamp(z, self.lower, self.upper)

    def jacobian_mask(self, z: Tensor) -> Tensor:
        """The diagonal of ``∂P_box/∂z`` (almost everywhere): True where ``lower < z < upper``.

        This is ``D`` in the closed form of the DYS Jacobian (BACKGROUND §1.2).
        """
        return (z > self.lower) & (z < self.upper)


class AffineProjection(nn.Module):
    """``P_aff(v) = v − Aᵀ K (A v − b)`` onto ``{x : A x = b}``, with ``K = (A Aᵀ)⁺``.

    ``K`` is computed once here in float64 by :class:`~l2obench.layers.lp_data.AffineData`;
    eigenvalues of ``A Aᵀ`` below ``rtol · λ_max`` count as zero, because ``A`` may have
    redundant rows (a flow-conservation matrix has rank ``n_nodes − 1``). Written as
    ``P_aff(v) = M v + c`` with the symmetric projector ``M = I − Aᵀ K A`` and the least-norm
    solution ``c = Aᵀ K b`` of ``A x = b``, an application is stored in one of these forms:

    - ``"dense"``: ``M`` as an ``n × n`` matrix, one matrix product per application; fastest for
      small ``n``, but its memory and work grow as ``n²``.
    - ``"factored"``: ``A`` as a sparse CSR matrix and ``K`` as a dense ``m × m`` matrix; an
      application is ``v − Aᵀ(K (A v))`` (two sparse products and one of ``m²`` work). This is the
      form for large LPs without known structure.
    - ``"kronecker"``: sparse ``A`` and ``K`` applied through the eigenvectors of the two small
      factors of a declared Kronecker sum ``A Aᵀ = L₁ ⊗ I + I ⊗ L₂`` (``gram_kronecker``, as
      for grid graphs): ``O(m (k₁ + k₂))`` work per vector instead of ``O(m²)``, and no
      ``m × m`` matrix at all, which is what makes a 100×100 grid affordable.
    - ``"auto"`` (default): ``"dense"`` up to :data:`DENSE_MAX_VARS` variables for ``device``'s
      type, then ``"kronecker"`` where declared, else ``"factored"``. The form is fixed here;
      moving the module later with ``.to()`` keeps it.

    When ``b`` is not in the range of ``A`` the constraints are inconsistent, and the map
    projects onto the least-squares solutions of ``A x = b`` instead.
    """

    M: Tensor
    A: Tensor
    At: Tensor
    K: Tensor
    U1: Tensor
    U2: Tensor
    inv_eig: Tensor
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
        self.form: StoredForm = resolve_affine_form(
            form, data.n_vars, device_type, kronecker=data.kronecker is not None
        )

        as_t: dict[str, Any] = {"dtype": dtype, "device": device}
        self.register_buffer("c", torch.as_tensor(data.c, **as_t))
        if self.form == "dense":
            self.register_buffer("M", torch.as_tensor(data.projector(), **as_t))
        else:
            with warnings.catch_warnings():  # torch flags sparse CSR tensors as beta
                warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support.*")
                warnings.filterwarnings("ignore", message=".*Sparse invariant checks.*")
                self.register_buffer("A", _to_torch_csr(data.A, dtype, device))
                self.register_buffer("At", _to_torch_csr(data.A.T.tocsr(), dtype, device))
            if self.form == "factored":
                self.register_buffer("K", torch.as_tensor(data.K, **as_t))
            else:
                assert data.kronecker is not None
                self.register_buffer("U1", torch.as_tensor(data.kronecker.U1, **as_t))
                self.register_buffer("U2", torch.as_tensor(data.kronecker.U2, **as_t))
                self.register_buffer("inv_eig", torch.as_tensor(data.kronecker.inv_eig, **as_t))

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

        ``shift`` (``[n]`` or ``[N, n]``) is added in the same kernel where the form allows; with
        ``shift = c`` this is ``P_aff(v)``. Differentiable; ``M`` is symmetric, so it is also the
        map's own vector–Jacobian product.
        """
        if self.form == "dense":
            return v @ self.M if shift is None else torch.addmm(shift, v, self.M)
        if torch.is_grad_enabled() and v.requires_grad:
            mv = _FactoredProjector.apply(v, self)
            return mv if shift is None else mv + shift
        # Tape-free (the solver loops): no autograd.Function overhead, the shift added in place.
        mv = self._factored_linear(v)
        return mv if shift is None else mv.add_(shift)

    def _factored_linear(self, v: Tensor) -> Tensor:
        # Sparse CSR products want one contiguous column per instance; the result goes back to
        # rows, because the clamps, norms and row indexing around the projection are several
        # times slower on a column-major [N, n] view than the two transposing copies.
        vt = v.T.contiguous()
        out = self.At @ self._gram_pinv(self.A @ vt)
        return out.neg_().add_(vt).T.contiguous()

    def _gram_pinv(self, r: Tensor) -> Tensor:
        """``K r`` for ``r[m, N]``, one column per instance."""
        if self.form == "factored":
            return self.K @ r
        # In the [k1, k2, N] view of r, U1 acts on the first axis (one flat product) and U2 on
        # the second (k1 products of [k2, k2] by [k2, N]); no transposes of the batch.
        k1, k2 = self.inv_eig.shape
        n = r.shape[1]
        S = (self.U1.T @ r.reshape(k1, k2 * n)).reshape(k1, k2, n)
        S = (self.U2.T @ S) * self.inv_eig[:, :, None]
        S = (self.U1 @ S.reshape(k1, k2 * n)).reshape(k1, k2, n)
        return (self.U2 @ S).reshape(k1 * k2, n)


class _FactoredProjector(torch.autograd.Function):
    """``v ↦ M v`` in factored form, with the symmetric ``M`` as its own backward.

    Backpropagating through the sparse products would transpose ``A`` on each call; since ``M`` is
    symmetric its vector–Jacobian product is one more application, itself differentiable.
    """

    @staticmethod
    def forward(v: Tensor, proj: AffineProjection) -> Tensor:
        return proj._factored_linear(v)

    @staticmethod
    def setup_context(ctx: Any, inputs: tuple[Tensor, AffineProjection], output: Tensor) -> None:
        ctx.proj = inputs[1]

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return ctx.proj.linear(grad), None


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
