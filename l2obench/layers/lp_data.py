"""The DYS layers' problem data, computed once per LP in NumPy float64 and shared by frameworks.

Every DYS layer applies the same two projections (docs/methods.md): ``P_box(z) = clip(z, lower,
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

AffineForm = Literal["auto", "dense", "factored", "kronecker", "grid", "dct"]
StoredForm = Literal["dense", "factored", "kronecker", "grid", "dct"]
STORED_FORMS: tuple[StoredForm, ...] = ("dense", "factored", "kronecker", "grid", "dct")

#: ``form="auto"`` stores the dense ``n × n`` projector up to this many variables, by device
#: type (others use the CPU value); past it a structured form (the grid's stencils, the
#: Kronecker eigenbases, or sparse ``A`` with a dense ``K``) is faster. Both thresholds are
#: measured crossovers, per DYS iteration on grid shortest-path LPs (batch 256, float32): on a
#: GPU with PyTorch, and on a 2-core CPU with PyTorch and with JAX, which cross over at the same
#: size; the figures are in benchmarks/results/defaults.md ("Measurements behind the defaults", and
#: "Projection forms" for the structured forms). More CPU cores move the crossover up, but the
#: benchmark's CPU figures come from 2-core machines.
DENSE_MAX_VARS = {"cuda": 2048, "cpu": 512}

#: ``form="auto"`` on a grid whose sides are path Laplacians: from this many nodes per side on,
#: by device type, the DCT (fast Poisson) form replaces the eigenbasis products of the grid
#: form. Never, as measured so far: on a 2-core CPU the DCT form was the slower one at every grid
#: side measured (``benchmarks/results/dys-scale.md``, "Projection forms"); on a GPU it has not been
#: measured (``benchmarks/gpu_check.py`` runs the forms section there), so it is not chosen.
DCT_MIN_SIDE = {"cuda": 10**9, "cpu": 10**9}


def available_forms(data: AffineData) -> tuple[StoredForm, ...]:
    """The storage forms ``data`` supports: dense and factored always; ``"kronecker"`` with a
    declared Kronecker-sum ``A Aᵀ``; ``"grid"`` when ``A`` is moreover a grid's incidence
    matrix; ``"dct"`` when the grid's factors are path Laplacians as well."""
    forms: list[StoredForm] = ["dense", "factored"]
    if data.kronecker is not None:
        forms.append("kronecker")
    if data.grid is not None:
        forms.append("grid")
        if data.grid.path_factors:
            forms.append("dct")
    return tuple(forms)


def resolve_affine_form(form: AffineForm, data: AffineData, device_type: str) -> StoredForm:
    """The storage of ``P_aff`` for ``form`` and the projection data ``data``.

    ``"auto"`` is the measured rule: dense up to :data:`DENSE_MAX_VARS` variables; past it the
    most structured form the data offers: ``"dct"`` on path-Laplacian grids from
    :data:`DCT_MIN_SIDE` nodes per side, else ``"grid"``, else ``"kronecker"``, else
    ``"factored"``. An explicit form the data does not support is refused.
    """
    if form != "auto" and form not in STORED_FORMS:
        raise ValueError(
            "form must be 'auto' or one of " + ", ".join(repr(f) for f in STORED_FORMS)
            + f", not {form!r}"
        )
    forms = available_forms(data)
    if form != "auto":
        if form not in forms:
            needs = {"kronecker": "an LP that declares gram_kronecker",
                     "grid": "an LP that declares gram_kronecker and whose A is the incidence "
                             "matrix of that grid (arcs right and down)",
                     "dct": "a grid LP (as for 'grid') whose factors are path Laplacians"}
            raise ValueError(f"form {form!r} needs {needs[form]}")
        return form
    if data.n_vars <= DENSE_MAX_VARS.get(device_type, DENSE_MAX_VARS["cpu"]):
        return "dense"
    if "dct" in forms:
        assert data.grid is not None
        if min(data.grid.shape) >= DCT_MIN_SIDE.get(device_type, DCT_MIN_SIDE["cpu"]):
            return "dct"
    for structured in ("grid", "kronecker"):
        if structured in forms:
            return structured
    return "factored"


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


def is_path_laplacian(L: np.ndarray) -> bool:
    """Whether ``L`` is exactly the Laplacian of a path (degrees 1, 2, …, 2, 1; −1 beside)."""
    k = L.shape[0]
    if L.shape != (k, k) or k < 2:
        return False
    degree = np.full(k, 2.0)
    degree[[0, -1]] = 1.0
    path = np.diag(degree) - np.eye(k, k=1) - np.eye(k, k=-1)
    return bool(np.array_equal(L, path))


def path_spectrum(k: int) -> np.ndarray:
    """The eigenvalues ``2 − 2 cos(π j / k)``, ``j = 0 … k−1``, of a ``k``-node path Laplacian,
    in the order of the DCT-II basis vectors ``cos(π j (i + ½) / k)`` that are its eigenvectors."""
    return 2.0 - 2.0 * np.cos(np.pi * np.arange(k) / k)


@dataclass(frozen=True)
class GridIncidence:
    """``A`` is the node–arc incidence matrix of a ``k₁ × k₂`` grid whose arcs go right and down.

    Nodes are numbered row by row, node ``(i, j)`` being row ``i·k₂ + j`` of ``A`` (the numbering
    a declared Kronecker sum ``L₁ ⊗ I + I ⊗ L₂`` implies); column ``right[i, j]`` of ``A`` is the
    arc ``(i, j) → (i, j+1)`` and ``down[i, j]`` the arc ``(i, j) → (i+1, j)``, each with −1 at its
    tail and +1 at its head, every such arc present once. Then ``A v`` is the divergence of the
    two arc fields and ``Aᵀ y`` the differences of ``y`` along them: difference stencils, ``O(n)``
    work per instance and no sparse matrix. ``path_factors`` says whether both Kronecker factors
    are path Laplacians, whose eigenvectors form the DCT-II basis (the ``"dct"`` form).
    """

    shape: tuple[int, int]
    right: np.ndarray  # int64 [k1, k2 − 1]
    down: np.ndarray  # int64 [k1 − 1, k2]
    path_factors: bool

    @classmethod
    def detect(cls, A: sp.csr_matrix, L1: np.ndarray, L2: np.ndarray) -> GridIncidence | None:
        """The grid structure of ``A`` for the declared factors, or None if ``A`` is not one."""
        k1, k2 = int(L1.shape[0]), int(L2.shape[0])
        m, n = A.shape
        if m != k1 * k2 or n != k1 * (k2 - 1) + (k1 - 1) * k2 or n == 0:
            return None
        csc = sp.csc_matrix(A)
        csc.sum_duplicates()
        csc.eliminate_zeros()
        if (np.diff(csc.indptr) != 2).any():
            return None
        rows = csc.indices.reshape(n, 2)
        vals = csc.data.reshape(n, 2)
        if not (np.sort(vals, axis=1) == [-1.0, 1.0]).all():
            return None
        first_is_tail = vals[:, 0] == -1.0
        tail = np.where(first_is_tail, rows[:, 0], rows[:, 1])
        head = np.where(first_is_tail, rows[:, 1], rows[:, 0])
        ti, tj = np.divmod(tail, k2)
        is_right = (head - tail == 1) & (tj < k2 - 1)
        is_down = head - tail == k2
        if not (is_right | is_down).all():
            return None
        right = np.full((k1, k2 - 1), -1, dtype=np.int64)
        down = np.full((k1 - 1, k2), -1, dtype=np.int64)
        cols = np.arange(n)
        right[ti[is_right], tj[is_right]] = cols[is_right]
        down[ti[is_down], tj[is_down]] = cols[is_down]
        if (right < 0).any() or (down < 0).any():  # an arc missing, so another one doubled
            return None
        path = is_path_laplacian(L1) and is_path_laplacian(L2)
        return cls(shape=(k1, k2), right=right, down=down, path_factors=path)

    def strides(self) -> tuple[tuple[int, int, int], tuple[int, int, int]] | None:
        """``(offset, row stride, column stride)`` of the right and down arcs' columns, if both
        index grids are affine (PyEPO's arc order is), so that the arc fields are strided views
        of a row of ``[N, n]``; None otherwise."""
        right, down = _affine(self.right), _affine(self.down)
        return None if right is None or down is None else (right, down)

    def inv_eig_dct(self, rtol: float | None = None) -> np.ndarray:
        """``1 / (λ₁ᵢ + λ₂ⱼ)`` in the DCT order (:func:`path_spectrum`), 0 where that eigenvalue
        counts as zero (below ``rtol · λ_max``, as in :class:`KroneckerSpectrum`)."""
        k1, k2 = self.shape
        eig = path_spectrum(k1)[:, None] + path_spectrum(k2)[None, :]
        tol = ((k1 * k2) * np.finfo(np.float64).eps if rtol is None else rtol) * float(eig.max())
        inv = np.zeros_like(eig)
        keep = eig > tol
        inv[keep] = 1.0 / eig[keep]
        return inv


def _affine(idx: np.ndarray) -> tuple[int, int, int] | None:
    """``(offset, si, sj)`` with ``idx[i, j] = offset + i·si + j·sj`` for all ``i, j``, or None."""
    a, b = idx.shape
    offset = int(idx[0, 0])
    si = int(idx[1, 0] - offset) if a > 1 else 0
    sj = int(idx[0, 1] - offset) if b > 1 else 0
    expected = offset + si * np.arange(a)[:, None] + sj * np.arange(b)[None, :]
    return (offset, si, sj) if np.array_equal(idx, expected) else None


@dataclass(frozen=True)
class AffineData:
    """``P_aff(v) = v − Aᵀ K (A v − b) = M v + c`` onto ``{x : A x = b}``, in float64.

    ``K = (A Aᵀ)⁺``: from the spectrum of the small factors when ``A Aᵀ`` is a declared
    Kronecker sum (:class:`KroneckerSpectrum`), otherwise from an eigendecomposition of ``A Aᵀ``.
    Eigenvalues below ``rtol · λ_max`` count as zero, because ``A`` may have redundant rows (a
    flow-conservation matrix has rank ``n_nodes − 1``). ``c = Aᵀ K b`` is the least-norm
    solution of ``A x = b``. When ``b`` is not in the range of ``A`` the constraints are
    inconsistent, and the map projects onto the least-squares solutions of ``A x = b`` instead.
    The dense ``K`` is computed only when a form asks for it. ``grid`` holds the grid structure
    of a declared Kronecker ``A`` when it has one (:class:`GridIncidence`).
    """

    A: sp.csr_matrix  # [m, n]
    c: np.ndarray  # [n]
    kronecker: KroneckerSpectrum | None = None
    rtol: float | None = None
    grid: GridIncidence | None = None

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
        return cls(A=A_sp, c=A_sp.T @ spectrum.apply(b64), kronecker=spectrum, rtol=rtol,
                   grid=GridIncidence.detect(A_sp, L1, L2))

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
        return np.eye(self.n_vars) - self.complement()

    def complement(self) -> np.ndarray:
        """The dense ``n × n`` projector ``I − M = Aᵀ K A`` onto the row space of ``A``,
        symmetrised against rounding."""
        Q = self.A.T @ (self.K @ self.A.toarray())
        return 0.5 * (Q + Q.T)


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
