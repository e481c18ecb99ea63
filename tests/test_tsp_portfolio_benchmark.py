"""The TSP/portfolio oracle comparison runs at its quick sizes and writes a complete result."""

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
