"""The tuning rule: configurations selected on validation regret, never on test data."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from l2obench.record import Budget, Cell, Record, Status
from l2obench.selection import (
    Choice,
    Selections,
    Trial,
    Tuning,
    TuningPlan,
    cell_trial,
    given_params,
    select,
    split_label,
)
from l2obench.store import ResultStore, suite_cells, suite_tuning
from l2obench.suite import expand, parse_suite
from l2obench.sweep import run_cells
from l2obench.tasks.base import Metric, get_task

VAL = get_task("decision").validation  # validation regret, lower is better
PER_SIZE = Tuning(tuned={"m": ("lr",)})
AT_3 = Tuning(rule="at-size", size=3, tuned={"m": ("lr",)})


def chosen(selections: Selections, group: str, size: int, identity: str) -> Choice:
    """The choice made for ``identity`` at ``size`` of ``group``, which must exist."""
    choice = selections.choice(group, size, identity)
    assert choice is not None
    return choice


def trial(config: str, seed: int, val: float | None, size: int = 3, identity: str = "m",
          group: str = "g") -> Trial:
    return Trial(group=group, size=size, identity=identity, configuration=config,
                 label=f"{identity}[{config}]", seed=seed, val_score=val, size_param="k")


def test_lowest_mean_validation_regret_over_seeds_wins() -> None:
    trials = [trial("lr=0.1", 0, 0.30), trial("lr=0.1", 1, 0.10), trial("lr=0.1", 2, 0.20),
              trial("lr=0.01", 0, 0.21), trial("lr=0.01", 1, 0.22), trial("lr=0.01", 2, 0.23)]
    choice = select(trials, PER_SIZE, VAL).choice("g", 3, "m")
    assert choice is not None
    assert (choice.configuration, choice.seeds, choice.candidates) == ("lr=0.1", 3, 2)
    assert choice.mean_val_score == pytest.approx(0.2)
    assert choice.reason == ("lowest mean validation regret (0.2) over 3 seeds among 2 "
                             "configurations at k = 3")


def test_a_higher_is_better_metric_selects_the_highest_mean() -> None:
    accuracy = Metric("val_accuracy", "validation accuracy", "max")
    trials = [trial("lr=0.1", 0, 0.9), trial("lr=0.1", 1, 0.7),
              trial("lr=0.01", 0, 0.6), trial("lr=0.01", 1, 0.6), trial("lr=1", 0, None)]
    choice = select(trials, PER_SIZE, accuracy).choice("g", 3, "m")
    assert choice is not None and choice.configuration == "lr=0.1"
    assert choice.mean_val_score == pytest.approx(0.8)
    assert choice.reason == ("highest mean validation accuracy (0.8) over 2 seeds among 3 "
                             "configurations at k = 3")


def test_a_configuration_that_fails_a_seed_loses() -> None:
    trials = [trial("lr=0.1", 0, 0.01), trial("lr=0.1", 1, None),  # best mean, one failure
              trial("lr=0.01", 0, 0.3), trial("lr=0.01", 1, 0.3)]
    choice = select(trials, PER_SIZE, VAL).choice("g", 3, "m")
    assert choice is not None and choice.configuration == "lr=0.01"
    # Ties go to the first configuration in text order; nothing ok: no selection, and why.
    tie = select([trial("b", 0, 0.2), trial("a", 0, 0.2)], PER_SIZE, VAL).choice("g", 3, "m")
    assert tie is not None and tie.configuration == "a"
    none = select([trial("a", 0, None), trial("b", 0, None)], PER_SIZE, VAL)
    assert none.choice("g", 3, "m") is None
    assert "no configuration of 2 has an ok cell" in none.why_none("g", 3, "m")
    only = select([trial("", 0, None)], PER_SIZE, VAL).choice("g", 3, "m")
    assert only is not None and only.reason == "the only configuration"


def test_per_size_selects_at_each_size_at_size_once_for_all() -> None:
    trials = [trial("lr=0.1", 0, 0.1, size=3), trial("lr=0.01", 0, 0.2, size=3),
              trial("lr=0.1", 0, 0.9, size=5), trial("lr=0.01", 0, 0.2, size=5)]
    per = select(trials, PER_SIZE, VAL)
    assert [chosen(per, "g", s, "m").configuration for s in (3, 5)] == ["lr=0.1", "lr=0.01"]
    at = select(trials, AT_3, VAL)
    assert set(at.choices) == {("g", 3, "m")}  # size 5's validation regrets are not read
    assert [chosen(at, "g", s, "m").configuration for s in (3, 5, 7)] == ["lr=0.1"] * 3
    assert chosen(at, "g", 5, "m").reason.endswith("at k = 3, fixed for every size")
    assert at.choice("other", 5, "m") is None  # each data point selects on its own


def test_labels_read_back_into_identity_and_configuration() -> None:
    params = {"lr": 0.01, "loss": "dpo", "batch_size": 32, "sigma": 1.0}
    label = "pertopt[batch_size=32,loss=dpo,lr=0.01]"
    assert given_params("pertopt", label, params) == {"batch_size": 32, "loss": "dpo",
                                                      "lr": 0.01}
    assert split_label("pertopt", label, params, ("lr",)) == \
        ("pertopt[batch_size=32,loss=dpo]", "lr=0.01")
    assert split_label("pertopt", label, params, ()) == (label, "")
    assert split_label("spo+", "spo+[lr=0.1]", {"lr": 0.1}, ("lr",)) == ("spo+", "lr=0.1")
    # A value given in another spelling ("1e-2") falls back to the keys named in the label.
    assert given_params("spo+", "spo+[lr=1e-2]", {"lr": 0.01, "hidden": 50}) == {"lr": 0.01}


def _record(cell: Cell, rng: np.random.Generator, val: float, status: Status) -> Record:
    n = 20
    return Record(cell_id=cell.cell_id, problem=cell.problem, method=cell.method,
                  method_label=cell.method_label, status=status, seed=cell.seed,
                  metrics={"norm_regret": float(rng.uniform()), "accuracy": float(rng.uniform()),
                           **({"val_regret": val} if status == Status.OK else {})},
                  test_loss=float(rng.uniform()),
                  per_instance={"test_regrets": [float(v) for v in rng.uniform(size=n)]})


SUITE = """
name = "sel"
problem = "shortest-path"
sizes = [3, 4]
seeds = [0, 1, 2]
[data]
n_train = 40
n_val = 16
n_test = 16
deg = [1, 4]
[budget]
max_epochs = 2
[tuning]
rule = "at-size"
size = 3
[[methods]]
name = "two-stage"
params = { lr = [0.1, 0.01, 0.001], batch_size = 8 }
tune = ["lr"]
[[methods]]
name = "spo+"
params = { batch_size = 8 }
"""


@pytest.mark.parametrize("draw", range(5))
def test_changing_test_data_cannot_change_a_selection(draw: int) -> None:
    """Records that differ in everything measured on test data (regret, per-instance regrets,
    loss, accuracy) but not in validation regret select the same configurations."""
    import tomllib

    suite = parse_suite(tomllib.loads(SUITE), "sel.toml")
    tuning = dataclasses.replace(suite.tuning, rule="per-size", size=None)
    cells = expand(suite, device="cpu")
    rng = np.random.default_rng(draw)
    vals = {c.cell_id: float(rng.uniform()) for c in cells}
    statuses = {c.cell_id: Status.OK if rng.uniform() > 0.1 else Status.FAILED for c in cells}

    def selections(seed: int) -> dict:
        test_rng = np.random.default_rng(1000 + seed)  # a different draw of every test figure
        trials = [cell_trial(c, tuning, _record(c, test_rng, vals[c.cell_id],
                                                statuses[c.cell_id])) for c in cells]
        chosen = select(trials, tuning, VAL)
        return {k: (v.label, v.mean_val_score) for k, v in chosen.choices.items()}

    first = selections(0)
    assert len(first) == 2 * 2 * 2  # sizes × data points × identities
    assert all(selections(s) == first for s in (1, 2, 3))


TINY = """
name = "tuned-tiny"
problem = "shortest-path"
sizes = [3, 4]
seeds = [0]
[data]
n_train = 40
n_val = 16
n_test = 16
[budget]
max_epochs = 2
[tuning]
rule = "at-size"
size = 3
[[methods]]
name = "two-stage"
params = { lr = [0.1, 0.001], batch_size = 8 }
tune = ["lr"]
[[methods]]
name = "spo+"
params = { batch_size = 8 }
"""


@pytest.mark.slow
def test_the_sweep_runs_the_selected_configuration_only_at_the_other_sizes(
        tmp_path: Path) -> None:
    import tomllib

    suite = parse_suite(tomllib.loads(TINY), "tiny.toml")
    cells = expand(suite, device="cpu")
    plan = TuningPlan.of(cells, suite.tuning)
    assert {(c.size, c.method) for c in plan.pending} == {(4, "two-stage")}
    assert len(plan.first) == 4  # two-stage × 2 at k = 3, spo+ at k = 3 and 4
    store = ResultStore(tmp_path)
    store.note_suite(suite.name, [c.cell_id for c in plan.first], suite.tuning.to_json())
    chosen: list[Cell] = []

    def then() -> list[Cell]:
        more, _ = plan.selected(store.read)
        chosen.extend(more)
        return more

    summary = run_cells(plan.first, store, then=then)
    assert len(summary.written) == 5 and len(chosen) == 1
    at_3 = {r.method_label: r.metric("val_regret") for r in summary.written
            if r.size == 3 and r.method == "two-stage"}
    regrets = {label: value for label, value in at_3.items() if value is not None}
    assert len(regrets) == len(at_3)
    best = min(regrets, key=regrets.__getitem__)
    assert chosen[0].method_label == best and chosen[0].size == 4
    assert all(r.status == "ok" and r.metric("val_regret") is not None
               and r.time_to_best_s is not None and r.per_instance is not None
               and len(r.per_instance["test_regrets"]) == 16 for r in summary.written)
    # Resuming runs nothing; the noted suite carries the declaration for the report.
    assert not run_cells(plan.first, store, then=lambda: plan.selected(store.read)[0]).written
    assert Tuning.from_json(suite_tuning(tmp_path, suite.name)) == suite.tuning
    store.note_suite(suite.name, [c.cell_id for c in chosen])
    assert suite_cells(tmp_path, suite.name) == {c.cell_id for c in [*plan.first, *chosen]}
    assert json.loads((tmp_path / "suites" / "tuned-tiny.json").read_text())["tuning"]["size"] \
        == 3


def test_a_suite_without_tuning_notes_no_declaration(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    store.note_suite("plain", ["0123456789abcdef"])
    assert suite_tuning(tmp_path, "plain") is None


def cell(method: str = "two-stage", lr: float = 0.1) -> Cell:
    return Cell(suite="s", problem="shortest-path", size_param="k",
                problem_params={"k": 3, "seed": 0}, method=method, method_params={"lr": lr},
                method_label=f"{method}[lr={lr:g}]", seed=0, device="cpu",
                budget=Budget(max_epochs=1))


def test_old_records_select_through_their_history() -> None:
    """Records written before ``val_regret`` was a column select by the history entry of their
    kept epoch (``val_score``)."""
    old = Record.from_json({
        "cell_id": cell().cell_id, "problem": "shortest-path", "method": "two-stage",
        "status": "ok", "best_epoch": 2,
        "history": [{"epoch": 1, "train_loss": 1.0, "val_score": 0.5},
                    {"epoch": 2, "train_loss": 0.5, "val_score": 0.25}]})
    tuning = Tuning(tuned={"two-stage": ("lr",)})
    assert cell_trial(cell(), tuning, old).val_score == 0.25
    assert cell_trial(cell(), tuning, None).val_score is None
