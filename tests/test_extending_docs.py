"""docs/extending.md's examples are code that runs: its method and problem classes, registered
in this process as an installed plugin's entry points would register them, train and are scored
through a suite, and a problem that breaks the oracle's contract gets a message that says so."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from l2obench.methods.base import method_registry
from l2obench.problems.base import problem_registry
from tests.conftest import REPO, run_main

DOC = REPO / "docs" / "extending.md"


def _blocks() -> dict[str, str]:
    """The doc's Python blocks that define a class, by the class's name."""
    found = {}
    for block in re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S):
        names = re.findall(r"^class (\w+)\(", block, flags=re.M)
        if names:
            found[names[0]] = block
    return found


def _define(name: str) -> Any:
    namespace: dict[str, Any] = {"__name__": f"extending_doc_{name.lower()}"}
    exec(compile(_blocks()[name], f"{DOC}:{name}", "exec"), namespace)
    return namespace[name]


@pytest.fixture
def doc_plugin() -> Iterator[None]:
    """The doc's method classes and its problem, registered as a plugin's would be."""
    problem_registry.register("pick-one")(_define("PickOne"))
    method_registry.register("mean-cost")(_define("MeanCost"))
    method_registry.register("cost-mse")(_define("CostMSE"))
    try:
        yield
    finally:
        problem_registry.unregister("pick-one")
        method_registry.unregister("mean-cost")
        method_registry.unregister("cost-mse")


def test_the_docs_examples_define_what_they_say() -> None:
    assert {"MeanCost", "CostMSE", "PickOne", "Portfolio", "DenoiseTask"} <= set(_blocks())


def test_the_docs_method_and_problem_run_as_a_suite(doc_plugin: None, tmp_path: Path) -> None:
    suite = tmp_path / "doc.toml"
    suite.write_text('name = "doc"\nproblem = "pick-one"\nsizes = [4]\nseeds = [0]\n'
                     'budget = { max_epochs = 2 }\n'
                     '[[methods]]\nname = "mean-cost"\n[[methods]]\nname = "cost-mse"\n'
                     '[[methods]]\nname = "spo+"\n')
    out = tmp_path / "out"
    code, text = run_main(["run", "--suite", str(suite), "--out", str(out), "--device", "cpu",
                           "--executor", "inline"])
    assert code == 0, text
    records = [json.loads(p.read_text()) for p in (out / "records").glob("*.json")]
    assert sorted(r["method"] for r in records) == ["cost-mse", "mean-cost", "spo+"]
    assert all(r["status"] == "ok" for r in records), [r.get("error") for r in records]
    # the runner scored them against the oracle: a model that predicts the mean cost regrets
    assert all(np.isfinite(r["metrics"]["norm_regret"]) for r in records)
    assert next(r for r in records if r["method"] == "mean-cost")["metrics"]["norm_regret"] > 0


def test_an_oracle_that_breaks_the_contract_is_named() -> None:
    pick_one = _define("PickOne")

    class SolutionsOnly(pick_one):  # type: ignore[misc, valid-type]
        def oracle(self, costs: Any) -> Any:
            return super().oracle(costs)[0]

    with pytest.raises(TypeError, match=r"SolutionsOnly.oracle must return \(solutions"):
        SolutionsOnly(n_items=3, n_train=5).generate()
