"""Symmetric travelling salesperson: PyEPO's data generator, an exact batched oracle, and the
degree-2 LP relaxation for the layers.

``n_nodes`` cities; a decision is a 0/1 vector over the ``m = n(n−1)/2`` undirected edges in
``itertools.combinations(range(n), 2)`` order (PyEPO's edge variables), one tour through every
city; its cost is the sum of its edges' costs::

    min cᵀx   subject to   x the edge vector of a Hamiltonian cycle

It is the hard combinatorial problem of the set: a MIP with exponentially many subtour
constraints, whose LP relaxations are weak. The exact oracle (:mod:`~l2obench.problems.tsp_solvers`)
is HiGHS on the DFJ formulation with subtour cuts added until the solution is one tour, each
instance on its own, large batches spread over processes; Gurobi is an optional back end and the
compact MTZ formulation an optional, slower one.

**The LP form is a relaxation.** :meth:`TSP.lp` is the *degree-2 relaxation* (the fractional
2-matching polytope): ``Σ_{e ∋ v} x_e = 2`` at every node and ``0 ≤ x ≤ 1``. It is the DFJ
formulation with its integrality and its subtour cuts dropped, and the strongest relaxation that
fits the layers' ``A x = b`` with bounds on the edge variables alone: adding the subtour cuts
would take exponentially many inequalities (or an oracle inside the layer), and the compact
formulations' relaxations (MTZ, GG) need directed arcs, order or flow variables and inequality
slacks, ``O(n²)`` auxiliary columns; MTZ's is also much weaker (a directed 2-cycle is nearly
feasible in it; its gap to the optimal tour against the degree-2 relaxation's is in
``benchmarks/results/comparisons.md``). Its vertices include unions of disjoint subtours, so a
layer's decision need not be a tour; regret is always computed from the exact oracle's tour under
the predicted costs.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
from scipy.spatial import distance

from l2obench.params import Param
from l2obench.problems.base import DATA_PARAMS, Capability, Dataset, LPForm, Problem
from l2obench.problems.batching import as_cost_matrix
from l2obench.problems.tsp_solvers import degree_matrix, solve_tsp_batch, tsp_edges

if TYPE_CHECKING:
    import torch
    from numpy.typing import ArrayLike


class TSP(Problem):
    """The symmetric TSP of PyEPO (``pyepo.data.tsp.genData``), costs on undirected edges.

    Node coordinates are drawn once per data set, ``n // 2`` from ``U(−2, 2)²`` and the rest from
    ``N(0, I₂)``; an edge's cost is its Euclidean length plus a feature-driven part,
    ``c = d + [((B x)/√p + 3)^deg / 3^{deg−1}] · ε``, rounded to 4 decimals, with
    ``B = Bernoulli(0.5) · U(−2, 2)`` per entry (``m × p``, drawn once), ``x ~ N(0, I_p)`` and
    ``ε ~ U[1 − noise, 1 + noise]`` per edge: the same random-number sequence and arithmetic as
    PyEPO, so features and costs equal its own. With an odd ``deg`` the feature part can be
    negative.

    ``edges`` holds the ``[m, 2]`` int64 node pairs ``(i, j)``, ``i < j``, in PyEPO's order.
    """

    description = ("Symmetric TSP (PyEPO generator), exact batched oracle: HiGHS, DFJ with "
                   "subtour cuts; degree-2 LP relaxation for the layers")
    offers = frozenset({Capability.LP_FORM, Capability.BINARY})
    size_param = "n_nodes"
    params: ClassVar[dict[str, Param]] = {
        "n_nodes": Param(int, 20, "number of cities: n(n−1)/2 edge variables", low=3,
                         high=1000),
        **DATA_PARAMS,
        "deg": Param(
            int, 4, "polynomial degree of the feature-to-cost map (misspecification)", low=1,
            high=32,
        ),
        "oracle": Param(
            str, "highs", "exact MIP solver behind oracle(): HiGHS or Gurobi",
            choices=("highs", "gurobi"),
        ),
        "formulation": Param(
            str, "dfj", "exact formulation: DFJ with subtour cuts (fast) or compact MTZ",
            choices=("dfj", "mtz"),
        ),
    }

    def __init__(self, **params: Any) -> None:
        super().__init__(**params)
        self.edges: np.ndarray = tsp_edges(self.size)

    def lp(self) -> LPForm:
        """The degree-2 relaxation: ``Σ_{e ∋ v} x_e = 2`` for every node, ``0 ≤ x ≤ 1``.

        A relaxation, not the TSP (see the module docstring). The returned form is cached and
        shared; do not modify its arrays.
        """
        return self._lp_form

    @cached_property
    def _lp_form(self) -> LPForm:
        m = len(self.edges)
        return LPForm(
            A=degree_matrix(self.size), b=np.full(self.size, 2.0), lower=np.zeros(m),
            upper=np.ones(m), sense="min",
        )

    def generate(self) -> Dataset:
        """One draw of ``n_train + n_val + n_test`` instances, identical to PyEPO's ``genData``.

        Coordinates, ``B``, the features and the noise are drawn in PyEPO's order with its
        arithmetic (``scipy.spatial.distance.pdist`` for the lengths), so that costs match it
        bit for bit; rows are split in order into train, val and test.
        """
        cfg = self.config
        n_train, n_val = cfg["n_train"], cfg["n_val"]
        n = n_train + n_val + cfg["n_test"]
        p, deg, noise = cfg["n_features"], cfg["deg"], cfg["noise"]
        nodes, m = self.size, len(self.edges)
        rnd = np.random.RandomState(cfg["seed"])
        coords = np.concatenate(
            (rnd.uniform(-2, 2, (nodes // 2, 2)), rnd.normal(0, 1, (nodes - nodes // 2, 2)))
        )
        lengths = distance.pdist(coords, "euclidean")
        B = rnd.binomial(1, 0.5, (m, p)) * rnd.uniform(-2, 2, (m, p))
        x = rnd.normal(0, 1, (n, p))
        feature_cost = ((x @ B.T / np.sqrt(p) + 3) ** deg) / 3 ** (deg - 1)
        epsilon = rnd.uniform(1 - noise, 1 + noise, (n, m))
        costs = np.around(lengths + feature_cost * epsilon, decimals=4).astype(np.float32)
        cuts = [slice(0, n_train), slice(n_train, n_train + n_val), slice(n_train + n_val, n)]
        train, val, test = (self.make_split(x[cut], costs[cut]) for cut in cuts)
        return Dataset(train=train, val=val, test=test)

    def oracle(self, costs: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """Optimal tours for every row of ``costs[N, m]`` (any real, finite costs).

        Returns ``(solutions[N, m] float64 in {0, 1}, objectives[N] float64)``: each solution
        one Hamiltonian cycle, ``objectives = costs · solutions`` row-wise; ties between tours
        of equal cost are broken arbitrarily. Raises ``ValueError`` for a batch that is not
        shaped ``(N, m)`` or holds non-finite costs.
        """
        matrix = as_cost_matrix(costs, len(self.edges))
        tours = solve_tsp_batch(
            self.size, matrix, self.config["oracle"], self.config["formulation"]
        )
        return tours, np.einsum("ij,ij->i", matrix, tours)
