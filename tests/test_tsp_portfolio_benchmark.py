"""The comparisons behind the TSP and portfolio problems run at their quick sizes and write
complete results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow


def test_quick_profile_writes_structured_results(tmp_path: Path) -> None:
    pytest.importorskip("gurobipy")
    from benchmarks import tsp_portfolio_oracles

    assert tsp_portfolio_oracles.main(["--quick", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("tsp-portfolio-oracles-*-quick.json")
    result = json.loads(path.read_text())
    assert result["profile"] == "quick" and len(result["load_before"]) == 3
    whats = [c["what"] for c in result["comparisons"]]
    assert any("tspDFJModel" in w for w in whats) and any("portfolioModel" in w for w in whats)
    assert any("compact MTZ" in w for w in whats) and any("Cholesky" in w for w in whats)
    for comparison in result["comparisons"]:
        assert comparison["ours"]["seconds"] > 0 and comparison["speed_up"] > 0
        assert comparison["ours_never_worse"], comparison["what"]
        assert comparison["objective_gap_max"] <= 1e-5, comparison["what"]
    gaps = result["relaxation_gap"]
    assert 0 <= gaps["degree2_mean_gap"] <= gaps["mtz_lp_mean_gap"]


def test_cvx_net_solver_comparison_runs(tmp_path: Path) -> None:
    pytest.importorskip("cvxpylayers")
    from benchmarks import cvx_net_solver

    assert cvx_net_solver.main(["--quick", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("cvx-net-solver-*-quick.json")
    rows = json.loads(path.read_text())["rows"]
    assert {(r["problem"].split()[0], r["solver"]) for r in rows} == {
        ("shortest-path", "Clarabel"), ("shortest-path", "SCS"), ("portfolio", "Clarabel"),
        ("portfolio", "SCS")}
    clarabel = [r for r in rows if r["solver"] == "Clarabel"]
    assert all(r["max_violation"] <= 1e-6 and r["max_distance"] <= 1e-4 for r in clarabel)
