"""An exact knapsack oracle by enumeration, for knapsacks that hold few items.

PyEPO's knapsack keeps its capacity (20) whatever the number of items, and every weight is at
least 3: an item set holds at most six items, and at 20 items only about a thousand sets are
*maximal* (no further item fits). Where the maximal sets are that few, the best set for a whole
batch of values is one matrix product and an argmax, instead of one MIP per instance.

Exactness, for any real values ``c``: let ``c⁺ = max(c, 0)`` and ``M*`` the maximal set of
greatest ``c⁺``-value. Every feasible set ``S`` lies in some maximal set ``M`` (adding items
keeps ``c⁺`` from falling), so ``c(S) ≤ c⁺(S) ≤ c⁺(M) ≤ c⁺(M*)``; and ``T = {i ∈ M* : cᵢ > 0}``
is feasible (a subset of a feasible set) with ``c(T) = c⁺(M*)``. ``T`` is therefore optimal.

The sets are enumerated once per weight matrix, level by level (sets of ``k`` items in
increasing index order, extended by a larger index while they fit), and the enumeration stops
as soon as the feasible sets outnumber a limit: the caller then solves the MIPs instead.
"""

from __future__ import annotations

import numpy as np

#: Feasible sets beyond which enumerating is left to a MIP solver (the product's matrix and
#: its per-row values grow with the number of sets).
MAX_SETS = 200_000
#: Entries of the values matrix (instances × maximal sets) computed at once.
_CHUNK_ENTRIES = 2_000_000
#: Tolerance of "fits": weights of PyEPO's generator are hundredths, so sums equal to the
#: capacity differ from it by rounding only.
_FIT_TOL = 1e-9


def maximal_sets(weights: np.ndarray, capacity: np.ndarray,
                 limit: int = MAX_SETS) -> np.ndarray | None:
    """The maximal item sets that fit ``capacity`` as ``[M, n]`` bool rows, or ``None`` where the
    feasible sets number more than ``limit``.

    ``weights`` is ``[dim, n]`` (non-negative), ``capacity`` ``[dim]``. A set fits where its
    weights sum to at most the capacity in every dimension; it is maximal where no other item
    fits beside it. The empty set is the only maximal set where no item fits on its own.
    """
    dim, n = weights.shape
    room = capacity + _FIT_TOL * np.maximum(1.0, np.abs(capacity))
    level = np.zeros((1, 0), dtype=np.intp)  # the feasible sets of k items, by index
    sums = np.zeros((1, dim))
    count = 1
    maximal = []
    step = max(1, _CHUNK_ENTRIES // (dim * n))  # sets extended at once
    while len(level):
        grown, grown_sums = [], []
        for start in range(0, len(level), step):
            part, part_sums = level[start:start + step], sums[start:start + step]
            totals = part_sums[:, :, None] + weights[None, :, :]  # [sets, dim, items]
            fits = (totals <= room[None, :, None]).all(axis=1)
            # Maximal: no item outside the set fits (items before its last index included).
            held = np.zeros((len(part), n), dtype=bool)
            np.put_along_axis(held, part, True, axis=1)
            maximal.append(held[~(fits & ~held).any(axis=1)])
            last = part[:, -1] if part.shape[1] else np.full(len(part), -1)
            rows, items = np.nonzero(fits & (np.arange(n)[None, :] > last[:, None]))
            count += len(rows)
            if count > limit:
                return None
            grown.append(np.hstack([part[rows], items[:, None]]))
            grown_sums.append(totals[rows, :, items])
        level, sums = np.vstack(grown), np.vstack(grown_sums)
    return np.vstack(maximal)


def best_sets(values: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """The optimal item set of every row of ``values[N, n]`` (float64 ``{0, 1}`` rows), given
    every maximal feasible set ``sets[M, n]`` (:func:`maximal_sets`); see the module's note for
    why clipping the values at zero and dropping the non-positive items is exact."""
    clipped = np.maximum(values, 0.0)
    table = sets.astype(np.float64).T  # [n, M]
    chosen = np.empty(len(values), dtype=np.intp)
    step = max(1, _CHUNK_ENTRIES // max(1, len(sets)))
    for start in range(0, len(values), step):
        chosen[start:start + step] = (clipped[start:start + step] @ table).argmax(axis=1)
    return (sets[chosen] & (values > 0)).astype(np.float64)
