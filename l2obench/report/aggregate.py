"""Aggregate records over seeds: one row per (suite, problem, data point, size, method_label).

Only cells with status ``ok`` enter the means: a failed or timed-out cell has no trustworthy
measurement (a timeout's model is untrained), so it is counted in ``attempted`` and listed in
``statuses`` instead, and the plots and tables show it as such. Each metric gets its mean over
the ok seeds and a 95 % t-interval (Student t with n − 1 degrees of freedom times the standard
error), the interval the field's papers report over a handful of seeds; with one seed there is
no interval (``lo``/``hi`` are NaN, and the pages show the value without ``±``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import stats

from l2obench.record import Status, ended_by_a_clock, ran_busy
from l2obench.tasks.base import Task, task_of

#: The cells of one aggregate row.
GROUP = ["suite", "problem", "data", "size", "method_label"]
#: Columns that are equal within a group and carried into its row when the records have them
#: (:func:`l2obench.report.configurations.annotate` adds them).
CARRIED = ["data_label", "identity", "configuration", "tuned", "selected"]

#: The measurements every task family's cells have, aggregated after the task's ranking and
#: validation metrics and before its other metrics, with how pages and plots name them.
RUN_METRICS: dict[str, str] = {
    "test_loss": "test loss",
    "train_time_s": "training time (s)",
    "time_to_best_s": "time to best epoch (s)",
    "time_per_epoch_s": "time per epoch (s)",
    "epochs": "epochs trained",
    "peak_mem_mb": "host memory increase (MB)",
    "device_peak_mem_mb": "device memory increase (MB)",
    "fwd_iters_mean": "forward iterations",
    "bwd_iters_mean": "backward iterations",
}


def records_task(frame: pd.DataFrame) -> Task:
    """The task family of a table of records (its ``task`` column; records without one are of
    the default family); records of several families are an input error (:func:`task_of`)."""
    return task_of(frame.get("task", []))


def metric_labels(task: Task) -> dict[str, str]:
    """Every aggregated metric (a results-table column) and how pages and plots name it, units
    included: the task's ranking metric, its validation metric, :data:`RUN_METRICS`, the
    task's other metrics, then its extras."""
    rank, validation = task.ranking(), task.validation
    return {rank.name: rank.axis_label, validation.name: validation.axis_label, **RUN_METRICS,
            **{m.name: m.axis_label for m in task.metrics if m.name != rank.name},
            **{m.name: m.axis_label for m in task.extras}}


CONFIDENCE = 0.95
#: The mark of a block whose cells ran on a machine busier than its cores (see :func:`busy`).
LOAD_MARK = "‡"
AGGREGATION_NOTE = (
    "Each number is the mean over seeds of the cells with status ok, ± the half-width of a "
    "95 % t-interval (Student t quantile with n − 1 degrees of freedom × the standard error "
    "over the n seeds); a value without ± rests on one seed (the “solved” column counts the "
    "seeds). "
    "Cells with another status (failed, timeout, oom, diverged, skipped) do not enter the "
    "means: they are counted in “solved” (ok cells / cells attempted) and marked in the plots. "
    "Memory is the increase of the peak during training above the level before training (host: "
    "resident memory; device: CUDA allocations), not the absolute peak, which the records do "
    "not hold. Backward iterations marked “capped” count the training steps whose adjoint solve "
    "stopped at its iteration cap before its tolerance (summed over the ok seeds). "
    "“ended by the clock” in the statuses counts the cells whose training the seconds budget "
    "stopped before their epochs were done, or that timed out: how far they got depends on "
    "the speed of the machine. "
    f"{LOAD_MARK} marks a cell that ran while the 1-minute load average of the machine exceeded "
    "its cores (at the start or the end of the cell): its seconds are those of a shared machine."
)


def mean_interval(values: Iterable[float | None]) -> tuple[float, float, float]:
    """Mean and 95 % t-interval ``(mean, lo, hi)`` of the finite ``values`` (empty ones skipped).

    No values give three NaNs; one value gives its mean and a NaN interval (a single seed says
    nothing about the spread); equal values give a zero-width interval.
    """
    x = np.asarray([v for v in values if v is not None and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    mean = float(x.mean())
    if len(x) == 1:
        return mean, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + CONFIDENCE / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return mean, mean - half, mean + half


def format_statuses(statuses: pd.Series) -> str:
    """``"ok 2, failed 1"``: each status seen with its count, ``ok`` first, others by name."""
    counts = statuses.fillna("unknown").astype(str).value_counts()
    order = sorted(counts.index, key=lambda s: (s != Status.OK, s))
    return ", ".join(f"{status} {counts[status]}" for status in order)


def aggregate(records: pd.DataFrame, metrics: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per (suite, problem, data point, size, method_label), sorted by those.

    Columns: the group keys (``data`` is ``""`` for records not annotated with their data
    point), ``method``, the :data:`CARRIED` columns the records have, ``n_vars`` (of the size,
    from any record that has it: failed cells may not), ``attempted``, ``solved`` (ok cells),
    ``statuses``, ``busy`` (cells that ran on a machine busier than its cores, :func:`busy`),
    ``clocked`` (cells a clock ended, :func:`clock_ended`),
    ``load_recorded`` (cells whose records hold the load), ``bwd_capped`` (training steps whose
    adjoint solve hit its cap, summed over the ok seeds; NaN where not recorded) and, for every
    metric of :func:`metric_labels` (of the records' task family), ``<metric>_mean``,
    ``<metric>_lo``,
    ``<metric>_hi`` and ``<metric>_n`` (the ok seeds with a value). A metric missing from the
    records (an older record format) is treated as having no values. ``metrics`` names other
    record columns to aggregate instead (the terminal's summary of a run shows the epochs too).
    """
    if "data" not in records:
        records = records.assign(data="")
    n_vars = (records.dropna(subset=["n_vars"]).groupby(["suite", "problem", "size"])["n_vars"]
              .first() if "n_vars" in records else pd.Series(dtype=float))
    rows = []
    metrics = list(metric_labels(records_task(records)) if metrics is None else metrics)
    for key, cells in records.groupby(GROUP, sort=True):
        row = dict(zip(GROUP, key, strict=True))
        ok = cells[cells["status"] == Status.OK]
        row["method"] = cells["method"].iloc[0]
        row.update({c: cells[c].iloc[0] for c in CARRIED if c in cells})
        row["n_vars"] = n_vars.get((key[0], key[1], key[3]), math.nan)
        row["attempted"] = len(cells)
        row["solved"] = len(ok)
        row["statuses"] = format_statuses(cells["status"])
        row["busy"] = int(busy(cells).sum())
        row["clocked"] = int(clock_ended(cells).sum())
        row["load_recorded"] = int(load_recorded(cells).sum())
        capped = (pd.to_numeric(ok["bwd_unconverged"], errors="coerce").dropna()
                  if "bwd_unconverged" in ok else pd.Series(dtype=float))
        row["bwd_capped"] = float(capped.sum()) if len(capped) else math.nan
        for metric in metrics:
            values = (pd.to_numeric(ok[metric], errors="coerce").dropna().tolist()
                      if metric in ok else [])
            row[f"{metric}_mean"], row[f"{metric}_lo"], row[f"{metric}_hi"] = \
                mean_interval(values)
            row[f"{metric}_n"] = len(values)
        rows.append(row)
    return pd.DataFrame(rows)


def clock_ended(records: pd.DataFrame) -> pd.Series:
    """Whether each cell was ended by a clock (:func:`~l2obench.record.ended_by_a_clock`)."""
    stopped = records["stopped_by"] if "stopped_by" in records else [None] * len(records)
    return pd.Series([ended_by_a_clock(b, s) for b, s in zip(stopped, records["status"],
                                                             strict=True)],
                     index=records.index, dtype=bool)


def load_recorded(records: pd.DataFrame) -> pd.Series:
    """Which records hold a load average and the machine's cores (older records do not)."""
    if not {"n_cores", "load_start", "load_end"} <= set(records):
        return pd.Series(False, index=records.index)
    cores = pd.to_numeric(records["n_cores"], errors="coerce")
    loads = records[["load_start", "load_end"]].apply(pd.to_numeric, errors="coerce")
    return cores.notna() & loads.notna().any(axis=1)


def busy(records: pd.DataFrame) -> pd.Series:
    """Which records ran while the machine was busier than its cores (:func:`ran_busy`: their
    threads waited for a core, or, in records without that measurement, a 1-minute load
    average above ``n_cores`` at the cell's start or end; False where neither was recorded)."""
    columns = ("cpu_s", "cpu_wait_s", "load_start", "load_end", "n_cores")
    values = pd.DataFrame({c: pd.to_numeric(records[c], errors="coerce") if c in records
                           else math.nan for c in columns}, index=records.index)
    return pd.Series([ran_busy(_number(cpu), _number(wait), _number(start), _number(end),
                               None if math.isnan(cores) else int(cores))
                      for cpu, wait, start, end, cores in values.itertuples(index=False)],
                     index=records.index, dtype=bool)


def _number(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


def has_data(agg: pd.DataFrame, metric: str) -> bool:
    """Whether any aggregate row has a mean for ``metric``."""
    return bool(agg[f"{metric}_mean"].notna().any())
