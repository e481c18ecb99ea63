"""Multi-dimensional 0/1 knapsack: PyEPO's data generator and an exact, batched oracle.

``n_items`` items with weights ``W ∈ R^{dim×n}`` (fixed for the data set) and values that depend
on the context; choose items of greatest total value whose weight fits the capacity in every
dimension::

    max cᵀx   subject to   W x ≤ capacity,   x ∈ {0, 1}^n

It is a maximisation, a MIP rather than an LP, and its constraints are inequalities: the second
benchmark problem exists to show that methods work on such a problem through the problem
contract alone. The LP relaxation, in the standard form of :class:`LPForm`, adds one slack
variable per dimension after the items (``W x + s = capacity``, ``0 ≤ x ≤ 1``,
``0 ≤ s ≤ capacity``); cost vectors, solutions and decisions cover the items only, and the
slacks are the form's auxiliary columns, priced at zero.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import scipy.sparse as sp

from l2obench.params import Param
from l2obench.problems import knapsack_sets
from l2obench.problems.base import DATA_PARAMS, Capability, Dataset, LPForm, Problem
from l2obench.problems.batching import as_cost_matrix
from l2obench.problems.lp_solvers import solve_lp_batch

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike

logger = logging.getLogger(__name__)


class Knapsack(Problem):
    """The multi-dimensional knapsack of PyEPO (``pyepo.data.knapsack.genData``).

    Weights are drawn uniformly from ``{3.00, 3.01, …, 7.99}``; item values are
    ``c = ⌈5 [((B x)/√p + 3)^deg + 1] / 3.5^deg · ε⌉`` with ``x ~ N(0, I_p)``,
    ``B ~ Bernoulli(0.5)^{n×p}`` drawn once and ``ε ~ U[1 − noise, 1 + noise]`` per item, with the
    same random-number sequence as PyEPO, so weights, features and values equal its own.

    ``weights`` holds the ``[dim, n_items]`` float64 weight matrix of the data set.
    """

    description = "Multi-dimensional 0/1 knapsack (PyEPO generator), exact batched oracle"
    offers = frozenset({Capability.LP_FORM, Capability.BINARY, Capability.SLACK_FORM})
    size_param = "n_items"
    params: ClassVar[dict[str, Param]] = {
        "n_items": Param(int, 20, "number of items (binary decision variables)", low=1,
                         high=100_000),
        "dim": Param(int, 2, "number of capacity constraints (knapsack dimensions)", low=1,
                     high=1000),
        "capacity": Param(float, 20.0, "capacity in every dimension (weights lie in [3, 8))",
                          low=1e-6, high=1e9),
        **DATA_PARAMS,
        "deg": Param(
            int, 4, "polynomial degree of the feature-to-value map (misspecification)", low=1,
            high=32,
        ),
        "oracle": Param(
            str, "auto", "exact solver behind oracle(): auto (every maximal item set scored "
            "at once where the item sets that fit are few, else HiGHS), or the MIP by HiGHS or "
            "Gurobi", choices=("auto", "highs", "gurobi"),
        ),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.weights: np.ndarray = self._draw_weights(np.random.RandomState(self.config["seed"]))

    def _draw_weights(self, rnd: np.random.RandomState) -> np.ndarray:
        """The ``[dim, n_items]`` weights: PyEPO's first draw, integers 300…799 in hundredths."""
        return rnd.randint(300, 800, size=(self.config["dim"], self.size)) / 100

    @property
    def n_vars(self) -> int:
        """The items: cost vectors, solutions and decisions have one entry per item."""
        return self.size

    def lp(self) -> LPForm:
        """The LP relaxation: ``[W I] [x; s] = capacity``, ``0 ≤ x ≤ 1``, ``0 ≤ s ≤ capacity``.

        The ``dim`` slack columns follow the ``n_items`` item columns. The returned form is
        cached and shared; do not modify its arrays.
        """
        return self._lp_form

    @cached_property
    def _lp_form(self) -> LPForm:
        dim, n = self.weights.shape
        capacity = np.full(dim, self.config["capacity"])
        A = sp.hstack([sp.csr_matrix(self.weights), sp.identity(dim)], format="csr")
        return LPForm(
            A=A.astype(np.float64),
            b=capacity,
            lower=np.zeros(n + dim),
            upper=np.concatenate([np.ones(n), capacity]),
            sense="max",
        )

    def generate(self) -> Dataset:
        """One draw of ``n_train + n_val + n_test`` instances, identical to PyEPO's ``genData``.

        The weights (:attr:`weights`), ``B``, the features and the noise are drawn in PyEPO's
        order and with its arithmetic, so that values match it bit for bit; rows are split in
        order into train, val and test.
        """
        cfg = self.config
        n_train, n_val = cfg["n_train"], cfg["n_val"]
        n = n_train + n_val + cfg["n_test"]
        p, deg, noise = cfg["n_features"], cfg["deg"], cfg["noise"]
        rnd = np.random.RandomState(cfg["seed"])
        self._draw_weights(rnd)  # the same weights again: the draws after them depend on it
        B = rnd.binomial(1, 0.5, (self.size, p))
        x = rnd.normal(0, 1, (n, p))
        values = (x @ B.T / np.sqrt(p) + 3) ** deg + 1
        values *= 5
        values /= 3.5**deg
        values *= rnd.uniform(1 - noise, 1 + noise, (n, self.size))
        costs = np.ceil(values).astype(np.float32)
        cuts = [slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n)]
        train, val, test = (self.make_split(x[cut], costs[cut]) for cut in cuts)
        return Dataset(train=train, val=val, test=test)

    def oracle(self, costs: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Optimal item sets for every row of ``costs[N, n_items]`` (any real, finite values).

        With ``oracle="auto"``, where at most :data:`~l2obench.problems.knapsack_sets.MAX_SETS`
        item sets fit (PyEPO's capacity holds at most six items: some sixty items or fewer),
        scores every maximal item set at once (:mod:`l2obench.problems.knapsack_sets`);
        otherwise solves the MIP (items binary, slacks continuous) with HiGHS (or the
        ``oracle`` named), building the model once per block of instances and changing only
        the objective; large batches are spread over processes
        (:func:`~l2obench.problems.lp_solvers.solve_lp_batch`). Returns
        ``(solutions[N, n_items] float64 in {0, 1}, objectives[N] float64)`` with
        ``objectives = costs · solutions`` row-wise; ties are broken arbitrarily. Raises
        ``ValueError`` for a batch that is not shaped ``(N, n_items)`` or holds non-finite
        values.
        """
        matrix = as_cost_matrix(costs, self.n_vars)
        if self._maximal_sets is not None:
            items = knapsack_sets.best_sets(matrix, self._maximal_sets)
            return items, np.einsum("ij,ij->i", matrix, items)
        dim = self.weights.shape[0]
        priced = np.pad(matrix, ((0, 0), (0, dim)))  # the slacks cost nothing
        integer = np.arange(self.n_vars + dim) < self.n_vars
        backend = "highs" if self.config["oracle"] == "auto" else self.config["oracle"]
        solutions, _ = solve_lp_batch(self.lp(), priced, backend, integer=integer)
        items = solutions[:, : self.n_vars]
        return items, np.einsum("ij,ij->i", matrix, items)

    @cached_property
    def _maximal_sets(self) -> np.ndarray | None:
        """Every maximal item set, where ``oracle="auto"`` and they are few enough to score at
        once; ``None``: solve MIPs."""
        if self.config["oracle"] != "auto":
            return None
        capacity = np.full(self.weights.shape[0], self.config["capacity"])
        limit = knapsack_sets.MAX_SETS
        sets = knapsack_sets.maximal_sets(self.weights, capacity, limit)
        if sets is None:
            logger.debug("knapsack of %d items: over %d item sets fit; solving MIPs with HiGHS",
                         self.size, limit)
        return sets
