"""The roster comparison (``benchmarks/comparisons/roster_vs_pyepo.py``) at its quick sizes: four
methods at k = 3, far too small for the ratios to mean anything. What must hold at any size is that
the two sides train the same thing: their per-epoch training losses agree.
"""

from __future__ import annotations

import pytest


@pytest.mark.slow
def test_quick_run_trains_the_same_on_both_sides() -> None:
    for module in ("gurobipy", "clarabel"):
        pytest.importorskip(module)
    from benchmarks.comparisons.roster_vs_pyepo import COMPARISON, QUICK

    result = COMPARISON.run("quick")
    assert result.error is None, result.error
    speed = [c for c in result.checks if "s/epoch" in c.what]
    assert len(speed) == len(QUICK.labels) * len(QUICK.ks) * len(QUICK.batch_sizes)
    assert all(c.l2obench.value > 0 and c.reference.value > 0 for c in speed)
    same = [c for c in result.checks if c.what.startswith("training losses")]
    assert len(same) == len(QUICK.ks) and all(c.passed for c in same), same
    (table,) = result.tables
    assert [row[0] for row in table.rows] == list(QUICK.labels)


def test_the_grid_sides_can_be_chosen() -> None:
    """``$L2OBENCH_ROSTER_KS`` keeps the chosen sides with their training sizes and caps."""
    for module in ("pyepo", "gurobipy"):
        pytest.importorskip(module)
    from benchmarks.comparisons.roster_vs_pyepo import FULL, only_ks

    assert only_ks(FULL, "") == FULL
    k20 = only_ks(FULL, "20")
    assert (k20.ks, k20.n_train, k20.frank_wolfe_max_iter) == ((20,), (200,), (100,))
    for bad in ("7", "five", ","):
        with pytest.raises(ValueError, match="L2OBENCH_ROSTER_KS"):
            only_ks(FULL, bad)
