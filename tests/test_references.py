"""Numbers other projects published, shown beside l2obench's (``report --reference``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2obench.errors import L2OBenchError
from l2obench.record import Record
from l2obench.report import build_report
from l2obench.report.references import (
    compare_reference,
    publish_references,
    read_reference,
)
from l2obench.store import ResultStore
from tests.conftest import REPO, run_main
from tests.test_report import DYS, TWO_STAGE, synthetic_records

SOURCE = ("# Example et al., 2024: github.com/example/paper at commit abc123, mean of 3 runs,\n"
          "# on a GPU\n")
HEADER = ("method,source_method,k,norm_regret_mean,norm_regret_min,norm_regret_max,"
          "time_to_best_s_mean\n")
PUBLISHED = REPO / "results" / "reference" / "fpo-dys-shortest-path.csv"


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("references")
    store = ResultStore(root)
    for row in synthetic_records():
        if row["suite"] == "synth":
            store.write(Record.from_json({**row, "size_param": "k"}))
    return root


def _ours(method_label: str, size: int, column: str) -> list[float]:
    """The ok seeds' values of ``column``, straight from the records the fixture wrote."""
    return [r[column] for r in synthetic_records()
            if r["suite"] == "synth" and r["method_label"] == method_label and r["size"] == size
            and r["status"] == "ok"]


def _write(folder: Path, body: str, name: str = "paper.csv") -> Path:
    path = folder / name
    path.write_text(body)
    return path


def test_published_numbers_stand_beside_l2obenchs_own(results: Path, tmp_path: Path) -> None:
    """A reference given on the command line and one the results folder keeps both show."""
    folder = tmp_path / "published"
    shutil.copytree(results, folder)
    (folder / "references").mkdir()
    _write(folder / "references", SOURCE.replace("Example", "Kept") + HEADER
           + "two-stage,LR,5,0.25,0.2,0.3,12.5\n", "kept.csv")
    reference = _write(tmp_path, SOURCE + HEADER
                       + f'"{TWO_STAGE}",LR,5,0.25,0.2,0.3,12.5\n'
                       + f'"{DYS}",DYS,20,0.1,0.09,0.11,100\n'
                       + "pertopt[loss=dpo],PertOpt,5,0.3,0.2,0.4,50\n")
    files = build_report(folder, tmp_path / "r", suite="synth", references=[reference])
    table = pd.read_csv(next(p for p in files.tables
                             if p.name.endswith("-published-paper.csv")))
    assert list(table["k"]) == [5, 5, 20]  # by size, then method
    by_method = table.set_index(["k", "method"])
    two_stage = by_method.loc[(5, TWO_STAGE)]
    ours = _ours(TWO_STAGE, 5, "norm_regret")
    assert two_stage["l2obench seeds ok"] == f"{len(ours)}/3"
    mean = np.mean(ours)
    assert two_stage["normalized regret: l2obench"].startswith(f"{mean:.3g} (")
    assert two_stage["normalized regret: published"] == "0.25 (0.2–0.3)"
    assert two_stage["ratio"] == f"{mean / 0.25:.2f}×"  # the regret's ratio
    # dys-jfb at size 20 has one timeout among its 3 seeds: 2 ok, and only those are averaged
    dys = by_method.loc[(20, DYS)]
    assert dys["l2obench seeds ok"] == "2/3"
    assert dys["normalized regret: l2obench"].startswith(
        f"{np.mean(_ours(DYS, 20, 'norm_regret')):.3g} (")
    # a method the suite did not run is shown as such, never matched to a namesake (pertopt)
    absent = by_method.loc[(5, "pertopt[loss=dpo]")]
    assert absent["l2obench seeds ok"] == "not run"
    assert absent["normalized regret: l2obench"] == "—"
    md = files.leaderboard.read_text()
    assert "Against published numbers: `paper`" in md and "Example et al., 2024" in md
    assert "Against published numbers: `kept`" in md and "Kept et al., 2024" in md
    assert "Example et al., 2024" in files.index.read_text()
    drawn = {p.name for p in files.figures}
    assert {"synth-shortest-path-published-paper.png",
            "synth-shortest-path-published-kept.svg"} <= drawn
    assert "figures/synth-shortest-path-published-paper.png" in md  # linked from the page


@pytest.mark.parametrize(("body", "message"), [
    (HEADER + "two-stage,LR,5,0.25,0.2,0.3,12.5\n", "first lines must say where"),
    (SOURCE, "no table below its comment lines"),
    (SOURCE + "name,k,norm_regret_mean\ntwo-stage,5,0.2\n", "needs a 'method' column"),
    (SOURCE + "method,k,norm_regret\ntwo-stage,5,0.2\n", "no '<column>_mean' column"),
    (SOURCE + HEADER + "two-stage,LR,5,zero,0.2,0.3,12.5\n",
     "'norm_regret_mean' has a value that is not a finite number in row 1: 'zero'"),
    (SOURCE + HEADER + "two-stage,LR,5,0.25,0.2,inf,12.5\n", "'norm_regret_max'"),
    (SOURCE + '"a,b\n', "not a CSV table"),
])
def test_a_malformed_reference_is_named_with_what_is_wrong(tmp_path: Path, body: str,
                                                           message: str) -> None:
    path = _write(tmp_path, body)
    with pytest.raises(L2OBenchError, match=str(path.name)) as caught:
        read_reference(path)
    assert message in str(caught.value)


def test_a_reference_that_does_not_fit_the_suite_is_refused(tmp_path: Path) -> None:
    cells = pd.DataFrame({"method_label": ["two-stage"], "size": [5], "size_param": ["k"],
                          "status": ["ok"], "data": ["{}"], "norm_regret": [0.2]})
    wrong_size = read_reference(_write(tmp_path, SOURCE + HEADER.replace(",k,", ",size,")
                                       + "two-stage,LR,5,0.25,0.2,0.3,12.5\n"))
    with pytest.raises(L2OBenchError, match="needs a 'k' column"):
        compare_reference(cells, wrong_size)
    unknown = read_reference(_write(tmp_path, SOURCE + "method,k,gflops_mean\ntwo-stage,5,3\n",
                                    "g.csv"))
    with pytest.raises(L2OBenchError, match="none of its columns"):
        compare_reference(cells, unknown)
    grid = pd.concat([cells, cells.assign(data='{"deg": 2}')])
    fits = read_reference(_write(tmp_path, SOURCE + HEADER + "two-stage,LR,5,0.25,0.2,0.3,1\n"))
    assert compare_reference(cells, fits)["norm_regret_ratio"].iloc[0] == pytest.approx(0.8)
    with pytest.raises(L2OBenchError, match="several data points"):
        compare_reference(grid, fits)


def test_the_command_line_names_an_unreadable_reference(results: Path, tmp_path: Path) -> None:
    code, text = run_main(["report", "--results", str(results), "--suite", "synth",
                           "--out", str(tmp_path / "r"),
                           "--reference", str(tmp_path / "missing.csv")])
    assert code != 0 and "cannot read the reference" in text and "missing.csv" in text
    assert "Traceback" not in text


def test_publishing_keeps_a_checked_copy_beside_the_records(tmp_path: Path) -> None:
    good = _write(tmp_path, SOURCE + HEADER + "two-stage,LR,5,0.25,0.2,0.3,12.5\n")
    out = tmp_path / "results" / "synth"
    publish_references([good], out)
    assert (out / "references" / "paper.csv").read_text() == good.read_text()
    bad = _write(tmp_path, HEADER, "bad.csv")
    with pytest.raises(L2OBenchError, match=r"bad\.csv"):
        publish_references([bad], out)
    assert not (out / "references" / "bad.csv").exists()  # checked before anything is copied


def test_the_published_fpo_dys_numbers_read_as_a_reference() -> None:
    reference = read_reference(PUBLISHED)
    assert "fpo-dys" in reference.source and "RTX A6000" in reference.source
    assert reference.columns() == ["norm_regret", "time_to_best_s"]
    rows = reference.rows.set_index(["method", "k"])
    assert rows.loc[("dys-jfb", 30), "norm_regret_mean"] == pytest.approx(0.115915)
    # fpo-dys's PertOpt is PyEPO's perturbedOpt (DPO), not the PFYL that l2obench's pertopt
    # runs by default: its rows must not be taken for pertopt's
    assert set(reference.rows["method"]) == {"blackbox", "cvx-net", "dys-jfb",
                                             "pertopt[loss=dpo]"}
