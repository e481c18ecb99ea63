"""The roster comparison (benchmarks/roster_vs_pyepo.py) runs to structured rows, so it cannot rot.

Only ``--quick`` runs here, on three methods (a plain one, the Frank–Wolfe one, CaVE): its sizes
are far too small for the ratios to mean anything. What must hold at any size is that the two
sides train the same thing: their per-epoch training losses agree.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "roster_vs_pyepo.py"

pytestmark = pytest.mark.slow  # subprocesses


def test_quick_run_writes_rows_whose_training_losses_agree(tmp_path: Path) -> None:
    for module in ("gurobipy", "clarabel"):
        pytest.importorskip(module)
    out = tmp_path / "rows.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--only", "spo+,rfy,cave", "--out", str(out)],
        cwd=SCRIPT.parent.parent, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    data = json.loads(out.read_text())
    rows = data["rows"]
    assert {r["label"] for r in rows} == {"spo+", "rfy", "cave"}
    assert {r["k"] for r in rows} == {3, 4}
    for row in rows:
        assert row["l2obench_s_per_epoch"] > 0 and row["pyepo_s_per_epoch"] > 0
        assert row["loss_rel_diff"] < 1e-5, row
    assert "| method |" in result.stdout and data["provenance"]["pyepo"] == "2.2.7"


def test_unknown_labels_are_refused() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--only", "nope"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "unknown roster labels: nope" in result.stderr
