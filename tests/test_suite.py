"""Suite files: the built-in suite, the quick profile, validation errors naming file and key."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest

from l2obench import Param
from l2obench.errors import L2OBenchError
from l2obench.suite import SuiteError, builtin_suites, expand, load_suite
from tests.conftest import tiny_suite, write_suite

GOOD = """
name = "mine"
problem = "shortest-path"
sizes = [3, 4]
seeds = [0, 1]
data = { n_train = 30, n_val = 10, n_test = 10 }
budget = { max_epochs = 2 }

[[methods]]
name = "two-stage"
params = { lr = [0.01, 0.1] }

[[methods]]
name = "dys-jfb"

[quick]
sizes = [3]
budget = { max_epochs = 1 }
method_params = { dys-jfb = { max_iter = 50 } }
"""


def test_builtin_shortest_path_suite() -> None:
    assert "shortest-path" in builtin_suites()
    suite = load_suite("shortest-path")
    assert suite.sizes == [5, 10, 20, 30, 50, 100]
    assert {m.name for m in suite.methods} >= {"dys-jfb", "two-stage"}
    assert suite.tuning.rule == "at-size" and suite.tuning.size == 5
    cells = expand(suite, device="cpu")
    at_100 = {c.method_label for c in cells if c.size == 100}
    assert {"dys-jfb[lr=0.01]", "two-stage[lr=0.01]", "spo+[lr=0.01]"} <= at_100
    assert not any(label.startswith("cvx-net") for label in at_100)
    quick = load_suite("shortest-path", quick=True)
    assert max(quick.sizes) <= 10 and quick.budget.max_epochs is not None
    quick_cells = expand(quick, device="cpu")
    assert {c.method for c in quick_cells if c.size == max(quick.sizes)} == \
        {m.name for m in suite.methods}  # every method in the smoke run, one learning rate
    assert {c.method_params["lr"] for c in quick_cells} == {0.01}


def test_a_method_runs_at_its_own_sizes(tmp_path: Path) -> None:
    """``sizes`` in a method entry keeps it to some of the suite's sizes (a panel at the
    largest ones); a size the suite lacks, or one that omits a tuned method's tuning size, is
    refused; the quick profile runs every method at every quick size."""
    text = GOOD.replace('name = "dys-jfb"', 'name = "dys-jfb"\nsizes = [3]')
    suite = load_suite(str(write_suite(tmp_path, text)))
    cells = expand(suite, device="cpu")
    assert {c.size for c in cells if c.method == "dys-jfb"} == {3}
    assert {c.size for c in cells if c.method == "two-stage"} == {3, 4}
    assert expand(suite, device="cpu", sizes=[4], method_names=["dys-jfb"]) == []
    quick_text = text.replace("sizes = [3]\nbudget", "sizes = [4]\nbudget")
    quick = load_suite(str(write_suite(tmp_path, quick_text)), quick=True)
    assert {c.size for c in expand(quick, device="cpu") if c.method == "dys-jfb"} == {4}
    with pytest.raises(SuiteError, match=r"methods\[1\]\.sizes': 7 is not among"):
        load_suite(str(write_suite(tmp_path, text.replace("sizes = [3]\n", "sizes = [7]\n"))))
    tuned = text.replace("params = { lr = [0.01, 0.1] }",
                         'params = { lr = [0.01, 0.1] }\ntune = ["lr"]\nsizes = [4]')
    tuned += '\n[tuning]\nrule = "at-size"\nsize = 3\n'
    with pytest.raises(SuiteError, match=r"methods\[0\]\.sizes' must include the tuning size 3"):
        load_suite(str(write_suite(tmp_path, tuned)))


def test_expand_grid_sizes_seeds(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path, GOOD)))
    cells = expand(suite, device="cpu")
    assert len(cells) == 2 * (2 + 1) * 2
    labels = {c.method_label for c in cells}
    assert labels == {"two-stage[lr=0.01]", "two-stage[lr=0.1]", "dys-jfb"}
    assert len({c.cell_id for c in cells}) == len(cells)
    assert all(c.problem_params["n_train"] == 30 for c in cells)
    assert {c.size for c in cells} == {3, 4}


def test_quick_profile_overrides(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path, GOOD)), quick=True)
    cells = expand(suite, device="cpu")
    assert {c.size for c in cells} == {3}
    assert all(c.budget.max_epochs == 1 for c in cells)
    dys = [c for c in cells if c.method == "dys-jfb"]
    assert dys and all(c.method_params["max_iter"] == 50 for c in dys)


def test_cli_selection(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path, GOOD)))
    cells = expand(suite, device="cpu", sizes=[5], seeds=[3], method_names=["dys-jfb"])
    assert [(c.size, c.seed, c.method) for c in cells] == [(5, 3, "dys-jfb")]
    with pytest.raises(L2OBenchError, match=r"valid: .*two-stage"):
        expand(suite, device="cpu", method_names=["nope"])
    with pytest.raises(L2OBenchError, match="below its minimum 2"):
        expand(suite, device="cpu", sizes=[1])


def test_cell_id_is_stable_and_sensitive(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path, GOOD)))
    a = expand(suite, device="cpu")
    b = expand(suite, device="cpu")
    assert [c.cell_id for c in a] == [c.cell_id for c in b]
    cuda = expand(suite, device="cuda")
    assert {c.cell_id for c in a}.isdisjoint({c.cell_id for c in cuda})


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("name = 'x'\nproblem = ", "not valid TOML"),
        (GOOD.replace('problem = "shortest-path"', 'problem = "tsp-atsp"'),
         "key 'problem': unknown problem 'tsp-atsp'; valid: classification, ct, knapsack, "
         "portfolio, shortest-path, tsp"),
        (GOOD.replace('sizes = [3, 4]', 'sizes = "3"'), "key 'sizes' must be a list"),
        (GOOD.replace('sizes = [3, 4]', 'sizes = [3, 3]'), "repeated values"),
        (GOOD.replace('name = "dys-jfb"', 'name = "dys"'),
         "key 'methods[1].name': unknown method 'dys' (did you mean"),
        (GOOD.replace('params = { lr = [0.01, 0.1] }', 'params = { lr = -1.0 }'),
         "key 'methods[0].params': method 'two-stage': parameter 'lr' = -1.0 is below"),
        (GOOD.replace('params = { lr = [0.01, 0.1] }', 'params = { step = 1 }'),
         "unknown parameter(s) 'step'"),
        (GOOD.replace('n_train = 30', 'n_trian = 30'), "key 'data': problem 'shortest-path': "
         "unknown parameter(s) 'n_trian'"),
        (GOOD.replace('n_train = 30', 'k = 30'), "key 'data' must not set k"),
        (GOOD.replace('max_epochs = 2 }', 'max_epochs = 0 }'), "'budget.max_epochs' must be a "
         "positive integer"),
        (GOOD.replace('budget = { max_epochs = 2 }', 'budget = { epochs = 2 }'),
         "unknown key 'budget.epochs'"),
        (GOOD.replace('seeds = [0, 1]', 'seeds = [0, 1]\nsize = 3'), "unknown key 'size'"),
        (GOOD.replace('name = "mine"\n', ''), "missing key 'name'"),
        (GOOD.replace('dys-jfb = { max_iter = 50 }', 'spo = { max_iter = 50 }'),
         "key 'quick.method_params.spo'"),
    ],
)
def test_malformed_suites_name_file_and_key(tmp_path: Path, text: str, fragment: str) -> None:
    path = write_suite(tmp_path, text)
    with pytest.raises(SuiteError) as info:
        load_suite(str(path), quick=True)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_unknown_suite_lists_builtins() -> None:
    with pytest.raises(SuiteError, match=r"unknown suite 'shortest' \(did you mean "
                                         r"'shortest-path'\?\); valid: .*shortest-path"):
        load_suite("shortest")
    with pytest.raises(SuiteError, match="suite file not found"):
        load_suite("nowhere/suite.toml")


def test_add_method_joins_a_builtin_suite_from_the_command_line(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from l2obench import FitResult, Method, register_method
    from l2obench.methods.base import method_registry
    from l2obench.suite import with_methods
    from tests.conftest import run_main

    # The method registered here leaves with the test (others list every registered method).
    monkeypatch.setattr(method_registry, "_items", dict(method_registry._items))

    @register_method("test-joiner")
    class Joiner(Method):
        params: ClassVar[dict[str, Param]] = {"scale": Param(float, 1.0, "cost scale",
                                                             low=0.0)}

        def fit(self, data, budget):
            return FitResult(epochs=1)

        def predict_costs(self, features):
            return np.ones((len(features), self.problem.n_vars)) * self.config["scale"]

        def loss(self, split):
            return 0.0

    suite = with_methods(load_suite("shortest-path", quick=True),
                         ["test-joiner[scale=2.5]", "two-stage[lr=0.1,hidden=0]"])
    labels = {c.method_label for c in expand(suite, device="cpu")}
    assert {"test-joiner[scale=2.5]", "two-stage[hidden=0,lr=0.1]"} <= labels
    code, text = run_main(["run", "--suite", "shortest-path", "--quick", "--methods",
                           "test-joiner", "--add-method", "test-joiner[scale=2]", "--device",
                           "cpu", "--executor", "inline", "--out", str(tmp_path / "o")])
    assert code == 0, text
    assert "test-joiner[scale=2]" in text
    for bad, fragment in [("test-joiner[scale=-1]", "below its minimum"),
                          ("test-joiner[scale]", "is not key=value"),
                          ("two-stage[lr=0.01]", "is in suite 'shortest-path' already"),
                          ("two-stag", "did you mean 'two-stage'")]:
        with pytest.raises(SuiteError, match=re.escape(fragment)):
            with_methods(load_suite("shortest-path"), [bad])


def test_every_schema_error_of_a_suite_file_in_one_message(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text('name = "broken"\nproblem = "shortest-path"\nsizes = [1]\ncolour = "red"\n'
                    'budget = { max_epochs = -3 }\n[[methods]]\nname = "dys-jbf"\n'
                    '[[methods]]\nname = "two-stage"\nparams = { lr = -1 }\n')
    with pytest.raises(SuiteError) as raised:
        load_suite(str(path))
    message = str(raised.value)
    assert message.startswith(f"{path}: 5 errors:\n")
    for fragment in ["unknown key 'colour'", "key 'sizes'", "unknown method 'dys-jbf'",
                     "did you mean 'dys-jfb'", "key 'methods[1].params'", "max_epochs"]:
        assert fragment in message, message
    unknown = tmp_path / "unknown.toml"  # what depends on the problem cannot be checked
    unknown.write_text('name = "u"\nproblem = "shortest-pth"\nsizes = [3]\n'
                       'budget = { max_seconds = 0 }\n[[methods]]\nname = "two-stage"\n')
    with pytest.raises(SuiteError, match=r"2 errors:\n.*did you mean 'shortest-path'.*\n"
                                         r".*max_seconds"):
        load_suite(str(unknown))


@pytest.mark.parametrize("name", ["tsp", "portfolio"])
def test_new_problem_suites_run_every_applicable_method(name: str) -> None:
    """The TSP and portfolio suites list every registered method that applies to their problem
    (and, being valid, none that does not), with a quick profile of small sizes."""
    from l2obench.methods.base import method_registry
    from l2obench.problems.base import problem_registry

    suite = load_suite(name)
    problem_cls = problem_registry.get(suite.problem)
    builtin = [m for m in method_registry.names()  # not the tests' own registrations
               if method_registry.get(m).__module__.startswith("l2obench.")
               and method_registry.get(m).task == problem_cls.task]
    applicable = {m for m in builtin if not method_registry.get(m).unmet_needs(problem_cls)}
    assert {spec.name for spec in suite.methods} | set(suite.left_out) == applicable
    assert (suite.data["n_train"], suite.data["n_val"], suite.data["n_test"]) == (1000, 200, 200)
    assert suite.data["deg"] == 4
    quick = load_suite(name, quick=True)
    assert max(quick.sizes) <= min(suite.sizes) and quick.budget.max_epochs == 2


@pytest.mark.parametrize(("name", "identities"), [("knapsack", 24), ("tsp", 21), ("portfolio", 19)])
def test_decision_suites_follow_the_shortest_path_protocol(name: str, identities: int) -> None:
    """The knapsack, TSP and portfolio suites run under the shortest-path suite's protocol:
    its data sizes, features, degree, budget and seeds, every method's learning rate tuned over
    the same grid at the suite's smallest size, each method at that size at least, and every
    applicable method identity (pertopt's two losses, each additive and multiplicative, ltr's
    three kinds) but rfwo and rfy on TSP, which end at most one epoch within the budget there
    and are declared left out, with why."""
    reference = load_suite("shortest-path")
    suite = load_suite(name)
    assert suite.seeds == reference.seeds == [0, 1, 2]
    assert suite.budget == reference.budget
    for key in ("n_train", "n_val", "n_test", "n_features", "deg"):
        assert suite.data[key] == reference.data[key], key
    assert suite.tuning.rule == "at-size" and suite.tuning.size == min(suite.sizes)
    labels = set()
    for spec in suite.methods:
        assert spec.tune == ("lr",) and spec.params["lr"] == [0.001, 0.01, 0.1], spec.name
        assert spec.runs_at(min(suite.sizes)), spec.name
        fixed = {k: v for k, v in spec.params.items() if k != "lr"}
        grid = [dict(zip(fixed, combo, strict=True)) for combo in itertools.product(
            *[v if isinstance(v, list) else [v] for v in fixed.values()])]
        labels |= {(spec.name, tuple(sorted(g.items()))) for g in grid}
    assert len(labels) == identities
    assert set(suite.left_out) == ({"rfwo", "rfy"} if name == "tsp" else set())
    assert {("pertopt", ()), ("pertopt", (("perturbation", "multiplicative"),)),
            ("pertopt", (("loss", "dpo"),)),
            ("pertopt", (("loss", "dpo"), ("perturbation", "multiplicative")))} <= labels
    assert {("ltr", (("kind", kind),)) for kind in ("pointwise", "pairwise", "listwise")} <= labels
    # The quick profile stays a smoke run of every method at one learning rate.
    quick = load_suite(name, quick=True)
    assert all(spec.params["lr"] == 0.01 for spec in quick.methods)
    assert expand(quick, device="cpu")


@pytest.mark.parametrize(("left_out", "message"), [
    ('rfwo = "too slow"', None),
    ('rfwo = ""', "'left_out.rfwo' must say why"),
    ('two-stage = "no"', "also among the suite's methods"),
    ('rfwoo = "slow"', "unknown method 'rfwoo' (did you mean 'rfwo'?)"),
    ('fbp = "not a decision method"', "no reason is needed to leave it out"),
])
def test_a_suite_says_why_it_leaves_an_applicable_method_out(
        tmp_path: Path, left_out: str, message: str | None) -> None:
    path = write_suite(tmp_path, tiny_suite() + f"\n[left_out]\n{left_out}\n")
    if message is None:
        assert load_suite(str(path)).left_out == {"rfwo": "too slow"}
        return
    with pytest.raises(SuiteError) as caught:
        load_suite(str(path))
    assert message in str(caught.value) and str(path) in str(caught.value)
