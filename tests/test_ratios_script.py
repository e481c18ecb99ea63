"""The ratio comparisons (``python -m benchmarks.comparisons.ratios``) run to structured results,
so they cannot rot.

Only ``--quick`` runs here: its sizes are far too small for the targets to mean anything, so the
test checks that every comparison wrote a result with no error, with checks whose two sides were
both measured and whose verdicts follow their values, not whether the targets were met.
"""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_run_gives_every_comparison_a_measured_result(tmp_path: Path) -> None:
    for module in ("gurobipy", "jax", "optax", "clarabel"):  # the comparisons need the dev extra
        pytest.importorskip(module)
    from benchmarks.comparisons.comparison import load_result
    from benchmarks.comparisons.ratios import COMPARISONS
    from benchmarks.comparisons.tables import comparison_block

    run = subprocess.run(
        [sys.executable, "-m", "benchmarks.comparisons.ratios", "--quick", "--out", str(tmp_path)],
        cwd=REPO, capture_output=True, text=True, timeout=600,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output
    results = [load_result(path) for path in sorted(tmp_path.glob("*-quick-*.json"))]
    assert sorted(r.comparison for r in results) == sorted(COMPARISONS), output
    for result in results:
        assert result.profile == "quick" and result.error is None, result
        assert result.checks, f"{result.comparison}: no checks"
        assert len(result.load_before) == len(result.load_after) == 3
        assert result.machine.commit and result.machine.cores >= 1
        assert result.started <= result.finished and result.wall_s >= 0
        for check in result.checks:
            sides = (check.l2obench.value, check.reference.value, check.value)
            assert all(math.isfinite(v) for v in sides), check
            assert check.passed == check.target.met(check.value)
            assert check.what in run.stdout  # the printed summary lists it
        block = comparison_block(result)
        assert all(check.what.replace("|", "\\|") in block for check in result.checks)
