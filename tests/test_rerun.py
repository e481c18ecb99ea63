"""``l2obench rerun``: every record a suite writes reads back into a cell it accepts, and a
re-run of one reproduces its regret."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from l2obench.cli import main
from l2obench.record import Cell, Record, Status
from l2obench.rerun import with_size_param
from l2obench.store import ResultStore, load_records
from l2obench.suite import builtin_suites, check_cell, expand, load_suite
from tests.conftest import REPO

PUBLISHED = sorted(path for path in (REPO / "results").iterdir() if (path / "records").is_dir())


def _accepted(record: Record) -> bool:
    cell = check_cell(Cell.from_record(with_size_param(record)))
    return cell.cell_id == record.cell_id


@pytest.mark.parametrize("suite", sorted(builtin_suites()))
def test_every_record_of_a_quick_run_passes_the_rerun_check(suite: str) -> None:
    cells = expand(load_suite(suite, quick=True), device="cpu")
    assert cells
    for cell in cells:  # the record a run starts from: the configuration columns it keeps
        record = Record.from_json(json.loads(json.dumps(Record.start(cell, {}).to_json())))
        assert _accepted(record), cell.label


@pytest.mark.parametrize("folder", PUBLISHED, ids=lambda path: path.name)
def test_every_published_record_passes_the_rerun_check(folder: Path) -> None:
    records = load_records(folder)
    assert records
    assert all(_accepted(record) for record in records)


@pytest.mark.slow
def test_one_record_per_method_reruns_to_the_same_regret(tmp_path: Path) -> None:
    from l2obench.runner import run_cell

    # Two epochs with room to spare: each cell stops by epochs, so its result is a function of
    # its configuration and seed alone.
    suite = load_suite("shortest-path", quick=True).with_budget(max_epochs=2, max_seconds=600)
    cells = expand(suite, device="cpu", sizes=[3])
    first: dict[str, Cell] = {}
    for cell in cells:
        first.setdefault(cell.method, cell)
    store = ResultStore(tmp_path / "original")
    for cell in first.values():
        store.write(run_cell(cell))
    for cell in first.values():
        (original,) = [r for r in load_records(store.root) if r.cell_id == cell.cell_id]
        again = tmp_path / f"again-{cell.method}"
        code = main(["rerun", cell.cell_id, "--results", str(store.root), "--out", str(again),
                     "--threads", "1"])
        (record,) = load_records(again)
        assert code == 0 and record.status == original.status == Status.OK, cell.label
        assert record.cell_id == cell.cell_id and record.stopped_by == "epochs"
        assert record.metric("norm_regret") == original.metric("norm_regret"), cell.label
        assert record.per_instance == original.per_instance, cell.label
