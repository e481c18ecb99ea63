"""Suite files: schema, validation and expansion into cells.

A suite file (TOML) names a problem, the sizes and seeds to sweep, the data parameters, a
per-cell budget and the methods with their parameters; a list of values for a method parameter
is a grid, as in benchopt, and so is a list of values of a data parameter (PyEPO's protocol
sweeps training-set size, polynomial degree and noise). A method may name the parameters whose
grid is a *tuning* grid (``tune``): the report then ranks the method by its selected
configuration, chosen on validation regret by the suite's ``[tuning]`` rule
(:mod:`l2obench.selection`). A budget may depend on a data parameter or the size
(``[[budget.when]]``). A method that applies to the problem but that the suite does not run
is named in ``[left_out]`` with why. An optional ``[quick]`` table overrides any of these for a
smoke run.
Everything is checked before a cell runs: every error names the file, the key and what was
expected.

Example::

    name = "shortest-path"
    problem = "shortest-path"
    sizes = [5, 10, 20]
    seeds = [0, 1, 2]

    [data]
    n_train = [100, 1000]
    deg = [1, 4]

    [budget]
    max_seconds = 1800

    [[budget.when]]
    n_train = 100
    max_epochs = 200

    [[budget.when]]
    n_train = 1000
    max_epochs = 20

    [tuning]
    rule = "at-size"     # or "per-size" (the default)
    size = 5

    [[methods]]
    name = "dys-jfb"
    params = { lr = [0.01, 0.001] }
    tune = ["lr"]

    [quick]
    sizes = [5]
    data = { n_train = 100 }
    budget = { max_epochs = 2 }
    method_params = { dys-jfb = { max_iter = 2000 } }
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import re
import tomllib
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from l2obench.errors import L2OBenchError, clip, did_you_mean, shown
from l2obench.methods.base import BaseMethod
from l2obench.methods.base import method_registry as methods
from l2obench.params import format_value, readable_name
from l2obench.problems.base import BaseProblem
from l2obench.problems.base import problem_registry as problems
from l2obench.record import Budget, Cell, Limits
from l2obench.selection import RULES, Tuning

SUITE_PACKAGE = "l2obench.builtin_suites"
_TOP_KEYS = {"name", "description", "problem", "sizes", "seeds", "data", "budget", "limits",
             "tuning", "methods", "left_out", "quick"}
_QUICK_KEYS = {"sizes", "seeds", "data", "budget", "limits", "tuning", "method_params"}
_BUDGET_KEYS = {"max_epochs", "max_seconds"}
_LIMIT_KEYS = {"wall_seconds", "memory_mb"}
_TUNING_KEYS = {"rule", "size"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_METHOD_KEYS = {"name", "params", "tune", "sizes"}


class SuiteError(L2OBenchError):
    """A suite file or a suite option that does not follow the schema."""


@dataclass(frozen=True)
class MethodSpec:
    """A method named in a suite with its (possibly gridded) parameters.

    ``configs`` holds, for each combination of the grid, the parameters as given and as
    a cell records them (``Method.cell_params``: defaults filled in but for ``omit_default``
    parameters at their default); the suite parser fills it once.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    configs: tuple[tuple[dict[str, Any], dict[str, Any]], ...] = ()
    tune: tuple[str, ...] = ()  # the parameters whose grid is a tuning grid
    #: The suite's sizes this method runs at (empty: all of them): a panel of methods at the
    #: largest sizes, where the others would only time out.
    sizes: tuple[int, ...] = ()

    def runs_at(self, size: int) -> bool:
        """Whether the method runs at ``size`` (one of the suite's sizes)."""
        return not self.sizes or size in self.sizes

    def expand(self) -> list[dict[str, Any]]:
        """The parameter grid: one dict per combination of listed values."""
        keys = sorted(self.params)
        grids = [v if isinstance(v, list) else [v] for v in (self.params[k] for k in keys)]
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grids)]


@dataclass(frozen=True)
class BudgetRule:
    """A ``[[budget.when]]`` entry: budget values for the cells whose data point (or size)
    matches every condition."""

    when: dict[str, Any]
    max_epochs: int | None = None
    max_seconds: float | None = None

    def matches(self, point: Mapping[str, Any]) -> bool:
        return all(k in point and point[k] == v for k, v in self.when.items())

    def without(self, keys: Iterable[str]) -> BudgetRule:
        """This rule with the budget values ``keys`` dropped (an override sets them)."""
        dropped = set(keys)
        return dataclasses.replace(
            self, max_epochs=None if "max_epochs" in dropped else self.max_epochs,
            max_seconds=None if "max_seconds" in dropped else self.max_seconds)


@dataclass(frozen=True)
class Suite:
    """A validated suite: what to run, before any override from the command line.

    ``data`` holds the problem's data parameters; a list is a grid (:meth:`data_points`).
    ``budget`` is the budget of every cell, before the ``budget_rules`` that match a cell's
    data point or size (:meth:`budget_for`).
    """

    name: str
    problem: str
    sizes: list[int]
    seeds: list[int]
    data: dict[str, Any]
    budget: Budget
    methods: list[MethodSpec]
    limits: Limits = Limits()
    description: str = ""
    source: str = ""
    budget_rules: tuple[BudgetRule, ...] = ()
    tuning: Tuning = Tuning()
    #: Methods that apply to the problem but that the suite does not run, with why (``[left_out]``:
    #: e.g. no epoch ends within the budget), so that "every applicable method" stays checkable.
    left_out: dict[str, str] = field(default_factory=dict)

    def data_points(self) -> list[dict[str, Any]]:
        """Every combination of the data grid (one, the data as given, without lists)."""
        return _grid(self.data)

    def varying_data(self) -> list[str]:
        """The data parameters whose grid has more than one value, sorted."""
        return sorted(k for k, v in self.data.items() if isinstance(v, list) and len(v) > 1)

    def budget_for(self, point: Mapping[str, Any]) -> Budget:
        """The budget of the cells at ``point`` (a data point with the size): the suite's
        budget, then each matching ``[[budget.when]]`` entry in order, later ones winning."""
        epochs, seconds = self.budget.max_epochs, self.budget.max_seconds
        for rule in self.budget_rules:
            if rule.matches(point):
                epochs = rule.max_epochs if rule.max_epochs is not None else epochs
                seconds = rule.max_seconds if rule.max_seconds is not None else seconds
        return Budget(max_epochs=epochs, max_seconds=seconds)

    def with_budget(self, max_epochs: int | None = None,
                    max_seconds: float | None = None) -> Suite:
        """This suite with the budget values given set for every cell (the command line's
        ``--max-epochs``/``--max-seconds``, which override the ``when`` entries too)."""
        given = [k for k, v in (("max_epochs", max_epochs), ("max_seconds", max_seconds))
                 if v is not None]
        if not given:
            return self
        budget = Budget(max_epochs=self.budget.max_epochs if max_epochs is None else max_epochs,
                        max_seconds=self.budget.max_seconds if max_seconds is None
                        else max_seconds)
        return dataclasses.replace(
            self, budget=budget,
            budget_rules=tuple(rule.without(given) for rule in self.budget_rules))


def _grid(table: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every combination of the listed values of ``table`` (keys sorted)."""
    keys = sorted(table)
    values = [table[k] if isinstance(table[k], list) else [table[k]] for k in keys]
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values)]


def _suite_files() -> list[Path]:
    """The built-in suite files: inside an installed wheel, or the checkout's suites/."""
    try:
        entries = files(SUITE_PACKAGE).iterdir()
    except ModuleNotFoundError:  # an editable install maps only the `l2obench` folder
        entries = (Path(__file__).resolve().parent.parent / "suites").iterdir()
    return sorted(Path(str(entry)) for entry in entries if entry.name.endswith(".toml"))


def builtin_suites() -> dict[str, Path]:
    """The suites shipped with l2obench, by name (the file stem)."""
    return {path.stem: path for path in _suite_files()}


def resolve_suite_path(name_or_path: str) -> Path:
    """A built-in suite's file, or the user's own suite file when given a path.

    A name that is a built-in suite means that suite, even where a folder of that name exists
    (a results folder is often named after its suite); a ``.toml`` name or an existing file is
    the user's suite file.
    """
    candidate = Path(name_or_path)
    suites = builtin_suites()
    if candidate.is_file():
        return candidate
    if candidate.exists() and not candidate.is_dir():  # a FIFO, a device, a socket
        raise SuiteError(f"--suite {name_or_path}: not a regular file (a suite is a .toml file)")
    if candidate.suffix == ".toml":
        raise SuiteError(f"suite file not found: {candidate}")
    if name_or_path in suites:
        return suites[name_or_path]
    valid = ", ".join(sorted(suites)) or "(none)"
    if candidate.is_dir():
        raise SuiteError(f"--suite {name_or_path}: that is a folder, not a suite file; built-in "
                         f"suites: {valid}")
    raise SuiteError(
        f"unknown suite '{name_or_path}'{did_you_mean(name_or_path, suites)}; valid: {valid} "
        "(or the path of a .toml suite file)"
    )


def load_suite(name_or_path: str, *, quick: bool = False) -> Suite:
    """Read and validate a suite; with ``quick``, apply its ``[quick]`` overrides."""
    path = resolve_suite_path(name_or_path)
    try:
        raw = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot read the suite file: {exc}") from None
    return parse_suite(raw, str(path), quick=quick)


class _Errors:
    """The schema errors of one suite file, gathered so that one message can list them all."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.messages: list[str] = []

    def attempt(self, check: Callable[..., Any], *args: Any, default: Any = None,
                **kwargs: Any) -> Any:
        """``check(*args, **kwargs)``, or ``default`` with its error noted."""
        try:
            return check(*args, **kwargs)
        except SuiteError as exc:
            self.messages.append(str(exc))
            return default

    def raise_any(self) -> None:
        """One :class:`SuiteError` for every error noted so far (nothing if none)."""
        if len(self.messages) == 1:
            raise SuiteError(self.messages[0])
        if self.messages:
            lines = (m.removeprefix(f"{self.source}: ") for m in self.messages)
            raise SuiteError(f"{self.source}: {len(self.messages)} errors:\n"
                             + "\n".join(f"  - {line}" for line in lines))


def parse_suite(raw: Mapping[str, Any], source: str, *, quick: bool = False) -> Suite:
    """Validate the decoded TOML of a suite file named ``source``.

    Every schema error of the file is reported, in one message (parts that depend on a broken
    part, such as the sizes of an unknown problem, are not checked). The ``[quick]`` profile is
    validated whether or not it is used, so a mistake in it is reported on any run, not first
    on the next smoke test.
    """
    errors = _Errors(source)
    errors.attempt(_check_keys, raw, _TOP_KEYS, source, "")
    name = errors.attempt(_name, raw, source)
    problem_cls = errors.attempt(_problem, raw, source)
    description = raw.get("description", "")
    if not isinstance(description, str):
        errors.messages.append(f"{source}: key 'description' must be a string, got "
                               f"{shown(description)}")
    limits = errors.attempt(_limits, raw.get("limits", {}), source, "limits")
    if problem_cls is None:  # what depends on the problem cannot be checked
        errors.attempt(_require, raw, "sizes", list, source)
        errors.attempt(_require, raw, "methods", list, source)
        errors.attempt(_budget, raw.get("budget", {}), source, "budget")
        errors.raise_any()
    assert problem_cls is not None
    sizes = errors.attempt(lambda: _sizes(problem_cls, _require(raw, "sizes", list, source),
                                          source, "sizes"))
    seeds = errors.attempt(_seeds, problem_cls, raw.get("seeds", [0]), source, "seeds")
    data = errors.attempt(_data, problem_cls.registered_name(), raw.get("data", {}), source,
                          "data")
    entries = errors.attempt(_require, raw, "methods", list, source)
    specs = None if entries is None else errors.attempt(_methods, entries, source,
                                                        problem_cls, errors)
    budget = rules = None
    if data is not None and sizes is not None:
        budget, rules = errors.attempt(_budget, raw.get("budget", {}), source, "budget",
                                       problem_cls, data, sizes, default=(None, None))
    else:  # the checks that need neither data nor sizes
        errors.attempt(_budget, raw.get("budget", {}), source, "budget")
    left_out = errors.attempt(_left_out, raw.get("left_out", {}), problem_cls, specs or [],
                              source, "left_out")
    tuning = None
    if specs is not None and sizes is not None:
        tuning = errors.attempt(_tuning, raw.get("tuning"), specs, sizes, source, "tuning")
        errors.attempt(_check_method_sizes, specs, sizes, tuning, source)
    errors.raise_any()
    assert sizes is not None and seeds is not None and data is not None and specs is not None
    assert budget is not None and rules is not None and tuning is not None
    assert left_out is not None
    full = Suite(
        name=name, problem=problem_cls.registered_name(), sizes=sizes, seeds=seeds,
        data=data, budget=budget, budget_rules=rules, limits=limits, methods=specs,
        tuning=tuning, description=description, source=source, left_out=left_out,
    )
    errors.attempt(_check_budgets, full, source, "budget")
    smoke = errors.attempt(_apply_quick, full, raw.get("quick", {}), source, raw.get("tuning"))
    errors.raise_any()
    return smoke if quick else full


def _name(raw: Mapping[str, Any], source: str) -> str:
    name = _require(raw, "name", str, source)
    if not _NAME.fullmatch(name):
        raise SuiteError(f"{source}: key 'name' must be a plain name (letters, digits, '.', '_', "
                         f"'-'; it names the results folder), got {shown(name)}")
    return name


def _problem(raw: Mapping[str, Any], source: str) -> type[BaseProblem]:
    problem = _require(raw, "problem", str, source)
    if problem not in problems:
        raise SuiteError(f"{source}: key 'problem': unknown problem '{problem}'"
                         f"{did_you_mean(problem, problems.names())}; "
                         f"valid: {', '.join(problems.names())}")
    return problems.get(problem)


def _apply_quick(suite: Suite, value: Any, source: str, tuning_raw: Any) -> Suite:
    """``suite`` with its ``[quick]`` overrides applied (validated like the rest).

    A budget value set in ``quick.budget`` holds for every cell (the suite's ``when`` entries
    lose that value); ``quick.budget.when`` replaces the suite's entries. ``quick.tuning``
    overrides keys of ``[tuning]``.
    """
    overrides = _table(value, source, "quick")
    _check_keys(overrides, _QUICK_KEYS, source, "quick.")
    budget, limits = suite.budget, suite.limits
    budget_given = _table(overrides.get("budget", {}), source, "quick.budget")
    budget_raw = {"max_epochs": budget.max_epochs, "max_seconds": budget.max_seconds,
                  **{k: v for k, v in budget_given.items() if k != "when"}}
    limits_raw = {"wall_seconds": limits.wall_seconds, "memory_mb": limits.memory_mb,
                  **_table(overrides.get("limits", {}), source, "quick.limits")}
    problem_cls = problems.get(suite.problem)
    sizes = _sizes(problem_cls, overrides.get("sizes", suite.sizes), source, "quick.sizes")
    data = _data(suite.problem, {**suite.data, **_table(overrides.get("data", {}), source,
                                                        "quick.data")}, source, "quick.data")
    if "when" in budget_given:
        base, rules = _budget({**_without_none(budget_raw), "when": budget_given["when"]},
                              source, "quick.budget", problem_cls, data, sizes)
    else:
        base, _ = _budget(_without_none(budget_raw), source, "quick.budget", problem_cls, data,
                          sizes, rules_follow=bool(suite.budget_rules))
        rules = tuple(rule.without(budget_given) for rule in suite.budget_rules)
    specs = _override_methods(suite.methods, overrides.get("method_params", {}), source)
    tuning_given = _table(overrides.get("tuning", {}), source, "quick.tuning")
    tuning = suite.tuning
    if tuning_raw is not None or tuning_given:
        merged = {**_table(tuning_raw or {}, source, "tuning"), **tuning_given}
        if tuning_given.get("rule") == "per-size" and "size" not in tuning_given:
            merged.pop("size", None)  # the tuning size belongs to the rule it replaces
        tuning = _tuning(merged, specs, sizes, source, "quick.tuning" if tuning_given
                         else "tuning (with quick.sizes)")
    smoke = dataclasses.replace(
        suite, sizes=sizes,
        seeds=_seeds(problem_cls, overrides.get("seeds", suite.seeds), source, "quick.seeds"),
        data=data, budget=base, budget_rules=rules,
        limits=_limits(_without_none(limits_raw), source, "quick.limits"),
        methods=specs, tuning=tuning,
    )
    _check_budgets(smoke, source, "quick.budget")
    return smoke


def _without_none(table: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in table.items() if v is not None}


def expand(
    suite: Suite,
    *,
    device: str,
    sizes: Sequence[int] | None = None,
    seeds: Sequence[int] | None = None,
    method_names: Iterable[str] | None = None,
) -> list[Cell]:
    """Validated cells for ``suite`` (sizes, then methods, then seeds), with CLI selections."""
    problem_cls = problems.get(suite.problem)
    specs = suite.methods
    if method_names is not None:
        wanted = list(method_names)
        in_suite = [spec.name for spec in specs]
        for name in wanted:
            methods.get(name)  # an unknown name lists every registered method
            if name not in in_suite:
                raise SuiteError(f"method '{name}' is not in suite '{suite.name}'; "
                                 f"the suite has: {', '.join(in_suite)}")
        specs = [spec for spec in specs if spec.name in wanted]

    sizes = _sizes(problem_cls, list(sizes), "command line", "--sizes") if sizes else suite.sizes
    seeds = _seeds(problem_cls, list(seeds), "command line", "--seeds") if seeds else suite.seeds
    varying = suite.varying_data()
    cells = []
    for size in sizes:
        for point in suite.data_points():
            budget = suite.budget_for({**point, problem_cls.size_param: size})
            data_label = ",".join(f"{k}={format_value(point[k])}" for k in varying)
            problem_params = {seed: problem_cls.validate(
                {**point, problem_cls.size_param: size, "seed": seed}) for seed in seeds}
            for spec in (spec for spec in specs if spec.runs_at(size)):
                for given, method_params in spec.configs:
                    label = readable_name(spec.name, given)
                    for seed in seeds:
                        cells.append(Cell(
                            suite=suite.name, problem=suite.problem,
                            size_param=problem_cls.size_param,
                            problem_params=problem_params[seed], method=spec.name,
                            method_params=method_params, method_label=label, seed=seed,
                            device=device, budget=budget, data_label=data_label,
                            task=problem_cls.task,
                        ))
    _refuse_duplicates(cells, suite.source or suite.name)
    return cells


def _refuse_duplicates(cells: Sequence[Cell], source: str) -> None:
    """Two entries that are the same cell once defaults are filled in are an input error."""
    first: dict[str, Cell] = {}
    for cell in cells:
        other = first.setdefault(cell.cell_id, cell)
        if other is not cell:
            raise SuiteError(
                f"{source}: key 'methods': '{other.method_label}' and '{cell.method_label}' are "
                "the same configuration (their parameters are equal once defaults are filled "
                "in); list it once"
            )


# -- schema helpers -------------------------------------------------------------------------


def _check_keys(table: Mapping[str, Any], allowed: set[str], source: str, prefix: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise SuiteError(f"{source}: unknown key '{prefix}{unknown[0]}'"
                         f"{did_you_mean(unknown[0], allowed)}; "
                         f"valid keys here: {', '.join(sorted(allowed))}")


def _require(table: Mapping[str, Any], key: str, kind: type, source: str,
             prefix: str = "") -> Any:
    """``table[key]``, which must be a ``kind``; ``prefix`` names the table in messages
    (``methods[0].``)."""
    if key not in table:
        raise SuiteError(f"{source}: missing key '{prefix}{key}' (expected a {kind.__name__})")
    value = table[key]
    if not isinstance(value, kind):
        raise SuiteError(f"{source}: key '{prefix}{key}' must be a {kind.__name__}, "
                         f"got {type(value).__name__} {shown(value)}")
    return value


def _int_list(value: Any, source: str, key: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise SuiteError(f"{source}: key '{key}' must be a non-empty list of integers, "
                         f"got {shown(value)}")
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool):
            raise SuiteError(f"{source}: key '{key}' must hold integers, got {shown(item)}")
    if len(set(value)) != len(value):
        raise SuiteError(f"{source}: key '{key}' has repeated values: {shown(value)}")
    return list(value)


def _sizes(problem: type[BaseProblem], value: Any, source: str, key: str) -> list[int]:
    """Sizes: a list of integers within the problem's size parameter's range."""
    return _in_range(problem, problem.size_param, _int_list(value, source, key), source, key)


def _seeds(problem: type[BaseProblem], value: Any, source: str, key: str) -> list[int]:
    """Seeds: a list of integers within the problem's seed parameter's range."""
    return _in_range(problem, "seed", _int_list(value, source, key), source, key)


def _in_range(problem: type[BaseProblem], name: str, values: list[int], source: str,
              key: str) -> list[int]:
    param = problem.params[name]
    for value in values:
        try:
            param.coerce(f"problem '{problem.registered_name()}'", name, value)
        except L2OBenchError as exc:
            raise SuiteError(f"{source}: key '{key}': {exc}") from None
    return values


def _table(value: Any, source: str, key: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SuiteError(f"{source}: key '{key}' must be a table, got {shown(value)}")
    return dict(value)


def _budget_values(table: Mapping[str, Any], source: str, key: str) -> Budget:
    epochs, seconds = table.get("max_epochs"), table.get("max_seconds")
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool)
                               or epochs < 1):
        raise SuiteError(f"{source}: key '{key}.max_epochs' must be a positive integer, "
                         f"got {shown(epochs)}")
    if seconds is not None and (not isinstance(seconds, (int, float))
                                or isinstance(seconds, bool) or not 0 < seconds < math.inf):
        raise SuiteError(f"{source}: key '{key}.max_seconds' must be a positive number, "
                         f"got {shown(seconds)}")
    return Budget(max_epochs=epochs, max_seconds=None if seconds is None else float(seconds))


def _budget(value: Any, source: str, key: str, problem: type[BaseProblem] | None = None,
            data: Mapping[str, Any] | None = None, sizes: Sequence[int] = (),
            rules_follow: bool = False) -> tuple[Budget, tuple[BudgetRule, ...]]:
    """The ``[budget]`` table: the budget of every cell and its ``when`` entries.

    Each ``when`` entry names conditions on data parameters of the suite or on the size
    (``n_train = 100``) and budget values for the cells that meet them (``max_epochs = 200``); a
    condition that no cell of the suite meets is an error. Whether every cell ends up with a
    budget is checked on the whole suite (:func:`_check_budgets`).
    """
    table = _table(value, source, key)
    _check_keys(table, _BUDGET_KEYS | {"when"}, source, key + ".")
    base = _budget_values(table, source, key)
    entries = table.get("when", [])
    if not isinstance(entries, list):
        raise SuiteError(f"{source}: key '{key}.when' must be a list of tables "
                         f"([[budget.when]]), got {shown(entries)}")
    if not entries and not rules_follow and base.max_epochs is None and base.max_seconds is None:
        raise SuiteError(f"{source}: key '{key}' must set max_epochs or max_seconds")
    rules = []
    conditions = {**(data or {})}
    if problem is not None:
        conditions[problem.size_param] = list(sizes)
    for i, entry in enumerate(entries):
        where = f"{key}.when[{i}]"
        rule = _table(entry, source, where)
        when = {k: v for k, v in rule.items() if k not in _BUDGET_KEYS}
        values = _budget_values(rule, source, where)
        if not when:
            raise SuiteError(f"{source}: key '{where}' names no condition (a data parameter "
                             f"of the suite or the size: {', '.join(sorted(conditions))})")
        if values.max_epochs is None and values.max_seconds is None:
            raise SuiteError(f"{source}: key '{where}' must set max_epochs or max_seconds")
        for name, wanted in when.items():
            if name not in conditions:
                raise SuiteError(f"{source}: key '{where}.{name}': not a data parameter of the "
                                 f"suite nor the size; valid: "
                                 f"{', '.join(sorted(conditions)) or '(none)'}")
            grid = conditions[name] if isinstance(conditions[name], list) \
                else [conditions[name]]
            if isinstance(wanted, list | dict) or wanted not in grid:
                raise SuiteError(f"{source}: key '{where}.{name}' = {shown(wanted)} matches no "
                                 f"cell: the suite's values are {shown(grid)}")
        rules.append(BudgetRule(when=when, max_epochs=values.max_epochs,
                                max_seconds=values.max_seconds))
    return base, tuple(rules)


def _check_budgets(suite: Suite, source: str, key: str) -> None:
    """Every cell of ``suite`` has a budget (epochs or seconds)."""
    size_param = problems.get(suite.problem).size_param
    for size in suite.sizes:
        for point in suite.data_points():
            budget = suite.budget_for({**point, size_param: size})
            if budget.max_epochs is None and budget.max_seconds is None:
                cells = ", ".join(f"{k} = {v!r}" for k, v in {size_param: size, **point}.items())
                raise SuiteError(f"{source}: key '{key}': the cells at {cells} have no budget "
                                 "(set max_epochs or max_seconds there or in a matching when "
                                 "entry)")


def _limits(value: Any, source: str, key: str) -> Limits:
    table = _table(value, source, key)
    _check_keys(table, _LIMIT_KEYS, source, key + ".")
    for name, number in table.items():
        if (not isinstance(number, (int, float)) or isinstance(number, bool)
                or not 0 < number < math.inf):
            raise SuiteError(f"{source}: key '{key}.{name}' must be a positive number, "
                             f"got {shown(number)}")
    return Limits(**{k: float(v) for k, v in table.items()})


def _methods(entries: list[Any], source: str, problem: type[BaseProblem],
             errors: _Errors | None = None) -> list[MethodSpec] | None:
    """The suite's method entries, validated; with ``errors``, each entry's error is noted
    there, the other entries still checked, and ``None`` returned if any failed."""
    if not entries:
        raise SuiteError(f"{source}: key 'methods' must list at least one method")
    if errors is None:
        return _check_methods([_method(e, i, source, problem) for i, e in enumerate(entries)],
                              source)
    noted = len(errors.messages)
    parsed = [errors.attempt(_method, e, i, source, problem) for i, e in enumerate(entries)]
    if len(errors.messages) > noted:
        return None
    return _check_methods(parsed, source)


def _check_methods(specs: list[MethodSpec], source: str) -> list[MethodSpec]:
    """What holds across the entries: no configuration twice, one tuning list per method."""
    labels = Counter(readable_name(s.name, given) for s in specs for given, _ in s.configs)
    repeated = sorted(label for label, n in labels.items() if n > 1)
    if repeated:
        raise SuiteError(f"{source}: key 'methods' lists {repeated[0]} more than once")
    tuned: dict[str, tuple[str, ...]] = {}
    for i, spec in enumerate(specs):
        if tuned.setdefault(spec.name, spec.tune) != spec.tune:
            raise SuiteError(f"{source}: key 'methods[{i}].tune': every entry of method "
                             f"'{spec.name}' must tune the same parameters "
                             f"({list(tuned[spec.name])!r} before, {list(spec.tune)!r} here)")
    return specs


def _method(entry: Any, i: int, source: str, problem: type[BaseProblem]) -> MethodSpec:
    """One method entry, validated (its name, applicability, parameters and tuning list)."""
    where = f"methods[{i}]"
    table = _table(entry, source, where)
    _check_keys(table, _METHOD_KEYS, source, where + ".")
    name = _require(table, "name", str, source, where + ".")
    method_cls = _known_method(name, source, where + ".name")
    try:
        method_cls.check_applicable(problem)
    except L2OBenchError as exc:
        raise SuiteError(f"{source}: key '{where}.name': {exc}") from None
    params = _table(table.get("params", {}), source, where + ".params")
    tune = _tune(table.get("tune", []), params, source, where + ".tune")
    sizes = tuple(_int_list(table["sizes"], source, where + ".sizes")) if "sizes" in table else ()
    return _validated(method_cls, MethodSpec(name=name, params=params, tune=tune, sizes=sizes),
                      source, where + ".params")


def _check_method_sizes(specs: Sequence[MethodSpec], sizes: Sequence[int],
                        tuning: Tuning | None, source: str) -> None:
    """A method's ``sizes`` are some of the suite's, and include the size a tuned method is
    selected at (rule ``at-size``)."""
    for i, spec in enumerate(specs):
        where = f"methods[{i}].sizes"
        for size in spec.sizes:
            if size not in sizes:
                raise SuiteError(f"{source}: key '{where}': {size} is not among the suite's "
                                 f"sizes {list(sizes)!r}")
        if (spec.sizes and spec.tune and tuning is not None and tuning.rule == "at-size"
                and tuning.size not in spec.sizes):
            raise SuiteError(f"{source}: key '{where}' must include the tuning size "
                             f"{tuning.size} ('{spec.name}' is tuned there)")


def _tune(value: Any, params: Mapping[str, Any], source: str, key: str) -> tuple[str, ...]:
    """A method's ``tune`` list: parameters the entry sets (a list of values is the grid)."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SuiteError(f"{source}: key '{key}' must be a list of parameter names, "
                         f"got {shown(value)}")
    for name in value:
        if name not in params:
            raise SuiteError(f"{source}: key '{key}': '{name}' is not among the parameters this "
                             f"entry sets ({', '.join(sorted(params)) or 'none'}); a tuned "
                             "parameter needs its values in 'params'")
    if len(set(value)) != len(value):
        raise SuiteError(f"{source}: key '{key}' has repeated names: {shown(value)}")
    return tuple(sorted(value))


def _tuning(value: Any, specs: Sequence[MethodSpec], sizes: Sequence[int], source: str,
            key: str) -> Tuning:
    """The suite's tuning declaration: the ``[tuning]`` table and the methods' ``tune`` lists."""
    tuned = {spec.name: spec.tune for spec in specs if spec.tune}
    if value is None:
        return Tuning(tuned=tuned)
    table = _table(value, source, key)
    _check_keys(table, _TUNING_KEYS, source, key + ".")
    if not tuned:
        raise SuiteError(f"{source}: key '{key}': no method declares 'tune' (the parameters "
                         "whose grid is tuned), so there is nothing to select")
    rule = table.get("rule", "per-size")
    if rule not in RULES:
        raise SuiteError(f"{source}: key '{key}.rule' must be one of "
                         f"{', '.join(repr(r) for r in RULES)}, got {shown(rule)}")
    size = table.get("size")
    if rule == "per-size":
        if size is not None:
            raise SuiteError(f"{source}: key '{key}.size' applies to rule 'at-size' only")
        return Tuning(tuned=tuned)
    if size is None:
        raise SuiteError(f"{source}: key '{key}.size' is missing: rule 'at-size' selects at "
                         "one of the suite's sizes")
    if size not in sizes:
        raise SuiteError(f"{source}: key '{key}.size' = {shown(size)} is not among the suite's "
                         f"sizes {list(sizes)!r}")
    return Tuning(rule="at-size", size=int(size), tuned=tuned)


def _override_methods(specs: list[MethodSpec], value: Any, source: str) -> list[MethodSpec]:
    overrides = _table(value, source, "quick.method_params")
    named = {spec.name for spec in specs}
    for name in overrides:
        if name not in named:
            raise SuiteError(f"{source}: key 'quick.method_params.{name}': the suite has no "
                             f"method '{name}'; it has: {', '.join(sorted(named))}")
    result = []
    for spec in specs:
        extra = _table(overrides.get(spec.name, {}), source, f"quick.method_params.{spec.name}")
        result.append(_validated(methods.get(spec.name),
                                 MethodSpec(spec.name, {**spec.params, **extra}, tune=spec.tune),
                                 source, f"quick.method_params.{spec.name}"))
    return result


def _data(problem: str, value: Any, source: str, key: str) -> dict[str, Any]:
    """The data parameters; a list of values is a grid, every combination validated."""
    data = _table(value, source, key)
    problem_cls = problems.get(problem)
    clash = {problem_cls.size_param, "seed"} & set(data)
    if clash:
        raise SuiteError(f"{source}: key '{key}' must not set {', '.join(sorted(clash))} "
                         "(use 'sizes' and 'seeds')")
    for name, values in data.items():
        if not isinstance(values, list):
            continue
        if not values:
            raise SuiteError(f"{source}: key '{key}.{name}' is an empty list of values")
        try:
            coerced = [problem_cls.validate({name: v})[name] for v in values]
        except L2OBenchError as exc:
            raise SuiteError(f"{source}: key '{key}.{name}': {exc}") from None
        if len({json.dumps(v) for v in coerced}) != len(coerced):
            raise SuiteError(f"{source}: key '{key}.{name}' has repeated values: {shown(values)}")
    for point in _grid(data):
        try:
            problem_cls.validate(point)
        except L2OBenchError as exc:
            raise SuiteError(f"{source}: key '{key}': {exc}") from None
    return data


def _left_out(raw: Any, problem_cls: type[BaseProblem], specs: Sequence[MethodSpec],
              source: str, key: str) -> dict[str, str]:
    """``[left_out]``: method name → why the suite does not run it; each a registered method
    that applies to the problem (one that does not needs no reason) and that the suite does not
    list."""
    if not isinstance(raw, Mapping):
        raise SuiteError(f"{source}: key '{key}' must be a table of method = \"why it is left "
                         f"out\", got {shown(raw)}")
    listed = {spec.name for spec in specs}
    for name, why in raw.items():
        where = f"{key}.{name}"
        method_cls = _known_method(name, source, where)
        if not isinstance(why, str) or not why.strip():
            raise SuiteError(f"{source}: key '{where}' must say why the method is left out (a "
                             f"non-empty string), got {shown(why)}")
        if name in listed:
            raise SuiteError(f"{source}: key '{where}': '{name}' is also among the suite's "
                             "methods; a method is run or left out, not both")
        try:
            method_cls.check_applicable(problem_cls)
        except L2OBenchError as exc:
            raise SuiteError(f"{source}: key '{where}': {exc}: no reason is needed to leave it "
                             "out") from None
    return dict(raw)


def _known_method(name: str, source: str, key: str) -> type[BaseMethod]:
    if name not in methods:
        raise SuiteError(f"{source}: key '{key}': unknown method '{clip(name)}'"
                         f"{did_you_mean(name, methods.names())}; "
                         f"valid: {', '.join(methods.names())}")
    return methods.get(name)


def _validated(method_cls: type[BaseMethod], spec: MethodSpec, source: str, key: str) -> MethodSpec:
    """``spec`` with its grid validated, each combination once (``configs`` filled in)."""
    for values in spec.params.values():
        if isinstance(values, list) and not values:
            raise SuiteError(f"{source}: key '{key}' has an empty list of values")
    configs = []
    for combo in spec.expand():
        try:
            configs.append((combo, method_cls.cell_params(combo)))
        except L2OBenchError as exc:
            raise SuiteError(f"{source}: key '{key}': {exc}") from None
    return dataclasses.replace(spec, configs=tuple(configs))


_DEVICE = re.compile(r"cpu|cuda(:\d+)?")


def check_cell(cell: Cell) -> Cell:
    """A cell read back from a record, validated as a suite's cells are (``l2obench rerun``).

    Its problem, method, parameters, budget and device must be what a suite would produce, so a
    damaged or hand-edited record is refused with a message instead of failing inside a run.
    """
    where = f"the record of cell {cell.cell_id}"
    try:
        problem_cls = problems.get(cell.problem)
        method_cls = methods.get(cell.method)
        problem_params = problem_cls.validate(cell.problem_params)
        # As a suite records them: an ``omit_default`` parameter at its default is left out.
        method_params = method_cls.cell_params(cell.method_params)
        method_cls.check_applicable(problem_cls)
    except L2OBenchError as exc:
        raise SuiteError(f"{where}: {exc}") from None
    if cell.size_param != problem_cls.size_param:
        raise SuiteError(f"{where}: size parameter '{cell.size_param}' is not the problem's "
                         f"'{problem_cls.size_param}'")
    if problem_params != cell.problem_params or method_params != cell.method_params:
        raise SuiteError(f"{where}: its parameters are incomplete or not in canonical form")
    budget = {"max_epochs": cell.budget.max_epochs, "max_seconds": cell.budget.max_seconds}
    _budget(_without_none(budget), where, "budget")
    if not _DEVICE.fullmatch(cell.device):
        raise SuiteError(f"{where}: device {shown(cell.device)} is not cpu or cuda")
    return cell


_ADDED = re.compile(r"(?P<name>[^\[\]\s]+)(?:\[(?P<params>[^\[\]]*)\])?")


def with_methods(suite: Suite, texts: Sequence[str]) -> Suite:
    """``suite`` with the methods written on the command line added (``--add-method``).

    Each text is ``name`` or ``name[key=value,key=value]``; values are read as TOML values
    (``0.01``, ``true``, ``"text"``), bare words as strings. They are validated like a suite
    file's methods: the name, the parameters, and that the method applies to the problem.
    """
    source = "--add-method"
    specs = list(suite.methods)
    for text in texts:
        match = _ADDED.fullmatch(text.strip())
        if match is None:
            raise SuiteError(f"{source} {shown(text)}: expected NAME or NAME[key=value,...]")
        params = {}
        for item in filter(None, (part.strip() for part in (match["params"] or "").split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise SuiteError(f"{source} {shown(text)}: {shown(item)} is not key=value")
            if key.strip() in params:
                raise SuiteError(f"{source} {shown(text)}: parameter '{key.strip()}' is given "
                                 "more than once (for several values, add the method once "
                                 "per value)")
            params[key.strip()] = _toml_value(value.strip())
        name = match["name"]
        method_cls = _known_method(name, source, clip(text))
        try:
            method_cls.check_applicable(problems.get(suite.problem))
        except L2OBenchError as exc:
            raise SuiteError(f"{source} {shown(text)}: {exc}") from None
        specs.append(_validated(method_cls, MethodSpec(name=name, params=params), source,
                                clip(text)))
    labels = Counter(readable_name(s.name, given) for s in specs for given, _ in s.configs)
    repeated = sorted(label for label, n in labels.items() if n > 1)
    if repeated:
        raise SuiteError(f"{source}: {repeated[0]} is in suite '{suite.name}' already")
    return dataclasses.replace(suite, methods=specs)


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text
