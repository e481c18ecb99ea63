"""Tuning: which configuration of each method a suite's rule selects, on validation data only.

A suite names, per method, the parameters whose grids are *tuning* grids (``tune = ["lr"]``) and
one selection rule (:class:`Tuning`). A method's *identity* (what the leaderboard ranks) is its
name with the parameters the suite set that are not tuned (``pertopt[loss=dpo]``); its
*configurations* are the combinations of the tuned values (``lr=0.01``). The rule picks, per
identity and data point, the configuration with the best mean validation score over seeds (the
task family's validation metric, lowest or highest by its direction; validation regret for
predict-then-optimize):

- ``per-size`` (PredOpt's protocol): a selection at every problem size;
- ``at-size`` (fpo-dys's protocol, ``size = 5``): one selection at that size, then that
  configuration at every size (the sweep runs only it at the other sizes).

Only the kept epoch's validation score (the record's ``metrics`` entry of the validation
metric) enters a selection: test data cannot change one. This module is the one definition of
the rule; the sweep and the report both call :func:`select`. It imports nothing of l2obench but
the record, the parameter names and the task contract.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from l2obench.params import format_value, readable_name
from l2obench.record import Cell, Record, Status
from l2obench.tasks.base import Metric, get_task, task_of

__all__ = [
    "RULES",
    "Choice",
    "Selections",
    "Trial",
    "Tuning",
    "TuningPlan",
    "cell_trial",
    "data_key",
    "data_point",
    "given_params",
    "select",
    "split_label",
]

Rule = Literal["per-size", "at-size"]
RULES: tuple[Rule, ...] = ("per-size", "at-size")


@dataclass(frozen=True)
class Tuning:
    """A suite's tuning declaration: the tuned parameters of each method and the rule.

    ``tuned`` maps a method's registered name to the parameters whose values are tuned; a
    method not in it is not tuned (each of its configurations is a method of its own, as
    without a declaration). ``size`` is the tuning size of the ``at-size`` rule.
    """

    rule: Rule = "per-size"
    size: int | None = None
    tuned: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        """Whether any method is tuned."""
        return any(self.tuned.values())

    def keys(self, method: str) -> tuple[str, ...]:
        """The tuned parameters of ``method`` (none for a method that is not tuned)."""
        return tuple(self.tuned.get(method, ()))

    def to_json(self) -> dict[str, Any]:
        return {"rule": self.rule, "size": self.size,
                "tuned": {m: list(k) for m, k in sorted(self.tuned.items())}}

    @classmethod
    def from_json(cls, data: Any) -> Tuning:
        """A declaration read back from ``suites/<suite>.json``; ``ValueError`` if malformed."""
        if not isinstance(data, dict):
            raise ValueError(f"a tuning declaration is an object, not {data!r:.40}")
        rule, size, tuned = data.get("rule"), data.get("size"), data.get("tuned", {})
        if rule not in RULES:
            raise ValueError(f"unknown tuning rule {rule!r}")
        if rule == "at-size" and not isinstance(size, int):
            raise ValueError("the at-size rule needs an integer size")
        if not isinstance(tuned, dict) or not all(
                isinstance(k, list) and all(isinstance(p, str) for p in k)
                for k in tuned.values()):
            raise ValueError("'tuned' must map method names to lists of parameter names")
        return cls(rule=rule, size=size if rule == "at-size" else None,
                   tuned={str(m): tuple(k) for m, k in tuned.items()})

    def describe(self, metric: Metric, size_param: str = "size") -> str:
        """The rule in words, as the pages state it, for selections by ``metric``."""
        where = (f"at {size_param} = {self.size}, then fixed for every size"
                 if self.rule == "at-size" else "at every size separately")
        return f"{_best_word(metric)} mean {metric.label} over seeds, {where}"


def _best_word(metric: Metric) -> str:
    return "lowest" if metric.direction == "min" else "highest"


def given_params(method: str, label: str, params: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters a suite set, recovered from a cell's label and its complete parameters.

    A label is ``readable_name(method, given)``: ``method[k=v,...]`` with sorted keys. Each key
    of ``params`` whose ``k=v`` text sits at the next position of the label was given. A label
    that does not read back this way (edited by hand, or a value given in another spelling such
    as ``"1e-2"``) falls back to the keys named before each ``=``.
    """
    if label == method or not (label.startswith(method + "[") and label.endswith("]")):
        return {}
    inner = label[len(method) + 1 : -1]
    given: dict[str, Any] = {}
    pos = 0
    for key in sorted(params):
        text = f"{key}={format_value(params[key])}"
        end = pos + len(text)
        if inner.startswith(text, pos) and (end == len(inner) or inner[end] == ","):
            given[key] = params[key]
            pos = end + 1
    if pos == len(inner) + 1:
        return given
    named = {part.split("=", 1)[0] for part in inner.split(",") if "=" in part}
    return {key: params[key] for key in sorted(params) if key in named}


def split_label(method: str, label: str, params: Mapping[str, Any],
                tuned: Sequence[str]) -> tuple[str, str]:
    """``(identity, configuration)`` of a cell: its method with the untuned parameters the
    suite set, and the tuned values (``""`` for a method that is not tuned)."""
    if not tuned:
        return label, ""
    given = given_params(method, label, params)
    identity = readable_name(method, {k: v for k, v in given.items() if k not in tuned})
    configuration = ",".join(f"{k}={format_value(given[k])}" for k in sorted(given)
                             if k in tuned)
    return identity, configuration


def data_point(problem_params: Mapping[str, Any], size_param: str | None) -> dict[str, Any]:
    """The problem's parameters other than its size and seed: the point of the data grid."""
    return {k: v for k, v in sorted(problem_params.items()) if k not in ("seed", size_param)}


def data_key(problem_params: Mapping[str, Any], size_param: str | None) -> str:
    """:func:`data_point` as canonical JSON, a key to group cells by."""
    return json.dumps(data_point(problem_params, size_param), sort_keys=True)


@dataclass(frozen=True)
class Trial:
    """One cell as a selection sees it: where it ran, which configuration, its validation score.

    ``group`` is everything besides the size that two comparable cells share (the suite, the
    problem and the data point); ``val_score`` is ``None`` for a cell that did not end ``ok``
    or recorded none.
    """

    group: Hashable
    size: int
    identity: str
    configuration: str
    label: str
    seed: int
    val_score: float | None
    size_param: str = "size"


@dataclass(frozen=True)
class Choice:
    """The selected configuration of one identity at one group and selection size, and why."""

    label: str
    configuration: str
    metric: Metric  # the validation metric the selection was made by
    mean_val_score: float
    seeds: int  # ok seeds with a validation score behind the mean
    candidates: int  # configurations compared
    size: int  # the size the selection was made at
    size_param: str = "size"
    fixed: bool = False  # made at the tuning size and applied to every size (rule "at-size")

    @property
    def reason(self) -> str:
        """Why this configuration: the rule, the number compared and the seeds behind it."""
        where = f"{self.size_param} = {self.size}"
        if self.candidates == 1:
            return "the only configuration"
        value = f"{self.mean_val_score:.4g}"
        text = (f"{_best_word(self.metric)} mean {self.metric.label} ({value}) over {self.seeds} "
                f"seed{'s' * (self.seeds != 1)} among {self.candidates} configurations at "
                f"{where}")
        return text + (", fixed for every size" if self.fixed else "")


@dataclass
class Selections:
    """The outcome of :func:`select`: a choice per (group, selection size, identity), and the
    reason where an identity has none."""

    tuning: Tuning
    metric: Metric
    choices: dict[tuple[Hashable, int, str], Choice]
    missing: dict[tuple[Hashable, int, str], str]

    def describe(self, size_param: str = "size") -> str:
        """The rule in words (:meth:`Tuning.describe`) for this selection's metric."""
        return self.tuning.describe(self.metric, size_param)

    def selection_size(self, size: int) -> int:
        """The size whose selection applies at ``size`` under the rule."""
        return size if self.tuning.rule == "per-size" or self.tuning.size is None \
            else self.tuning.size

    def choice(self, group: Hashable, size: int, identity: str) -> Choice | None:
        """The configuration selected for ``identity`` at ``size`` of ``group``, if any."""
        return self.choices.get((group, self.selection_size(size), identity))

    def why_none(self, group: Hashable, size: int, identity: str) -> str:
        """Why ``identity`` has no selected configuration at ``size`` of ``group``."""
        key = (group, self.selection_size(size), identity)
        return self.missing.get(key, f"no cell at the selection size {key[1]}")


def select(trials: Iterable[Trial], tuning: Tuning, metric: Metric) -> Selections:
    """Select a configuration per identity: the best mean validation score over seeds, the
    trials' ``val_score`` being values of ``metric`` (the task's validation metric).

    Under ``per-size`` a selection is made at every size, under ``at-size`` at the tuning size
    only. A configuration that lacks an ok validation score on some seed that another
    configuration of the identity has loses to every configuration that has all of them (a
    configuration must not win by failing on its hard seeds); then the best mean wins (lowest
    or highest by the metric's direction), ties going to the first configuration in text order.
    A configuration without any ok validation score is never selected, unless it is the
    identity's only one.
    """
    blocks: dict[tuple[Hashable, int, str], list[Trial]] = defaultdict(list)
    for trial in trials:
        if tuning.rule == "at-size" and trial.size != tuning.size:
            continue
        blocks[(trial.group, trial.size, trial.identity)].append(trial)
    choices: dict[tuple[Hashable, int, str], Choice] = {}
    missing: dict[tuple[Hashable, int, str], str] = {}
    for key, block in blocks.items():
        by_config: dict[str, list[Trial]] = defaultdict(list)
        for trial in block:
            by_config[trial.configuration].append(trial)
        seeds = len({t.seed for t in block})
        ranked = sorted(_score(c, runs, seeds, metric.sign) for c, runs in by_config.items())
        lacking, key_mean, config = ranked[0]
        if math.isinf(key_mean) and len(ranked) > 1:
            missing[key] = (f"no configuration of {len(ranked)} has an ok cell with a "
                            f"{metric.label}")
            continue
        runs = by_config[config]
        choices[key] = Choice(label=runs[0].label, configuration=config, metric=metric,
                              mean_val_score=metric.sign * key_mean, seeds=seeds - lacking,
                              candidates=len(ranked), size=key[1],
                              size_param=runs[0].size_param,
                              fixed=tuning.rule == "at-size")
    return Selections(tuning, metric, choices, missing)


def _score(configuration: str, runs: list[Trial], seeds: int,
           sign: float) -> tuple[int, float, str]:
    """A configuration's sort key: seeds it lacks an ok validation score on, ``sign`` times its
    mean over the others (lower is better; infinite without any), its text."""
    values = [t.val_score for t in runs if t.val_score is not None
              and math.isfinite(t.val_score)]
    mean = sign * sum(values) / len(values) if values else math.inf
    return seeds - len(values), mean, configuration


def cell_trial(cell: Cell, tuning: Tuning, record: Record | None) -> Trial:
    """The :class:`Trial` of ``cell`` with its record (``None``: not run)."""
    identity, configuration = split_label(cell.method, cell.method_label, cell.method_params,
                                          tuning.keys(cell.method))
    val = None
    if record is not None and record.status == Status.OK:
        val = record.metric(get_task(cell.task).validation.name)
    return Trial(group=(cell.suite, cell.problem, data_key(cell.problem_params, cell.size_param)),
                 size=cell.size, identity=identity, configuration=configuration,
                 label=cell.method_label, seed=cell.seed, val_score=val,
                 size_param=cell.size_param)


@dataclass(frozen=True)
class TuningPlan:
    """How a sweep runs a suite under its tuning rule: the cells it can run now, and the cells
    it runs once their configuration is selected (rule ``at-size``: the tuned methods at the
    sizes other than the tuning size)."""

    tuning: Tuning
    first: list[Cell]
    pending: list[Cell]

    @classmethod
    def of(cls, cells: Sequence[Cell], tuning: Tuning) -> TuningPlan:
        if tuning.rule != "at-size" or not tuning.active:
            return cls(tuning, list(cells), [])
        first: list[Cell] = []
        pending: list[Cell] = []
        for cell in cells:
            waits = bool(tuning.keys(cell.method)) and cell.size != tuning.size
            (pending if waits else first).append(cell)
        return cls(tuning, first, pending)

    def selected(self, read: Callable[[str], Record | None]) -> tuple[list[Cell], Selections]:
        """The pending cells whose configuration the records of the first cells at the tuning
        size (read through ``read``, by cell id) select, and the selections."""
        tuning_cells = [c for c in self.first if c.size == self.tuning.size]
        metric = task_of(c.task for c in self.first).validation
        selections = select((cell_trial(c, self.tuning, read(c.cell_id)) for c in tuning_cells),
                            self.tuning, metric)
        chosen = []
        for cell in self.pending:
            trial = cell_trial(cell, self.tuning, None)
            choice = selections.choice(trial.group, trial.size, trial.identity)
            if choice is not None and choice.configuration == trial.configuration:
                chosen.append(cell)
        return chosen, selections
