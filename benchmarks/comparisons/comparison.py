"""What the ratio comparisons share: targets, checks, results and their JSON form, provenance,
and the timing helpers.

Each comparison (``oracle_vs_gurobi``, ``spo_vs_pyepo``, ``dys_vs_fpo_dys``,
``memory_vs_iterations``, ``jax_vs_torch``, ``tsp_vs_gurobi``, ``portfolio_vs_gurobi``,
``tsp_formulation``, ``portfolio_factor``, ``cvx_net_solver``, ``classification_backward``) is
one module that declares its sizes for the ``full`` and ``quick`` profiles and a function
measuring them, bundled in a :class:`Comparison`; ``Comparison.run(profile)`` returns a
:class:`Result`: the checks (both sides' measured values, the checked value, usually a ratio,
its :class:`Target` and whether it was met), supplementary tables, the machine, the commit, and
the load average before and after. ``benchmarks/comparisons/ratios.py`` runs them and writes
each result as JSON (:func:`write_result`); ``benchmarks/comparisons/tables.py`` renders the
tables of ``benchmarks/results/comparisons.md`` from those files (:func:`load_result`).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

import torch

from l2obench import Budget, Dataset, FitResult, Method
from l2obench.provenance import cpu_model, git_commit

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

log = logging.getLogger(__name__)

#: The two sizes every comparison runs at: the measurement, and a smoke run of tiny sizes whose
#: targets mean nothing (it checks that every comparison still runs to a result).
Profile = Literal["full", "quick"]

#: Version of the JSON form written by :func:`write_result`.
FORMAT = 1

#: Where the driver writes results by default, and where the tables are generated from.
RESULTS_DIR = Path(__file__).resolve().parent.parent / "results"

#: Every comparison computes on the CPU (the GPU run is ``benchmarks/gpu_check.py``).
CPU = torch.device("cpu")

#: The ``dys-jfb`` parameters of every comparison that runs it (``dys-vs-fpo-dys``,
#: ``memory-vs-iterations``, ``jax-vs-torch``), passed to the method as public parameters: change
#: them here when the layer gains new levers. These are the method's defaults: the fpo-dys α, γ,
#: tol and max_iter, with l2obench's per-instance stopping test, solved by plain fixed-point
#: iteration (``"solver": "anderson"`` accelerates).
DYS_JFB_PARAMS: dict[str, Any] = {
    "alpha": 0.05, "gamma": 5e-4, "tol": 1e-2, "max_iter": 10_000, "solver": "picard",
}

#: Packages whose versions a result records (those installed).
VERSIONED = ("l2obench", "torch", "numpy", "pyepo", "gurobipy", "highspy", "jax", "clarabel")


# -- targets and checks ------------------------------------------------------------------------


class Direction(StrEnum):
    """Which side of its threshold a checked value must be on."""

    AT_MOST = "at most"
    AT_LEAST = "at least"


@dataclass(frozen=True)
class Target:
    """What a checked value must reach: at most or at least ``threshold`` (in ``unit``)."""

    direction: Direction
    threshold: float
    unit: str = ""

    @property
    def text(self) -> str:
        """``"≤ 0.25×"``: the target in words, from its direction, threshold and unit."""
        symbol = "≤" if self.direction is Direction.AT_MOST else "≥"
        return f"{symbol} {with_unit(self.threshold, self.unit, '.4g')}"

    def met(self, value: float) -> bool:
        """Whether ``value`` meets the target (never for NaN)."""
        if self.direction is Direction.AT_MOST:
            return value <= self.threshold
        return value >= self.threshold


def at_most(threshold: float, unit: str = "") -> Target:
    return Target(Direction.AT_MOST, threshold, unit)


def at_least(threshold: float, unit: str = "") -> Target:
    return Target(Direction.AT_LEAST, threshold, unit)


@dataclass(frozen=True)
class Side:
    """One side's measured value (``unit`` ``"s"`` for seconds), and how it was measured."""

    value: float
    unit: str
    note: str = ""

    @property
    def text(self) -> str:
        measured = with_unit(self.value, self.unit)
        return f"{measured} ({self.note})" if self.note else measured


@dataclass(frozen=True)
class Check:
    """One checked figure: both sides, the value checked (usually l2obench ÷ reference, in the
    target's unit), the target and whether it was met (derived, never passed in)."""

    what: str
    l2obench: Side
    reference: Side
    value: float
    target: Target
    note: str = ""
    passed: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "passed", self.target.met(self.value))

    @property
    def verdict(self) -> str:
        return "PASS" if self.passed else "FAIL"

    @property
    def value_text(self) -> str:
        """The value in the target's unit, with enough digits that the printed number gets the
        same verdict (1.004 against ``≤ 1×`` prints as ``1.004×``, not ``1×``)."""
        for digits in range(3, 10):
            text = with_unit(self.value, self.target.unit, f".{digits}g")
            if self.target.met(leading_number(text)) == self.passed:
                break
        return text


def ratio(a: float, b: float) -> float:
    """``a ÷ b``; infinite for ``b = 0`` (NaN if ``a`` is 0 too)."""
    if b == 0:
        return math.nan if a == 0 else math.copysign(math.inf, a)
    return a / b


def ratio_check(
    what: str, l2obench: Side, reference: Side, target: Target, note: str = ""
) -> Check:
    """The check of ``l2obench.value ÷ reference.value`` against ``target``."""
    return Check(what, l2obench, reference, ratio(l2obench.value, reference.value), target, note)


@dataclass(frozen=True)
class Table:
    """Supplementary figures of a comparison, rendered as a table in comparisons.md."""

    title: str
    columns: list[str]
    rows: list[list[float | int | str | None]]


@dataclass(frozen=True)
class Findings:
    """What a comparison's measuring function returns."""

    checks: list[Check]
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- provenance --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Machine:
    """The machine, software and commit a result was measured on."""

    cpu: str
    cores: int
    torch_threads: int
    python: str
    versions: dict[str, str]
    commit: str

    @classmethod
    def current(cls) -> Machine:
        versions = {}
        for package in VERSIONED:
            with contextlib.suppress(metadata.PackageNotFoundError):
                versions[package] = metadata.version(package)
        return cls(cpu_model(), os.cpu_count() or 1, torch.get_num_threads(),
                   platform.python_version(), versions, git_commit() or _checkout_commit())


def _checkout_commit() -> str:
    """The commit of this folder's checkout, when l2obench is installed from elsewhere."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages: how busy the shared machine was."""
    return [round(x, 2) for x in os.getloadavg()]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- results -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    """One run of one comparison: its findings and where and when they were measured.

    ``error`` is set (and the findings empty) when the comparison could not run.
    """

    comparison: str
    title: str
    profile: Profile
    settings: dict[str, Any]
    machine: Machine
    started: str  # UTC, ISO 8601
    finished: str
    wall_s: float
    load_before: list[float]
    load_after: list[float]
    checks: list[Check]
    tables: list[Table]
    notes: list[str]
    error: str | None = None


S = TypeVar("S", bound="DataclassInstance")


@dataclass(frozen=True)
class Comparison(Generic[S]):
    """A comparison: its name, what it compares, its sizes per profile and how it measures."""

    name: str
    title: str
    sizes: Mapping[Profile, S]  # a frozen dataclass per profile
    measure: Callable[[S], Findings]

    def run(self, profile: Profile = "full", machine: Machine | None = None) -> Result:
        """Measure at ``profile``'s sizes; a comparison that raises gives a result with its
        ``error`` (the traceback is logged)."""
        sizes = self.sizes[profile]
        started, load_before, start = utc_now(), load_average(), time.perf_counter()
        error, findings = None, Findings([])
        try:
            findings = self.measure(sizes)
        except Exception as exc:
            log.exception("%s failed", self.name)
            error = f"{type(exc).__name__}: {exc}"
        return Result(
            comparison=self.name, title=self.title, profile=profile, settings=asdict(sizes),
            machine=machine or Machine.current(), started=started, finished=utc_now(),
            wall_s=round(time.perf_counter() - start, 1), load_before=load_before,
            load_after=load_average(), checks=findings.checks, tables=findings.tables,
            notes=findings.notes, error=error,
        )


def result_path(result: Result, folder: Path) -> Path:
    """``folder/<comparison>-<UTC start>.json``, with ``-quick`` before the time for the quick
    profile."""
    stamp = datetime.fromisoformat(result.started).strftime("%Y%m%dT%H%M%SZ")
    profile = "" if result.profile == "full" else f"-{result.profile}"
    return folder / f"{result.comparison}{profile}-{stamp}.json"


def write_result(result: Result, folder: Path) -> Path:
    """Write ``result`` as JSON into ``folder`` (made if missing); returns the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = result_path(result, folder)
    payload = {"format": FORMAT, **asdict(result)}
    for check, raw in zip(result.checks, payload["checks"], strict=True):
        raw["target"]["text"] = check.target.text  # for readers of the file; not read back
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n")
    return path


def load_result(path: Path) -> Result:
    """A result written by :func:`write_result`; its verdicts are recomputed from the values and
    must agree with the stored ones."""
    data = json.loads(path.read_text())
    if data.pop("format", None) != FORMAT:
        raise ValueError(f"{path}: not a comparison result of format {FORMAT}")
    checks = []
    for raw in data.pop("checks"):
        stored = raw.pop("passed")
        target = raw.pop("target")
        check = Check(**{**raw, "l2obench": Side(**raw["l2obench"]),
                         "reference": Side(**raw["reference"])},
                      target=Target(Direction(target["direction"]), target["threshold"],
                                    target["unit"]))
        if check.passed != stored:
            raise ValueError(f"{path}: the verdict of {check.what!r} does not follow its value")
        checks.append(check)
    return Result(**{**data, "machine": Machine(**data["machine"]), "checks": checks,
                     "tables": [Table(**table) for table in data["tables"]]})


# -- formatting --------------------------------------------------------------------------------


def seconds(value: float) -> str:
    """A duration with a unit that keeps three significant digits readable."""
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if value < 1.0:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


def with_unit(value: float, unit: str, spec: str = ".3g") -> str:
    """``value`` in ``unit``: seconds scaled (``"s"``), ``×`` attached, other units spaced,
    whole numbers as integers."""
    if unit == "s" and math.isfinite(value):
        return seconds(value)
    whole = math.isfinite(value) and float(value).is_integer() and abs(value) < 1e6
    number = str(int(value)) if whole else format(value, spec)
    if unit in ("", "×"):
        return number + unit
    return f"{number} {unit}"


def leading_number(text: str) -> float:
    """The number a :func:`with_unit` text starts with (``"1.004×"`` → 1.004)."""
    return float(text.rstrip("×").split(" ", 1)[0])


# -- measuring ---------------------------------------------------------------------------------


def clock(work: Callable[[], object]) -> float:
    """Seconds that ``work()`` takes."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def median_of(measure: Callable[[], float], repeats: int, warm_up_first: bool = True) -> float:
    """The median of ``repeats`` calls of ``measure`` (after one discarded call if asked)."""
    if warm_up_first:
        measure()
    return statistics.median(measure() for _ in range(repeats))


def interleaved_medians(work: Mapping[str, Callable[[], object]], rounds: int) -> dict[str, float]:
    """Median seconds of each of ``work``'s callables over ``rounds`` rounds that run them in
    turn (after one warm-up round), so that a change of load on a shared machine falls on every
    side alike rather than on whichever ran last."""
    for fn in work.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in work}
    for _ in range(rounds):
        for name, fn in work.items():
            times[name].append(clock(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def timed_fit(method: Method, data: Dataset, epochs: int) -> tuple[float, FitResult]:
    """Seconds per epoch of ``method.fit`` under a budget of exactly ``epochs`` epochs (the
    runner's ``time_per_epoch_s``: training plus the per-epoch validation)."""
    start = time.perf_counter()
    fit = method.fit(data, Budget(max_epochs=epochs))
    elapsed = time.perf_counter() - start
    if fit.epochs != epochs:
        raise RuntimeError(f"fit completed {fit.epochs} epochs, not {epochs}")
    return elapsed / epochs, fit


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow what a library prints (PyEPO's progress bars, solver banners)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield
