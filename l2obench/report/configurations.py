"""Which configuration represents each method on the pages: data points, identities, selection.

The records of a results folder are annotated with the *data point* they ran at (the problem's
parameters other than size and seed; the pages name it by the parameters that vary), the
*identity* of their method (its name with the parameters the suite set that are not tuned) and
their *configuration* (the tuned values), following the tuning declaration the suite's runs
noted in ``suites/<suite>.json``. The selection itself is :func:`l2obench.selection.select`, the
one the sweep uses, fed with validation regrets only. Without a declaration every configuration
is a method of its own, as it always was.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from l2obench.params import format_value
from l2obench.selection import (
    Selections,
    Trial,
    Tuning,
    data_key,
    select,
    split_label,
)
from l2obench.store import suite_tuning
from l2obench.tasks.base import Metric, task_of

log = logging.getLogger(__name__)

__all__ = ["annotate", "group_of", "ranked", "suite_tunings"]


def suite_tunings(results: Path, suites: list[str]) -> dict[str, Tuning]:
    """The tuning declaration each suite's runs noted in ``results`` (a suite without one is
    not tuned; a malformed one is ignored with a warning)."""
    tunings = {}
    for suite in suites:
        raw = suite_tuning(results, suite)
        if raw is None:
            continue
        try:
            tunings[suite] = Tuning.from_json(raw)
        except ValueError as exc:
            log.warning("ignoring the tuning declaration of suite '%s' in %s: %s", suite,
                        results, exc)
    return tunings


def _size_params(records: pd.DataFrame) -> pd.Series:
    """Each record's size parameter: its column, else the problem's (records written before it
    was a column), else unknown (``None``)."""
    from l2obench.problems.base import problem_registry

    def known(row: pd.Series) -> str | None:
        value = row.get("size_param")
        if isinstance(value, str):
            return value
        try:
            return problem_registry.get(str(row["problem"])).size_param
        except Exception:  # a plugin that is not installed here
            return None

    return records.apply(known, axis=1) if len(records) else pd.Series(dtype=object)


def _params(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def annotate(records: pd.DataFrame, tunings: Mapping[str, Tuning]
             ) -> tuple[pd.DataFrame, dict[str, Selections]]:
    """``records`` with the columns the pages group and select by, and each suite's selections.

    Added columns: ``data`` (the data point as canonical JSON), ``data_label`` (its parameters
    that vary within the records' (suite, problem), ``""`` where none does), ``identity``,
    ``configuration``, ``tuned`` (whether the method's configurations are tuned) and
    ``selected`` (the configuration the suite's rule selects at that size and data point).
    The validation metric's column (the task's, e.g. ``val_regret``) is emptied for cells that
    did not end ok: only those enter a selection.
    """
    frame = records.copy()
    size_params = _size_params(frame)
    problem_params = frame["problem_params"].map(_params)
    frame["data"] = [data_key(p, s) if s is not None else "{}"
                     for p, s in zip(problem_params, size_params, strict=True)]
    frame["data_label"] = ""
    for _, part in frame.groupby(["suite", "problem"], sort=False):
        points = [json.loads(d) for d in pd.unique(part["data"])]
        varying = sorted({k for p in points for k in p
                          if len({json.dumps(q.get(k)) for q in points}) > 1})
        if varying:
            frame.loc[part.index, "data_label"] = [
                ",".join(f"{k}={format_value(json.loads(d).get(k))}" for k in varying)
                for d in part["data"]]
    identities, configurations, tuned = [], [], []
    for _, row in frame.iterrows():
        keys = tunings.get(str(row["suite"]), Tuning()).keys(str(row["method"]))
        identity, configuration = split_label(str(row["method"]), str(row["method_label"]),
                                              _params(row["params"]), keys)
        identities.append(identity)
        configurations.append(configuration)
        tuned.append(bool(keys))
    frame["identity"], frame["configuration"], frame["tuned"] = identities, configurations, tuned
    metric = task_of(frame["task"]).validation
    frame[metric.name] = [_finite(v) if s == "ok" else None
                          for v, s in zip(frame[metric.name], frame["status"], strict=True)]
    selections = {str(suite): _select(part, tunings.get(str(suite), Tuning()), metric)
                  for suite, part in frame.groupby("suite", sort=True)}
    frame["selected"] = [_is_selected(selections[str(row["suite"])], row)
                         for _, row in frame.iterrows()]
    return frame, selections


def without_shared_parameters(
        records: pd.DataFrame, shared: frozenset[str] | None = None,
) -> tuple[pd.DataFrame, frozenset[str]]:
    """``records`` with labels that leave out the parameters every method was given with the
    same value, and those ``name=value`` items.

    ``lr=0.01`` on every label of a page says nothing about any method: the page says it once.
    Such an item is never a tuned parameter's (a tuned one takes several values). With one label
    nothing is shared; ``shared`` imposes the items (a baseline drops its report's).
    """
    parts = [_label_items(str(m), str(label))
             for m, label in zip(records["method"], records["method_label"], strict=True)]
    if shared is None:
        distinct = set(zip(records["method"], records["method_label"], strict=True))
        sets = [frozenset(p) for p in parts]
        shared = frozenset.intersection(*sets) if len(distinct) > 1 and sets else frozenset()
    if not shared:
        return records, shared
    frame = records.copy()
    frame["method_label"] = [
        label if not items else
        str(m) + (f"[{','.join(i for i in items if i not in shared)}]"
                  if any(i not in shared for i in items) else "")
        for m, label, items in zip(frame["method"], frame["method_label"], parts, strict=True)]
    return frame, shared


def _label_items(method: str, label: str) -> list[str]:
    """The ``name=value`` items of a label ``method[k=v,...]``; none for a label that does not
    read that way."""
    if not (label.startswith(method + "[") and label.endswith("]")):
        return []
    items = label[len(method) + 1 : -1].split(",")
    return items if all("=" in i for i in items) else []


def describe_shared(shared: frozenset[str]) -> str:
    """The items :func:`without_shared_parameters` left out, as a page says them."""
    return ", ".join(sorted(shared))


def group_of(row: Mapping[str, Any]) -> tuple[str, str, str]:
    """The selection group of an annotated record or aggregate row: suite, problem, data."""
    return (str(row["suite"]), str(row["problem"]), str(row["data"]))


def _select(part: pd.DataFrame, tuning: Tuning, metric: Metric) -> Selections:
    """The selections of one suite's annotated records under its rule, by the validation
    ``metric`` (validation data only)."""
    trials = [Trial(group=group_of(row), size=int(row["size"]), identity=str(row["identity"]),
                    configuration=str(row["configuration"]), label=str(row["method_label"]),
                    seed=int(row["seed"]), val_score=_finite(row[metric.name]),
                    size_param=row["size_param"] if isinstance(row["size_param"], str)
                    else "size")
              for _, row in part.iterrows()]
    return select(trials, tuning, metric)


def _is_selected(selections: Selections, row: pd.Series) -> bool:
    choice = selections.choice(group_of(row), int(row["size"]), str(row["identity"]))
    return choice is not None and choice.label == row["method_label"]


def _finite(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def ranked(records: pd.DataFrame) -> pd.DataFrame:
    """The records that represent each method on the leaderboard, ``method_label`` set to the
    identity: the selected configuration's cells, or, for an identity without a selection at a
    size and data point (none of its configurations has an ok validation score), all its cells
    there, which then count as attempted but hold no measurement."""
    keys = ["suite", "problem", "data", "size", "identity"]
    chosen = records[records["selected"]]
    have = set(map(tuple, chosen[keys].astype(str).to_numpy()))
    lacking = records[[tuple(k) not in have for k in records[keys].astype(str).to_numpy()]]
    lacking = lacking.assign(status=lacking["status"].where(lacking["status"] != "ok",
                                                            "not selected"))
    return pd.concat([chosen, lacking]).assign(method_label=lambda f: f["identity"]) \
        .reset_index(drop=True)
