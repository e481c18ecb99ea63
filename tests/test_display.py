"""What the command line prints fits the terminal: units, counts, shortened labels, 80 columns."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2obench.display import cell_line, count, duration, shorten
from l2obench.record import Budget, Cell, Limits, Record, Status
from tests.test_input_fuzz import run_main


@pytest.mark.parametrize(("seconds", "text"), [(0.0123, "12.3 ms"), (4.2, "4.2 s"),
                                               (210, "3.5 min"), (43200, "12 h"), (None, "—")])
def test_durations_read_in_human_units(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_counts_and_shortening() -> None:
    assert count(1, "cell") == "1 cell" and count(3, "cell") == "3 cells"
    assert shorten("abcdefghij", 20) == "abcdefghij"
    assert shorten("abcdefghij", 7) == "abc…hij" and len(shorten("x" * 300, 40)) == 40
    assert Budget(max_epochs=1, max_seconds=90).describe() == "1 epoch or 1.5 min"
    assert Limits(wall_seconds=43200).describe() == "wall 12 h"


def long_cell() -> Cell:
    return Cell(suite="s", problem="shortest-path", size_param="k", problem_params={"k": 30},
                method="dys-implicit", method_params={},
                method_label="dys-implicit[alpha=0.05,bwd_tol=0.02,linear_solver=gmres,lr=0.01]",
                seed=2, device="cpu", budget=Budget(max_epochs=3))


@pytest.mark.parametrize("width", [60, 80, 120, 160])
def test_a_cell_line_fits_the_terminal(width: int) -> None:
    record = Record(cell_id="0123456789abcdef", problem="p", method="m", status=Status.FAILED,
                    metrics={"norm_regret": 0.1234}, epochs=3, train_time_s=0.0123,
                    fwd_iters_mean=88.4,
                    error="RuntimeError: " + "x" * 200)
    line = cell_line(long_cell(), record, width)
    assert len(line.plain) <= width, line.plain
    assert "regret 0.1234" in line.plain and "dys-implicit[" in line.plain
    assert "3 epochs in 12.3 ms" in line.plain or width < 160  # the label before measurements


def test_a_quick_run_prints_within_80_columns(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    suite = tmp_path / "s.toml"
    suite.write_text('name = "narrow"\nproblem = "shortest-path"\nsizes = [3]\n'
                     'data = { n_train = 20, n_val = 8, n_test = 8 }\n'
                     'budget = { max_epochs = 2 }\n[[methods]]\nname = "dys-jfb"\n'
                     'params = { lr = [0.01, 0.02], max_iter = 300, alpha = 0.05, '
                     'gamma = 0.0005, tol = 0.01 }\n[[methods]]\nname = "two-stage"\n')
    code, text = run_main(["run", "--suite", str(suite), "--out", str(tmp_path / "o"),
                           "--device", "cpu", "--executor", "inline"])
    assert code == 0, text
    lines = text.splitlines()
    assert all(len(line) <= 80 for line in lines), [line for line in lines if len(line) > 80]
    assert "3 cells: 3 ok" in text and "epochs in" in text
    header = next(line for line in lines if " size " in line and "method" in line)
    assert "regret" in header.split()  # a whole header, never folded ("regr/et")
    assert "in every row of dys-jfb: alpha=0.05, gamma=0.0005, max_iter=300, tol=0.01" in text
    assert "dys-jfb[lr=0.01]" in text and "dys-jfb[lr=0.02]" in text  # what tells them apart


def test_a_table_drops_columns_by_priority_and_never_wraps() -> None:
    import io

    from rich.console import Console

    from l2obench.display import Column, fit_table

    columns = [Column("method", ["dys-implicit[" + "x" * 40 + "]", "two-stage"], "left", 0,
                      True),
               Column("regret", ["0.1234", "0.2345"]),
               Column("peak MB", ["1234", "5"], priority=3),
               Column("s/epoch", ["0.123", "4.56"], priority=1)]
    for width in (30, 40, 200):
        table, dropped = fit_table("t", columns, width)
        out = io.StringIO()
        Console(width=width, file=out).print(table)
        rendered = out.getvalue().splitlines()
        assert all(len(line) <= width for line in rendered)
        body = [line for line in rendered if "two-stage" in line]
        assert len(body) == 1 and "0.2345" in body[0]  # one line per row: nothing wrapped
        if width == 200:
            assert dropped == []
        if width == 40:
            assert dropped == ["peak MB"]  # the lowest priority first
        if width == 30:
            assert dropped == ["peak MB", "s/epoch"]


def test_parameters_every_method_shares_are_named_once() -> None:
    from l2obench.display import compact_labels

    labels, notes = compact_labels([("rfwo", {"lr": 0.01, "max_iter": 20}),
                                    ("spo+", {"lr": 0.01}), ("ltr", {"lr": 0.01, "kind": "a"}),
                                    ("ltr", {"lr": 0.01, "kind": "b"})])
    assert labels == ["rfwo", "spo+", "ltr[kind=a]", "ltr[kind=b]"]
    assert notes == ["in every row: lr=0.01", "in every row of rfwo: max_iter=20"]


def test_cell_lines_at_80_columns_keep_the_name_and_tell_cells_apart() -> None:
    from l2obench.display import run_labels
    from l2obench.suite import expand, load_suite

    cells = expand(load_suite("shortest-path"), device="cpu", sizes=[100], seeds=[0])
    record = Record(cell_id="0123456789abcdef", problem="p", method="m", status=Status.OK,
                    metrics={"norm_regret": 0.1234}, epochs=100, train_time_s=1234.5,
                    fwd_iters_mean=88.4)
    labels = run_labels(cells)
    lines = [cell_line(cell, record, 80, labels[cell.cell_id]).plain for cell in cells]
    assert all(len(line) <= 80 for line in lines)
    assert all(f" {cell.method}" in line for cell, line in zip(cells, lines, strict=True))
    assert len(set(lines)) == len(cells), lines
    assert "regret 0.1234" in lines[0]


def test_a_long_label_loses_its_parameters_not_its_name() -> None:
    record = Record(cell_id="0123456789abcdef", problem="p", method="m", status=Status.OK,
                    metrics={"norm_regret": 0.1234}, epochs=3, train_time_s=1.0,
                    fwd_iters_mean=88.4)
    line = cell_line(long_cell(), record, 50).plain
    assert len(line) <= 50 and "dys-implicit[" in line and "seed=2" in line, line


def test_the_summary_ranks_by_the_ranking_metric_and_marks_the_best() -> None:
    from rich.console import Console

    from l2obench.cli import _summary_table
    from l2obench.selection import Tuning

    done = []
    for size in (3, 5):
        for method, regret in (("a-method", 0.3), ("b-method", 0.1), ("c-method", 0.2)):
            cell = Cell(suite="s", problem="shortest-path", size_param="k",
                        problem_params={"k": size}, method=method, method_params={},
                        method_label=method, seed=0, device="cpu", budget=Budget(max_epochs=1))
            record = Record.start(cell, {}).ended(Status.OK,
                                                  metrics={"norm_regret": regret + size})
            done.append((cell, record))
    table, _ = _summary_table(done, Tuning(), 120)
    console = Console(width=120, file=__import__("io").StringIO(), record=True)
    console.print(table)
    text = console.export_text()
    rows = [line for line in text.splitlines() if "-method" in line]
    assert [row.split("-method")[0].split()[-1] for row in rows] == ["b", "c", "a"] * 2
    assert sum("»" in row for row in rows) == 2 and all("»" in rows[i] for i in (0, 3))
    assert "» lowest regret" in " ".join(text.split())  # the ranking metric, its direction
