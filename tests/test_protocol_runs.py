"""End to end, as a user runs them: a tuned suite with a data grid, and the PyEPO protocol's
quick profile; each run then reported."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from l2obench.store import load_results, suite_cells
from tests.conftest import run_cli

pytestmark = pytest.mark.slow

TUNED = """
name = "tuned"
problem = "shortest-path"
sizes = [3, 4]
seeds = [0, 1]

[data]
n_train = 40
n_val = 16
n_test = 16
deg = [1, 4]

[budget]
max_epochs = 3
max_seconds = 60

[tuning]
rule = "at-size"
size = 3

[[methods]]
name = "spo+"
params = { lr = [0.1, 0.01], batch_size = 8 }
tune = ["lr"]

[[methods]]
name = "two-stage"
params = { batch_size = 8 }
"""


def test_a_tuned_suite_with_a_data_grid_runs_and_reports(tmp_path: Path) -> None:
    suite = tmp_path / "tuned.toml"
    suite.write_text(TUNED)
    out = tmp_path / "out"
    run = run_cli("run", "--suite", str(suite), "--device", "cpu", "--out", str(out))
    assert run.returncode == 0, run.stdout + run.stderr
    # k = 3: both learning rates and two-stage, k = 4: the selected rate and two-stage, for
    # each degree and seed.
    assert "20 cells: 20 ok" in run.stdout
    # One row per configuration, the selected one starred: 2 sizes × 2 degrees.
    assert run.stdout.count("* spo+[") == 4 and "; * selected" in run.stdout
    assert "selected spo+[batch_size=8] lr=" in run.stdout and "at deg=1" in run.stdout
    records = load_results(out)
    assert len(records) == 20 and (records["status"] == "ok").all()
    assert records["time_to_best_s"].notna().all() and records["val_regret"].notna().all()
    assert records["test_regrets"].map(len).eq(16).all()
    big = records[(records["size"] == 4) & (records["method"] == "spo+")]
    assert big.groupby(big["problem_params"].map(lambda p: json.loads(p)["deg"]))[
        "method_label"].nunique().eq(1).all()
    assert suite_cells(out, "tuned") == set(records["cell_id"])

    report = tmp_path / "report"
    made = run_cli("report", "--results", str(out), "--suite", "tuned", "--out", str(report))
    assert made.returncode == 0, made.stdout + made.stderr
    md = (report / "LEADERBOARD.md").read_text()
    assert "### Tuning" in md and "(fixed for every size)" in md and "Every configuration" in md
    assert md.count("| selected |") >= 8 and "time to best epoch (s)" in md
    assert "paired test vs best (Holm p)" in md and "**" in md.split("### Per size")[1]
    assert (report / "figures" / "tuned-shortest-path-anytime.png").is_file()
    every = pd.read_csv(report / "aggregates.csv")
    assert set(every["data_label"]) == {"deg=1", "deg=4"}


def test_the_pyepo_protocol_quick_profile_runs_ok(tmp_path: Path) -> None:
    out = tmp_path / "out"
    run = run_cli("run", "--suite", "pyepo-protocol", "--quick", "--device", "cpu", "--out",
                  str(out), timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "12 cells: 12 ok" in run.stdout
    made = run_cli("report", "--results", str(out), "--suite", "pyepo-protocol", "--out",
                   str(tmp_path / "report"))
    assert made.returncode == 0, made.stdout + made.stderr
    md = (tmp_path / "report" / "LEADERBOARD.md").read_text()
    assert "Size 5 (40 decision variables) · deg=4" in md and "lr=0.01" in md
