"""What the published page shows: styles fixed by name, dot charts for one size, honest columns
(memory, capped adjoint solves, test loss per objective, tie groups), load marks, provenance."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from l2obench.record import Record
from l2obench.report import build_report
from l2obench.report.aggregate import LOAD_MARK, aggregate, busy
from l2obench.report.leaderboard import (
    bold_if_separating,
    load_summary,
    loss_table,
    machine,
    run_commands,
    size_table,
)
from l2obench.report.plots import draw, plot_specs
from l2obench.report.style import BUILT_IN, PERIOD, method_styles, slot, style_of
from l2obench.store import ResultStore, load_results
from tests.test_report import DECISION, DYS, SPO, TWO_STAGE, record, synthetic_records

PLOTS = plot_specs(DECISION)


def _look(label: str) -> tuple[object, ...]:
    s = style_of(label, "other")
    return s.colour, s.marker, s.hollow, s.linestyle


def test_every_built_in_method_has_its_own_look_and_a_plugin_restyles_none() -> None:
    looks = {_look(label) for label in BUILT_IN}
    assert len(looks) == len(BUILT_IN)  # no two built-in labels drawn alike
    assert len({_look(f"m{i}") for i in range(40)} | looks) > len(BUILT_IN) + 35
    # A style is a function of the label alone: the same with or without a plugin beside it.
    frame = pd.DataFrame({"method": ["dys-jfb", "dys-jfb-jax", "spo+"],
                          "method_label": ["dys-jfb", "dys-jfb-jax", "spo+"],
                          "method_family": ["dys", "dys", "pyepo"]})
    alone = method_styles(frame)
    plugin = pd.DataFrame({"method": ["my-loss"], "method_label": ["my-loss[k=3]"],
                           "method_family": ["other"]})
    together = method_styles(pd.concat([frame, plugin], ignore_index=True))
    assert {k: together[k] for k in alone} == alone
    assert _look("dys-jfb") != _look("dys-jfb-jax")  # the two that used to hide each other
    assert slot("my-loss[k=3]") == slot("my-loss[k=3]") >= len(BUILT_IN)
    assert all(len(BUILT_IN) <= slot(f"plugin-{i}") < PERIOD for i in range(100))


@pytest.fixture(scope="module")
def one_size(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five methods at one size, three seeds; spo-plus fails one seed; dys-jfb and two-stage
    share an objective; load recorded: one cell on a machine busier than its cores."""
    root = tmp_path_factory.mktemp("one-size")
    store = ResultStore(root)
    labels = [DYS, TWO_STAGE, SPO, "blackbox", "pertopt[loss=pfyl,perturbation=additive]"]
    for label in labels:
        for seed in (0, 1, 2):
            row = record("one", label, 5, seed,
                         "failed" if (label, seed) == (SPO, 2) else "ok")
            row.update(objective={DYS: "MSE", TWO_STAGE: "MSE"}.get(label, f"own {label}"),
                       load_start=1.0, load_end=3.5 if (label, seed) == (DYS, 1) else 1.5,
                       n_cores=2)
            if label == DYS:
                row.update(bwd_iters_mean=40.0 + seed, bwd_unconverged=seed)
            store.write(Record.from_json(row))
    return root


def test_one_size_draws_a_dot_chart_per_method(one_size: Path) -> None:
    records = load_results(one_size)
    agg = aggregate(records)
    summary = PLOTS[0]
    figure = draw(summary, summary.metrics, agg, records, method_styles(records))
    left = figure.axes[0]
    rows = [t.get_text() for t in left.get_yticklabels()]
    means = agg.set_index("method_label")["norm_regret_mean"]
    assert rows == sorted(means.index, key=lambda m: means[m])  # one row each, best at the top
    assert [list(ax.get_yticks()) for ax in figure.axes] == [list(range(5))] * 2  # shared rows
    legend = [t.get_text() for t in figure.legends[0].get_texts()]
    assert DYS not in legend  # the rows name the methods
    assert "failed (not ok, right edge)" in legend and "each seed" in legend
    assert "adjoint solve capped in some steps" not in legend  # not drawn here
    marks = [c for c in left.collections if c.get_gid() == "not-ok-failed"]
    assert len(marks) == 1 and np.asarray(marks[0].get_offsets())[0, 1] == rows.index(SPO)
    bwd = next(p for p in PLOTS if p.name == "bwd_iters")
    figure = draw(bwd, bwd.metrics, agg, records, method_styles(records))
    assert any(c.get_gid() == "bwd-capped" for c in figure.axes[0].collections)
    assert "adjoint solve capped in some steps" in [
        t.get_text() for t in figure.legends[0].get_texts()]


@pytest.mark.slow
def test_columns_say_what_they_measure(one_size: Path, tmp_path: Path) -> None:
    files = build_report(one_size, tmp_path, suite="one")
    md = files.leaderboard.read_text()
    assert "host memory increase (MB)" in md and "peak host memory" not in md
    assert "(capped: 3)" in md  # 0 + 1 + 2 capped steps of dys-jfb's adjoint solves
    assert f"ok 3 {LOAD_MARK}" in md and "1 of 15 cells ran while" in md
    header = next(line for line in md.splitlines() if line.startswith("| rank | method |"))
    assert header.index("statuses") < header.index("training time")  # in view first
    losses = md.split("Test loss, between methods")[1].split("\n\n")[1]
    assert "| MSE |" in losses and "own blackbox" not in losses  # only a shared objective
    assert "test loss" not in header
    assert "figures/one-shortest-path-summary.png" in md.split("<details>")[0]


def test_bold_only_where_it_separates() -> None:
    assert bold_if_separating([True, True]) == []
    assert bold_if_separating([False, False]) == []
    assert bold_if_separating([True, False]) == [True, False]
    records = pd.DataFrame(synthetic_records())
    records = records[(records["suite"] == "synth") & (records["size"] == 5)]
    agg = aggregate(records)
    table = size_table(agg, sorted(agg["method_label"]), ["norm_regret"], DECISION)
    assert table.bold == []  # no per-instance regrets: no test, so no tie group to show


def test_test_loss_only_between_methods_of_one_objective(one_size: Path) -> None:
    records = load_results(one_size)
    table = loss_table(aggregate(records), records)
    assert table is not None
    assert {row[0] for row in table.rows} == {"MSE"}
    assert {row[1] for row in table.rows} == {DYS, TWO_STAGE}
    assert loss_table(aggregate(records), records.drop(columns="objective")) is None


def test_load_and_provenance(one_size: Path) -> None:
    records = load_results(one_size)
    assert busy(records).sum() == 1
    assert load_summary(records).startswith("1 of 15 cells ran while")
    old = records.drop(columns=["load_start", "load_end", "n_cores"])
    assert load_summary(old).startswith("not recorded")
    assert not busy(old).any()
    assert machine(records) == "cpu: Test CPU <model> 9000 (2 cores)"
    assert run_commands(records) == [
        "l2obench run --suite one --sizes 5 --seeds 0,1,2 --max-epochs 10 --max-seconds 600 "
        "--device cpu --threads 2"]
    mixed = records.assign(torch_threads=[1 if m == "blackbox" else 2
                                          for m in records["method"]])
    assert run_commands(mixed)[0].endswith("--methods blackbox --max-epochs 10 --max-seconds "
                                           "600 --device cpu --threads 1")
    # The failed spo-plus cell's record says 1 thread (as a killed cell's driver would): the
    # ok cells' threads stand for it.
    killed = records.assign(torch_threads=[1 if s != "ok" else 2 for s in records["status"]])
    assert run_commands(killed) == run_commands(records)
