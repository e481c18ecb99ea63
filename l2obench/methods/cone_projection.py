"""Projection onto polyhedral cones by Clarabel: CaVE's quadratic program, solvers kept per cone.

The projection of ``v`` onto ``{Cᵀλ : λ ≥ 0}`` (the rows of ``C`` its generators) is ``Cᵀλ*``
with ``λ* = argmin_{λ ≥ 0} ‖Cᵀλ − v‖²``, stated for Clarabel exactly as PyEPO's CaVE states it
(``pyepo.func.cave``): ``½ λᵀPλ + qᵀλ`` with ``P = 2CCᵀ`` (upper triangle), ``q = −2Cv``, the
constraint ``−λ + s = 0, s ≥ 0``, and PyEPO's settings (``max_iter`` interior-point iterations,
one thread, no presolve, no equilibration). With PyEPO's default of 3 iterations the QP is
deliberately left unconverged (the "CaVE+" preset), so the iterates themselves are the result
and the same solver must produce them.

What differs is the cost. PyEPO builds ``C`` dense and forms ``CCᵀ`` densely for every instance
at every step; here ``C`` is sparse and each distinct cone gets one Clarabel solver, set up once:
a later projection onto it only replaces ``q`` (Clarabel's data update, which keeps the
factorisation's symbolic analysis and starts the iterations afresh, so the iterates equal a new
solver's). Solvers are kept until their matrices reach ``cache_nnz`` stored entries in all;
cones beyond that are set up at every use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

#: Stored entries of ``P`` over all cached solvers (about 12 bytes each, several times that in
#: the solver's factorisation) before new cones stop being cached.
CACHE_NNZ = 5_000_000

#: Generator matrices with at most this many entries are also kept dense: two small dense
#: products per projection cost a few microseconds, scipy's sparse ones tens.
DENSE_ENTRIES = 65_536


@dataclass(frozen=True)
class Cone:
    """A polyhedral cone ``{Cᵀλ : λ ≥ 0}``: its generators ``C`` (CSR, float64) and a key."""

    generators: sp.csr_matrix
    key: bytes
    unit_mean: np.ndarray = field(init=False, repr=False)
    #: ``C`` and ``Cᵀ`` as the products of a projection use them (dense when small).
    forward: np.ndarray | sp.csr_matrix = field(init=False, repr=False)
    backward: np.ndarray | sp.csr_matrix = field(init=False, repr=False)

    def __post_init__(self) -> None:
        """``unit_mean``: the mean of the unit-normalised generators (CaVE Hybrid's heuristic)."""
        C = self.generators
        norms = np.sqrt(np.asarray(C.multiply(C).sum(axis=1)).ravel())
        unit = sp.diags(1.0 / np.maximum(norms, 1e-8)) @ C
        mean = np.asarray(unit.sum(axis=0)).ravel() / max(C.shape[0], 1)
        dense = C.shape[0] * C.shape[1] <= DENSE_ENTRIES
        object.__setattr__(self, "unit_mean", mean)
        object.__setattr__(self, "forward", C.toarray() if dense else C)
        object.__setattr__(self, "backward", C.T.toarray() if dense else C.T.tocsr())


class ConeProjection:
    """Projects vectors onto :class:`Cone` s with Clarabel, ``max_iter`` iterations each."""

    def __init__(self, max_iter: int, cache_nnz: int = CACHE_NNZ) -> None:
        import clarabel

        self.clarabel = clarabel
        self.max_iter = max_iter
        self.cache_nnz = cache_nnz
        self._solvers: dict[bytes, Any] = {}
        self._cached_nnz = 0
        settings = clarabel.DefaultSettings()
        settings.max_iter = int(max_iter)
        settings.verbose = False
        settings.max_threads = 1
        settings.presolve_enable = False
        settings.equilibrate_enable = False
        self.settings = settings

    def project(self, v: np.ndarray, cone: Cone) -> np.ndarray:
        """``Cᵀλ`` after Clarabel's iterations on ``min_{λ≥0} ‖Cᵀλ − v‖²`` (``v`` itself when
        the cone has no generators)."""
        C = cone.generators
        v = np.asarray(v, dtype=np.float64)
        if C.shape[0] == 0:
            return v.copy()
        q = -2.0 * (cone.forward @ v)
        solver = self._solvers.get(cone.key)
        if solver is None:
            solver, size = self._new_solver(C, q)
            if self._cached_nnz + size <= self.cache_nnz:
                self._solvers[cone.key] = solver
                self._cached_nnz += size
        else:
            solver.update(q=q)
        lam = np.asarray(solver.solve().x)
        return np.asarray(cone.backward @ lam)

    def _new_solver(self, C: sp.csr_matrix, q: np.ndarray) -> tuple[Any, int]:
        """A Clarabel solver of the cone's QP with linear term ``q``, and the entries of ``P``."""
        m = C.shape[0]
        P = sp.triu(2.0 * (C @ C.T), format="csc")
        P.eliminate_zeros()
        P.sort_indices()
        A = -sp.identity(m, format="csc")
        cones = [self.clarabel.NonnegativeConeT(m)]
        solver = self.clarabel.DefaultSolver(P, q, A, np.zeros(m), cones, self.settings)
        return solver, int(P.nnz)
