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


@pytest.mark.parametrize("width", [60, 80, 120])
def test_a_cell_line_fits_the_terminal(width: int) -> None:
    record = Record(cell_id="0123456789abcdef", problem="p", method="m", status=Status.FAILED,
                    norm_regret=0.1234, epochs=3, train_time_s=0.0123, fwd_iters_mean=88.4,
                    error="RuntimeError: " + "x" * 200)
    line = cell_line(long_cell(), record, width)
    assert len(line.plain) <= width, line.plain
    assert "3 epochs in 12.3 ms" in line.plain and "regret 0.1234" in line.plain


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
