"""Suite schema for protocols: data grids, budgets that depend on a data point, tuning."""

from __future__ import annotations

from pathlib import Path

import pytest

from l2obench.selection import Tuning
from l2obench.suite import SuiteError, expand, load_suite
from tests.conftest import write_suite

GRID = """
name = "grid"
problem = "shortest-path"
sizes = [3, 4]
seeds = [0, 1]

[data]
n_train = [30, 60]
n_val = 10
n_test = 10
deg = [1, 4]

[budget]
max_seconds = 60

[[budget.when]]
n_train = 30
max_epochs = 4

[[budget.when]]
n_train = 60
max_epochs = 2

[[budget.when]]
n_train = 60
k = 4
max_seconds = 30

[tuning]
rule = "at-size"
size = 3

[[methods]]
name = "two-stage"
params = { lr = [0.01, 0.1], batch_size = [8, 16] }
tune = ["lr"]

[[methods]]
name = "spo+"

[quick]
sizes = [3]
data = { n_train = 30, deg = [1, 2] }
budget = { max_epochs = 1 }
tuning = { rule = "per-size" }
"""


def test_a_data_grid_expands_into_cells_like_a_method_grid(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path, GRID)))
    assert suite.varying_data() == ["deg", "n_train"]
    cells = expand(suite, device="cpu")
    # sizes × data points × (two-stage: 2 lr × 2 batch sizes, spo+: 1) × seeds
    assert len(cells) == 2 * 4 * 5 * 2 == len({c.cell_id for c in cells})
    points = {(c.problem_params["n_train"], c.problem_params["deg"]) for c in cells}
    assert points == {(30, 1), (30, 4), (60, 1), (60, 4)}
    assert all(c.problem_params["n_val"] == 10 for c in cells)
    first = next(c for c in cells if c.problem_params["n_train"] == 60)
    assert first.data_label == "deg=1,n_train=60"
    assert first.label == f"shortest-path[k=3,deg=1,n_train=60] {first.method_label} seed=0"


def test_budgets_follow_the_data_point_and_the_command_line_wins(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path, GRID)))
    budgets = {(c.size, c.problem_params["n_train"]): (c.budget.max_epochs, c.budget.max_seconds)
               for c in expand(suite, device="cpu")}
    assert budgets == {(3, 30): (4, 60.0), (4, 30): (4, 60.0), (3, 60): (2, 60.0),
                       (4, 60): (2, 30.0)}
    forced = suite.with_budget(max_epochs=7)
    assert {c.budget.max_epochs for c in expand(forced, device="cpu")} == {7}
    assert {c.budget.max_seconds for c in expand(forced, device="cpu")} == {60.0, 30.0}


def test_tuning_declaration_and_quick_overrides(tmp_path: Path) -> None:
    suite = load_suite(str(write_suite(tmp_path, GRID)))
    assert suite.tuning == Tuning(rule="at-size", size=3, tuned={"two-stage": ("lr",)})
    assert Tuning.from_json(suite.tuning.to_json()) == suite.tuning
    quick = load_suite(str(write_suite(tmp_path, GRID)), quick=True)
    assert quick.tuning == Tuning(rule="per-size", tuned={"two-stage": ("lr",)})
    cells = expand(quick, device="cpu")
    assert {c.budget.max_epochs for c in cells} == {1}  # quick's budget beats the when entries
    assert {(c.problem_params["n_train"], c.problem_params["deg"]) for c in cells} == \
        {(30, 1), (30, 2)}


def test_new_columns_do_not_change_cell_ids(tmp_path: Path) -> None:
    """A suite without grids expands to the cells it always did: the ids hash the
    configuration only (the data label, the tuning declaration are not part of it)."""
    plain = GRID.replace("n_train = [30, 60]", "n_train = 30").replace("deg = [1, 4]", "deg = 4")
    plain = plain.split("[[budget.when]]")[0] + "max_epochs = 4\n" + plain[plain.index(
        "[tuning]"):]
    untuned = plain.replace('tune = ["lr"]\n', "").replace('[tuning]\nrule = "at-size"\n'
                                                           'size = 3\n', "")
    untuned = untuned.replace('tuning = { rule = "per-size" }\n', "")
    a = expand(load_suite(str(write_suite(tmp_path, plain))), device="cpu")
    b = expand(load_suite(str(write_suite(tmp_path, untuned))), device="cpu")
    assert [c.cell_id for c in a] == [c.cell_id for c in b]
    assert all(c.data_label == "" for c in a)


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ("deg = [1, 4]", "deg = []", "key 'data.deg' is an empty list"),
        ("deg = [1, 4]", "deg = [1, 1.0]", "key 'data.deg' has repeated values"),
        ("deg = [1, 4]", "deg = [1, -4]",
         "key 'data.deg': problem 'shortest-path': parameter 'deg' = -4"),
        ("n_train = 30\nmax_epochs = 4", "n_train = 50\nmax_epochs = 4",
         "key 'budget.when[0].n_train' = 50 matches no cell"),
        ("n_train = 30\nmax_epochs = 4", "n_tran = 30\nmax_epochs = 4",
         "key 'budget.when[0].n_tran': not a data parameter"),
        ("n_train = 30\nmax_epochs = 4", "n_train = 30", "key 'budget.when[0]' must set"),
        ("n_train = 60\nk = 4\n", "max_epochs = 3\n", "key 'budget.when[2]' names no condition"),
        ('rule = "at-size"', 'rule = "best"', "key 'tuning.rule' must be one of"),
        ("size = 3\n\n[[methods]]", "size = 5\n\n[[methods]]",
         "key 'tuning.size' = 5 is not among the suite's sizes [3, 4]"),
        ("size = 3\n\n[[methods]]", "\n[[methods]]", "key 'tuning.size' is missing"),
        ('tune = ["lr"]', 'tune = ["hidden"]', "key 'methods[0].tune': 'hidden' is not among"),
        ('tune = ["lr"]', 'tune = "lr"', "key 'methods[0].tune' must be a list"),
        ('tune = ["lr"]', "", "key 'tuning': no method declares 'tune'"),
        ('tuning = { rule = "per-size" }', 'tuning = { size = 5 }', "key 'quick.tuning.size'"),
        ('tuning = { rule = "per-size" }', "", "key 'tuning (with quick.sizes).size' = 3"),
    ],
)
def test_malformed_grids_name_file_and_key(tmp_path: Path, old: str, new: str,
                                           fragment: str) -> None:
    assert old in GRID
    text = GRID.replace(old, new, 1)
    if fragment.startswith("key 'tuning (with"):
        text = text.replace("sizes = [3]\n", "sizes = [4]\n")
    path = write_suite(tmp_path, text)
    with pytest.raises(SuiteError) as info:
        load_suite(str(path), quick=True)
    assert str(path) in str(info.value)
    assert fragment in str(info.value)


def test_every_cell_needs_a_budget(tmp_path: Path) -> None:
    text = GRID.replace("[budget]\nmax_seconds = 60\n", "[budget]\n").replace(
        "n_train = 60\nmax_epochs = 2", "n_train = 60\nk = 4\nmax_epochs = 2")
    with pytest.raises(SuiteError, match="key 'budget': the cells at k = 3, deg = 1, n_test = "
                                         "10, n_train = 60, n_val = 10 have no budget"):
        load_suite(str(write_suite(tmp_path, text)))


def test_entries_of_one_method_tune_the_same_parameters(tmp_path: Path) -> None:
    text = GRID.replace('name = "spo+"', 'name = "two-stage"\nparams = { lr = [0.5], '
                        'hidden = 0 }')
    assert expand(load_suite(str(write_suite(tmp_path, text.replace(
        "hidden = 0 }", "hidden = 0 }\ntune = [\"lr\"]")))), device="cpu")
    with pytest.raises(SuiteError, match=r"methods\[1\]\.tune': every entry of method "
                                         "'two-stage' must tune the same parameters"):
        load_suite(str(write_suite(tmp_path, text)))


def test_the_pyepo_protocol_suite() -> None:
    suite = load_suite("pyepo-protocol")
    assert suite.sizes == [5] and len(suite.seeds) == 10
    assert len(suite.data_points()) == 3 * 4 * 2
    assert suite.varying_data() == ["deg", "n_train", "noise"]
    cells = expand(suite, device="cpu")
    epochs = {(c.problem_params["n_train"], c.budget.max_epochs) for c in cells}
    assert epochs == {(100, 200), (1000, 20), (5000, 4)}
    assert {c.problem_params["n_test"] for c in cells} == {1000}
    assert all(c.method_params["hidden"] == 0 for c in cells)  # PyEPO's linear model
    assert {c.method for c in cells} >= {"two-stage", "spo+", "blackbox", "pertopt"}
    assert suite.tuning == Tuning(tuned={"spo+": ("lr",)})
    quick = expand(load_suite("pyepo-protocol", quick=True), device="cpu")
    assert len(quick) == 2 * 6 and {c.budget.max_epochs for c in quick} == {5}
