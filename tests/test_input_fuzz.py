"""Property: malformed suite files and argument lists end in exit status 2, one message, no
traceback, and no record written."""

from __future__ import annotations

import json
import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import given, settings
from hypothesis import strategies as st

from l2obench.store import ResultStore, load_results
from tests.conftest import run_main

VALID: dict[str, Any] = {
    "name": "fuzz",
    "problem": "shortest-path",
    "sizes": [3],
    "seeds": [0],
    "data": {"n_train": 20, "n_val": 5, "n_test": 5},
    "budget": {"max_epochs": 1},
    "limits": {"wall_seconds": 60},
    "methods": [{"name": "two-stage", "params": {"lr": 0.01}}],
    "quick": {"sizes": [3]},
}

# Where a bad value can go, and values that are wrong there whatever the key.
PATHS = [("name",), ("problem",), ("sizes",), ("seeds",), ("data",), ("data", "n_train"),
         ("data", "deg"), ("data", "noise"), ("budget",), ("budget", "max_epochs"),
         ("budget", "max_seconds"), ("limits", "wall_seconds"), ("limits", "memory_mb"),
         ("methods",), ("methods", 0), ("methods", 0, "name"), ("methods", 0, "params"),
         ("methods", 0, "params", "lr"), ("methods", 0, "params", "hidden"), ("quick",),
         ("quick", "sizes"), ("quick", "budget"), ("quick", "method_params")]
BAD_VALUES = st.one_of(
    st.just(""), st.just("nope"), st.just(-1), st.just(0), st.just(-0.5), st.just(1e308),
    st.just(True), st.just([]), st.just([0, 0]), st.just(["x"]), st.just({}),
    st.just({"unknown": 1}), st.just(float("nan")), st.just(float("inf")), st.just(10**9),
    st.just([{"name": "nope"}]), st.just([{"params": {}}]),
)


def set_path(doc: dict[str, Any], path: tuple, value: Any) -> dict[str, Any]:
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


#: Mutations that leave the suite valid: not malformed, so not part of the property.
VALID_MUTATIONS = {
    (("budget", "max_epochs"), 10**9), (("budget", "max_seconds"), 10**9),
    (("budget", "max_seconds"), 1e308), (("limits", "wall_seconds"), 10**9),
    (("limits", "wall_seconds"), 1e308), (("limits", "memory_mb"), 10**9),
    (("limits", "memory_mb"), 1e308), (("data",), "{}"), (("quick",), "{}"),
    (("quick", "method_params"), "{}"), (("quick", "budget"), "{}"),
    (("methods", 0, "params"), "{}"),
    (("data", "deg"), True), (("data", "n_train"), True), (("budget", "max_epochs"), True),
    (("name",), "nope"), (("data", "noise"), 0), (("methods", 0, "params", "hidden"), 0),
    (("data", "deg"), 0.0),
}


def is_valid_anyway(path: tuple, value: Any) -> bool:
    key = "{}" if value == {} else value
    return any(path == p and type(key) is type(v) and key == v for p, v in VALID_MUTATIONS)


def assert_refused(code: int, text: str, out: Path) -> None:
    assert code == 2, text
    assert "Traceback" not in text
    assert text.strip(), "no message"
    assert not out.exists() or not list(out.rglob("*.json"))


SETTINGS = settings(max_examples=100, deadline=None)


@SETTINGS
@given(path=st.sampled_from(PATHS), value=BAD_VALUES)
def test_malformed_suite_files_are_refused(path: tuple, value: Any) -> None:
    doc = tomllib.loads(tomli_w.dumps(VALID))
    set_path(doc, path, value)
    if is_valid_anyway(path, value):
        return
    with tempfile.TemporaryDirectory() as tmp:
        suite, out = Path(tmp) / "suite.toml", Path(tmp) / "out"
        suite.write_text(tomli_w.dumps(doc))
        code, text = run_main(["run", "--suite", str(suite), "--out", str(out), "--device",
                               "cpu", "--dry-run"])
        assert_refused(code, text, out)


@SETTINGS
@given(text=st.text(min_size=1, max_size=200))
def test_garbage_suite_files_are_refused(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        suite, out = Path(tmp) / "g.toml", Path(tmp) / "out"
        suite.write_bytes(text.encode("utf-8", "surrogatepass"))
        code, output = run_main(["run", "--suite", str(suite), "--out", str(out)])
        assert_refused(code, output, out)


OPTIONS = ["--sizes", "--seeds", "--methods", "--device", "--max-epochs", "--max-seconds",
           "--cell-timeout", "--memory-cap-mb", "--jobs", "--executor", "--suite"]
JUNK = st.sampled_from(["", "0", "-1", "1,,x", "x", "1e400", "nan", "inf", "5;6", "tpu",
                        "dys", "shortest", "-5", "2.5", "1,1", "100000", " "])


#: Junk that happens to be a valid value for the option.
VALID_ARGS = {("--max-epochs", "100000"), ("--jobs", "100000"), ("--cell-timeout", "100000"),
              ("--memory-cap-mb", "100000"), ("--max-seconds", "100000"),
              ("--max-seconds", "2.5"), ("--cell-timeout", "2.5"), ("--memory-cap-mb", "2.5"),
              ("--seeds", "0"), ("--seeds", "100000")}


@SETTINGS
@given(option=st.sampled_from(OPTIONS), value=JUNK)
def test_bad_arguments_are_refused(option: str, value: str) -> None:
    if (option, value) in VALID_ARGS:
        return
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        argv = ["run", "--suite", "shortest-path", "--quick", "--out", str(out), "--device",
                "cpu", "--dry-run", option, value]
        code, text = run_main(argv)
        assert_refused(code, text, out)


# -- damaged and foreign records ---------------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
RECORD_KEYS = st.sampled_from(["cell_id", "status", "problem", "method", "size", "seed",
                               "norm_regret", "history", "params", "size_param"])
FOREIGN = st.one_of(
    st.binary(max_size=200),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.dictionaries(RECORD_KEYS, JSON_VALUES, max_size=10).map(
        lambda d: json.dumps({"cell_id": "0123456789abcdef", **d}).encode()),
)


@SETTINGS
@given(content=FOREIGN)
def test_damaged_or_foreign_records_are_never_counted_or_fatal(content: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        records = Path(tmp) / "records"
        records.mkdir()
        (records / "0123456789abcdef.json").write_bytes(content)
        store = ResultStore(tmp)
        try:
            frame = load_results(tmp)
        except FileNotFoundError:
            frame = None  # nothing intact to load: the file was skipped
        record = store.read("0123456789abcdef")
        if record is None:  # damaged: set aside, never counted as done
            assert not (records / "0123456789abcdef.json").exists()
            assert len(list((records / "damaged").iterdir())) == 1
            assert frame is None
        else:  # it happens to be a complete record of that cell
            assert record.cell_id == "0123456789abcdef"
            assert frame is not None and len(frame) == 1


def _valid_suite(folder: Path) -> str:
    path = folder / "valid.toml"
    path.write_text(tomli_w.dumps(VALID))
    return str(path)


def test_a_parameter_given_twice_to_add_method_is_refused(tmp_path: Path) -> None:
    code, text = run_main(["run", "--suite", _valid_suite(tmp_path), "--dry-run", "--device",
                           "cpu", "--add-method", "two-stage[lr=0.1,lr=0.2]"])
    assert code == 2 and "'lr' is given more than once" in text, text


@pytest.mark.parametrize("template", ["two-stage[lr={}]", "two-stage[{}=1]", "two-stag{}",
                                      "two-stage[{}]"])
def test_a_huge_rejected_value_is_not_echoed_whole(tmp_path: Path, template: str) -> None:
    code, text = run_main(["run", "--suite", _valid_suite(tmp_path), "--dry-run", "--device",
                           "cpu", "--add-method", template.format("x" * 100_000)])
    assert code == 2 and "…" in text and len(text) < 1_000, text[:300]


def test_a_huge_value_in_a_suite_file_is_not_echoed_whole(tmp_path: Path) -> None:
    doc = {**VALID, "methods": [{"name": "two-stage", "params": {"lr": "x" * 100_000}}]}
    path = tmp_path / "big.toml"
    path.write_text(tomli_w.dumps(doc))
    code, text = run_main(["run", "--suite", str(path), "--dry-run", "--device", "cpu"])
    assert code == 2 and "…" in text and len(text) < 1_000, text[:300]


def test_a_fifo_given_as_a_suite_is_not_a_regular_file(tmp_path: Path) -> None:
    fifo = tmp_path / "suite.toml"
    os.mkfifo(fifo)
    code, text = run_main(["run", "--suite", str(fifo), "--dry-run", "--device", "cpu"])
    assert code == 2 and "not a regular file" in text, text


def test_a_bad_method_entry_is_named_by_its_place(tmp_path: Path) -> None:
    doc = {**VALID, "methods": [{"name": "two-stage"}, {"name": 3}]}
    path = tmp_path / "bad.toml"
    path.write_text(tomli_w.dumps(doc))
    code, text = run_main(["run", "--suite", str(path), "--dry-run", "--device", "cpu"])
    assert code == 2 and "key 'methods[1].name' must be a str" in text, text
