"""Leaderboard pages: ranking tables per size and overall, provenance, figures.

The same tables go into ``LEADERBOARD.md`` (GitHub renders it; images linked relatively) and a
self-contained ``index.html`` (inline CSS, images beside it, a Content-Security-Policy that
forbids any request off the page's own folder). Both come from the templates in ``templates/``;
the HTML one escapes every value.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import numpy as np
import pandas as pd
from markdown_it import MarkdownIt
from markupsafe import Markup

from l2obench.record import WAIT_LIMIT, Status
from l2obench.report.aggregate import (
    AGGREGATION_NOTE,
    LOAD_MARK,
    RUN_METRICS,
    busy,
    has_data,
    load_recorded,
    metric_labels,
    records_task,
)
from l2obench.report.baseline import baseline_note
from l2obench.report.plots import PlotFiles
from l2obench.report.references import Reference
from l2obench.report.stats import Paired, RankTest, rank_test, statistics_note, versus_best
from l2obench.selection import Selections
from l2obench.tasks.base import Metric, Task


def ranking_rule(task: Task) -> str:
    """How the pages rank methods, in words, for ``task``'s ranking and validation metrics."""
    rank = task.ranking()
    better = "lower" if rank.direction == "min" else "higher"
    return (
        "A method is its name with the parameters the suite set that are not tuned; where the "
        "suite declares tuning grids, it is represented at each size and data point by the "
        f"configuration its rule selects on {task.validation.label} (stated under Tuning; test "
        "data never enter a selection). At each size and data point, methods are ranked by mean "
        f"{rank.label} ({better} is better), ties broken by mean training time; a method "
        "without an ok cell there ranks last (tied with any other such method); a method with no "
        "record at a size (a suite that runs some methods only at some sizes, such as a panel at "
        "the largest) is not ranked there. The overall rank orders methods by their average rank "
        "over the sizes and data points where all of them have records (ties sharing the "
        "average of their places, a method without an ok cell sharing the last places), ties "
        "broken by their mean rank of training time. Where methods have records at different "
        "sizes, there is one overall ranking per set of methods recorded at a size: every "
        "method over the sizes where all of them ran, then the methods run at more sizes over "
        "those."
    )
#: Record columns that say where and with what the records were made, as the pages name them.
PROVENANCE_COLUMNS = {
    "budget_max_epochs": "protocol: max epochs per cell",
    "budget_max_seconds": "protocol: max training seconds per cell",
    "n_train": "protocol: training instances",
    "n_val": "protocol: validation instances (model selection)",
    "n_test": "protocol: test instances",
    "seed": "protocol: seeds",
    "hostname": "host",
    "torch_threads": "torch threads",
    "l2obench_version": "l2obench",
    "torch_version": "torch",
    "numpy_version": "numpy",
    "python_version": "python",
    "git_commit": "git commit",
}
_ERROR_CHARS = 300


@dataclass
class Table:
    """A rendered table: header, rows of text, which columns are numbers (right-aligned), and
    which rows are bold (a tie group; empty: none)."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]
    bold: list[bool] = field(default_factory=list)


@dataclass
class SizeSection:
    """The ranking table of one problem size at one data point, and its configurations."""

    size: str
    n_vars: str  # "40 decision variables", or unknown when no cell of the size got that far
    table: Table
    absent: str = ""  # the section's methods without a record here, by name ("" where none)
    data: str = ""  # the data point, by the parameters that vary ("" where none does)
    configurations: Table | None = None  # every configuration, the selected ones marked
    losses: Table | None = None  # test losses, between methods sharing a training objective


@dataclass
class FigureLink:
    """A figure as the pages link it: paths relative to the page."""

    title: str
    png: str
    svg: str


@dataclass
class PublishedTable:
    """Numbers another project published (:mod:`l2obench.report.references`) beside
    l2obench's: the reference's name, its source in its own words, the table."""

    name: str
    source: str
    table: Table


@dataclass
class Ranking:
    """One overall ranking: some methods over the blocks (sizes × data points) where all of them
    have records, with its rank test."""

    title: str  # which methods over which sizes ("" for the only ranking of a section)
    stem: str  # the name its table files carry: "overall", "overall-2", …
    table: Table
    statistics: str  # the Friedman/Nemenyi summary


@dataclass
class Section:
    """Everything the pages show for one (suite, problem)."""

    suite: str
    problem: str
    rankings: list[Ranking]
    sizes: list[SizeSection]
    figures: list[FigureLink]
    not_ok: Table | None
    counts: str
    tuning: str = ""  # the tuning rule in words ("" without tuning)
    selection: Table | None = None  # the selected configuration per method, and why
    baseline: Table | None = None  # each method's change against a baseline
    baseline_name: str = ""
    references: list[PublishedTable] = field(default_factory=list)  # numbers others published
    machine: str = ""  # the CPU (or GPU) model the records were measured on, and its cores
    busy: int = 0  # cells that ran on a machine busier than its cores (marked in the tables)


def fmt(value: float) -> str:
    """A number for a table: three significant digits, thousands without an exponent."""
    if value is None or not math.isfinite(value):
        return "—"
    if value == 0:
        return "0"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) < 1e-3:
        return f"{value:.2e}"
    return f"{value:.3g}"


def estimate(row: pd.Series, metric: str) -> str:
    """``mean ± half-width``; the mean alone from one seed (the page says so once); ``—``
    without data."""
    mean, hi, n = row[f"{metric}_mean"], row[f"{metric}_hi"], row[f"{metric}_n"]
    if not math.isfinite(mean):
        return "—"
    if n == 1:
        return fmt(mean)
    half = hi - mean
    # Equal values give a half-width of rounding noise (1e-17), not a measured spread.
    return f"{fmt(mean)} ± {fmt(half if half > 1e-9 * abs(mean) else 0.0)}"


def ranks(agg: pd.DataFrame, methods: Sequence[str], metric: str,
          tiebreak: str | None = None, sign: float = 1.0) -> dict[str, int]:
    """Rank of every method in ``methods`` on ``metric`` in ``agg``: lower is better, or higher
    with ``sign = −1`` (a metric's :attr:`~l2obench.tasks.base.Metric.sign`).

    ``agg`` holds one size's aggregate rows. Ties on ``metric`` are broken by ``tiebreak``;
    methods equal on both share the better rank. A method without a mean (no ok cell, or no
    row at all) ranks last: ``len(methods)``.
    """
    by_method = agg.set_index("method_label")

    def key(method: str, column: str | None) -> float:
        if column is None or method not in by_method.index:
            return math.nan
        return float(by_method.at[method, f"{column}_mean"])

    keys = {m: (sign * key(m, metric), key(m, tiebreak)) for m in methods}
    ranked = {m: k for m, k in keys.items() if math.isfinite(k[0])}

    def order(k: tuple[float, float]) -> tuple[float, bool, float]:
        return (k[0], not math.isfinite(k[1]), k[1] if math.isfinite(k[1]) else 0.0)

    result = {m: len(methods) for m in methods}
    for method, k in ranked.items():
        result[method] = 1 + sum(order(other) < order(k) for other in ranked.values())
    return result


def blocks(agg: pd.DataFrame) -> list[tuple[str, object]]:
    """The (data point, size) blocks of ``agg``, in order (data ``""`` where not annotated)."""
    data = agg["data"] if "data" in agg else pd.Series([""] * len(agg), index=agg.index)
    return sorted({(str(d), s) for d, s in zip(data, agg["size"], strict=True)},
                  key=lambda b: (b[0], b[1]))


def _block_rows(agg: pd.DataFrame, block: tuple[str, object]) -> pd.DataFrame:
    data = agg["data"].astype(str) if "data" in agg else pd.Series("", index=agg.index)
    return agg[(data == block[0]) & (agg["size"] == block[1])]


def rank_matrix(agg: pd.DataFrame, methods: Sequence[str], metric: str,
                sign: float = 1.0) -> np.ndarray:
    """``sign`` × mean ``metric`` [blocks × methods], lower being better (NaN: no ok cell
    there)."""
    rows = []
    for block in blocks(agg):
        by_method = _block_rows(agg, block).set_index("method_label")[f"{metric}_mean"]
        rows.append([sign * float(by_method.get(m, math.nan)) for m in methods])
    return np.asarray(rows, dtype=float).reshape(len(rows), len(methods))


def rosters(agg: pd.DataFrame) -> list[tuple[list[str], list[tuple[str, object]]]]:
    """The overall rankings of one (suite, problem): ``(methods, blocks)`` pairs.

    A suite may run some methods only at some sizes (a panel at the largest): ranking a method
    last where it was never meant to run would rank the suite's design, not the method. So each
    distinct set of methods recorded at a block is ranked over every block where all of them
    have records, the largest set first; a set that would repeat a larger one's blocks is
    left out. A suite whose methods all ran everywhere has one ranking: every method, every
    block.
    """
    every = blocks(agg)
    present = {b: frozenset(_block_rows(agg, b)["method_label"]) for b in every}
    chosen: list[tuple[frozenset[str], list[tuple[str, object]]]] = []
    for roster in sorted(set(present.values()), key=lambda r: (-len(r), sorted(r))):
        where = [b for b in every if roster <= present[b]]
        if not any(roster < larger and where == seen for larger, seen in chosen):
            chosen.append((roster, where))
    return [(sorted(roster), where) for roster, where in chosen]


def _restrict(agg: pd.DataFrame, methods: Sequence[str],
              where: Sequence[tuple[str, object]]) -> pd.DataFrame:
    """The rows of ``agg`` for ``methods`` at the blocks ``where``."""
    data = agg["data"].astype(str) if "data" in agg else pd.Series("", index=agg.index)
    at = pd.Series(list(zip(data, agg["size"], strict=True)), index=agg.index).isin(where)
    return agg[at & agg["method_label"].isin(methods)]


def overall_ranking(agg: pd.DataFrame, rank: Metric) -> tuple[pd.DataFrame, RankTest]:
    """One row per method of one (suite, problem), best first on the ranking metric ``rank``
    (see :func:`ranking_rule`), and the rank test behind it.

    Columns: ``method_label``, ``rank``, ``mean_rank`` (average rank over the blocks, sizes ×
    data points), ``mean_time_rank``, ``solved``, ``attempted`` and one ``rank@<block>`` per
    block (``rank@<size>`` where the data point does not vary).
    """
    from l2obench.report.stats import average_ranks

    methods = sorted(pd.unique(agg["method_label"]))
    test = rank_test(rank_matrix(agg, methods, rank.name, rank.sign), methods)
    regret = average_ranks(rank_matrix(agg, methods, rank.name, rank.sign))
    time = average_ranks(rank_matrix(agg, methods, "train_time_s"))
    names = [_block_name(agg, b) for b in blocks(agg)]
    totals = agg.groupby("method_label")[["solved", "attempted"]].sum()
    rows = []
    for j, method in enumerate(methods):
        row = {"method_label": method, "mean_rank": test.average_ranks[method],
               "mean_time_rank": float(time[:, j].mean()),
               "solved": int(totals.at[method, "solved"]),
               "attempted": int(totals.at[method, "attempted"])}
        row.update({f"rank@{name}": float(regret[i, j]) for i, name in enumerate(names)})
        rows.append(row)
    frame = pd.DataFrame(rows).sort_values(["mean_rank", "mean_time_rank", "method_label"])
    keys = list(zip(frame["mean_rank"], frame["mean_time_rank"], strict=True))
    frame.insert(1, "rank", [1 + keys.index(k) for k in keys])
    return frame.reset_index(drop=True), test


def _block_name(agg: pd.DataFrame, block: tuple[str, object]) -> str:
    """``5`` (the size) where data do not vary, else ``5, deg=4`` (size and data label)."""
    rows = _block_rows(agg, block)
    label = str(rows["data_label"].iloc[0]) if "data_label" in rows and len(rows) else ""
    return f"{_plain(block[1])}, {label}" if label else _plain(block[1])


def _shown_metrics(agg: pd.DataFrame, task: Task) -> list[str]:
    """The metrics of the ranking tables: those of ``task`` (:func:`metric_labels`) with data
    anywhere in ``agg``, the test loss excepted (losses of different objectives share no scale:
    :func:`loss_table` has them)."""
    return [m for m in metric_labels(task) if m != "test_loss" and has_data(agg, m)]


def bold_if_separating(bold: list[bool]) -> list[bool]:
    """``bold`` where it sets some rows apart from others; none where every row (or none) is
    bold, which separates nothing."""
    return bold if any(bold) and not all(bold) else []


def best_method(rows: pd.DataFrame, methods: Sequence[str], metric: Metric) -> str | None:
    """The rank-1 method of one block on ``metric`` (``None`` when no method has an ok cell
    there)."""
    rank = ranks(rows, methods, metric.name, "train_time_s", metric.sign)
    valued = set(rows.loc[rows[f"{metric.name}_mean"].notna(), "method_label"]) & set(methods)
    return min(valued, key=lambda m: (rank[m], m)) if valued else None


def _versus(best: str | None, method: str, paired: Mapping[str, Paired]) -> str:
    if best is None:
        return "—"
    if method == best:
        return "best"
    result = paired.get(method)
    if result is None:
        return "—"
    return f"p = {result.p_holm:.2g}" + (" (tie)" if result.tie else "")


def size_table(rows: pd.DataFrame, methods: Sequence[str], metrics: Sequence[str], task: Task,
               regrets: Mapping[str, Mapping[int, Sequence[float]]] | None = None,
               configured: bool = False) -> Table:
    """One block's ranking on ``task``'s ranking metric: ``methods`` (those with a row in
    ``rows``), in rank order.

    ``regrets`` (method → seed → per-instance values of the ranking metric, oriented so that
    larger is worse: :func:`_per_instance`) give the paired test of each method against the
    best; the best and the methods not significantly worse are bold (nothing is
    bold without the test, or where every method ties). The regret, the paired test and the
    statuses come first, so that they stay in view on a narrow screen; a status marked
    :data:`~l2obench.report.aggregate.LOAD_MARK` had cells on a machine busier than its cores,
    and backward iterations say how many steps' adjoint solves were capped. With
    ``configured`` a column names the configuration each method is represented by.
    """
    metric = task.ranking()
    rank = ranks(rows, methods, metric.name, "train_time_s", metric.sign)
    by_method = rows.set_index("method_label")
    best = best_method(rows, methods, metric)
    paired = versus_best(regrets, best) if regrets and best is not None and best in regrets \
        else {}
    lead = [m for m in metrics if m == metric.name]
    rest = [m for m in metrics if m != metric.name]
    labels = metric_labels(task)
    body, bold = [], []
    for method in sorted(methods, key=lambda m: (rank[m], m)):
        row = by_method.loc[method]
        cells = [_metric_cell(row, m) for m in [*lead, *rest]]
        solved = f"{int(row['solved'])}/{int(row['attempted'])}"
        clocked = int(row.get("clocked", 0) or 0)
        statuses = (str(row["statuses"]) + (f", {clocked} ended by the clock" if clocked else "")
                    + (f" {LOAD_MARK}" if row.get("busy", 0) else ""))
        config = [str(row.get("configuration") or "") or "—"] if configured else []
        versus = _versus(best, method, paired)
        body.append([str(rank[method]), method, *config, *cells[:len(lead)], versus, solved,
                     statuses, *cells[len(lead):]])
        bold.append(versus == "best" or versus.endswith("(tie)"))
    columns = ["rank", "method", *(["configuration"] if configured else []),
               *(labels[m] for m in lead), "paired test vs best (Holm p)", "solved",
               "statuses", *(labels[m] for m in rest)]
    return Table(columns, body, [True, False, *([False] if configured else []),
                                 *([True] * len(lead)), True, True, False,
                                 *([True] * len(rest))],
                 bold_if_separating(bold) if paired else [])


def _metric_cell(row: pd.Series, metric: str) -> str:
    """A metric's estimate; backward iterations with the steps whose adjoint solve was capped."""
    text = estimate(row, metric)
    capped = row.get("bwd_capped", math.nan) if metric == "bwd_iters_mean" else math.nan
    if isinstance(capped, float) and math.isfinite(capped) and capped > 0 and text != "—":
        text += f" (capped: {int(capped)})"
    return text


def loss_table(rows: pd.DataFrame, records: pd.DataFrame) -> Table | None:
    """One block's test losses, grouped by training objective, for the objectives that two or
    more methods share (losses of different objectives share no scale); ``None`` without
    any, and for records that do not name their objective."""
    if "objective" not in records or "test_loss_mean" not in rows:
        return None
    named = records.dropna(subset=["objective"])
    labels = named.groupby("objective")["method_label"].unique()
    by_method = rows.set_index("method_label")
    body = []
    for objective in sorted(labels.index):
        members = sorted(m for m in labels[objective] if m in by_method.index
                         and math.isfinite(by_method.at[m, "test_loss_mean"]))
        if len(members) < 2:
            continue
        members.sort(key=lambda m: (by_method.at[m, "test_loss_mean"], m))
        body += [[str(objective), m, estimate(by_method.loc[m], "test_loss")] for m in members]
    if not body:
        return None
    return Table(["objective", "method", RUN_METRICS["test_loss"]], body, [False, False, True])


#: Blocks beyond which the overall table leaves out the per-block ranks (the per-block tables
#: hold them).
MAX_BLOCK_COLUMNS = 12


def overall_rankings(agg: pd.DataFrame, rank: Metric) -> list[Ranking]:
    """The overall rankings of one (suite, problem) (:func:`rosters`), titled where there are
    several."""
    pairs = rosters(agg)
    every = blocks(agg)
    result = []
    for i, (methods, where) in enumerate(pairs):
        table, test = overall_table(_restrict(agg, methods, where), rank)
        title = ""
        if len(pairs) > 1:
            names = [_block_name(agg, b) for b in where]
            plural = "s" if len(names) > 1 else ""
            at = (f"every size ({', '.join(names)})" if where == every
                  else f"size{plural} {', '.join(names)}" if len(names) <= MAX_BLOCK_COLUMNS
                  else f"{len(names)} of the {len(every)} sizes × data points")
            title = f"{_count(len(methods), 'method')} recorded at {at}"
        result.append(Ranking(title, "overall" if i == 0 else f"overall-{i + 1}", table,
                              test.summary()))
    return result


def overall_table(agg: pd.DataFrame, rank: Metric) -> tuple[Table, RankTest]:
    """The overall ranking on ``rank`` with each block's rank, so the mean can be checked by eye
    (up to :data:`MAX_BLOCK_COLUMNS` blocks); the methods within the critical difference of the
    best are bold."""
    frame, test = overall_ranking(agg, rank)
    names = [_block_name(agg, b) for b in blocks(agg)]
    shown = names if len(names) <= MAX_BLOCK_COLUMNS else []
    within = set(test.within_cd_of_best())
    body = [[str(r["rank"]), r["method_label"], f"{r['mean_rank']:.2f}",
             *(_plain(r[f"rank@{n}"]) for n in shown), f"{r['mean_time_rank']:.2f}",
             f"{r['solved']}/{r['attempted']}"] for _, r in frame.iterrows()]
    columns = ["rank", "method", f"mean {rank.short_label} rank", *(f"size {n}" for n in shown),
               "mean time rank", "solved"]
    return (Table(columns, body, [True, False, True, *([True] * len(shown)), True, True],
                  bold_if_separating([m in within for m in frame["method_label"]])), test)


def one_block_overall(table: Table, task: Task) -> Table:
    """The overall ranking of a suite with one size and data point: its block's ranking (the
    paired test's tie groups bold) with the ranking metric, the test, the statuses and the
    time; ranks averaged over one block would only repeat it."""
    labels = metric_labels(task)
    kept = ("rank", "method", "configuration", labels[task.rank_metric],
            "paired test vs best (Holm p)", "solved", "statuses", labels["train_time_s"])
    keep = [i for i, c in enumerate(table.columns) if c in kept]
    return Table([table.columns[i] for i in keep], [[row[i] for i in keep] for row in table.rows],
                 [table.numeric[i] for i in keep], table.bold)


def configurations_table(rows: pd.DataFrame, task: Task) -> Table:
    """Every configuration at one block: the validation metric (what selects), the test ranking
    metric, time to the best epoch; the configuration representing each method is marked
    ``selected``, best validation score first."""
    val = task.validation
    metrics = [m for m in (val.name, task.rank_metric, "time_to_best_s") if has_data(rows, m)]
    labels = metric_labels(task)
    mean = rows.get(f"{val.name}_mean", pd.Series(math.nan, index=rows.index))
    ordered = rows.assign(_v=val.sign * pd.to_numeric(mean, errors="coerce"))
    ordered = ordered.sort_values(["identity", "_v", "method_label"], na_position="last")
    body = [[r["method_label"], str(r.get("identity", r["method_label"])),
             str(r.get("configuration") or "—"),
             *(estimate(r, m) for m in metrics), f"{int(r['solved'])}/{int(r['attempted'])}",
             "selected" if r.get("selected") else ""] for _, r in ordered.iterrows()]
    return Table(["configuration", "method", "tuned values", *(labels[m] for m in metrics),
                  "solved", "selected"], body,
                 [False, False, False, *([True] * len(metrics)), True, False])


def selection_table(agg: pd.DataFrame, selections: Selections) -> Table | None:
    """The configuration selected for each tuned method, at each size (or once, at the tuning
    size) and data point, and why; ``None`` when no method is tuned."""
    from l2obench.report.configurations import group_of

    tuned = agg[agg["tuned"].astype(bool)] if "tuned" in agg else agg.iloc[0:0]
    if tuned.empty:
        return None
    rule = selections.tuning
    seen, body = set(), []
    varying = bool(tuned["data_label"].astype(bool).any()) if "data_label" in tuned else False
    for _, row in tuned.sort_values(["identity", "data", "size"]).iterrows():
        size = selections.selection_size(int(row["size"]))
        key = (row["identity"], row["data"], size)
        if key in seen:
            continue
        seen.add(key)
        choice = selections.choice(group_of(row), int(row["size"]), str(row["identity"]))
        where = (f"{_plain(size)} (fixed for every size)" if rule.rule == "at-size"
                 else _plain(size))
        body.append([str(row["identity"]), *([str(row["data_label"])] if varying else []),
                     where, choice.configuration if choice else "—",
                     choice.reason if choice else selections.why_none(
                         group_of(row), int(row["size"]), str(row["identity"]))])
    return Table(["method", *(["data"] if varying else []), "size", "selected configuration",
                  "why"], body, [False, *([False] if varying else []), True, False, False])


def not_ok_table(records: pd.DataFrame) -> Table | None:
    """Every cell that is not ok, with its error's first line; ``None`` when all are ok."""
    bad = records[records["status"] != Status.OK].sort_values(["size", "method_label", "seed"])
    if bad.empty:
        return None
    varying = "data_label" in bad and bool(bad["data_label"].astype(bool).any())
    body = [[_plain(r["size"]), *([str(r["data_label"])] if varying else []), r["method_label"],
             _plain(r["seed"]), r["status"], _first_line(r.get("error"))]
            for _, r in bad.iterrows()]
    return Table(["size", *(["data"] if varying else []), "method", "seed", "status", "error"],
                 body, [True, *([False] if varying else []), False, True, False, False])


def _first_line(error: object) -> str:
    if not isinstance(error, str) or not error:
        return ""
    line = error.strip().splitlines()[0] if error.strip() else ""
    return line if len(line) <= _ERROR_CHARS else line[: _ERROR_CHARS - 1] + "…"


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _plain(value: object) -> str:
    """Integers without a decimal point (pandas may hand them over as floats)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _per_instance(records: pd.DataFrame, metric: Metric) -> dict[str, dict[int, list[float]]]:
    """Method → seed → per-instance test values of ``metric`` of the ok cells of one block that
    have them, times the metric's sign (so that larger is worse, what the paired test of
    :func:`~l2obench.report.stats.versus_best` asks)."""
    found: dict[str, dict[int, list[float]]] = {}
    column = metric.per_instance
    if column is None or column not in records:
        return found
    for _, r in records[records["status"] == "ok"].iterrows():
        if isinstance(r[column], list) and r[column]:
            found.setdefault(str(r["method_label"]), {})[int(r["seed"])] = \
                [metric.sign * v for v in r[column]]
    return found


def baseline_table(changes: pd.DataFrame | None, metric: Metric) -> Table | None:
    """Each method's change against the baseline (:func:`l2obench.report.baseline.compare`)."""
    if changes is None or changes.empty:
        return None
    body = []
    ordered = changes.assign(_v=metric.sign * changes["now"])
    for _, row in ordered.sort_values(["size", "data", "_v"]).iterrows():
        p = row["p_value"]
        body.append([_plain(row["size"]), str(row.get("data_label", "") or _data(row["data"])),
                     row["method_label"], fmt(row["now"]), fmt(row["baseline"]),
                     f"{row['change']:+.3g}", _plain(row["seeds"]),
                     "—" if not math.isfinite(p) else f"{p:.2g}", row["verdict"]])
    short = metric.short_label
    return Table(["size", "data", "method", f"{short} now", f"{short} baseline", "change",
                  "seeds", "p (Wilcoxon)", "verdict"], body,
                 [True, False, False, True, True, True, True, True, False])


def published_table(comparison: pd.DataFrame, reference: Reference,
                    labels: Mapping[str, str], size_param: str) -> PublishedTable:
    """A reference's rows (:func:`l2obench.report.references.compare_reference`) as a table:
    for each compared column, l2obench's mean (min–max) over the seeds, the reference's, and
    their ratio."""
    columns = [c for c in reference.columns() if f"{c}_ours_mean" in comparison]
    sources = "source_method" in reference.rows
    head = [size_param, "method", *(["as published"] if sources else []), "l2obench seeds ok"]
    numeric = [True, False, *([False] if sources else []), True]
    for column in columns:
        label = labels.get(column, column)
        head += [f"{label}: l2obench", f"{label}: published", "ratio"]
        numeric += [True, True, True]
    body = []
    for _, row in comparison.iterrows():
        line = [_plain(row["size"]), str(row["method"]),
                *([str(row["source_method"]) or "—"] if sources else []), str(row["seeds"])]
        for column in columns:
            ratio = float(row[f"{column}_ratio"])
            line += [_spread(row, f"{column}_ours"), _spread(row, column),
                     f"{ratio:.2f}×" if math.isfinite(ratio) else "—"]
        body.append(line)
    return PublishedTable(reference.name, reference.source, Table(head, body, numeric))


def _spread(row: pd.Series, prefix: str) -> str:
    """``mean (min–max)``, the mean alone where no spread is known, ``—`` without a mean."""
    mean = float(row[f"{prefix}_mean"])
    lo, hi = float(row.get(f"{prefix}_min", math.nan)), float(row.get(f"{prefix}_max", math.nan))
    if not math.isfinite(mean):
        return "—"
    if math.isfinite(lo) and math.isfinite(hi) and hi > lo:
        return f"{fmt(mean)} ({fmt(lo)}–{fmt(hi)})"
    return fmt(mean)


def _data(key: object) -> str:
    """A data point's label from its canonical JSON (``{}``: the suite's only data point)."""
    try:
        point = json.loads(str(key))
    except ValueError:
        return str(key)
    return ",".join(f"{k}={v}" for k, v in sorted(point.items())) if point else ""


def section(records: pd.DataFrame, agg: pd.DataFrame, plots: Iterable[PlotFiles],
            page_dir: Path, missing: int = 0, every: pd.DataFrame | None = None,
            selections: Selections | None = None, baseline: pd.DataFrame | None = None,
            baseline_name: str = "", shared: str = "",
            references: Sequence[tuple[Reference, pd.DataFrame]] = ()) -> Section:
    """The tables and figures of one (suite, problem); figure paths relative to ``page_dir``.

    ``records`` and ``agg`` hold the cells that represent each method (``method_label`` the
    method's identity: see :func:`l2obench.report.configurations.ranked`); ``every`` the
    aggregate of every configuration and ``selections`` the suite's selections, where the suite
    declares tuning. ``missing`` cells of the suite have no record: the counts say so.
    ``shared`` names the parameters every method was given, left out of the labels;
    ``references`` pair numbers other projects published with l2obench's beside them
    (:func:`l2obench.report.references.compare_reference`).
    """
    methods = sorted(pd.unique(agg["method_label"]))
    task = records_task(records)
    metrics = _shown_metrics(agg, task)
    tuned = every is not None and "tuned" in every and bool(every["tuned"].astype(bool).any())
    sizes = []
    data = records["data"].astype(str) if "data" in records else pd.Series("", records.index)
    for block in blocks(agg):
        rows = _block_rows(agg, block)
        n_vars = rows["n_vars"].iloc[0]
        cells = records[(data == block[0]) & (records["size"] == block[1])]
        label = str(rows["data_label"].iloc[0]) if "data_label" in rows else ""
        configurations = None
        if tuned and every is not None:
            configurations = configurations_table(_block_rows(every, block), task)
        here = sorted(pd.unique(rows["method_label"]))
        absent = ", ".join(m for m in methods if m not in here)
        sizes.append(SizeSection(_plain(block[1]), f"{_plain(n_vars)} {task.n_vars_label}"
                                 if pd.notna(n_vars) else f"{task.n_vars_label} unknown",
                                 size_table(rows, here, metrics, task,
                                            _per_instance(cells, task.ranking()), tuned),
                                 absent, label, configurations, loss_table(rows, cells)))
    figures = [FigureLink(p.spec.title, p.png.relative_to(page_dir).as_posix(),
                      p.svg.relative_to(page_dir).as_posix()) for p in plots]
    solved, attempted = int(agg["solved"].sum()), int(agg["attempted"].sum())
    rankings = overall_rankings(agg, task.ranking())
    if len(sizes) == 1:
        rankings = [Ranking("", "overall", one_block_overall(sizes[0].table, task),
                            rankings[0].statistics)]
    n_sizes = len(pd.unique(agg["size"]))
    n_points = len(pd.unique(data)) if len(data) else 1
    rule = ""
    if tuned and selections is not None:
        rule = selections.describe(_size_param(records))
    return Section(str(agg["suite"].iloc[0]), str(agg["problem"].iloc[0]), rankings,
                   sizes, figures, not_ok_table(records),
                   counts=f"{solved}/{attempted} cells ok, {_count(len(methods), 'method')}, "
                          f"{_count(n_sizes, 'size')}"
                          + (f", {_count(n_points, 'data point')}" if n_points > 1 else "")
                          + (f"; {_count(missing, 'cell')} of the suite not recorded (not run "
                             "yet, or failed to write)" if missing else "")
                          + (f"; every method with {shared} (left out of the labels)"
                             if shared else ""),
                   tuning=rule,
                   selection=selection_table(every, selections)
                   if tuned and every is not None and selections is not None else None,
                   baseline=baseline_table(baseline, task.ranking()),
                   baseline_name=baseline_name,
                   references=[published_table(comparison, r, metric_labels(task),
                                               _size_param(records))
                               for r, comparison in references],
                   machine=machine(records), busy=int(busy(records).sum()))


def _size_param(records: pd.DataFrame) -> str:
    names = records["size_param"].dropna() if "size_param" in records else pd.Series()
    return str(names.iloc[0]) if len(names) else "size"


def machine(records: pd.DataFrame) -> str:
    """The CPU or GPU model(s) the records were measured on, with the machine's cores where
    recorded: ``cpu: AMD EPYC (2 cores)``."""
    devices = records.get("device", pd.Series(index=records.index)).fillna("unknown device")
    models = records.get("device_name", pd.Series(index=records.index)).fillna("unknown model")
    cores = pd.to_numeric(records.get("n_cores", pd.Series(index=records.index)),
                          errors="coerce")
    found: dict[str, set[str]] = {}
    for device, model, n in zip(devices, models, cores, strict=True):
        found.setdefault(f"{device}: {model}", set()).update(
            [] if not math.isfinite(n) else [_plain(float(n))])
    return "; ".join(f"{name} ({' or '.join(sorted(n))} cores)" if n else name
                     for name, n in sorted(found.items()))


def load_summary(records: pd.DataFrame) -> str:
    """How busy the machine was: how many cells ran while it was busier than its cores (the
    tables mark them; :func:`~l2obench.report.aggregate.busy`), the range of the 1-minute load
    average and the most a cell's threads waited for a core; "not recorded" for older records."""
    recorded = load_recorded(records)
    if not recorded.any():
        return "not recorded (records written before the load average was)"
    hot = int(busy(records).sum())
    loads = records.loc[recorded, ["load_start", "load_end"]].apply(pd.to_numeric,
                                                                    errors="coerce")
    text = (f"{hot} of {int(recorded.sum())} cells ran while the machine was busier than its "
            f"cores" + (f" (marked {LOAD_MARK} in the tables)" if hot else "")
            + f"; load {fmt(float(loads.min().min()))}–{fmt(float(loads.max().max()))}")
    waited = _waited(records)
    if waited.notna().any():
        judged = (f"; {_count(int(waited.notna().sum()), 'cell')} measured, the others judged "
                  f"by the load" if waited.isna().any() else "")
        text += (f"; a cell's threads waited for a core at most {fmt(100 * waited.max())} % of "
                 f"the time they ran (busy above {fmt(100 * WAIT_LIMIT)} %{judged})")
    missing = int((~recorded).sum())
    return text + (f"; {_count(missing, 'record')} without it" if missing else "")


def _waited(records: pd.DataFrame) -> pd.Series:
    """Per record, the seconds its threads waited for a core over the seconds they ran (NaN
    where not measured)."""
    if not {"cpu_s", "cpu_wait_s"} <= set(records):
        return pd.Series(math.nan, index=records.index)
    cpu = pd.to_numeric(records["cpu_s"], errors="coerce")
    wait = pd.to_numeric(records["cpu_wait_s"], errors="coerce")
    return (wait / cpu.where(cpu > 0)).astype(float)


#: ``l2obench run`` options and the record columns they are read from.
_RUN_OPTIONS = (("--max-epochs", "budget_max_epochs"), ("--max-seconds", "budget_max_seconds"),
                ("--device", "device"), ("--threads", "torch_threads"))


def run_commands(records: pd.DataFrame) -> list[str]:
    """``l2obench run`` commands that make cells like the records', read from them: suite,
    sizes, seeds, budget, device and threads, one command per combination of the last four
    (with the methods and sizes that had it where those are not all). The records do not hold
    the command line itself (nor ``--jobs`` or ``--cell-timeout``). The threads are read from
    the ok cells: a cell killed at a limit is recorded by the driver process, whose threads are
    not the cell's."""
    columns = [c for _, c in _RUN_OPTIONS if c in records]
    if "suite" not in records or "method" not in records:
        return []
    frame = records.assign(**{c: records[c].map(_option) for c in columns})
    ok = frame["status"] == Status.OK if "status" in frame else pd.Series(True, frame.index)
    if "torch_threads" in frame and ok.any() and not ok.all():
        usual = frame.loc[ok, "torch_threads"].mode().iloc[0]
        frame.loc[~ok, "torch_threads"] = usual
    every_method = set(frame["method"].astype(str))
    commands = []
    for key, group in frame.groupby(["suite", *columns], sort=True, dropna=False):
        values = dict(zip(["suite", *columns], key if isinstance(key, tuple) else (key,),
                          strict=True))
        parts = ["l2obench", "run", "--suite", str(values["suite"])]
        parts += ["--sizes", ",".join(_plain(v) for v in sorted(pd.unique(group["size"])))]
        parts += ["--seeds", ",".join(_plain(v) for v in sorted(pd.unique(group["seed"])))]
        methods = sorted(set(group["method"].astype(str)))
        if set(methods) != every_method:
            parts += ["--methods", ",".join(methods)]
        parts += [item for option, column in _RUN_OPTIONS if values.get(column)
                  for item in (option, str(values[column]))]
        commands.append(" ".join(parts))
    return commands


def _option(value: object) -> str:
    """A record's value as a command-line option's value ("" where not recorded)."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return ""
    return _plain(value)


def provenance(records: pd.DataFrame, command: str) -> list[tuple[str, str]]:
    """Where the records came from: the distinct values of each provenance column, the load,
    the time span of the runs, the run commands (:func:`run_commands`), when the report was made
    and the command that made it."""
    items = [("device: CPU/GPU model", machine(records))]
    for column, label in PROVENANCE_COLUMNS.items():
        values = records[column].dropna() if column in records else pd.Series()
        items.append((label, ", ".join(sorted({_plain(v) for v in values})) or "unknown"))
    items.append(("machine load", load_summary(records)))
    started = records["started_at"].dropna() if "started_at" in records else pd.Series()
    finished = records["finished_at"].dropna() if "finished_at" in records else pd.Series()
    # To the second: the records' stamps carry microseconds (older ones whole seconds, "+00:00").
    span = (f"{str(started.min())[:19]} – {str(finished.max())[:19]}"
            if len(started) and len(finished) else "unknown")
    items += [("runs (UTC)", span),
              ("records", str(len(records))),
              *(("run command (from the records)", c) for c in run_commands(records)),
              ("report made (UTC)", datetime.now(UTC).isoformat(timespec="seconds")),
              ("report command", command or "not given")]
    return items


def write_pages(sections: list[Section], records: pd.DataFrame, out: Path,
                command: str, notes: str = "") -> tuple[Path, Path]:
    """Render ``LEADERBOARD.md`` and ``index.html`` into ``out``; returns their paths.

    ``notes`` (Markdown) goes into ``LEADERBOARD.md`` as written and into ``index.html`` as
    HTML rendered safely (:func:`notes_html`).
    """
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("l2obench.report", "templates"),
        autoescape=jinja2.select_autoescape(["html"], default_for_string=False, default=False),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["md"] = md_escape
    env.filters["breakable"] = breakable
    task = records_task(records)
    context = {
        "title": "l2obench leaderboard: " + ", ".join(dict.fromkeys(s.suite for s in sections)),
        "sections": sections,
        "load_mark": LOAD_MARK,
        "provenance": provenance(records, command),
        "aggregation": AGGREGATION_NOTE,
        "baseline_note": baseline_note(task.ranking()),
        "ranking_rule": ranking_rule(task),
        "statistics_note": statistics_note(task),
        "notes": notes.strip(),
        "notes_html": notes_html(notes) if notes.strip() else "",
    }
    md, html = out / "LEADERBOARD.md", out / "index.html"
    md.write_text(env.get_template("LEADERBOARD.md").render(context), encoding="utf-8")
    html.write_text(env.get_template("index.html").render(context), encoding="utf-8")
    return md, html


def notes_html(notes: str) -> Markup:
    """The publisher's Markdown notes as HTML for ``index.html``.

    CommonMark by markdown-it-py with raw HTML switched off (a ``<script>`` in a note is shown
    as text), images switched off (the page requests nothing: its policy allows only its own
    figures) and links limited to markdown-it's safe schemes.
    """
    renderer = MarkdownIt("commonmark", {"html": False}).disable("image")
    return Markup(renderer.render(notes))


def breakable(text: object) -> Markup:
    """A method label as HTML that may wrap after its commas only (a long parameter list must
    not push the statuses out of view), escaped."""
    parts = re.split(r"(?<=,)", str(text))
    return Markup("<wbr>").join(Markup('<span class="seg">{}</span>').format(p) for p in parts)


def md_escape(text: object) -> str:
    """Text safe inside a GitHub Markdown table cell: no markup, pipes or raw HTML."""
    return re.sub(r"([\\`*_\[\]|<>#])", r"\\\1", str(text)).replace("\n", " ")
