"""Reports of a tuned suite with a data grid: selections, tie groups, anytime and grid figures."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2obench.record import Record
from l2obench.report import ReportFiles, build_report
from l2obench.selection import Tuning
from l2obench.store import ResultStore

SIZES, DEGS, SEEDS, N_TEST = (5, 10), (1, 4), (0, 1, 2), 60
TUNING = Tuning(tuned={"spo+": ("lr",)})


def record(method: str, lr: float | None, size: int, deg: int, seed: int, val: float,
           regrets: np.ndarray, status: str = "ok") -> dict:
    label = method if lr is None else f"{method}[lr={lr:g}]"
    params = {"lr": 0.01 if lr is None else lr, "batch_size": 256}
    problem = {"k": size, "deg": deg, "seed": seed, "n_test": N_TEST, "noise": 0.5}
    key = json.dumps([method, params, problem]).encode()
    ok = status == "ok"
    epochs = 4
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_regret": val + 0.1 * (epochs - e),
                "train_s": 0.5 * e * size, "val_s": 0.01} for e in range(1, epochs + 1)]
    return {
        "cell_id": hashlib.sha256(key).hexdigest()[:16], "suite": "proto",
        "problem": "shortest-path", "size": size, "size_param": "k",
        "n_vars": 2 * size * (size - 1), "method": method, "method_label": label,
        "params": json.dumps(params), "problem_params": json.dumps(problem), "seed": seed,
        "device": "cpu", "status": status, "error": None if ok else "RuntimeError: boom",
        "norm_regret": float(regrets.sum() / (10.0 * N_TEST)) if ok else None,
        "test_loss": 0.1, "accuracy": 0.5, "val_regret": val if ok else None,
        "train_time_s": 2.0 * size, "time_to_best_s": 2.0 * size if ok else None,
        "epochs": epochs, "best_epoch": epochs, "test_regrets": list(map(float, regrets))
        if ok else None, "history": history if ok else None,
        "budget_max_epochs": 4, "n_test": N_TEST,
    }


def synthetic(test_shift: float = 0.0) -> list[dict]:
    """spo+ at lr 0.01 validates better than at lr 0.1 but tests worse (by ``0.05 +
    test_shift``); two-stage decides like spo+'s selected configuration up to noise; blackbox
    is clearly worse. ``test_shift`` moves test figures only."""
    rng = np.random.default_rng(7)
    rows = []
    for size in SIZES:
        for deg in DEGS:
            for seed in SEEDS:
                base = rng.uniform(0, 1, N_TEST)
                rows += [
                    record("spo+", 0.01, size, deg, seed, 0.10, base),
                    record("spo+", 0.1, size, deg, seed, 0.20,
                           np.clip(base - 0.05 - test_shift, 0, None)),
                    record("two-stage", None, size, deg, seed, 0.15,
                           np.clip(base + rng.normal(0, 0.01, N_TEST), 0, None)),
                    record("blackbox", None, size, deg, seed, 0.30, base + 0.5),
                ]
    return rows


def write(root: Path, rows: list[dict], tuning: Tuning = TUNING) -> Path:
    store = ResultStore(root)
    for row in rows:
        store.write(Record.from_json(row))
    store.note_suite("proto", [r["cell_id"] for r in rows], tuning.to_json())
    return root


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> ReportFiles:
    results = write(tmp_path_factory.mktemp("proto"), synthetic())
    return build_report(results, tmp_path_factory.mktemp("proto-report"), suite="proto")


def test_the_selected_configuration_per_size_and_why(report: ReportFiles) -> None:
    md = report.leaderboard.read_text()
    assert "### Tuning" in md
    assert "lowest mean validation regret over seeds, at every size separately" in md
    for size in SIZES:
        for deg in DEGS:
            assert (f"| spo+ | deg={deg} | {size} | lr=0.01 | lowest mean validation regret "
                    f"(0.1) over 3 seeds among 2 configurations at k = {size} |") in md
    # Every configuration is listed below its block, the chosen one marked "selected".
    assert md.count("| spo+\\[lr=0.01\\] | spo+ | lr=0.01 |") == len(SIZES) * len(DEGS)
    assert md.count("| spo+\\[lr=0.1\\] | spo+ | lr=0.1 |") == len(SIZES) * len(DEGS)
    every = pd.read_csv(report.aggregates)
    spo = every[every["method"] == "spo+"]
    assert set(spo.loc[spo["selected"], "method_label"]) == {"spo+[lr=0.01]"}
    for size in SIZES:
        for deg in DEGS:
            assert f"#### Size {size} ({2 * size * (size - 1)} decision variables) · deg={deg}" \
                in md


def test_tie_groups_time_to_best_and_the_rank_test(report: ReportFiles) -> None:
    md = report.leaderboard.read_text()
    html = report.index.read_text()
    assert "time to best epoch (s)" in md and "paired test vs best (Holm p)" in md
    blocks = md.split("### Per size")[1]
    assert blocks.count("**spo+**") == blocks.count("**two-stage**") == len(SIZES) * len(DEGS)
    assert "**blackbox**" not in blocks
    overall = md.split("### Overall ranking")[1].split("###")[0]
    assert "**two-stage**" in overall and "| 3 | blackbox |" in overall  # outside CD
    blackbox_rows = [line for line in blocks.splitlines() if line.startswith("| 3 | blackbox |")
                     and "p = " in line]
    assert len(blackbox_rows) == 4 and all("(tie)" not in row for row in blackbox_rows)
    assert '<tr class="tie">' in html
    assert '<strong><span class="seg">two-stage</span></strong>' in html
    assert "Friedman test over 4 blocks (sizes × data points) and 3 methods" in md
    assert "Wilcoxon signed-rank" in md and "Nemenyi" in md  # the tests are stated


def test_anytime_and_data_grid_figures(report: ReportFiles) -> None:
    names = {p.name for p in report.figures}
    assert {"proto-shortest-path-anytime.png", "proto-shortest-path-anytime.svg",
            "proto-shortest-path-data-grid.png", "proto-shortest-path-deg_1-summary.png",
            "proto-shortest-path-deg_4-summary.png"} <= names
    svg = (report.out / "figures" / "proto-shortest-path-anytime.svg").read_text()
    for size in SIZES:
        for deg in DEGS:
            assert f"k = {size} · deg={deg}" in svg  # one panel per size and data point
    assert "training seconds (validation excluded)" in svg


@pytest.mark.slow
def test_changing_test_data_cannot_change_a_selection(tmp_path: Path) -> None:
    """The same records with every test figure changed (spo+ at lr 0.1 now far better on
    test) select the same configurations, and the ranking sees the new test figures."""
    a = build_report(write(tmp_path / "a", synthetic()), tmp_path / "ra", suite="proto")
    b = build_report(write(tmp_path / "b", synthetic(test_shift=0.4)), tmp_path / "rb",
                     suite="proto")
    keys = ["data", "size", "method_label"]
    sel_a = pd.read_csv(a.aggregates).set_index(keys)["selected"]
    sel_b = pd.read_csv(b.aggregates).set_index(keys)["selected"]
    pd.testing.assert_series_equal(sel_a, sel_b)
    regret = pd.read_csv(b.aggregates).set_index(keys)["norm_regret_mean"]
    assert (regret.xs("spo+[lr=0.1]", level="method_label")
            < regret.xs("spo+[lr=0.01]", level="method_label")).all()


def test_at_size_applies_the_tuning_sizes_selection_everywhere(tmp_path: Path) -> None:
    rows = synthetic()
    for row in rows:  # at size 10 lr 0.1 would validate better: the rule must not look
        if row["size"] == 10 and row["method_label"] == "spo+[lr=0.1]":
            row["val_regret"] = 0.01
    at = Tuning(rule="at-size", size=5, tuned={"spo+": ("lr",)})
    files = build_report(write(tmp_path / "r", rows, at), tmp_path / "out", suite="proto")
    md = files.leaderboard.read_text()
    assert "at k = 5, then fixed for every size" in md
    assert "| spo+ | deg=1 | 5 (fixed for every size) | lr=0.01 |" in md
    every = pd.read_csv(files.aggregates)
    chosen = every[(every["method"] == "spo+") & every["selected"]]
    assert set(chosen["method_label"]) == {"spo+[lr=0.01]"} and set(chosen["size"]) == {5, 10}


def test_without_a_declaration_every_configuration_is_its_own_method(tmp_path: Path) -> None:
    files = build_report(write(tmp_path / "r", synthetic(), Tuning()), tmp_path / "out",
                         suite="proto")
    md = files.leaderboard.read_text()
    assert "### Tuning" not in md and "Every configuration" not in md
    overall = md.split("### Overall ranking")[1].split("###")[0]
    assert "spo+\\[lr=0.1\\]" in overall and "spo+\\[lr=0.01\\]" in overall


@pytest.mark.slow
def test_published_records_still_report(tmp_path: Path) -> None:
    """Records written before the clock, the per-instance regrets and the validation regret
    column report: the kept epoch's validation regret from the history, no paired test, no
    anytime figure."""
    from tests.conftest import REPO

    files = build_report(REPO / "results" / "shortest-path", tmp_path, suite="shortest-path")
    every = pd.read_csv(files.aggregates)
    solved = every[every["solved"] > 0]
    assert solved["val_regret_mean"].notna().all() and every["selected"].all()
    assert every["time_to_best_s_mean"].isna().all()
    md = files.leaderboard.read_text()
    assert "| best |" in md and "(tie)" not in md
    assert not any("anytime" in p.name for p in files.figures)


def test_the_new_tables_are_exported_with_their_tie_groups(report: ReportFiles) -> None:
    tables = {p.name: p for p in report.tables}
    assert "proto-shortest-path-tuning.csv" in tables
    assert "proto-shortest-path-size-5-deg_1.tex" in tables
    assert "proto-shortest-path-size-10-deg_4-configurations.csv" in tables
    tex = tables["proto-shortest-path-size-5-deg_1.tex"].read_text()
    assert r"\textbf{spo+}" in tex and r"\textbf{two-stage}" in tex
    assert r"\textbf{blackbox}" not in tex
    rows = tables["proto-shortest-path-size-5-deg_1-configurations.csv"].read_text()
    assert rows.count(",selected\n") == 4  # the header; spo+ at lr 0.01, two-stage, blackbox


def test_parameters_every_method_shares_leave_the_labels() -> None:
    import pandas as pd

    from l2obench.report.configurations import describe_shared, without_shared_parameters

    frame = pd.DataFrame({
        "method": ["spo+", "dys-jfb", "dys-jfb"],
        "method_label": ["spo+[batch_size=32,lr=0.01]", "dys-jfb[batch_size=32,lr=0.01]",
                         "dys-jfb[batch_size=32,lr=0.1]"],
        "params": ['{"batch_size": 32, "lr": 0.01}', '{"batch_size": 32, "lr": 0.01}',
                   '{"batch_size": 32, "lr": 0.1}']})
    relabelled, shared = without_shared_parameters(frame)
    assert describe_shared(shared) == "batch_size=32"  # lr takes two values: it stays
    assert list(relabelled["method_label"]) == ["spo+[lr=0.01]", "dys-jfb[lr=0.01]",
                                                "dys-jfb[lr=0.1]"]
    one = frame.iloc[:1]
    assert without_shared_parameters(one)[1] == frozenset()  # one label: nothing to factor
    imposed, _ = without_shared_parameters(one, shared)
    assert list(imposed["method_label"]) == ["spo+[lr=0.01]"]
