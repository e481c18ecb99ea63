"""The record of a cell, and what a cell is: the one definition every other module uses.

A *cell* is one run (problem at one size × method with parameters × seed, on a device, within a
budget); its *record* is one flat row of measurements and provenance, stored as one JSON object
per cell. This module is the only place that lists the record's columns (the fields of
:class:`Record`, each with its documentation, from which ``docs/records.md`` is generated), the
statuses a cell can end in (:class:`Status`), and how a record reads back into the cell that made
it (:meth:`Cell.from_record`). It imports nothing else of l2obench, so every layer can use it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, get_type_hints

from l2obench import __version__

__all__ = [
    "RECORD_COLUMNS",
    "Budget",
    "Cell",
    "FitResult",
    "Limits",
    "Record",
    "RecordError",
    "Status",
    "columns_markdown",
]

class RecordError(ValueError):
    """A record file or object that is not a record of l2obench (damaged, foreign, incomplete)."""


class Status(StrEnum):
    """How a cell ended. Only ``ok`` cells carry measurements that enter aggregates."""

    OK = "ok"  # trained and scored
    FAILED = "failed"  # the method (or the cell's process) raised
    DIVERGED = "diverged"  # a non-finite loss, validation score or prediction
    TIMEOUT = "timeout"  # no epoch within the budget, or killed at the wall-time limit
    OOM = "oom"  # out of memory, or killed at the memory cap
    SKIPPED = "skipped"  # an optional dependency of the method is missing

    @property
    def successful(self) -> bool:
        """Whether the status counts as a success for the exit status (``ok``, ``skipped``)."""
        return self in (Status.OK, Status.SKIPPED)


def human_seconds(seconds: float | None) -> str:
    """``12 ms``, ``4.2 s``, ``3.5 min``, ``12 h``; ``—`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.3g} ms"
    if seconds < 60:
        return f"{seconds:.3g} s"
    if seconds < 3600:
        return f"{seconds / 60:.3g} min"
    return f"{seconds / 3600:.3g} h"


@dataclass(frozen=True)
class Budget:
    """How long a method may train: whichever of epochs or seconds runs out first.

    Part of the cell's identity (its hash), unlike :class:`Limits`.
    """

    max_epochs: int | None = None
    max_seconds: float | None = None

    def describe(self) -> str:
        """``"100 epochs or 60 s"``: the budget in words."""
        parts = []
        if self.max_epochs is not None:
            parts.append(f"{self.max_epochs} epoch{'s' * (self.max_epochs != 1)}")
        if self.max_seconds is not None:
            parts.append(human_seconds(self.max_seconds))
        return " or ".join(parts) or "no budget"


@dataclass(frozen=True)
class Limits:
    """Hard limits on one cell, enforced from outside it: wall seconds and host memory (MiB).

    Unlike the budget (which training respects by itself and which is part of the cell's
    identity), a limit kills a cell that overruns it and records it as ``timeout`` or ``oom``.
    """

    wall_seconds: float | None = None
    memory_mb: float | None = None

    def describe(self) -> str:
        """``"wall 25 min, memory 4096 MB"``: the limits in words."""
        parts = []
        if self.wall_seconds is not None:
            parts.append(f"wall {human_seconds(self.wall_seconds)}")
        if self.memory_mb is not None:
            parts.append(f"memory {self.memory_mb:g} MB")
        return ", ".join(parts) or "no limits"


@dataclass
class FitResult:
    """What a method's training reports about itself (never a metric of its outputs on test).

    Its fields are record columns of the same name, except ``val_score``, which the runner
    files in the record's ``metrics`` under the name of its task's validation metric.
    """

    epochs: int  # completed epochs
    best_epoch: int | None = None  # epoch of the selected model (model selection on val)
    val_score: float | None = None  # the task's validation metric at that epoch
    time_to_best_s: float | None = None  # training seconds (validation excluded) to its end
    val_time_s: float | None = None  # seconds spent validating, all epochs
    stopped_by: str = "epochs"  # "epochs" | "seconds"
    fwd_iters_mean: float | None = None  # per-instance forward iterations, mean over training
    fwd_iters_max: int | None = None
    fwd_unconverged: int | None = None  # instances that hit max_iter during training
    bwd_iters_mean: float | None = None
    bwd_unconverged: int | None = None  # training steps whose backward solve missed its tol
    history: list[dict[str, float]] = field(default_factory=list)
    #: Statistics of the method's training that its task family declares (``Task.extras``),
    #: by name; the record's ``extras`` column.
    extras: dict[str, float] = field(default_factory=dict)


def epoch_val_score(entry: Mapping[str, Any]) -> float | None:
    """The validation score of one history entry (``None`` where it has none)."""
    value = entry.get("val_score")
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


#: The version of the record's layout that this l2obench writes (see :func:`migrate`).
SCHEMA_VERSION = 2


def migrate(data: dict[str, Any]) -> dict[str, Any]:
    """A stored record's JSON object in the current layout: the one place old records migrate.

    Version 1 (no ``schema_version``; every record before the task seam) held the
    predict-then-optimize family's metrics in flat columns: ``norm_regret``, ``accuracy``,
    ``val_regret`` (empty in the oldest, whose history entry of ``best_epoch`` holds it) and
    ``test_regrets``, and its history entries called the validation score ``val_regret``
    (``val_score`` in the oldest). Version 2 has ``task``, the ``metrics`` map and the
    ``per_instance`` map, and history entries with ``val_score``.
    """
    version = data.get("schema_version", 1)
    if version == SCHEMA_VERSION:
        return data
    if version != 1:
        raise RecordError(f"not a record of this l2obench: schema_version {version!r} "
                          f"(this version reads 1 to {SCHEMA_VERSION})")
    out = {k: v for k, v in data.items()
           if k not in ("norm_regret", "accuracy", "val_regret", "test_regrets")}
    history = data.get("history")
    if isinstance(history, list):
        out["history"] = [
            {("val_score" if k == "val_regret" else k): v for k, v in entry.items()}
            if isinstance(entry, dict) else entry for entry in history]
    metrics = {"norm_regret": data.get("norm_regret"), "accuracy": data.get("accuracy"),
               "val_regret": _kept_val_score(data.get("val_regret"), data.get("best_epoch"),
                                             out.get("history"))}
    out.update(schema_version=SCHEMA_VERSION, task="decision",
               metrics={k: v for k, v in metrics.items() if v is not None})
    if isinstance(data.get("test_regrets"), list):
        out["per_instance"] = {"test_regrets": data["test_regrets"]}
    return out


def _kept_val_score(value: Any, best_epoch: Any, history: Any) -> float | None:
    """A version-1 record's validation regret: its ``val_regret`` column, else (records written
    before that column) the history entry of its ``best_epoch``."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    if not isinstance(history, list) or not isinstance(best_epoch, int | float):
        return None
    for entry in history:
        if isinstance(entry, Mapping) and entry.get("epoch") == best_epoch:
            return epoch_val_score(entry)
    return None


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


@dataclass(frozen=True)
class Cell:
    """One run: problem at one size × method with parameters × seed, on a device.

    ``problem_params`` and ``method_params`` are complete and validated (defaults filled in; the
    problem's size and seed among the problem's), so a cell can be built into a problem and a
    method without looking anything up.
    """

    suite: str
    problem: str
    size_param: str  # the name of the problem's size parameter (``k`` for the grid)
    problem_params: dict[str, Any]
    method: str
    method_params: dict[str, Any]
    method_label: str  # e.g. "dys-jfb[lr=0.01]": the parameters the suite set
    seed: int
    device: str
    budget: Budget
    #: The data parameters that vary in the suite's grid, e.g. ``"deg=4,noise=0.5"`` (not part of
    #: the configuration: ``problem_params`` holds them).
    data_label: str = ""
    #: The task family of the problem (not part of the configuration: the problem decides it).
    task: str = "decision"

    @property
    def size(self) -> int:
        return int(self.problem_params[self.size_param])

    def config(self) -> dict[str, Any]:
        """Everything that determines the cell's result, as plain JSON-able data."""
        return {
            "problem": self.problem,
            "problem_params": self.problem_params,
            "method": self.method,
            "method_params": self.method_params,
            "seed": self.seed,
            "device": self.device,
            "budget": {"max_epochs": self.budget.max_epochs,
                       "max_seconds": self.budget.max_seconds},
            "l2obench_version": __version__,
        }

    @property
    def cell_id(self) -> str:
        """A stable hash of :meth:`config`: the key of the cell's record."""
        return hashlib.sha256(_canonical(self.config()).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        data = f",{self.data_label}" if self.data_label else ""
        return (f"{self.problem}[{self.size_param}={self.size}{data}] {self.method_label} "
                f"seed={self.seed}")

    @classmethod
    def from_record(cls, record: Record) -> Cell:
        """The cell a record was made from: everything needed to run it again.

        Records written before ``size_param`` was a column name the size parameter by its
        problem's registry entry; the caller passes such records through
        :meth:`Record.with_size_param` first.
        """
        if record.size_param is None:
            raise RecordError(f"record {record.cell_id} does not name its size parameter")
        try:
            problem_params = json.loads(record.problem_params)
            method_params = json.loads(record.params)
        except (TypeError, ValueError) as exc:
            raise RecordError(f"record {record.cell_id}: its parameters are not JSON: {exc}") \
                from None
        if not isinstance(problem_params, dict) or not isinstance(method_params, dict):
            raise RecordError(f"record {record.cell_id}: its parameters are not JSON objects")
        if record.size_param not in problem_params:
            raise RecordError(f"record {record.cell_id}: problem_params lack its size "
                              f"parameter '{record.size_param}'")
        return cls(
            suite=record.suite, problem=record.problem, size_param=record.size_param,
            problem_params=problem_params, method=record.method, method_params=method_params,
            method_label=record.method_label, seed=record.seed, device=record.device,
            budget=Budget(max_epochs=record.budget_max_epochs,
                          max_seconds=record.budget_max_seconds),
            task=record.task or "decision",
        )


def column(doc: str, default: Any = None) -> Any:
    """A record field with its documentation (the text of ``docs/records.md``)."""
    return field(default=default, metadata={"doc": doc})


#: A cell whose threads waited for a core longer than this fraction of the time they ran was
#: slowed by other work: its clocks read high by about that fraction. Below it, the machine's
#: own housekeeping: two sweep jobs on two cores with nothing else running waited 3 % (see
#: docs/long-sweeps.md, "Quiet reruns").
WAIT_LIMIT = 0.10


@dataclass(frozen=True)
class Record:
    """One cell's row: its configuration, status, measurements and provenance.

    The fields are the documented columns, in the order tables show them. Every measurement is
    ``None`` until the cell produces it, and stays ``None`` for a cell that did not end ``ok``.
    """

    cell_id: str = column("16 hex digits: SHA-256 of the cell's configuration (problem and all "
                          "its parameters, method and all its parameters, seed, device, budget, "
                          "l2obench version)", "")
    suite: str = column("the name of the suite that ran the cell", "")
    problem: str = column("the problem's registered name", "")
    size: int = column("the value of the problem's size parameter (`k` for the grid)", 0)
    size_param: str | None = column(
        "the name of that parameter (`k`, `n_items`, `n_nodes`, `n_assets`); the report's x axis "
        "says it (absent from records written before it was added)")
    n_vars: int | None = column("decision variables of one instance (arcs of the grid: 2k(k−1); "
                                "items; edges of the TSP: n(n−1)/2; assets)")
    method: str = column("the method's registered name", "")
    method_label: str = column("the name with the parameters the suite set, e.g. "
                               "`dys-jfb[lr=0.01]`", "")
    task: str | None = column(
        "the task family of the problem (`decision`: predict-then-optimize), which names the "
        "metrics, their directions and the ranking metric (`l2obench list`)")
    method_family: str | None = column(
        "the method's family, which reports group it by: `dys` (DYS layers), `layer` (other "
        "optimization layers), `pyepo` (losses over the exact oracle), `baseline`, `other`")
    params: str = column("the method's complete parameter set as JSON (defaults included)", "{}")
    problem_params: str = column("the problem's complete parameter set as JSON (size and seed "
                                 "included)", "{}")
    seed: int = column("data and initialisation seed", 0)
    device: str = column("`cpu` or `cuda`", "cpu")
    status: Status = column(
        "`ok`; `failed` (an exception), `diverged` (non-finite loss or prediction), `timeout` (no "
        "epoch completed in the budget, or killed at the wall-time limit), `oom` (out of memory, "
        "or killed at the memory cap), `skipped` (an optional extra is missing)", Status.FAILED)
    error: str | None = column("the error text of a cell that did not end `ok`")
    test_loss: float | None = column(
        "the method's training objective on the test split (`dys-jfb`: MSE between the layer's "
        "decisions and the optimal ones; `two-stage`: MSE on costs)")
    objective: str | None = column(
        "the name of that objective (`MSE to x*`, `MSE to c`, `SPO+`, `Fenchel-Young`, …): test "
        "losses compare only between cells with the same one")
    metrics: dict[str, float | None] | None = column(
        "the task family's scores, computed by the runner against ground truth the method never "
        "saw: each test metric of the family and its validation metric (the kept epoch's, what "
        "model selection and the tuning rule read), by name; `l2obench list` shows each "
        "family's metrics. Predict-then-optimize (`decision`): `norm_regret` (PyEPO's normalized "
        "regret on the test split, Σᵢ(cᵢᵀx̂ᵢ − cᵢᵀx*ᵢ) / Σᵢ\\|cᵢᵀx*ᵢ\\|, x̂ᵢ the exact optimum "
        "under the predicted cost ĉᵢ), `accuracy` (share of test instances whose regret is "
        "below 1e-3·\\|optimal objective\\|) and `val_regret` (normalized regret on the "
        "validation split). `load_results` gives each its own column", None)
    train_time_s: float | None = column(
        "wall time of `fit`: training, per-epoch validation and set-up, clock read after a "
        "device synchronise; the seconds budget counts this clock")
    time_to_best_s: float | None = column(
        "training seconds from the start of the first epoch to the end of the kept epoch, "
        "validation excluded (fpo-dys's reported time); the clock waits for the device before "
        "each reading (empty in older records)")
    val_time_s: float | None = column(
        "seconds spent in validation over all epochs (part of `train_time_s`, excluded from "
        "`time_to_best_s` and the history's `train_s`)")
    epochs: int | None = column("completed epochs")
    best_epoch: int | None = column("the epoch kept by model selection on validation regret")
    stopped_by: str | None = column("which budget ended training (`epochs` or `seconds`)")
    time_per_epoch_s: float | None = column("`train_time_s / epochs`")
    infer_time_s: float | None = column(
        "seconds per test instance to produce decisions (the layer for methods with one; cost "
        "prediction plus the exact oracle otherwise)")
    peak_mem_mb: float | None = column(
        "peak resident host memory during training above the level before training (Linux "
        "`VmHWM` after resetting it through `/proc/self/clear_refs`)")
    device_peak_mem_mb: float | None = column(
        "on CUDA, `torch.cuda.max_memory_allocated` during training above the starting "
        "allocation; empty on CPU")
    fwd_iters_mean: float | None = column(
        "fixed-point layers: per-instance forward iterations over all training steps, mean; "
        "empty for methods without a layer")
    fwd_iters_max: int | None = column("fixed-point layers: the most forward iterations of one "
                                       "instance in training")
    fwd_unconverged: int | None = column("fixed-point layers: training instances that hit "
                                         "`max_iter`")
    bwd_iters_mean: float | None = column(
        "modes that iterate in the backward pass (implicit): linear-solver iterations per "
        "training step; empty for JFB and unrolled")
    bwd_unconverged: int | None = column("implicit modes: training steps whose adjoint solve "
                                         "missed its tolerance")
    budget_max_epochs: int | None = column("the cell's epoch budget")
    budget_max_seconds: float | None = column("the cell's training-seconds budget")
    n_train: int | None = column("training instances")
    n_val: int | None = column("validation instances")
    n_test: int | None = column("test instances")
    l2obench_version: str | None = column("provenance: l2obench's version")
    git_commit: str | None = column("provenance: the checkout's commit (ending in `+dirty` for a "
                                    "modified checkout)")
    torch_version: str | None = column("provenance: PyTorch's version")
    numpy_version: str | None = column("provenance: NumPy's version")
    python_version: str | None = column("provenance: Python's version")
    hostname: str | None = column("provenance: the machine's host name")
    device_name: str | None = column("provenance: the CPU's or GPU's model")
    torch_threads: int | None = column("provenance: PyTorch intra-op threads of the cell")
    started_at: str | None = column("UTC timestamp of the cell's start")
    finished_at: str | None = column("UTC timestamp of the cell's end")
    load_start: float | None = column(
        "provenance: the machine's 1-minute load average when the cell started (empty in "
        "records written before it was added); above `n_cores`, the cell shared its cores "
        "and its clocks read high")
    load_end: float | None = column("provenance: the 1-minute load average when the cell ended")
    n_cores: int | None = column("provenance: the CPU cores the machine has (`os.cpu_count()`)")
    cpu_s: float | None = column(
        "provenance: CPU seconds the cell's threads ran, from its start to its end (Linux's "
        "scheduler statistics; empty elsewhere, in records written before it was added and "
        "for a cell killed by its wall limit)")
    cpu_wait_s: float | None = column(
        "provenance: seconds the cell's threads were ready to run but waited for a core, over "
        f"the same span; above {WAIT_LIMIT:.0%} of `cpu_s` (`l2obench.record.WAIT_LIMIT`) the "
        "machine was busier than its cores (the cell is marked busy) and its clocks read high "
        "by about `cpu_wait_s / cpu_s`")
    extras: dict[str, float | None] | None = column(
        "statistics of a cell's training that its task family declares (`Task.extras`: e.g. a "
        "reconstruction's solver iterations), by name; `load_results` gives each its own column "
        "(none for predict-then-optimize, whose iteration statistics are the columns above)")
    per_instance: dict[str, list[float]] | None = column(
        "per test instance, in the split's order, the values of the metrics that have them "
        "(what the report's paired tests compare: every method at a size, data point and seed "
        "sees the same test instances); `load_results` gives each its own column. "
        "Predict-then-optimize: `test_regrets`, the regret cᵢᵀx̂ᵢ − cᵢᵀx*ᵢ (signed by the "
        "problem's sense, so never below zero up to rounding; Σᵢ test_regrets / "
        "Σᵢ\\|cᵢᵀx*ᵢ\\| is `norm_regret`)", None)
    history: list[dict[str, Any]] = column(
        "per completed epoch: `epoch`, `train_loss` (mean over the epoch's batches), "
        "`val_score` (the task's validation metric), `train_s` (cumulative training seconds to "
        "the end of the epoch, validation excluded) and `val_s` (that epoch's validation "
        "seconds); records written before the clock was added hold `epoch`, `train_loss` and "
        "`val_score` only", None)
    schema_version: int = column(
        "the layout of the record (2: with `task`, `metrics`, `extras` and `per_instance`); older "
        "records "
        "are read in the current layout (`l2obench.record.migrate`)", SCHEMA_VERSION)
    checksum: str | None = column(
        "SHA-256 of the record's other columns as canonical JSON (keys sorted, no spaces), "
        "written with the record: a record whose content no longer matches it was edited or "
        "damaged and is set aside (empty in records written before it was added)")

    # -- building ------------------------------------------------------------------------------

    @classmethod
    def start(cls, cell: Cell, provenance: Mapping[str, Any], family: str | None = None) -> Record:
        """The record of ``cell`` before it runs: configuration, the method's family and
        provenance, no measurement."""
        p = cell.problem_params
        return cls(
            cell_id=cell.cell_id, suite=cell.suite, problem=cell.problem, size=cell.size,
            size_param=cell.size_param, task=cell.task, method=cell.method,
            method_label=cell.method_label,
            method_family=family,
            params=_canonical_params(cell.method_params),
            problem_params=_canonical_params(p), seed=cell.seed, device=cell.device,
            budget_max_epochs=cell.budget.max_epochs,
            budget_max_seconds=cell.budget.max_seconds,
            n_train=p.get("n_train"), n_val=p.get("n_val"), n_test=p.get("n_test"),
            started_at=utc_now(), load_start=load_average(), n_cores=os.cpu_count(),
            **provenance,
        )

    def ended(self, status: Status, error: str | None = None, **measurements: Any) -> Record:
        """This record with its final status, error, measurements and end time."""
        return dataclasses.replace(self, status=Status(status), error=error,
                                   finished_at=utc_now(), load_end=load_average(),
                                   **measurements)

    def sealed(self) -> Record:
        """This record with its ``checksum`` computed from its other columns (as written)."""
        return dataclasses.replace(self, checksum=content_checksum(self.to_json()))

    # -- JSON ----------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        """The record as a plain JSON object (NaN and infinities become null)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}

    @classmethod
    def from_json(cls, data: Any) -> Record:
        """A record from its JSON object; :class:`RecordError` names what is wrong.

        Columns missing from older records take their defaults; columns this version does not
        know are ignored. Every column present must have its type (integers are accepted where a
        float is expected). Records of an older layout are migrated first (:func:`migrate`).
        """
        if not isinstance(data, dict):
            raise RecordError(f"not a record: a JSON {type(data).__name__}, not an object")
        for key in ("cell_id", "status", "problem", "method"):
            if key not in data:
                raise RecordError(f"not a record: no '{key}'")
        written = data
        data = migrate(data)
        values: dict[str, Any] = {}
        for name, hint in _HINTS.items():
            if name in data:
                values[name] = _check(name, hint, data[name])
        if not re.fullmatch(r"[0-9a-f]{16}", values["cell_id"]):
            raise RecordError(f"not a record: cell_id {values['cell_id']!r} is not 16 hex digits")
        try:
            values["status"] = Status(values["status"])
        except ValueError:
            raise RecordError(f"not a record: unknown status {values['status']!r}") from None
        damage = _damage(written, values)
        if damage:
            raise RecordError(f"damaged: {damage}")
        return cls(**values)

    def metric(self, name: str) -> float | None:
        """The value of metric ``name`` in :attr:`metrics` (``None`` where it has none)."""
        value = (self.metrics or {}).get(name)
        return None if value is None or not math.isfinite(value) else float(value)

    @property
    def busy(self) -> bool:
        """Whether the cell ran while the machine was busier than its cores, so that its clocks
        read high (:func:`ran_busy`)."""
        return ran_busy(self.cpu_s, self.cpu_wait_s, self.load_start, self.load_end,
                        self.n_cores)

    @property
    def timed(self) -> bool:
        """Whether a clock ended the cell (the seconds budget stopped its training, or it
        timed out), so that what it reached depends on the machine's speed."""
        return ended_by_a_clock(self.stopped_by, self.status)

    def with_size_param(self, size_param: str) -> Record:
        """This record with ``size_param`` filled in where an older record lacks it."""
        if self.size_param is not None:
            return self
        return dataclasses.replace(self, size_param=size_param)


def content_checksum(data: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a record's JSON object without its ``checksum``, as canonical JSON."""
    content = {k: v for k, v in data.items() if k != "checksum"}
    return hashlib.sha256(_canonical(content).encode()).hexdigest()


def _damage(data: Mapping[str, Any], values: Mapping[str, Any]) -> str | None:
    """What shows that a record's JSON object was edited or damaged after it was written, or
    ``None``: a checksum that does not match, a value that is not finite (a record is written
    with none), an ``ok`` record without its regret."""
    checksum = values.get("checksum")
    if checksum is not None and checksum != content_checksum(data):
        return "its content does not match its checksum (edited after it was written)"
    bad = next((name for name, value in values.items() if not _finite(value)), None)
    if bad is not None:
        return f"column '{bad}' holds a value that is not finite"
    if values["status"] == Status.OK and not any(
            v is not None for v in (values.get("metrics") or {}).values()):
        return "an ok record without its scores (metrics)"
    return None


#: How far (relative) a record's ``score / Σ per-instance values`` may stray from that of the
#: other records of its data point: float rounding, far below any edit.
SCORE_RTOL = 1e-9


def disagreeing_scores(
    records: Iterable[Record],
    scored: Callable[[Record], tuple[str, float | None, str, list[float] | None] | None],
) -> dict[str, str]:
    """The records (by cell id, with what is wrong) whose score disagrees with their own
    per-instance values: a mean edited, or pasted from another cell, while the per-instance
    values stayed.

    ``scored(record)`` gives the record's ranking metric (its name and value) and its
    per-instance values (their name and list), or ``None`` where it has none. The metric is
    their sum over a constant of the data point (normalized regret: ``Σ test_regrets /
    Σ|cᵢᵀx*ᵢ|``; a mean: ``/ n``), and every record of one data point (the same problem
    parameters, seed included) has the same test instances, so ``score / Σ values`` is the
    same for each. Where more than half the records of a data point share that ratio, the
    others are damaged; where none is shared so widely (two records that disagree), none of
    them can be trusted. This needs no checksum, so it covers records written before
    checksums too. A record alone at its data point, without per-instance values, or with a
    zero score or sum, is not compared.
    """
    groups: dict[tuple[str, str], list[tuple[str, float, float, str, str]]] = {}
    for record in records:
        found = scored(record)
        if found is None:
            continue
        name, score, per_name, values = found
        if score is None or not values:
            continue
        total = math.fsum(values)
        if total != 0 and score != 0:
            groups.setdefault((record.problem, record.problem_params), []).append(
                (record.cell_id, score / total, total, name, per_name))
    damaged = {}
    for members in groups.values():
        ratios = [ratio for _, ratio, _, _, _ in members]
        shared = max(ratios, key=lambda r: sum(_same(r, other) for other in ratios))
        if sum(_same(shared, ratio) for ratio in ratios) * 2 <= len(ratios):
            shared = math.nan  # no majority: every member is in doubt
        for cell_id, ratio, total, name, per_name in members:
            if not _same(ratio, shared):
                damaged[cell_id] = (f"its {name} {ratio * total:.6g} disagrees with its "
                                    f"{per_name}, which give {total * shared:.6g} at its data "
                                    "point" if math.isfinite(shared) else
                                    f"its {name} and {per_name} disagree with those of the "
                                    "other records of its data point")
    return damaged


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= SCORE_RTOL * abs(b)


def _finite(value: Any) -> bool:
    """Whether ``value`` holds no NaN or infinity (in lists and objects too)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    return True


def _canonical_params(params: Mapping[str, Any]) -> str:
    return json.dumps(dict(params), sort_keys=True)


def utc_now() -> str:
    """Now, in UTC, to the microsecond: a sweep's generation is compared with records' starts."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def load_average() -> float | None:
    """The machine's 1-minute load average (``None`` where the OS does not report one)."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def ended_by_a_clock(stopped_by: object, status: object) -> bool:
    """Whether a cell was ended by a clock: the seconds budget stopped its training
    (``stopped_by`` ``seconds``) or it timed out, so that what it reached depends on the
    machine's speed."""
    return stopped_by == "seconds" or status == Status.TIMEOUT


def ran_busy(cpu_s: float | None, cpu_wait_s: float | None, load_start: float | None,
             load_end: float | None, n_cores: int | None) -> bool:
    """Whether a cell ran while the machine was busier than its cores.

    Where the cell's own threads were measured, whether they waited for a core longer than
    :data:`WAIT_LIMIT` of the time they ran: the scheduler's account of the cell itself. The
    1-minute load average only samples the machine at two instants and counts work that
    takes no core from the cell (two one-thread cells on two cores read about 2.06 and slow
    each other by 4 %). Older records, without the measurement, are judged by their load
    (:func:`busier_than_cores`).
    """
    if cpu_s is not None and cpu_wait_s is not None and math.isfinite(cpu_s) \
            and math.isfinite(cpu_wait_s) and cpu_s > 0:
        return cpu_wait_s > WAIT_LIMIT * cpu_s
    return busier_than_cores(load_start, load_end, n_cores)


def busier_than_cores(load_start: float | None, load_end: float | None,
                      n_cores: int | None) -> bool:
    """Whether a 1-minute load average above ``n_cores`` was read at a cell's start or at its
    end (``False`` where none was recorded)."""
    if n_cores is None:
        return False
    loads = [v for v in (load_start, load_end) if v is not None and math.isfinite(v)]
    return any(v > n_cores for v in loads)


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


_HINTS: dict[str, Any] = {
    f.name: get_type_hints(Record)[f.name] for f in dataclasses.fields(Record)
}


def _check(name: str, hint: Any, value: Any) -> Any:
    """``value`` if it has the column's type (``None`` where the column may be empty)."""
    text = str(hint)
    if value is None:
        if "None" in text or name == "history":
            return None
        raise RecordError(f"not a record: column '{name}' is empty")
    if name == "status" or hint is str or text.startswith("str"):
        ok = isinstance(value, str)
    elif text.startswith("dict[str, list"):
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and isinstance(v, list) and all(_number(x) for x in v)
            for k, v in value.items())
    elif text.startswith("dict[str, float"):
        ok = isinstance(value, dict) and all(
            isinstance(k, str) and (v is None or _number(v)) for k, v in value.items())
    elif "list[dict" in text:
        ok = isinstance(value, list) and all(isinstance(v, dict) for v in value)
    elif "float" in text:
        ok = _number(value)
    elif "int" in text:
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:  # pragma: no cover - every column's type is one of the above
        ok = True
    if not ok:
        raise RecordError(f"not a record: column '{name}' holds {type(value).__name__} "
                          f"{value!r:.40}")
    return value


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


#: The documented columns, in the order tables show them.
RECORD_COLUMNS: list[str] = [f.name for f in dataclasses.fields(Record)]

#: Columns whose values differ between two runs of the same cell on the same machine (clocks,
#: memory, timestamps, the checkout's commit, the history's clock); every other column is a
#: function of the cell's configuration and seed.
RUN_DEPENDENT_COLUMNS: frozenset[str] = frozenset({
    "train_time_s", "time_to_best_s", "val_time_s", "time_per_epoch_s", "infer_time_s",
    "peak_mem_mb", "device_peak_mem_mb", "git_commit", "hostname", "torch_threads",
    "started_at", "finished_at", "load_start", "load_end", "cpu_s", "cpu_wait_s", "history",
    "checksum"})


def columns_markdown() -> str:
    """The table of columns in ``docs/records.md``, generated from :class:`Record`."""
    lines = ["| column | meaning |", "|---|---|"]
    for f in dataclasses.fields(Record):
        lines.append(f"| `{f.name}` | {f.metadata['doc']} |")
    return "\n".join(lines) + "\n"


def records_page() -> str:
    """The whole of ``docs/records.md``: its introduction and the generated table."""
    return _RECORDS_INTRO + columns_markdown()


_RECORDS_INTRO = """# Records

One JSON file per cell, `records/<cell_id>.json`, written atomically; `l2obench.load_results(DIR)`
reads a folder of them into one long-format `pandas.DataFrame` (one row per cell). The columns
are the fields of `l2obench.record.Record`; the table below is generated from them
(`python -m l2obench.record > docs/records.md` rewrites this file, and a test checks that it is
current).

A results folder holds:

| path | what |
|---|---|
| `records/<cell_id>.json` | the record of each cell (mode 644 less the umask) |
| `records/superseded/` | records replaced by `--force`, `--retry-failed` or `--retry-busy`, \
time-stamped |
| `records/damaged/` | files found in `records/` that were not a record of their cell, or were \
edited after they were written (see below), moved aside |
| `records/.locks/`, `records/.sweeps/` | the locks of cells in progress and of running sweeps |
| `suites/<suite>.json` | the cells the suite's runs asked for, and its tuning declaration |

A record is damaged, and set aside by every reader (the sweep's resume moves it to
`records/damaged/` and runs its cell again; `load_records`, `load_results` and the report skip
it), with a warning naming the file and what is wrong, when its `checksum` does not match its
other columns, when a column holds NaN or an infinity (a record is written with none), when an
`ok` record has no `metrics`, or when its ranking metric disagrees with its own per-instance
values (every record of a data point shares the test instances, so `norm_regret / Σ
test_regrets` is the same for each). Records written before the checksum have none and are
checked by the other rules.

"""


if __name__ == "__main__":
    print(records_page(), end="")
