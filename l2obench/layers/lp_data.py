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
from typing import Literal

import numpy as np
import scipy.sparse as sp

from l2obench.problems.base import LPForm, Sense

AffineForm = Literal["auto", "dense", "factored"]

#: ``form="auto"`` stores the dense ``n × n`` projector up to this many variables, by device
#: type (others use the CPU value); past it the factored form (sparse ``A``, dense ``K``) is
#: faster. Measured per DYS iteration on grid shortest-path LPs, batch 256, float32: on an H200
#: (PyTorch) dense wins up to 30×30 (1 740 arcs, 0.13 against 0.20 ms), ties at 40×40 (3 120) and
#: loses at 50×50 (4 900, 0.42 against 0.26 ms). On a 2-core CPU a whole 20×20 solve (760 arcs)
#: is 15–25 % faster factored and a 10×10 one (180) 40 % faster dense; with 16 cores the
#: crossover moves up to about 30×30, but the benchmark's CPU figures come from 2-core machines.
#: JAX on the same 2-core CPU (XLA, ``BCOO`` sparse products) crosses over at the same place:
#: one ``M v`` costs 0.17 against 0.24 ms at 10×10 and 1.9 against 1.3 ms at 20×20.
DENSE_MAX_VARS = {"cuda": 2048, "cpu": 512}


def resolve_affine_form(
    form: AffineForm, n_vars: int, device_type: str
) -> Literal["dense", "factored"]:
    """The storage of ``P_aff`` for ``form``: ``"auto"`` follows :data:`DENSE_MAX_VARS`."""
    if form not in ("auto", "dense", "factored"):
        raise ValueError(f"form must be 'auto', 'dense' or 'factored', not {form!r}")
    if form != "auto":
        return form
    max_dense = DENSE_MAX_VARS.get(device_type, DENSE_MAX_VARS["cpu"])
    return "dense" if n_vars <= max_dense else "factored"


@dataclass(frozen=True)
class AffineData:
    """``P_aff(v) = v − Aᵀ K (A v − b) = M v + c`` onto ``{x : A x = b}``, in float64.

    ``K = (A Aᵀ)⁺`` comes from an eigendecomposition of ``A Aᵀ``; eigenvalues below
    ``rtol · λ_max`` count as zero, because ``A`` may have redundant rows (a flow-conservation
    matrix has rank ``n_nodes − 1``). ``c = Aᵀ K b`` is the least-norm solution of ``A x = b``.
    When ``b`` is not in the range of ``A`` the constraints are inconsistent, and the map
    projects onto the least-squares solutions of ``A x = b`` instead.
    """

    A: sp.csr_matrix  # [m, n]
    K: np.ndarray  # [m, m], symmetric
    c: np.ndarray  # [n]

    @classmethod
    def from_constraints(
        cls,
        A: sp.spmatrix | sp.sparray | np.ndarray,
        b: np.ndarray,
        rtol: float | None = None,
    ) -> AffineData:
        """The data of the projection onto ``{x : A x = b}``; ``rtol`` as in :func:`gram_pinv`."""
        A_sp = sp.csr_matrix(A, dtype=np.float64)
        m, n = A_sp.shape
        b64 = np.asarray(b, dtype=np.float64).reshape(-1)
        if b64.shape != (m,):
            raise ValueError(f"b has shape {b64.shape}, expected ({m},) for A of shape {(m, n)}")
        K = gram_pinv(A_sp, rtol)
        return cls(A=A_sp, K=K, c=A_sp.T @ (K @ b64))

    @property
    def n_vars(self) -> int:
        return int(self.A.shape[1])

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
        if self.sense not in ("min", "max"):
            raise ValueError(f"sense must be 'min' or 'max', not {self.sense!r}")

    @classmethod
    def from_lp(cls, lp: LPForm, rtol: float | None = None) -> DYSProblemData:
        """The data of ``lp``; ``rtol`` as in :func:`gram_pinv`."""
        return cls(
            lower=np.asarray(lp.lower, dtype=np.float64).reshape(-1),
            upper=np.asarray(lp.upper, dtype=np.float64).reshape(-1),
            affine=AffineData.from_constraints(lp.A, lp.b, rtol),
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
