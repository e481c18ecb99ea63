"""The run of one suite (:class:`l2obench.suite_run.SuiteRun`): its plan, its limits, what it
notes in the results folder; and ``rerun`` under the limits the suite's runs noted there."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from l2obench.cli import main
from l2obench.record import Budget, Limits, Record, Status
from l2obench.store import ResultStore, suite_cells, suite_limits, suite_tuning
from l2obench.suite import expand, load_suite
from l2obench.suite_run import (
    DEFAULT_WALL_SECONDS,
    RunOptions,
    SuiteRun,
    cell_limits,
)


def test_limits_come_from_the_options_then_the_suite_then_the_budget() -> None:
    cells = expand(load_suite("shortest-path", quick=True), device="cpu")
    longest = max(c.budget.max_seconds or 0.0 for c in cells)
    assert longest > 0
    assert cell_limits(Limits(), cells) == Limits(wall_seconds=2 * longest + 300)
    declared = Limits(wall_seconds=60.0, memory_mb=512.0)
    assert cell_limits(declared, cells) == declared
    assert cell_limits(declared, cells, wall_seconds=5.0, memory_mb=64.0) == Limits(5.0, 64.0)
    epochs_only = [*cells, dataclasses.replace(cells[0], budget=Budget(max_epochs=2))]
    assert cell_limits(Limits(), epochs_only).wall_seconds == DEFAULT_WALL_SECONDS


def test_a_run_adds_the_tuning_size_and_notes_the_suite_with_its_limits(tmp_path: Path) -> None:
    suite = load_suite("shortest-path", quick=True)
    assert suite.tuning.rule == "at-size" and suite.tuning.size is not None
    other = next(size for size in suite.sizes if size != suite.tuning.size)
    limited = dataclasses.replace(suite, limits=Limits(wall_seconds=90.0))
    run = SuiteRun(limited, RunOptions(device="cpu", sizes=[other], out=str(tmp_path)))
    assert run.tuning_size_added
    assert suite.tuning.size in {c.size for c in run.plan.first} <= {suite.tuning.size, other}
    assert run.plan.pending and {c.size for c in run.plan.pending} == {other}
    assert run.limits.wall_seconds == 90.0
    assert suite_cells(tmp_path, suite.name) is None  # planning writes nothing
    run.prepare()
    whole = {c.cell_id for c in expand(suite, device="cpu")
             if c.size == suite.tuning.size or not suite.tuning.keys(c.method)}
    assert suite_cells(tmp_path, suite.name) == whole  # the whole suite's first stage
    assert suite_tuning(tmp_path, suite.name) == suite.tuning.to_json()
    assert suite_limits(tmp_path, suite.name) == Limits(wall_seconds=90.0)
    SuiteRun(suite, RunOptions(device="cpu", out=str(tmp_path))).prepare()
    assert suite_limits(tmp_path, suite.name) == Limits()  # the latest run's suite declares none


def test_a_damaged_limits_note_is_ignored_with_a_warning(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "s.json").write_text('{"cells": [], "limits": {"wall_seconds": -1}}')
    assert suite_limits(tmp_path, "s") == Limits()
    assert "damaged" in caplog.text


@pytest.mark.slow  # starts the executors' fork server
@pytest.mark.parametrize("override", [[], ["--cell-timeout", "0.001"]])
def test_rerun_runs_under_the_noted_limits_or_the_options(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], override: list[str]) -> None:
    suite = load_suite("shortest-path", quick=True)
    cell = expand(suite, device="cpu")[0]
    store = ResultStore(tmp_path)
    store.write(Record.start(cell, {}).ended(Status.OK, metrics={"norm_regret": 0.5}))
    noted = Limits(wall_seconds=0.001) if not override else Limits(wall_seconds=3600.0)
    store.note_suite(suite.name, [cell.cell_id], None, noted)
    code = main(["rerun", cell.cell_id, "--results", str(tmp_path), *override])
    text = capsys.readouterr().out
    assert "limits wall 1 ms" in " ".join(text.split())
    assert code == 1 and "timeout" in text  # killed at the limit, as a sweep's cell would be
