"""The runner scores methods itself and turns every failure into a recorded status."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from l2obench import Budget, Dataset, FitResult, Method, Split, register_method
from l2obench.problems.shortest_path import ShortestPath
from l2obench.record import Cell, Record, Status
from l2obench.runner import run_cell
from l2obench.store import ResultStore, load_results
from l2obench.sweep import run_cells


class _Scripted(Method):
    """Predicts the true costs scaled by a factor; can be told to fail in different ways."""

    behaviour = "ok"

    def fit(self, data: Dataset, budget: Budget) -> FitResult:
        if self.behaviour == "raise":
            raise RuntimeError("boom")
        if self.behaviour == "oom":
            raise MemoryError("cannot allocate")
        self.lookup = {f.tobytes(): c for f, c in zip(data.test.features, data.test.costs,
                                                       strict=True)}
        return FitResult(epochs=1)

    def predict_costs(self, features: np.ndarray) -> np.ndarray:
        if self.behaviour == "nan":
            return np.full((len(features), self.problem.n_vars), np.nan)
        if self.behaviour == "reverse":
            return -np.stack([self.lookup[f.tobytes()] for f in features])
        return np.stack([self.lookup[f.tobytes()] for f in features])

    def loss(self, split: Split) -> float:
        return 0.0


for _behaviour in ("ok", "raise", "oom", "nan", "reverse"):
    register_method(f"test-{_behaviour}")(type(f"_Scripted_{_behaviour}", (_Scripted,),
                                                {"behaviour": _behaviour}))


@register_method("test-needs-extra")
class _NeedsExtra(_Scripted):
    requires = ("a_module_that_is_not_installed",)
    extra = "imaginary"


def cell(method: str, size: int = 3) -> Cell:
    problem = ShortestPath(k=size, n_train=20, n_val=8, n_test=8, seed=1)
    return Cell(suite="t", problem="shortest-path", size_param="k",
                problem_params=problem.config, method=method,
                method_params={}, method_label=method, seed=1, device="cpu",
                budget=Budget(max_epochs=1))


def test_true_costs_give_zero_regret_and_full_accuracy() -> None:
    record = run_cell(cell("test-ok"))
    assert record.status == "ok", record.error
    assert record.metric("norm_regret") == pytest.approx(0.0, abs=1e-12)
    assert record.metric("accuracy") == 1.0


def test_regret_is_computed_from_true_costs() -> None:
    record = run_cell(cell("test-reverse"))
    problem = ShortestPath(k=3, n_train=20, n_val=8, n_test=8, seed=1)
    test = problem.generate().test
    # Independent computation with networkx: predicting −c picks the longest path under c.
    regrets, optima = [], []
    for costs in test.costs.astype(float):
        graph = nx.DiGraph()
        for (tail, head), c in zip(problem.arcs, costs, strict=True):
            graph.add_edge(int(tail), int(head), c=c, neg=-c)
        target = problem.size**2 - 1
        shortest = nx.bellman_ford_path_length(graph, 0, target, weight="c")
        longest = -nx.bellman_ford_path_length(graph, 0, target, weight="neg")
        regrets.append(longest - shortest)
        optima.append(abs(shortest))
    expected = sum(regrets) / sum(optima)
    assert record.metric("norm_regret") == pytest.approx(expected)
    assert record.per_instance is not None  # each instance's regret, in the split's order:
    assert record.per_instance["test_regrets"] == pytest.approx(regrets)
    regret, accuracy = record.metric("norm_regret"), record.metric("accuracy")
    assert regret is not None and regret > 0.3
    assert accuracy is not None and accuracy < 0.5


@pytest.mark.parametrize(
    ("method", "status", "fragment"),
    [
        ("test-raise", "failed", "RuntimeError: boom"),
        ("test-oom", "oom", "MemoryError"),
        ("test-nan", "diverged", "NaN"),
        ("test-needs-extra", "skipped", "pip install 'l2obench[imaginary]'"),
    ],
)
def test_failures_become_statuses(method: str, status: str, fragment: str) -> None:
    record = run_cell(cell(method))
    assert record.status == status
    assert record.error is not None and fragment in record.error


def test_suite_goes_on_after_a_failure(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    cells = [cell("test-raise"), cell("test-ok"), cell("test-nan", size=4)]
    summary = run_cells(cells, store)
    counts = summary.counts()
    assert counts[Status.FAILED] == 1 and counts[Status.OK] == 1 and counts[Status.DIVERGED] == 1
    frame = load_results(tmp_path)
    assert sorted(frame["status"]) == ["diverged", "failed", "ok"]
    again = run_cells(cells, store)
    assert not again.written and len(again.already_done) == 3


def test_store_never_overwrites_and_writes_atomically(tmp_path: Path) -> None:
    store = ResultStore(tmp_path)
    record = Record(cell_id="00000000000000ab", problem="p", method="m", status=Status.OK,
                    metrics={"norm_regret": 0.5}, test_loss=float("nan"))
    store.write(record)
    with pytest.raises(FileExistsError):
        store.write(Record(cell_id="00000000000000ab", problem="p", method="m"))
    assert [p.name for p in (tmp_path / "records").iterdir()] == ["00000000000000ab.json"]
    frame = load_results(tmp_path)
    assert frame.loc[0, "status"] == "ok"
    assert frame.loc[0, "test_loss"] is None  # NaN stored as null
    with pytest.raises(FileNotFoundError):
        load_results(tmp_path / "missing")
