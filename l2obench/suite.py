"""Suite files: schema, validation and expansion into cells.

A suite file (TOML) names a problem, the sizes and seeds to sweep, the data parameters, a
per-cell budget and the methods with their parameters; a list of values for a method parameter
is a grid, as in benchopt. An optional ``[quick]`` table overrides any of these for a smoke run.
Everything is checked before a cell runs: every error names the file, the key and what was
expected.

Example::

    name = "shortest-path"
    problem = "shortest-path"
    sizes = [5, 10, 20]
    seeds = [0, 1, 2]

    [data]
    n_train = 1000

    [budget]
    max_epochs = 100
    max_seconds = 1800

    [[methods]]
    name = "dys-jfb"
    params = { lr = [0.01, 0.001] }

    [quick]
    sizes = [5]
    data = { n_train = 100 }
    budget = { max_epochs = 2 }
    method_params = { dys-jfb = { max_iter = 2000 } }
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import re
import tomllib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

from l2obench.errors import L2OBenchError, did_you_mean
from l2obench.methods.base import Method
from l2obench.methods.base import method_registry as methods
from l2obench.params import readable_name
from l2obench.problems.base import Problem
from l2obench.problems.base import problem_registry as problems
from l2obench.record import Budget, Cell, Limits

SUITE_PACKAGE = "l2obench.builtin_suites"
_TOP_KEYS = {"name", "description", "problem", "sizes", "seeds", "data", "budget", "limits",
             "methods", "quick"}
_QUICK_KEYS = {"sizes", "seeds", "data", "budget", "limits", "method_params"}
_BUDGET_KEYS = {"max_epochs", "max_seconds"}
_LIMIT_KEYS = {"wall_seconds", "memory_mb"}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_METHOD_KEYS = {"name", "params"}


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

    def expand(self) -> list[dict[str, Any]]:
        """The parameter grid: one dict per combination of listed values."""
        keys = sorted(self.params)
        grids = [v if isinstance(v, list) else [v] for v in (self.params[k] for k in keys)]
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*grids)]


@dataclass(frozen=True)
class Suite:
    """A validated suite: what to run, before any override from the command line."""

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


def _suite_files() -> list[Path]:
    """The built-in suite files: inside an installed wheel, or the checkout's problems/."""
    try:
        entries = files(SUITE_PACKAGE).iterdir()
    except ModuleNotFoundError:  # an editable install maps only the `l2obench` folder
        entries = (Path(__file__).resolve().parent.parent / "problems").iterdir()
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


def parse_suite(raw: Mapping[str, Any], source: str, *, quick: bool = False) -> Suite:
    """Validate the decoded TOML of a suite file named ``source``.

    The ``[quick]`` profile is validated whether or not it is used, so a mistake in it is
    reported on any run, not first on the next smoke test.
    """
    _check_keys(raw, _TOP_KEYS, source, "")
    name = _require(raw, "name", str, source)
    if not _NAME.fullmatch(name):
        raise SuiteError(f"{source}: key 'name' must be a plain name (letters, digits, '.', '_', "
                         f"'-'; it names the results folder), got {name!r}")
    problem = _require(raw, "problem", str, source)
    if problem not in problems:
        raise SuiteError(f"{source}: key 'problem': unknown problem '{problem}'"
                         f"{did_you_mean(problem, problems.names())}; "
                         f"valid: {', '.join(problems.names())}")
    problem_cls = problems.get(problem)
    description = raw.get("description", "")
    if not isinstance(description, str):
        raise SuiteError(f"{source}: key 'description' must be a string, got {description!r}")
    full = Suite(
        name=name, problem=problem,
        sizes=_sizes(problem_cls, _require(raw, "sizes", list, source), source, "sizes"),
        seeds=_seeds(problem_cls, raw.get("seeds", [0]), source, "seeds"),
        data=_data(problem, raw.get("data", {}), source, "data"),
        budget=_budget(raw.get("budget", {}), source, "budget"),
        limits=_limits(raw.get("limits", {}), source, "limits"),
        methods=_methods(_require(raw, "methods", list, source), source, problem_cls),
        description=description, source=source,
    )
    smoke = _apply_quick(full, raw.get("quick", {}), source)
    return smoke if quick else full


def _apply_quick(suite: Suite, value: Any, source: str) -> Suite:
    """``suite`` with its ``[quick]`` overrides applied (validated like the rest)."""
    overrides = _table(value, source, "quick")
    _check_keys(overrides, _QUICK_KEYS, source, "quick.")
    budget, limits = suite.budget, suite.limits
    budget_raw = {"max_epochs": budget.max_epochs, "max_seconds": budget.max_seconds,
                  **_table(overrides.get("budget", {}), source, "quick.budget")}
    limits_raw = {"wall_seconds": limits.wall_seconds, "memory_mb": limits.memory_mb,
                  **_table(overrides.get("limits", {}), source, "quick.limits")}
    problem_cls = problems.get(suite.problem)
    return dataclasses.replace(
        suite,
        sizes=_sizes(problem_cls, overrides.get("sizes", suite.sizes), source, "quick.sizes"),
        seeds=_seeds(problem_cls, overrides.get("seeds", suite.seeds), source, "quick.seeds"),
        data=_data(suite.problem, {**suite.data, **_table(overrides.get("data", {}), source,
                                                          "quick.data")}, source, "quick.data"),
        budget=_budget(_without_none(budget_raw), source, "quick.budget"),
        limits=_limits(_without_none(limits_raw), source, "quick.limits"),
        methods=_override_methods(suite.methods, overrides.get("method_params", {}), source),
    )


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
    problem_params = {
        (size, seed): problem_cls.validate(
            {**suite.data, problem_cls.size_param: size, "seed": seed})
        for size in sizes for seed in seeds
    }
    cells = []
    for size in sizes:
        for spec in specs:
            for given, method_params in spec.configs:
                label = readable_name(spec.name, given)
                for seed in seeds:
                    cells.append(Cell(
                        suite=suite.name, problem=suite.problem,
                        size_param=problem_cls.size_param,
                        problem_params=problem_params[size, seed], method=spec.name,
                        method_params=method_params, method_label=label, seed=seed,
                        device=device, budget=suite.budget,
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


def _require(table: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    if key not in table:
        raise SuiteError(f"{source}: missing key '{key}' (expected a {kind.__name__})")
    value = table[key]
    if not isinstance(value, kind):
        raise SuiteError(f"{source}: key '{key}' must be a {kind.__name__}, "
                         f"got {type(value).__name__} {value!r}")
    return value


def _int_list(value: Any, source: str, key: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise SuiteError(f"{source}: key '{key}' must be a non-empty list of integers, "
                         f"got {value!r}")
    for item in value:
        if not isinstance(item, int) or isinstance(item, bool):
            raise SuiteError(f"{source}: key '{key}' must hold integers, got {item!r}")
    if len(set(value)) != len(value):
        raise SuiteError(f"{source}: key '{key}' has repeated values: {value!r}")
    return list(value)


def _sizes(problem: type[Problem], value: Any, source: str, key: str) -> list[int]:
    """Sizes: a list of integers within the problem's size parameter's range."""
    return _in_range(problem, problem.size_param, _int_list(value, source, key), source, key)


def _seeds(problem: type[Problem], value: Any, source: str, key: str) -> list[int]:
    """Seeds: a list of integers within the problem's seed parameter's range."""
    return _in_range(problem, "seed", _int_list(value, source, key), source, key)


def _in_range(problem: type[Problem], name: str, values: list[int], source: str,
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
        raise SuiteError(f"{source}: key '{key}' must be a table, got {value!r}")
    return dict(value)


def _budget(value: Any, source: str, key: str) -> Budget:
    table = _table(value, source, key)
    _check_keys(table, _BUDGET_KEYS, source, key + ".")
    epochs, seconds = table.get("max_epochs"), table.get("max_seconds")
    if epochs is not None and (not isinstance(epochs, int) or isinstance(epochs, bool)
                               or epochs < 1):
        raise SuiteError(f"{source}: key '{key}.max_epochs' must be a positive integer, "
                         f"got {epochs!r}")
    if seconds is not None and (not isinstance(seconds, (int, float))
                                or isinstance(seconds, bool) or not 0 < seconds < math.inf):
        raise SuiteError(f"{source}: key '{key}.max_seconds' must be a positive number, "
                         f"got {seconds!r}")
    if epochs is None and seconds is None:
        raise SuiteError(f"{source}: key '{key}' must set max_epochs or max_seconds")
    return Budget(max_epochs=epochs, max_seconds=None if seconds is None else float(seconds))


def _limits(value: Any, source: str, key: str) -> Limits:
    table = _table(value, source, key)
    _check_keys(table, _LIMIT_KEYS, source, key + ".")
    for name, number in table.items():
        if (not isinstance(number, (int, float)) or isinstance(number, bool)
                or not 0 < number < math.inf):
            raise SuiteError(f"{source}: key '{key}.{name}' must be a positive number, "
                             f"got {number!r}")
    return Limits(**{k: float(v) for k, v in table.items()})


def _methods(entries: list[Any], source: str, problem: type[Problem]) -> list[MethodSpec]:
    if not entries:
        raise SuiteError(f"{source}: key 'methods' must list at least one method")
    specs = []
    for i, entry in enumerate(entries):
        where = f"methods[{i}]"
        table = _table(entry, source, where)
        _check_keys(table, _METHOD_KEYS, source, where + ".")
        name = _require(table, "name", str, source)
        method_cls = _known_method(name, source, where + ".name")
        try:
            method_cls.check_applicable(problem)
        except L2OBenchError as exc:
            raise SuiteError(f"{source}: key '{where}.name': {exc}") from None
        params = _table(table.get("params", {}), source, where + ".params")
        specs.append(_validated(method_cls, MethodSpec(name=name, params=params), source,
                                where + ".params"))
    labels = Counter(readable_name(s.name, given) for s in specs for given, _ in s.configs)
    repeated = sorted(label for label, n in labels.items() if n > 1)
    if repeated:
        raise SuiteError(f"{source}: key 'methods' lists {repeated[0]} more than once")
    return specs


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
        result.append(_validated(methods.get(spec.name), MethodSpec(spec.name, {**spec.params,
                                 **extra}), source, f"quick.method_params.{spec.name}"))
    return result


def _data(problem: str, value: Any, source: str, key: str) -> dict[str, Any]:
    data = _table(value, source, key)
    problem_cls = problems.get(problem)
    clash = {problem_cls.size_param, "seed"} & set(data)
    if clash:
        raise SuiteError(f"{source}: key '{key}' must not set {', '.join(sorted(clash))} "
                         "(use 'sizes' and 'seeds')")
    try:
        problem_cls.validate(data)
    except L2OBenchError as exc:
        raise SuiteError(f"{source}: key '{key}': {exc}") from None
    return data


def _known_method(name: str, source: str, key: str) -> type[Method]:
    if name not in methods:
        raise SuiteError(f"{source}: key '{key}': unknown method '{name}'"
                         f"{did_you_mean(name, methods.names())}; "
                         f"valid: {', '.join(methods.names())}")
    return methods.get(name)


def _validated(method_cls: type[Method], spec: MethodSpec, source: str, key: str) -> MethodSpec:
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
        method_params = method_cls.validate(cell.method_params)
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
        raise SuiteError(f"{where}: device {cell.device!r} is not cpu or cuda")
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
            raise SuiteError(f"{source} {text!r}: expected NAME or NAME[key=value,...]")
        params = {}
        for item in filter(None, (part.strip() for part in (match["params"] or "").split(","))):
            key, sep, value = item.partition("=")
            if not sep or not key.strip():
                raise SuiteError(f"{source} {text!r}: '{item}' is not key=value")
            params[key.strip()] = _toml_value(value.strip())
        name = match["name"]
        method_cls = _known_method(name, source, text)
        try:
            method_cls.check_applicable(problems.get(suite.problem))
        except L2OBenchError as exc:
            raise SuiteError(f"{source} {text!r}: {exc}") from None
        specs.append(_validated(method_cls, MethodSpec(name=name, params=params), source, text))
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
