"""The ratios script (benchmarks/ratios.py) runs every section to a result, so it cannot rot.

Only ``--quick`` runs here: its sizes are far too small for the targets to mean anything, so the
test checks that each of the five sections printed at least one verdict and none failed to run,
not whether the targets were met.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "ratios.py"
SECTIONS = {1, 2, 3, 4, 5}
#: A row of the summary table: ``| section | comparison | measured | target | verdict |``.
ROW = re.compile(r"^\| (\d) \|.*\| (PASS|FAIL|ERROR) \|$")


@pytest.mark.slow
def test_quick_mode_prints_a_result_for_every_section() -> None:
    for module in ("gurobipy", "jax", "optax", "clarabel"):  # the script needs the dev extra
        pytest.importorskip(module)
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], cwd=SCRIPT.parent.parent, capture_output=True,
        text=True, timeout=600,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    summary = result.stdout.split("== Summary ==", 1)[-1]
    verdicts = [match.groups() for match in map(ROW.match, summary.splitlines()) if match]
    assert {int(section) for section, _ in verdicts} == SECTIONS, output
    assert all(verdict != "ERROR" for _, verdict in verdicts), output
