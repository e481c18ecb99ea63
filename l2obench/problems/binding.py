"""The constraints of an LP form that bind at a decision, as normals in the ``≤`` orientation.

At a vertex ``x`` of ``{x : A x = b, l ≤ x ≤ u}`` the binding constraints' outward normals span
the normal cone, which contains every cost vector that makes ``x`` optimal (``−c`` for a
minimisation). CaVE (Tang & Khalil 2024) trains predicted costs towards that cone. The normals
are read off the form in the decision variables' space (the first ``n_vars`` columns), as PyEPO
reads them off a Gurobi model (``pyepo.data.dataset._extract_tight_normals``), in its order:

- a row whose only auxiliary column is a slack of its own (``a_i x + α s = b_i``,
  ``l_s ≤ s ≤ u_s``) is an inequality; it binds when its slack is at a bound, and contributes
  ``±a_i`` oriented so that the constraint reads ``±a_i x ≤ const``;
- any other row is an equality and contributes ``a_i`` and ``−a_i`` (all ``+`` rows, then all
  ``−`` rows);
- a decision variable at its lower bound contributes ``−e_j``, at its upper bound ``+e_j``
  (all lower, then all upper).

Rows whose decision part is zero are left out. The slacks' values follow from the decision, so
the form's auxiliary columns must all be such slacks (``Capability.SLACK_FORM``); a form with
other auxiliary columns is refused.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from l2obench.errors import L2OBenchError
from l2obench.problems.base import LPForm

#: Slack or bound distance under which a constraint binds (PyEPO's).
BINDING_TOL = 1e-5


class BindingConstraints:
    """The binding constraints of ``lp`` (``n_vars`` decision columns first) at any decision."""

    def __init__(self, lp: LPForm, n_vars: int, tol: float = BINDING_TOL) -> None:
        A = sp.csr_matrix(lp.A, dtype=np.float64)
        self.n_vars = n_vars
        self.tol = tol
        self.A_x = A[:, :n_vars].tocsr()
        aux = A[:, n_vars:].tocsc()
        aux.eliminate_zeros()
        if np.any(np.diff(aux.indptr) != 1):
            raise L2OBenchError("binding constraints need an LP form whose auxiliary columns are "
                                "slacks, each in exactly one row")
        slack_rows = aux.indices
        if len(np.unique(slack_rows)) != len(slack_rows):
            raise L2OBenchError("binding constraints need at most one slack column per row")
        order = np.argsort(slack_rows)
        self.ineq_rows = slack_rows[order]
        self.slack_coef = aux.data[order]
        slack_cols = n_vars + order
        self.slack_lower = np.asarray(lp.lower, dtype=np.float64)[slack_cols]
        self.slack_upper = np.asarray(lp.upper, dtype=np.float64)[slack_cols]
        self.eq_rows = np.setdiff1d(np.arange(A.shape[0]), self.ineq_rows)
        self.b = np.asarray(lp.b, dtype=np.float64)
        self.lower = np.asarray(lp.lower, dtype=np.float64)[:n_vars]
        self.upper = np.asarray(lp.upper, dtype=np.float64)[:n_vars]

    def normals(self, x: np.ndarray) -> sp.csr_matrix:
        """The normals ``[rows, n_vars]`` (float64) of the constraints binding at decision ``x``."""
        x = np.asarray(x, dtype=np.float64)
        if x.shape != (self.n_vars,):
            raise ValueError(f"a decision has {self.n_vars} entries, not shape {x.shape}")
        # Inequalities: row-unit slack distance to each bound (PyEPO's Slack attribute).
        a_rows = self.A_x[self.ineq_rows]
        residual = self.b[self.ineq_rows] - a_rows @ x  # = α s
        at_lower = np.abs(residual - self.slack_coef * self.slack_lower) < self.tol
        at_upper = ~at_lower & (np.abs(residual - self.slack_coef * self.slack_upper) < self.tol)
        # α s ≥ α l (α > 0) reads a x ≤ b − α l: the row itself; the other cases flip it.
        orientation = np.where(at_lower, 1.0, -1.0) * np.sign(self.slack_coef)
        binding = at_lower | at_upper
        le = binding & (orientation > 0)
        ge = binding & (orientation < 0)
        eq = self.A_x[self.eq_rows]
        n = self.n_vars
        low = np.flatnonzero(x <= self.lower + self.tol)
        high = np.setdiff1d(np.flatnonzero(x >= self.upper - self.tol), low)
        blocks = [
            a_rows[le],
            -a_rows[ge],
            eq,
            -eq,
            sp.csr_matrix((-np.ones(len(low)), (np.arange(len(low)), low)), shape=(len(low), n)),
            sp.csr_matrix((np.ones(len(high)), (np.arange(len(high)), high)),
                          shape=(len(high), n)),
        ]
        normals = sp.vstack(blocks, format="csr")
        normals.eliminate_zeros()
        return normals[np.diff(normals.indptr) > 0]
