"""The record module: the one definition of the columns, statuses and the cell of a record."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from l2obench.problems.base import problem_registry
from l2obench.record import (
    RECORD_COLUMNS,
    SCHEMA_VERSION,
    Cell,
    Record,
    RecordError,
    Status,
    records_page,
)
from l2obench.store import load_records, load_results
from tests.conftest import REPO

PUBLISHED = REPO / "results" / "shortest-path"


def test_docs_records_page_is_generated_from_the_record() -> None:
    assert (REPO / "docs" / "records.md").read_text() == records_page()


def test_published_records_load_and_give_back_their_cells() -> None:
    records = load_records(PUBLISHED)
    assert len(records) > 100
    for record in records:
        size_param = problem_registry.get(record.problem).size_param
        cell = Cell.from_record(record.with_size_param(size_param))
        assert cell.cell_id == record.cell_id  # the same configuration hashes the same
    frame = load_results(PUBLISHED)
    fixed = [c for c in RECORD_COLUMNS if c not in ("metrics", "extras", "per_instance")]
    spread = ["norm_regret", "test_regrets", "accuracy", "val_regret"]  # the task's, in order
    assert list(frame.columns) == fixed + spread and len(frame) == len(records)
    assert all(r.schema_version == SCHEMA_VERSION and r.task == "decision" for r in records)
    assert frame.loc[frame["status"] == "ok", "norm_regret"].notna().all()


def test_an_old_record_migrates_into_the_metrics_map() -> None:
    """Version 1 held the decision family's metrics in flat columns and called the validation
    score ``val_regret`` in its history; it reads back in the current layout."""
    old = {"cell_id": "0123456789abcdef", "status": "ok", "problem": "p", "method": "m",
           "norm_regret": 0.25, "accuracy": 0.5, "val_regret": 0.3, "test_regrets": [0.1, 0.4],
           "best_epoch": 1, "history": [{"epoch": 1, "train_loss": 1.0, "val_regret": 0.3}]}
    record = Record.from_json(old)
    assert record.schema_version == SCHEMA_VERSION and record.task == "decision"
    assert record.metrics == {"norm_regret": 0.25, "accuracy": 0.5, "val_regret": 0.3}
    assert record.per_instance == {"test_regrets": [0.1, 0.4]}
    assert record.history == [{"epoch": 1, "train_loss": 1.0, "val_score": 0.3}]
    assert Record.from_json(record.to_json()) == record  # the current layout stays as it is
    with pytest.raises(RecordError, match="schema_version 99"):
        Record.from_json({**old, "schema_version": 99})


def test_json_round_trip_keeps_every_column() -> None:
    record = Record(cell_id="0123456789abcdef", problem="p", method="m", status=Status.OK,
                    metrics={"norm_regret": 0.5}, per_instance={"test_regrets": [0.5, 0.0]},
                    history=[{"epoch": 1, "val_score": 0.2}])
    text = json.dumps(record.to_json())
    assert Record.from_json(json.loads(text)) == record


@pytest.mark.parametrize("data", [
    [1, 2, 3],
    "a string",
    {"cell_id": "0123456789abcdef"},
    {"cell_id": "0123456789abcdef", "status": "ok", "problem": "p", "method": 3},
    {"cell_id": "../../etc/passwd", "status": "ok", "problem": "p", "method": "m"},
    {"cell_id": "0123456789abcdef", "status": "finished", "problem": "p", "method": "m"},
    {"cell_id": "0123456789abcdef", "status": "ok", "problem": "p", "method": "m",
     "norm_regret": "0.1"},
    {"cell_id": "0123456789abcdef", "status": "ok", "problem": "p", "method": "m",
     "schema_version": 2, "metrics": {"norm_regret": "0.1"}},
    {"cell_id": "0123456789abcdef", "status": "ok", "problem": "p", "method": "m",
     "schema_version": 2, "per_instance": {"test_regrets": 0.1}},
])
def test_foreign_objects_are_not_records(data: object) -> None:
    with pytest.raises(RecordError, match="not a record"):
        Record.from_json(data)


def test_a_record_of_another_cell_is_refused(tmp_path: Path) -> None:
    record = Record(cell_id="0123456789abcdef", problem="p", method="m", status=Status.OK)
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "fedcba9876543210.json").write_text(json.dumps(record.to_json()))
    with pytest.raises(FileNotFoundError):  # the only file is skipped: nothing to load
        load_records(tmp_path)


@pytest.mark.slow
def test_a_published_record_reruns_to_the_same_result(tmp_path: Path) -> None:
    from tests.conftest import run_cli

    cell_id = "c7b94ba70dc21815"  # two-stage at k = 5: 100 epochs in about a second
    result = run_cli("rerun", cell_id[:10], "--results", str(PUBLISHED), "--out", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "conditions" in result.stdout  # what differs from the record's machine and threads
    (again,) = load_records(tmp_path)
    (original,) = [r for r in load_records(PUBLISHED) if r.cell_id == cell_id]
    assert again.cell_id == cell_id and again.epochs == original.epochs
    assert again.metric("norm_regret") == pytest.approx(original.metric("norm_regret"), rel=1e-6)


def test_run_dependent_columns_are_columns() -> None:
    from l2obench.record import RECORD_COLUMNS, RUN_DEPENDENT_COLUMNS

    assert set(RECORD_COLUMNS) > RUN_DEPENDENT_COLUMNS


@pytest.mark.parametrize("folder", ["shortest-path", "pyepo-roster"])
def test_every_published_record_passes_the_damage_checks(folder: str) -> None:
    files = list((REPO / "results" / folder / "records").glob("*.json"))
    assert len(load_records(REPO / "results" / folder, strict=True)) == len(files)


def test_a_written_record_carries_the_checksum_of_its_content(tmp_path: Path) -> None:
    from l2obench.record import content_checksum
    from l2obench.store import ResultStore

    record = Record(cell_id="0123456789abcdef", problem="p", method="m", status=Status.OK,
                    metrics={"norm_regret": 0.25}, per_instance={"test_regrets": [0.5, 0.0]})
    path = ResultStore(tmp_path).write(record)
    data = json.loads(path.read_text())
    assert data["checksum"] == content_checksum(data) and len(data["checksum"]) == 64
    assert Record.from_json(data) == record.sealed()
    with pytest.raises(RecordError, match="checksum"):
        Record.from_json({**data, "per_instance": {"test_regrets": [0.5, 0.1]}})


def test_a_regret_pasted_from_another_cell_is_set_aside(tmp_path: Path,
                                                        caplog: pytest.LogCaptureFixture) -> None:
    """Published records predate checksums: the records of a data point share its test
    instances, so a pasted mean disagrees with the record's own per-instance regrets."""
    from l2obench.store import ResultStore

    shutil.copytree(REPO / "results" / "pyepo-roster" / "records", tmp_path / "records",
                    ignore=shutil.ignore_patterns("superseded", "damaged"))
    records = load_records(tmp_path)
    assert all(record.checksum is None for record in records)
    victim, other = [r for r in records if r.problem_params == records[0].problem_params
                     and r.status == Status.OK][:2]
    path = tmp_path / "records" / f"{victim.cell_id}.json"
    path.write_text(json.dumps({**json.loads(path.read_text()),  # published: flat columns
                                "norm_regret": other.metric("norm_regret")}))
    with caplog.at_level(logging.WARNING):
        loaded = load_records(tmp_path)
    assert {r.cell_id for r in records} - {r.cell_id for r in loaded} == {victim.cell_id}
    assert str(path) in caplog.text and "disagrees with its test_regrets" in caplog.text
    ResultStore(tmp_path).set_aside_disagreeing()  # what a sweep's resume does first
    assert not path.exists()
    assert len(list((tmp_path / "records" / "damaged").glob(f"{victim.cell_id}.*.json"))) == 1


def test_two_records_of_a_data_point_that_disagree_are_both_in_doubt() -> None:
    from l2obench.store import disagreeing

    def record(cell: str, norm_regret: float) -> Record:
        return Record(cell_id=cell * 16, problem="p", method="m", status=Status.OK,
                      task="decision", problem_params='{"k": 3}',
                      metrics={"norm_regret": norm_regret},
                      per_instance={"test_regrets": [1.0, 1.0]})

    assert disagreeing([record("a", 0.2), record("b", 0.2)]) == {}
    assert set(disagreeing([record("a", 0.2), record("b", 0.3)])) == {"a" * 16, "b" * 16}
    assert set(disagreeing([record("a", 0.2), record("b", 0.3),
                            record("c", 0.2)])) == {"b" * 16}
