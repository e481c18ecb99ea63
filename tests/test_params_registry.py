"""Declared parameters and registries: validation, readable names, errors that list choices."""

from __future__ import annotations

import pytest

from l2obench.errors import L2OBenchError, ParameterError, UnknownNameError
from l2obench.methods.base import method_registry
from l2obench.params import Param, readable_name, validate_params
from l2obench.problems.base import problem_registry

DECLARED = {
    "lr": Param(float, 0.01, low=0.0, high=1.0),
    "k": Param(int, 5, low=2),
    "mode": Param(str, "a", choices=("a", "b")),
    "cap": Param(int, None, nullable=True),
}


def test_defaults_fill_in_and_values_coerce() -> None:
    assert validate_params("m", DECLARED, {"lr": "0.5", "k": 7.0}) == {
        "lr": 0.5, "k": 7, "mode": "a", "cap": None}


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ({"lrr": 0.1}, "unknown parameter(s) 'lrr' (did you mean 'lr'?); valid: cap, k, lr, mode"),
        ({"lr": 2.0}, "above its maximum 1"),
        ({"k": 1}, "below its minimum 2"),
        ({"k": 2.5}, "not a valid int"),
        ({"k": True}, "not a valid int"),
        ({"lr": float("nan")}, "not a valid float"),
        ({"mode": "c"}, "not one of: 'a', 'b'"),
        ({"lr": None}, "may not be empty"),
    ],
)
def test_bad_values_are_refused_with_a_reason(given: dict, fragment: str) -> None:
    with pytest.raises(ParameterError, match="m: ") as info:
        validate_params("m", DECLARED, given)
    assert fragment in str(info.value)


def test_readable_name() -> None:
    assert readable_name("dys-jfb", {"lr": 0.01, "alpha": 0.05}) == "dys-jfb[alpha=0.05,lr=0.01]"
    assert readable_name("two-stage", {}) == "two-stage"


def test_registries_list_valid_names_on_error() -> None:
    with pytest.raises(UnknownNameError) as info:
        method_registry.get("dys-jbf")
    assert "dys-jfb" in str(info.value) and "two-stage" in str(info.value)
    with pytest.raises(UnknownNameError, match="shortest-path"):
        problem_registry.get("shortest_path")


def test_builtin_methods_are_registered() -> None:
    assert {"dys-jfb", "two-stage"} <= set(method_registry.names())
    assert "shortest-path" in problem_registry.names()


@pytest.mark.parametrize(("call", "hint"), [
    (lambda: method_registry.get("dys-jbf"), "did you mean 'dys-jfb'"),
    (lambda: method_registry.get("two-stage").validate({"lrr": 0.1}), "did you mean 'lr'"),
    (lambda: method_registry.get("dys-jfb").validate({"solver": "andersen"}),
     "did you mean 'anderson'"),
])
def test_misspelt_names_get_a_suggestion(call, hint: str) -> None:
    with pytest.raises(L2OBenchError, match=hint):
        call()
