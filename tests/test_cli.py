"""The command line as a user meets it: errors exit 2 with one message, runs leave records."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from l2obench import load_results
from tests.conftest import REPO, run_cli, tiny_suite

#: Subprocesses, a browser, pip or Ray: the full lane only (`pytest -m "not slow"` skips them).
pytestmark = pytest.mark.slow

TINY = tiny_suite()

REQUIRED_COLUMNS = [
    "suite", "problem", "size", "n_vars", "method", "params", "seed", "device", "status",
    "error", "test_loss", "norm_regret", "accuracy", "train_time_s", "epochs",
    "time_per_epoch_s", "infer_time_s", "peak_mem_mb", "device_peak_mem_mb", "fwd_iters_mean",
    "fwd_iters_max", "bwd_iters_mean", "l2obench_version", "git_commit", "torch_version",
    "started_at",
]


def assert_clean_usage_error(result, *fragments: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (["run", "--suite", "shortest"], ["unknown suite 'shortest'", "shortest-path"]),
        (["run", "--suite", "shortest-path", "--methods", "dys"],
         ["unknown method 'dys'", "dys-jfb", "two-stage"]),
        (["run", "--suite", "shortest-path", "--sizes", "1"], ["'k' = 1 is below its minimum"]),
        (["run", "--suite", "shortest-path", "--sizes", "five"], ["comma-separated integers"]),
        (["run", "--suite", "shortest-path", "--device", "tpu"], ["invalid choice: 'tpu'"]),
        (["run", "--suite", "shortest-path", "--threads", "0"],
         ["--threads", "expected a positive int, got '0'"]),
        (["run"], ["--suite"]),
        (["frobnicate"], ["invalid choice"]),
    ],
)
def test_bad_input_exits_2_with_a_message(args: list[str], fragments: list[str],
                                          tmp_path: Path) -> None:
    result = run_cli(*args, "--out", str(tmp_path / "o")) if args[0] == "run" and len(args) > 1 \
        else run_cli(*args)
    assert_clean_usage_error(result, *fragments)
    assert not (tmp_path / "o").exists()


def test_malformed_suite_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(TINY.replace('name = "two-stage"', 'name = "two-stag"'))
    result = run_cli("run", "--suite", str(bad), "--out", str(tmp_path / "o"))
    assert_clean_usage_error(result, str(bad), "methods[1].name", "unknown method 'two-stag'")
    broken = tmp_path / "broken.toml"
    broken.write_text("sizes = [")
    assert_clean_usage_error(run_cli("run", "--suite", str(broken)), "not valid TOML")


def test_list_shows_problems_methods_suites() -> None:
    result = run_cli("list")
    assert result.returncode == 0, result.stderr
    for name in ("shortest-path", "dys-jfb", "two-stage", "alpha", "max_iter", "tsp",
                 "portfolio", "conic-form", "Which method runs on which problem"):
        assert name in result.stdout
    # The applicability table: a DYS layer's row says what portfolio lacks.
    applicability = result.stdout[result.stdout.index("Which method runs on which problem"):]
    row = next(line for line in applicability.splitlines() if line.startswith("│ dys-jfb "))
    assert "no: needs lp-form" in row and row.count("yes") == 3


def test_a_method_that_cannot_run_on_the_problem_exits_2(tmp_path: Path) -> None:
    suite = tmp_path / "bad.toml"
    suite.write_text(
        'name = "bad"\nproblem = "portfolio"\nsizes = [10]\nbudget = { max_epochs = 1 }\n'
        '[[methods]]\nname = "two-stage"\n[[methods]]\nname = "dys-jfb"\n'
    )
    result = run_cli("run", "--suite", str(suite), "--out", str(tmp_path / "o"))
    assert_clean_usage_error(result, "methods[1].name", "method 'dys-jfb' cannot run on problem",
                             "'portfolio': it needs lp-form")
    assert result.stderr.count("error") == 1
    assert not (tmp_path / "o").exists()


def test_threads_per_cell_reach_the_cells(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY)
    out = tmp_path / "out"
    result = run_cli("run", "--suite", str(suite), "--device", "cpu", "--methods", "two-stage",
                     "--threads", "3", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(load_results(out)["torch_threads"]) == {3}


def test_run_writes_complete_records_and_resumes(tmp_path: Path) -> None:
    suite = tmp_path / "tiny.toml"
    suite.write_text(TINY)
    out = tmp_path / "out"
    result = run_cli("run", "--suite", str(suite), "--device", "cpu", "--out", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Summary" in result.stdout and "4 cells: 4 ok" in result.stdout

    frame = load_results(out)
    assert len(frame) == 4
    assert list(frame.columns[: len(REQUIRED_COLUMNS)])  # documented columns come first
    for column in REQUIRED_COLUMNS:
        assert column in frame.columns, column
    assert (frame["status"] == "ok").all()
    numeric = ["test_loss", "norm_regret", "accuracy", "train_time_s", "time_per_epoch_s",
               "infer_time_s", "peak_mem_mb", "epochs", "n_vars"]
    assert frame[numeric].notna().all().all()
    assert frame["device_peak_mem_mb"].isna().all()  # CPU run
    dys = frame[frame["method"] == "dys-jfb"]
    stage = frame[frame["method"] == "two-stage"]
    assert dys[["fwd_iters_mean", "fwd_iters_max"]].notna().all().all()
    assert (dys["fwd_iters_max"] <= 500).all()
    assert stage["fwd_iters_mean"].isna().all()
    assert set(frame["n_vars"]) == {12, 24}
    assert (frame["epochs"] == 2).all()
    assert json.loads(dys["params"].iloc[0])["max_iter"] == 500
    assert set(dys["method_label"]) == {"dys-jfb[lr=0.01,max_iter=500]"}
    assert frame["norm_regret"].between(0, 10).all()

    # Running again finds every cell recorded: nothing is rewritten.
    mtimes = {p: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")}
    again = run_cli("run", "--suite", str(suite), "--device", "cpu", "--out", str(out))
    assert again.returncode == 0, again.stderr
    assert "4 already recorded" in again.stdout
    assert again.stdout.count("already recorded") == 2  # one line while it runs, the summary
    assert "4 cells already recorded, skipped" in again.stdout
    assert {p: p.stat().st_mtime_ns for p in (out / "records").glob("*.json")} == mtimes
    pd.testing.assert_frame_equal(load_results(out), frame)


def test_list_in_a_pipe_cuts_nothing_and_names_each_method_once(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_input_fuzz import run_main

    monkeypatch.delenv("COLUMNS", raising=False)
    code, text = run_main(["list"])
    assert code == 0 and "…" not in text
    suites = text[text.index("Suites"):]
    assert str(REPO / "suites" / "shortest-path.toml") in suites
    row = next(line for line in suites.splitlines() if line.startswith("│ shortest-path "))
    assert row.count("pertopt") == 1, row


@pytest.mark.parametrize(("args", "fragment"), [
    (["runn"], "did you mean 'run'"),
    (["run", "--suite", "shortest-path", "--bogus"], "see 'l2obench run --help'"),
    (["--bogus", "list"], "see 'l2obench --help'"),
])
def test_a_wrong_command_or_option_points_the_way(args: list[str], fragment: str) -> None:
    from tests.test_input_fuzz import run_main

    code, text = run_main(args)
    assert code == 2 and fragment in text, text
