"""Mean-variance portfolio: PyEPO's data generator and an exact, batched conic oracle.

``n_assets`` assets with context-dependent expected returns ``r`` and one covariance ``Σ``
shared by the data set; invest a unit budget for the greatest expected return within a risk
budget (PyEPO's ``portfolioModel``)::

    max rᵀx   subject to   Σᵢ xᵢ = 1,   0 ≤ x ≤ 1,   xᵀ Σ x ≤ γ · mean(Σ)

The risk constraint is quadratic, so the problem has **no LP form**: it is a second-order-cone
program, offered as a :class:`~l2obench.problems.base.ConicForm` (``‖F x‖₂ ≤ 1`` with
``FᵀF = Σ / (γ·mean(Σ))``) and solved exactly by Clarabel (licence-free; Gurobi optional), instances
spread over processes. Layers over an LP form do not apply to it; ``cvx-net``, whose
cvxpylayers layer takes the cone, and the methods that only call the oracle do.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from l2obench.params import Param
from l2obench.problems.base import (
    DATA_PARAMS,
    Capability,
    ConicForm,
    Dataset,
    LPForm,
    Problem,
    SecondOrderCone,
    Sense,
)
from l2obench.problems.batching import as_cost_matrix
from l2obench.problems.conic_solvers import solve_conic_batch

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike


class Portfolio(Problem):
    """The portfolio problem of PyEPO (``pyepo.data.portfolio.genData``, ``portfolioModel``).

    Returns follow PyEPO's factor model: ``r = (0.05 (B x)/√p + 0.1^{1/deg})^deg + L f +
    0.01 τ ε`` with ``B ~ Bernoulli(0.5)^{n×p}`` and loadings ``L ~ U(−0.0025 τ, 0.0025 τ)^{n×p}``
    drawn once, ``x ~ N(0, I_p)``, factors ``f ~ N(0, I_p)`` and residuals ``ε ~ N(0, I_n)`` per
    instance, and ``Σ = L Lᵀ + (0.01 τ)² I`` (``τ`` the noise level): the same random-number
    sequence and arithmetic as PyEPO, so features, returns and covariance equal its own. The
    risk level is PyEPO's ``γ · mean(Σ)`` (mean over all entries), ``γ = 2.25`` by default.

    ``covariance`` holds ``Σ`` (float64, ``[n, n]``), ``risk_level`` the risk budget.
    """

    description = ("Mean-variance portfolio (PyEPO generator): max expected return within a "
                   "risk budget, a conic program (no LP form), exact batched Clarabel oracle")
    offers = frozenset({Capability.CONIC_FORM})
    size_param = "n_assets"
    params: ClassVar[dict[str, Param]] = {
        "n_assets": Param(int, 50, "number of assets (decision variables: their shares)", low=1,
                          high=100_000),
        **{k: p for k, p in DATA_PARAMS.items() if k != "noise"},
        "noise_level": Param(
            float, 1.0,
            "noise level τ: scales the factor loadings and the residual noise (PyEPO's)",
            low=0.0, high=1e3,
        ),
        "deg": Param(
            int, 4, "polynomial degree of the feature-to-return map (misspecification)", low=1,
            high=32,
        ),
        "gamma": Param(
            float, 2.25,
            "risk tolerance γ: xᵀΣx ≤ γ·mean(Σ) (PyEPO's default; γ ≥ 1 keeps the equal-weight "
            "portfolio, of risk mean(Σ), feasible)",
            low=1.0, high=1e6,
        ),
        "oracle": Param(
            str, "clarabel", "exact conic solver behind oracle(): Clarabel or Gurobi",
            choices=("clarabel", "gurobi"),
        ),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.loadings: np.ndarray = self._draw_loadings(np.random.RandomState(self.config["seed"]))
        tau = self.config["noise_level"]
        self.covariance: np.ndarray = (
            self.loadings @ self.loadings.T + (1e-2 * tau) ** 2 * np.eye(self.size)
        )
        self.risk_level: float = float(self.config["gamma"] * np.mean(self.covariance))

    def _draw_loadings(self, rnd: np.random.RandomState) -> np.ndarray:
        """``B`` then the ``[n, p]`` loadings ``L``: PyEPO's first two draws; returns ``L``."""
        n, p, tau = self.size, self.config["n_features"], self.config["noise_level"]
        rnd.binomial(1, 0.5, (n, p))
        return rnd.uniform(-2.5e-3 * tau, 2.5e-3 * tau, (n, p))

    @property
    def n_vars(self) -> int:
        """The assets: one share per asset."""
        return self.size

    @property
    def sense(self) -> Sense:
        """A maximisation of expected return."""
        return "max"

    def conic(self) -> ConicForm:
        """``Σ x = 1``, ``0 ≤ x ≤ 1`` and ``‖F x‖₂ ≤ 1`` with ``F = [Lᵀ; 0.01 τ I] / √risk_level``.

        ``FᵀF = (L Lᵀ + (0.01 τ)² I) / risk_level = Σ / risk_level``, so the cone is the risk
        budget. This factor is sparse (``p + n`` rows, ``(p + 1) n`` entries) where a Cholesky
        factor of ``Σ`` is dense, which makes each solve several times faster; dividing by
        ``√risk_level`` (about ``10⁻³`` at PyEPO's defaults) scales the cone to a bound of 1,
        so that a solver's feasibility tolerance reads relative to the risk budget. With ``τ = 0``,
        ``Σ = 0`` and the risk constraint holds for every portfolio, so the form has no cone.
        The returned form is cached and shared.
        """
        return self._conic_form

    @cached_property
    def _conic_form(self) -> ConicForm:
        n, tau = self.size, self.config["noise_level"]
        linear = LPForm(
            A=sp.csr_matrix(np.ones((1, n))), b=np.ones(1), lower=np.zeros(n), upper=np.ones(n),
            sense="max",
        )
        if tau == 0.0:
            return ConicForm(linear)
        factor = sp.vstack(
            [sp.csr_matrix(self.loadings.T), 1e-2 * tau * sp.identity(n)], format="csr"
        )
        risk = SecondOrderCone(F=factor / np.sqrt(self.risk_level), bound=1.0)
        return ConicForm(linear, (risk,))

    def generate(self) -> Dataset:
        """One draw of ``n_train + n_val + n_test`` instances, identical to PyEPO's ``genData``.

        ``B`` and ``L`` (as in :attr:`loadings`), the features, then factors and residuals in one
        draw, in PyEPO's order and with its arithmetic, so that returns match it bit for bit;
        rows are split in order into train, val and test.
        """
        cfg = self.config
        n_train, n_val = cfg["n_train"], cfg["n_val"]
        n = n_train + n_val + cfg["n_test"]
        p, deg, tau, m = cfg["n_features"], cfg["deg"], cfg["noise_level"], self.size
        rnd = np.random.RandomState(cfg["seed"])
        B = rnd.binomial(1, 0.5, (m, p))
        L = rnd.uniform(-2.5e-3 * tau, 2.5e-3 * tau, (m, p))
        x = rnd.normal(0, 1, (n, p))
        r = (0.05 * (x @ B.T) / np.sqrt(p) + 0.1 ** (1 / deg)) ** deg
        fe = rnd.randn(n, p + m)
        r += fe[:, :p] @ L.T + 0.01 * tau * fe[:, p:]
        costs = r.astype(np.float32)
        cuts = [slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n)]
        train, val, test = (self.make_split(x[cut], costs[cut]) for cut in cuts)
        return Dataset(train=train, val=val, test=test)

    def oracle(self, costs: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Optimal portfolios for every row of ``costs[N, n_assets]`` (expected returns).

        Solves the conic program with the ``oracle`` backend to its tolerances (Clarabel:
        ``1e-9`` duality gap and feasibility), each row on its own, large batches over
        processes. Returns ``(solutions[N, n_assets] float64, objectives[N] float64)``
        with ``objectives = costs · solutions`` row-wise. Raises ``ValueError`` for a batch
        that is not shaped ``(N, n_assets)`` or holds non-finite values.
        """
        matrix = as_cost_matrix(costs, self.n_vars)
        return solve_conic_batch(self.conic(), matrix, self.config["oracle"])
