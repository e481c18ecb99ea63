"""The DYS layers' problem data, computed once per LP in NumPy float64 and shared by frameworks.

Every DYS layer applies the same two projections (BACKGROUND §1.1): ``P_box(z) = clip(z, lower,
upper)`` and ``P_aff(v) = M v + c`` onto ``{x : A x = b}``, with ``M = I − Aᵀ K A``,
``K = (A Aᵀ)⁺`` and ``c = Aᵀ K b``. This module computes that data and decides how ``P_aff`` is
stored; the PyTorch layer (:mod:`l2obench.layers.projections`) and the JAX layer
(:mod:`l2obench.layers.dys_jax`) only convert the arrays to their own type, so the maths exists
once and both layers solve the same problem to the last float64 bit of their inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Literal

import numpy as np
import scipy.sparse as sp

from l2obench.problems.base import LPForm, Sense, sense_sign

AffineForm = Literal["auto", "dense", "factored", "kronecker"]
StoredForm = Literal["dense", "factored", "kronecker"]

#: ``form="auto"`` stores the dense ``n × n`` projector up to this many variables, by device
#: type (others use the CPU value); past it the factored form (sparse ``A``, dense ``K``) is
#: faster. Both thresholds are measured crossovers, per DYS iteration on grid shortest-path LPs
#: (batch 256, float32): on a GPU with PyTorch, and on a 2-core CPU with PyTorch and with JAX,
#: which cross over at the same size; the figures are in benchmarks/RESULTS.md ("Measurements
#: behind the defaults"). More CPU cores move the crossover up, but the benchmark's CPU figures
#: come from 2-core machines.
DENSE_MAX_VARS = {"cuda": 2048, "cpu": 512}


def resolve_affine_form(
    form: AffineForm, n_vars: int, device_type: str, kronecker: bool = False
) -> StoredForm:
    """The storage of ``P_aff`` for ``form``.

    ``"auto"`` follows :data:`DENSE_MAX_VARS`; past it, it takes ``"kronecker"`` when the LP
    declares the Kronecker structure of ``A Aᵀ`` (``kronecker=True``) and ``"factored"``
    otherwise.
    """
    if form not in ("auto", "dense", "factored", "kronecker"):
        raise ValueError(
            f"form must be 'auto', 'dense', 'factored' or 'kronecker', not {form!r}"
        )
    if form == "kronecker" and not kronecker:
        raise ValueError("form 'kronecker' needs an LP that declares gram_kronecker")
    if form != "auto":
        return form
    max_dense = DENSE_MAX_VARS.get(device_type, DENSE_MAX_VARS["cpu"])
    if n_vars <= max_dense:
        return "dense"
    return "kronecker" if kronecker else "factored"


@dataclass(frozen=True)
class KroneckerSpectrum:
    """``(A Aᵀ)⁺`` for ``A Aᵀ = L₁ ⊗ I + I ⊗ L₂``, from the eigendecompositions of the factors.

    A Kronecker sum has the eigenvectors ``u₁ᵢ ⊗ u₂ⱼ`` and eigenvalues ``λ₁ᵢ + λ₂ⱼ``, so its
    pseudo-inverse applies in ``O(m (k₁ + k₂))`` work per vector, ``m = k₁ k₂``, and never forms
    an ``m × m`` matrix: on a 100×100 grid that is 10⁴ × 10⁴ entries (400 MB in float32) and an
    ``O(m³)`` eigendecomposition, against two 100×100 ones here. Row ``i·k₂ + j`` of ``A``
    corresponds to the index pair ``(i, j)``.
    """

    U1: np.ndarray  # [k1, k1], orthonormal eigenvectors of L₁ as columns
    U2: np.ndarray  # [k2, k2]
    inv_eig: np.ndarray  # [k1, k2]: 1 / (λ₁ᵢ + λ₂ⱼ), 0 where that eigenvalue counts as zero

    @classmethod
    def from_factors(
        cls, L1: np.ndarray, L2: np.ndarray, rtol: float | None = None
    ) -> KroneckerSpectrum:
        """The spectrum of ``L₁ ⊕ L₂``; eigenvalues below ``rtol · λ_max`` count as zero."""
        lam1, U1 = np.linalg.eigh(np.asarray(L1, dtype=np.float64))
        lam2, U2 = np.linalg.eigh(np.asarray(L2, dtype=np.float64))
        eig = lam1[:, None] + lam2[None, :]
        m = eig.size
        top = float(eig.max()) if m else 0.0
        tol = (m * np.finfo(np.float64).eps if rtol is None else rtol) * top
        inv_eig = np.zeros_like(eig)
        keep = eig > tol
        inv_eig[keep] = 1.0 / eig[keep]
        return cls(U1=U1, U2=U2, inv_eig=inv_eig)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.U1.shape[0]), int(self.U2.shape[0]))

    def apply(self, r: np.ndarray) -> np.ndarray:
        """``(A Aᵀ)⁺ r`` for ``r[m]``."""
        R = np.asarray(r, dtype=np.float64).reshape(self.shape)
        S = (self.U1.T @ R @ self.U2) * self.inv_eig
        return (self.U1 @ S @ self.U2.T).reshape(-1)

    def dense(self) -> np.ndarray:
        """The ``m × m`` matrix ``(A Aᵀ)⁺`` (for the dense and factored forms only)."""
        V = np.kron(self.U1, self.U2)
        return (V * self.inv_eig.reshape(-1)) @ V.T


def check_kronecker_gram(A: sp.csr_matrix, L1: np.ndarray, L2: np.ndarray) -> None:
    """Raise ``ValueError`` unless ``A Aᵀ`` equals ``L₁ ⊗ I + I ⊗ L₂`` to rounding."""
    k1, k2 = L1.shape[0], L2.shape[0]
    if L1.shape != (k1, k1) or L2.shape != (k2, k2) or k1 * k2 != A.shape[0]:
        raise ValueError(
            f"gram_kronecker factors {L1.shape} and {L2.shape} do not fit A with "
            f"{A.shape[0]} rows"
        )
    kron_sum = sp.kron(sp.csr_matrix(L1), sp.identity(k2)) + sp.kron(
        sp.identity(k1), sp.csr_matrix(L2)
    )
    gap = abs(A @ A.T - kron_sum).max()
    scale = max(1.0, abs(kron_sum).max())
    if gap > 1e-12 * scale:
        raise ValueError(
            f"A Aᵀ is not L₁ ⊗ I + I ⊗ L₂ for the declared gram_kronecker (gap {gap:.3g})"
        )


@dataclass(frozen=True)
class AffineData:
    """``P_aff(v) = v − Aᵀ K (A v − b) = M v + c`` onto ``{x : A x = b}``, in float64.

    ``K = (A Aᵀ)⁺``: from the spectrum of the small factors when ``A Aᵀ`` is a declared
    Kronecker sum (:class:`KroneckerSpectrum`), otherwise from an eigendecomposition of ``A Aᵀ``.
    Eigenvalues below ``rtol · λ_max`` count as zero, because ``A`` may have redundant rows (a
    flow-conservation matrix has rank ``n_nodes − 1``). ``c = Aᵀ K b`` is the least-norm
    solution of ``A x = b``. When ``b`` is not in the range of ``A`` the constraints are
    inconsistent, and the map projects onto the least-squares solutions of ``A x = b`` instead.
    The dense ``K`` is computed only when a form asks for it.
    """

    A: sp.csr_matrix  # [m, n]
    c: np.ndarray  # [n]
    kronecker: KroneckerSpectrum | None = None
    rtol: float | None = None

    @classmethod
    def from_constraints(
        cls,
        A: sp.spmatrix | sp.sparray | np.ndarray,
        b: np.ndarray,
        rtol: float | None = None,
        gram_kronecker: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> AffineData:
        """The data of the projection onto ``{x : A x = b}``; ``rtol`` as in :func:`gram_pinv`.

        ``gram_kronecker = (L₁, L₂)`` declares ``A Aᵀ = L₁ ⊗ I + I ⊗ L₂`` (checked here).
        """
        A_sp = sp.csr_matrix(A, dtype=np.float64)
        m, n = A_sp.shape
        b64 = np.asarray(b, dtype=np.float64).reshape(-1)
        if b64.shape != (m,):
            raise ValueError(f"b has shape {b64.shape}, expected ({m},) for A of shape {(m, n)}")
        if gram_kronecker is None:
            K = gram_pinv(A_sp, rtol)
            data = cls(A=A_sp, c=A_sp.T @ (K @ b64), rtol=rtol)
            data.__dict__["K"] = K  # already computed: seed the cached property
            return data
        L1, L2 = (np.asarray(L, dtype=np.float64) for L in gram_kronecker)
        check_kronecker_gram(A_sp, L1, L2)
        spectrum = KroneckerSpectrum.from_factors(L1, L2, rtol)
        return cls(A=A_sp, c=A_sp.T @ spectrum.apply(b64), kronecker=spectrum, rtol=rtol)

    @classmethod
    def from_lp(cls, lp: LPForm, rtol: float | None = None) -> AffineData:
        """The data of ``lp``'s equality constraints, using its declared Gram structure."""
        return cls.from_constraints(lp.A, lp.b, rtol, lp.gram_kronecker)

    @property
    def n_vars(self) -> int:
        return int(self.A.shape[1])

    @cached_property
    def K(self) -> np.ndarray:
        """The dense ``m × m`` matrix ``(A Aᵀ)⁺``."""
        if self.kronecker is not None:
            return self.kronecker.dense()
        return gram_pinv(self.A, self.rtol)

    def projector(self) -> np.ndarray:
        """The dense ``n × n`` projector ``M = I − Aᵀ K A``, symmetrised against rounding."""
        M = np.eye(self.n_vars) - self.A.T @ (self.K @ self.A.toarray())
        return 0.5 * (M + M.T)


@dataclass(frozen=True)
class DYSProblemData:
    """Everything a DYS layer needs from an LP: box bounds, the affine projection, the sense."""

    lower: np.ndarray  # [n] float64, may hold −inf
    upper: np.ndarray  # [n] float64, may hold +inf
    affine: AffineData
    sense: Sense

    def __post_init__(self) -> None:
        n = self.affine.n_vars
        if self.lower.shape != (n,) or self.upper.shape != (n,):
            raise ValueError(
                f"bounds have shapes {self.lower.shape} and {self.upper.shape}, expected ({n},)"
            )
        if bool((self.lower > self.upper).any()):
            raise ValueError("lower bound above upper bound: the box is empty")
        sense_sign(self.sense)  # raises for anything but "min" and "max"

    @classmethod
    def from_lp(cls, lp: LPForm, rtol: float | None = None) -> DYSProblemData:
        """The data of ``lp``; ``rtol`` as in :func:`gram_pinv`."""
        return cls(
            lower=np.asarray(lp.lower, dtype=np.float64).reshape(-1),
            upper=np.asarray(lp.upper, dtype=np.float64).reshape(-1),
            affine=AffineData.from_lp(lp, rtol),
            sense=lp.sense,
        )

    @property
    def n_vars(self) -> int:
        return self.affine.n_vars


def gram_pinv(A: sp.csr_matrix, rtol: float | None) -> np.ndarray:
    """``(A Aᵀ)⁺`` in float64, dropping eigenvalues below ``rtol · λ_max``.

    The default ``rtol`` is ``max(m, n) · ε₆₄``, the rounding level of an eigenvalue of ``A Aᵀ``.
    """
    m, n = A.shape
    G = (A @ A.T).toarray()
    eigval, eigvec = np.linalg.eigh(G)
    top = float(eigval[-1]) if m else 0.0
    tol = (max(m, n) * np.finfo(np.float64).eps if rtol is None else rtol) * top
    keep = eigval > tol
    U = eigvec[:, keep]
    return (U / eigval[keep]) @ U.T
