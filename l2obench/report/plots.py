"""Metric-against-size figures (PNG and SVG) from aggregated records.

One line per method through the means over seeds, the problem size on the x axis and the
outputs per instance (``n_vars``: decision variables, pixels, classes, as the task names them) on
a secondary x axis at the top. Where a mean rests on at
least :data:`BAND_MIN_SEEDS` seeds a band shows its 95 % interval; with fewer, each seed's value
is a point (a band over two seeds is too wide to read). Methods are coloured by family and told
apart by marker (:mod:`l2obench.report.style`), the legend grouped by family. A cell that is not
ok is never dropped silently: every (size, method) with such a cell gets a marker in a strip at
the top of the axes, shaped by status, with a legend entry. A metric without any value gives no
figure; the test loss is drawn one panel per training objective shared by two or more methods,
since losses of different objectives share no scale. An axis is logarithmic where its values
span at least :data:`LOG_SPAN_DECADES` decades, so that the leaders are not squeezed together by
one method far behind.

Figures are built as plain :class:`matplotlib.figure.Figure` objects on the Agg canvas: no
pyplot state, no GUI backend, nothing global changed for a caller that also plots.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import matplotlib
import matplotlib.lines as mlines
import matplotlib.patches as mpatches
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullLocator

from l2obench.record import Status
from l2obench.report.aggregate import has_data, metric_labels, records_task
from l2obench.report.style import Style, by_family, method_styles
from l2obench.tasks.base import Metric, Task

LOG_SPAN_DECADES = 0.6
#: Fewer seeds than this: points per seed instead of a band.
BAND_MIN_SEEDS = 3
#: Small multiples (the anytime and data-grid figures): panels per row, one panel's inches.
GRID_COLUMNS = 4
GRID_PANEL = (4.2, 3.2)
#: Marker of a not-ok status in the strip at the top of the axes; other statuses get "*".
STATUS_MARKERS: dict[str, str] = {Status.FAILED: "X", Status.TIMEOUT: "v", Status.OOM: "s",
                                  Status.DIVERGED: "D", Status.SKIPPED: "P"}
_STRIP_ROW = 0.07  # height of one method's row in the not-ok strip, in axes fraction
_BAND_ALPHA = 0.2
_PANEL_WIDTH = 5.6  # inches, y label included
_SIZE_FONT_PT = 8.5  # tick labels of the sizes
_VARS_FONT_PT = 7.0  # tick labels of n_vars on the top axis
_DOT_PANEL_WIDTH = 3.6  # inches of one dot-chart panel
_DOT_ROW_IN = 0.24  # inches per method row of a dot chart
_DECADES_FOR_POWERS = 2.5  # a log axis spanning more: only the powers of ten labelled


@dataclass(frozen=True)
class PlotSpec:
    """A figure: its file stem, title and the metrics of its panels (left to right)."""

    name: str
    title: str
    metrics: tuple[str, ...]


def plot_specs(task: Task) -> tuple[PlotSpec, ...]:
    """Every figure a report of ``task``'s cells can have, in page order; the summary (the
    ranking metric and training time) comes first, then the ranking metric and the task's
    :attr:`~l2obench.tasks.base.Task.drawn` metrics."""
    rank = task.ranking()
    return (
        PlotSpec("summary", f"{_capital(rank.short_label)} and training time",
                 (rank.name, "train_time_s")),
        *(PlotSpec(re.sub(r"[^a-z0-9]+", "_", metric.short_label.lower()),
                   f"{_capital(metric.label)} (test)", (metric.name,))
          for metric in (rank, *(task.metric(name) for name in task.drawn))),
        *RUN_PLOTS,
    )


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


#: The figures of the measurements every task family's cells have.
RUN_PLOTS = (
    PlotSpec("test_loss", "Test loss (the method's training objective)", ("test_loss",)),
    PlotSpec("train_time", "Training time", ("train_time_s",)),
    PlotSpec("time_per_epoch", "Time per epoch", ("time_per_epoch_s",)),
    PlotSpec("peak_mem", "Host memory increase during training (peak above the level before)",
             ("peak_mem_mb",)),
    PlotSpec("device_mem", "Device memory increase during training (peak above the start)",
             ("device_peak_mem_mb",)),
    PlotSpec("fwd_iters", "Forward fixed-point iterations", ("fwd_iters_mean",)),
    PlotSpec("bwd_iters", "Backward iterations", ("bwd_iters_mean",)),
)


@dataclass(frozen=True)
class PlotFiles:
    """A written figure: what it shows and where its PNG and SVG are."""

    spec: PlotSpec
    png: Path
    svg: Path


def save(figure: Figure, spec: PlotSpec, out_dir: Path, stem: str) -> PlotFiles:
    """Write ``figure`` as ``<stem>-<spec.name>.png/.svg``, cropped to its panels and legend."""
    out_dir.mkdir(parents=True, exist_ok=True)
    png, svg = out_dir / f"{stem}-{spec.name}.png", out_dir / f"{stem}-{spec.name}.svg"
    # Crop to the panels and the legend, measured once for both files (bbox_inches="tight"
    # would draw the figure once more per file to measure it).
    renderer = cast(FigureCanvasAgg, figure.canvas).get_renderer()
    crop = figure.get_tightbbox(renderer).padded(0.1)
    figure.savefig(png, dpi=150, bbox_inches=crop)
    figure.savefig(svg, bbox_inches=crop)
    return PlotFiles(spec, png, svg)


def plot_metrics(agg: pd.DataFrame, records: pd.DataFrame, out_dir: Path,
                 stem: str, styles: dict[str, Style] | None = None,
                 specs: Sequence[PlotSpec] | None = None,
                 subtitle: str = "") -> list[PlotFiles]:
    """Write every figure of ``specs`` (default: :func:`plot_specs` of the records' task) that
    has data as ``<stem>-<name>.png/.svg``.

    ``agg`` is the aggregate of one (suite, problem) at one data point; ``records`` its records,
    whose not-ok cells become the markers and whose ok cells the per-seed points. ``styles``
    (default: from ``records``) is the report's one style map; ``subtitle`` names the data point
    in the titles. A figure whose metrics all lack data is not written.
    """
    styles = styles or method_styles(records)
    written = []
    for spec in specs if specs is not None else plot_specs(records_task(records)):
        metrics = [m for m in spec.metrics if has_data(agg, m)]
        if spec.metrics == ("test_loss",) and metrics and not _objectives(records):
            metrics = []
        if not metrics:
            continue
        shown = dataclasses.replace(spec, title=f"{spec.title} · {subtitle}") if subtitle \
            else spec
        written.append(save(draw(shown, metrics, agg, records, styles), shown, out_dir, stem))
    return written


def draw(spec: PlotSpec, metrics: Sequence[str], agg: pd.DataFrame, records: pd.DataFrame,
         styles: dict[str, Style]) -> Figure:
    """The figure of ``spec``: one panel per metric (per objective for the test loss), one
    legend on the right grouped by family; with a single problem size, a dot chart per method
    instead (:func:`draw_dots`).

    The layout is fixed rather than constrained (a constrained layout costs a full draw per
    save); the legend sits outside the axes and the saved files are cropped to fit it.
    """
    panels: list[tuple[str, str | None]] = [(metric, None) for metric in metrics]
    if list(metrics) == ["test_loss"]:
        panels = [("test_loss", objective) for objective in _objectives(records)]
    if agg["size"].nunique() == 1:
        return draw_dots(spec, panels, agg, records, styles)
    # Labels are plain text: a method label such as "m[$x$]" must not be read as mathtext.
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.8), \
            matplotlib.rc_context({"text.parse_math": False}):
        figure = Figure(figsize=(_PANEL_WIDTH * len(panels), 4.0))
        FigureCanvasAgg(figure)
        figure.subplots_adjust(left=0.1 / len(panels), right=1 - 0.02 / len(panels),
                               bottom=0.13, top=0.8, wspace=0.25)
        figure.suptitle(f"{heading(agg)}: {spec.title}", y=0.98)
        n_vars = agg.groupby("size")["n_vars"].first()
        shown: set[str] = set()
        statuses: set[str] = set()
        banded = pointed = capped = False
        for index, (metric, objective) in enumerate(panels):
            chosen = agg if objective is None else agg[agg["method_label"].isin(
                _labels_with_objective(records, objective))]
            methods = _methods_for(chosen, metric)
            ax = figure.add_subplot(1, len(panels), index + 1)
            drawn = _draw_metric(ax, metric, chosen[chosen["method_label"].isin(methods)],
                                 records[records["method_label"].isin(methods)], styles)
            statuses |= drawn.statuses
            banded |= drawn.banded
            pointed |= drawn.pointed
            capped |= drawn.capped
            _set_x_axis(ax, n_vars, _size_label(records), records_task(records).n_vars_label)
            if objective is not None:
                ax.set_title(f"objective: {objective}", fontsize="small")
            shown |= set(methods)
        figure.legend(handles=_legend(styles, shown, banded, pointed, sorted(statuses), capped),
                      loc="upper left", bbox_to_anchor=(1.0, 0.8), frameon=False)
    return figure


def draw_dots(spec: PlotSpec, panels: Sequence[tuple[str, str | None]], agg: pd.DataFrame,
              records: pd.DataFrame, styles: dict[str, Style]) -> Figure:
    """The figure of one problem size: a dot chart per panel, one row per method (best mean
    of the ranking metric at the top, the same order in every panel and figure), its mean as
    the method's marker, the 95 % interval as a bar where it rests on enough seeds, each seed
    as a faint point and each not-ok cell as a status marker at the right edge.

    Panels showing the same methods sit side by side and share the method labels; panels of
    different methods (the test loss, one per objective) are stacked.
    """
    order = _rank_order(agg, records_task(records).ranking())
    rows_of = []
    for metric, objective in panels:
        chosen = agg if objective is None else agg[agg["method_label"].isin(
            _labels_with_objective(records, objective))]
        wanted = set(_methods_for(chosen, metric))
        rows_of.append([m for m in order if m in wanted])
    side_by_side = all(rows == rows_of[0] for rows in rows_of)
    longest = max((len(m) for rows in rows_of for m in rows), default=8)
    label_in = 0.3 + longest * 0.062  # the method labels at font size 8
    size = agg["size"].iloc[0]
    n_vars = agg["n_vars"].dropna()
    where = f"{_size_label(records)} = {_number(size)}" + (
        f", {_number(n_vars.iloc[0])} {records_task(records).n_vars_label}" if len(n_vars)
        else "")
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.8), \
            matplotlib.rc_context({"text.parse_math": False}):
        if side_by_side:
            heights = [len(rows_of[0])]
            width = label_in + _DOT_PANEL_WIDTH * len(panels)
        else:
            heights = [len(rows) for rows in rows_of]
            width = label_in + _DOT_PANEL_WIDTH
        top_in, bottom_in, gap_in = 0.85, 0.55, 0.6  # two title lines; x label; ticks + title
        rows_in = _DOT_ROW_IN * sum(heights) + 0.3 * len(heights)
        height = rows_in + top_in + bottom_in + (0.0 if side_by_side else gap_in * (len(panels)
                                                                                  - 1))
        figure = Figure(figsize=(width, height))
        FigureCanvasAgg(figure)
        grid = (figure.add_gridspec(1, len(panels), wspace=0.08) if side_by_side else
                figure.add_gridspec(len(panels), 1, height_ratios=[h + 1.25 for h in heights],
                                    hspace=gap_in / (rows_in / len(panels))))
        figure.subplots_adjust(left=label_in / width, right=1 - 0.15 / width,
                               bottom=bottom_in / height, top=1 - top_in / height)
        figure.suptitle(f"{heading(agg)}: {spec.title}\n{where}", y=1 - 0.08 / height,
                        va="top")
        statuses: set[str] = set()
        banded = pointed = capped = False
        first: Axes | None = None
        for index, ((metric, objective), rows) in enumerate(zip(panels, rows_of, strict=True)):
            cell = grid[0, index] if side_by_side else grid[index, 0]
            ax = figure.add_subplot(cell, sharey=first if side_by_side else None)
            first = first or ax
            drawn = _draw_dots(ax, metric, agg[agg["method_label"].isin(rows)],
                               records[records["method_label"].isin(rows)], rows, styles)
            statuses |= drawn.statuses
            banded |= drawn.banded
            pointed |= drawn.pointed
            capped |= drawn.capped
            if side_by_side and index > 0:
                ax.tick_params(axis="y", labelleft=False)
            if not side_by_side and index < len(panels) - 1:
                ax.set_xlabel("")  # one x label, under the last panel: they all measure it
            if objective is not None:
                ax.set_title(f"objective: {objective}", fontsize="small")
        figure.legend(handles=_dot_legend(banded, pointed, sorted(statuses), capped),
                      loc="upper left", bbox_to_anchor=(1.0, 1 - 0.6 / height), frameon=False)
    return figure


def _rank_order(agg: pd.DataFrame, rank: Metric) -> list[str]:
    """Method labels by the mean of the ranking metric ``rank``, best first, methods without
    one last."""
    means = rank.sign * agg.groupby("method_label")[f"{rank.name}_mean"].mean()
    return sorted(means.index, key=lambda m: (not math.isfinite(means[m]),
                                              means[m] if math.isfinite(means[m]) else 0.0, m))


def _draw_dots(ax: Axes, metric: str, agg: pd.DataFrame, records: pd.DataFrame,
               rows: list[str], styles: dict[str, Style]) -> _Drawn:
    """One dot chart: ``rows`` top to bottom, ``metric`` along x (see :func:`draw_dots`)."""
    by_method = agg.set_index("method_label")
    ok = records[records["status"] == Status.OK]
    seeds = (pd.to_numeric(ok[metric], errors="coerce").to_numpy(float)
             if metric in ok else np.array([]))
    means = agg[f"{metric}_mean"].to_numpy(float)
    banded = pointed = capped = False
    for y, label in enumerate(rows):
        style = styles[label]
        row = by_method.loc[label]
        mean, n = float(row[f"{metric}_mean"]), int(row[f"{metric}_n"])
        if not math.isfinite(mean):
            continue
        if n >= BAND_MIN_SEEDS:
            ax.plot([max(float(row[f"{metric}_lo"]), 0.0), float(row[f"{metric}_hi"])], [y, y],
                    color=style.colour, linewidth=2.2, alpha=0.45, solid_capstyle="butt")
            banded = True
        mine = ok[ok["method_label"] == label]
        values = pd.to_numeric(mine[metric], errors="coerce").dropna() if metric in mine \
            else pd.Series(dtype=float)
        if len(values) > 1:
            ax.scatter(values.to_numpy(float), np.full(len(values), y + 0.22), s=9,
                       color=style.colour, alpha=0.6, linewidths=0, marker="o", zorder=3)
            pointed = True
        ax.plot([mean], [y], zorder=4, **{**style.line(6), "linestyle": "none"})
        if metric == "bwd_iters_mean" and row.get("bwd_capped", 0) > 0:
            ax.scatter([mean], [y], s=130, facecolors="none", edgecolors="black", linewidths=1.3,
                       zorder=5, gid="bwd-capped")
            capped = True
    not_ok = records[records["status"] != Status.OK][["method_label", "status"]] \
        .drop_duplicates()
    for status, group in not_ok.groupby("status", sort=True):
        ax.scatter(np.full(len(group), 0.985), [rows.index(m) for m in group["method_label"]],
                   transform=ax.get_yaxis_transform(), marker=STATUS_MARKERS.get(status, "*"),
                   s=55, c=[styles[m].colour for m in group["method_label"]],
                   edgecolors="black", linewidths=0.7, zorder=5, clip_on=False,
                   gid=f"not-ok-{status}")
    ax.set_yticks(range(len(rows)), labels=rows, fontsize=_SIZE_FONT_PT)
    ax.set_ylim(len(rows) - 0.5, -0.6)
    values = np.concatenate([means, seeds])
    if _spans_decades(values):
        ax.set_xscale("log")
        finite = values[np.isfinite(values) & (values > 0)]
        ax.xaxis.set_major_formatter(plain_ticks(finite.min(), finite.max() * 1.5))
        ax.xaxis.set_minor_formatter(plain_ticks(finite.min(), finite.max() * 1.5))
        ax.tick_params(axis="x", which="minor", labelsize=_VARS_FONT_PT)
    else:
        finite = values[np.isfinite(values)]
        bounds = agg[[f"{metric}_lo", f"{metric}_hi"]].to_numpy(float).ravel()
        finite = np.concatenate([finite, bounds[np.isfinite(bounds)]])
        if len(finite):
            lo, hi = float(finite.min()), float(finite.max())
            pad = 0.06 * ((hi - lo) or abs(hi) or 1.0)
            ax.set_xlim(0.0 if lo >= 0 and lo - pad < 0 else lo - pad, hi + pad)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(metric_labels(records_task(records))[metric])
    return _Drawn(set(not_ok["status"]), banded, pointed, capped)


def _dot_legend(banded: bool, pointed: bool, statuses: list[str],
                capped: bool) -> list[mlines.Line2D | mpatches.Patch]:
    """What the marks of a dot chart mean: only those drawn."""
    handles: list[mlines.Line2D | mpatches.Patch] = [
        mlines.Line2D([], [], linestyle="none", marker="o", markersize=6, color="0.3",
                      label="mean over the ok seeds")]
    if banded:
        handles.append(mlines.Line2D([], [], color="0.3", linewidth=2.2, alpha=0.45,
                                     label=f"95 % t-interval ({BAND_MIN_SEEDS}+ seeds)"))
    if pointed:
        handles.append(mlines.Line2D([], [], linestyle="none", marker="o", markersize=3,
                                     color="0.3", alpha=0.6, label="each seed"))
    handles += _status_handles(statuses, "right edge")
    if capped:
        handles.append(_capped_handle())
    return handles


def _status_handles(statuses: list[str], where: str) -> list[mlines.Line2D | mpatches.Patch]:
    return [mlines.Line2D([], [], linestyle="none", marker=STATUS_MARKERS.get(s, "*"),
                          markerfacecolor="0.85", markeredgecolor="black", markersize=7,
                          label=f"{s} (not ok, {where})") for s in statuses]


def _capped_handle() -> mlines.Line2D:
    return mlines.Line2D([], [], linestyle="none", marker="o", markersize=9,
                         markerfacecolor="none", markeredgecolor="black",
                         label="adjoint solve capped in some steps")


def heading(agg: pd.DataFrame) -> str:
    """``suite`` — or ``suite (problem)`` where the problem is named otherwise."""
    suite, problem = str(agg["suite"].iloc[0]), str(agg["problem"].iloc[0])
    return suite if suite == problem else f"{suite} ({problem})"


def _objectives(records: pd.DataFrame) -> list[str]:
    """The training objectives that two or more method labels share (records that name one)."""
    if "objective" not in records:
        return []
    labels = records.dropna(subset=["objective"]).groupby("objective")["method_label"].nunique()
    return sorted(labels.index[labels >= 2])


def _labels_with_objective(records: pd.DataFrame, objective: str) -> list[str]:
    return sorted(pd.unique(records.loc[records["objective"] == objective, "method_label"]))


def _methods_for(agg: pd.DataFrame, metric: str) -> list[str]:
    """The methods a panel of ``metric`` shows: those with a value of it somewhere, and those
    with no ok cell at all (whether they would have one is unknown, and their failures must
    show). A method without fixed-point layer is thus left out of the iterations figure."""
    by_method = agg.groupby("method_label")
    has_metric = by_method[f"{metric}_mean"].apply(lambda v: v.notna().any())
    never_ok = by_method["solved"].sum() == 0
    return sorted(has_metric.index[has_metric | never_ok])


@dataclass(frozen=True)
class _Drawn:
    """What a panel drew, for the legend: not-ok statuses, bands, per-seed points."""

    statuses: set[str]
    banded: bool
    pointed: bool
    capped: bool = False  # a mark for backward solves that hit their cap


def _draw_metric(ax: Axes, metric: str, agg: pd.DataFrame, records: pd.DataFrame,
                 styles: dict[str, Style]) -> _Drawn:
    """Lines, bands or seed points, and not-ok markers of one metric on ``ax``.

    ``agg`` and ``records`` hold the methods this panel shows. Every metric plotted is
    nonnegative, so a band is cut at zero (a t-interval over few seeds easily reaches below).
    """
    means = agg[f"{metric}_mean"].to_numpy(float)
    ok = records[records["status"] == Status.OK]
    seeds = (pd.to_numeric(ok[metric], errors="coerce").to_numpy(float)
             if metric in ok else np.array([]))
    log_y = _spans_decades(np.concatenate([means, seeds]))
    banded = pointed = capped = False
    for label, rows in agg.groupby("method_label", sort=True):
        rows = rows.sort_values("size")
        style = styles[label]
        x = rows["size"].to_numpy(float)
        ax.plot(x, rows[f"{metric}_mean"], label=label, **style.line())
        few = rows[f"{metric}_n"] < BAND_MIN_SEEDS
        if (~few).any():
            ax.fill_between(x, rows[f"{metric}_lo"].clip(lower=0).where(~few),
                            rows[f"{metric}_hi"].where(~few), color=style.colour,
                            alpha=_BAND_ALPHA, linewidth=0)
            banded = True
        mine = ok[(ok["method_label"] == label) & ok["size"].isin(rows.loc[few, "size"])]
        values = pd.to_numeric(mine[metric], errors="coerce") if metric in mine else None
        if values is not None and values.notna().any() and (rows[f"{metric}_n"] > 1).any():
            ax.scatter(mine["size"].to_numpy(float), values.to_numpy(float), s=10,
                       marker=style.marker, color=style.colour, alpha=0.55, linewidths=0,
                       zorder=3)
            pointed = True
        if metric == "bwd_iters_mean" and "bwd_capped" in rows:
            hit = rows[rows["bwd_capped"].fillna(0) > 0]
            if len(hit):
                ax.scatter(hit["size"].to_numpy(float), hit[f"{metric}_mean"].to_numpy(float),
                           s=110, facecolors="none", edgecolors="black", linewidths=1.3, zorder=5,
                           gid="bwd-capped")
                capped = True

    not_ok = records[records["status"] != Status.OK]
    marked = _mark_not_ok(ax, not_ok, list(styles), styles)
    bounds = agg[[f"{metric}_lo", f"{metric}_hi"]].clip(lower=0).to_numpy(float).ravel()
    _set_y_limits(ax, np.concatenate([means, seeds]), bounds, log_y,
                  strip=len(pd.unique(not_ok["method_label"])))
    ax.set_ylabel(metric_labels(records_task(records))[metric])
    return _Drawn(marked, banded, pointed, capped)


def _mark_not_ok(ax: Axes, not_ok: pd.DataFrame, methods: list[str],
                 styles: dict[str, Style]) -> set[str]:
    """One marker per (size, method, status) not ok, in the method's row of the top strip.

    The markers of a status form one collection with ``gid`` ``not-ok-<status>``, so an SVG
    names them; rows are ordered like the legend's methods.
    """
    rows = [m for m in methods if m in set(not_ok["method_label"])]
    cells = not_ok[["size", "method_label", "status"]].drop_duplicates()
    for status, group in cells.groupby("status", sort=True):
        ax.scatter(group["size"].to_numpy(float),
                   [1 - _STRIP_ROW * (rows.index(m) + 0.6) for m in group["method_label"]],
                   transform=ax.get_xaxis_transform(), marker=STATUS_MARKERS.get(status, "*"),
                   s=60, c=[styles[m].colour for m in group["method_label"]],
                   edgecolors="black",
                   linewidths=0.7, zorder=5, clip_on=False, gid=f"not-ok-{status}")
    if rows:
        height = _STRIP_ROW * len(rows) + 0.02
        ax.add_patch(mpatches.Rectangle((0, 1 - height), 1, height, transform=ax.transAxes,
                                        facecolor="0.94", edgecolor="none", zorder=0.1))
    return set(cells["status"])


def _spans_decades(values: Sequence[float] | np.ndarray) -> bool:
    """Whether the finite ``values`` are all positive and span ≥ LOG_SPAN_DECADES decades."""
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0 or (x <= 0).any():
        return False
    return math.log10(x.max() / x.min()) >= LOG_SPAN_DECADES


def _set_y_limits(ax: Axes, means: np.ndarray, bounds: np.ndarray, log: bool,
                  strip: int) -> None:
    """Limits that show every mean and interval, with headroom for ``strip`` rows of markers.

    On a log axis an interval reaching zero or below is cut at the lowest positive value shown.
    """
    values = np.concatenate([means, bounds])
    values = values[np.isfinite(values) & ((values > 0) | (not log))]
    headroom = _STRIP_ROW * strip + 0.03 if strip else 0.0
    if log:
        ax.set_yscale("log")
        # Plain numbers (0.06, 0.1, 0.2) rather than 6×10⁻² on the minor ticks as well.
        ax.yaxis.set_major_formatter(plain_ticks(values.min(), values.max()))
        ax.yaxis.set_minor_formatter(plain_ticks(values.min(), values.max()))
        lo, hi = math.log10(values.min()), math.log10(values.max())
        pad = 0.05 * (hi - lo)
        lo, hi = lo - pad, hi + pad
        ax.set_ylim(10**lo, 10 ** (lo + (hi - lo) / (1 - headroom)))
        return
    lo, hi = float(values.min()), float(values.max())
    pad = 0.05 * ((hi - lo) or abs(hi) or 1.0)
    lo = 0.0 if lo >= 0 and lo - pad < 0 else lo - pad
    hi += pad
    ax.set_ylim(lo, lo + (hi - lo) / (1 - headroom))


def plain_ticks(lo: float, hi: float) -> FuncFormatter:
    """Log-axis tick labels as plain numbers (0.06, 0.1, 0.2 rather than 6×10⁻²) that do not
    collide: the powers of ten only where the values ``lo``…``hi`` span more than
    :data:`_DECADES_FOR_POWERS` decades, 1, 2 and 5 × 10ⁿ over more than one decade, and 3 × 10ⁿ
    as well below; none above ``hi`` (the headroom of the not-ok strip)."""
    span = math.log10(hi / lo) if lo > 0 and hi > lo else 0.0
    kept = (1,) if span > _DECADES_FOR_POWERS else (1, 2, 5) if span > 1.2 else (1, 2, 3, 5)

    def label(value: float, _position: int) -> str:
        if value <= 0 or not math.isfinite(value) or value > hi * 1.001:
            return ""
        mantissa = value / 10 ** math.floor(math.log10(value) + 1e-9)
        if min(abs(mantissa - m) for m in kept) > 1e-6:
            return ""
        return f"{value:g}"

    return FuncFormatter(label)


def _size_label(records: pd.DataFrame) -> str:
    """The x axis's title: the problem's size parameter by name, where the records carry it
    (records written before it was recorded do not)."""
    names = records["size_param"].dropna().unique() if "size_param" in records else []
    return f"problem size ({names[0]})" if len(names) == 1 else "problem size"


def _set_x_axis(ax: Axes, n_vars: pd.Series, label: str, vars_label: str) -> None:
    """Ticks at the sizes run (the index of ``n_vars``), each size's ``n_vars`` on a secondary
    axis at the top titled by the task's ``vars_label`` ("decision variables"); every panel
    shows all sizes of the suite, whichever methods it shows."""
    sizes = sorted(n_vars.index)
    lo, hi = min(sizes), max(sizes)
    if _spans_decades(sizes):
        ax.set_xscale("log")
        pad = (hi / lo) ** 0.05
        ax.set_xlim(lo / pad, hi * pad)
    else:
        pad = 0.05 * ((hi - lo) or 1)
        ax.set_xlim(lo - pad, hi + pad)
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xticks(sizes, labels=_thin(ax, sizes, [_number(s) for s in sizes], _SIZE_FONT_PT),
                  fontsize=_SIZE_FONT_PT)
    ax.set_xlabel(label)
    labels = [_number(n_vars[s]) for s in sizes]
    top = ax.secondary_xaxis("top")
    top.xaxis.set_minor_locator(NullLocator())
    top.set_xticks(sizes, labels=_thin(ax, sizes, labels, _VARS_FONT_PT), fontsize=_VARS_FONT_PT)
    top.set_xlabel(f"{vars_label} (n_vars)", fontsize="small")


def _thin(ax: Axes, ticks: list[float], labels: list[str], font_pt: float) -> list[str]:
    """``labels`` with each one that would overlap the last one kept blanked (left to right).

    Sizes such as 5, 10, …, 30, 50, 100 crowd the left of a linear axis; their ``n_vars``
    (40 … 19 800) are wider still. The widths are estimated from the digit width of the
    default font, which avoids a costly draw to measure them.
    """
    width_in = ax.get_position().width * cast(Figure, ax.figure).get_figwidth()
    lo, hi = ax.get_xlim()
    scale = ax.get_xscale() == "log"
    char_in = 0.64 * font_pt / 72
    shown, last_end = [], -math.inf
    for tick, label in zip(ticks, labels, strict=True):
        frac = math.log(tick / lo) / math.log(hi / lo) if scale else (tick - lo) / (hi - lo)
        half = len(label) * char_in / 2
        if frac * width_in - half >= last_end + 0.5 * char_in:
            shown.append(label)
            last_end = frac * width_in + half
        else:
            shown.append("")
    return shown


def _number(value: float) -> str:
    """An integer-valued size or count without a decimal point; ``?`` when unknown."""
    if value is None or not math.isfinite(value):
        return "?"
    return f"{value:g}" if value != int(value) else str(int(value))


def method_handles(styles: dict[str, Style],
                   shown: set[str]) -> list[mlines.Line2D | mpatches.Patch]:
    """Legend entries of the methods ``shown``, grouped under their family's name."""
    handles: list[mlines.Line2D | mpatches.Patch] = []
    for family, labels in by_family(styles, shown):
        handles.append(mpatches.Patch(color="none", label=family.upper()))
        handles += [mlines.Line2D([], [], label=m, **styles[m].line()) for m in labels]
    return handles


@contextmanager
def panel_grid(count: int, title: str) -> Iterator[tuple[Figure, list[Axes]]]:
    """A figure of ``count`` small panels, :data:`GRID_COLUMNS` to a row, in the report's style
    (plain-text labels), titled ``title``; yields the figure and its axes."""
    columns = min(GRID_COLUMNS, count)
    rows = math.ceil(count / columns)
    height = GRID_PANEL[1] * rows + 0.6
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook", font_scale=0.8), \
            matplotlib.rc_context({"text.parse_math": False}):
        figure = Figure(figsize=(GRID_PANEL[0] * columns, height))
        FigureCanvasAgg(figure)
        figure.subplots_adjust(left=0.08, right=0.98, bottom=0.12 / rows, top=1 - 0.5 / height,
                               wspace=0.28, hspace=0.45)
        figure.suptitle(title, y=0.995)
        yield figure, [figure.add_subplot(rows, columns, i + 1) for i in range(count)]


def _legend(styles: dict[str, Style], shown: set[str], banded: bool, pointed: bool,
            statuses: list[str], capped: bool = False) -> list[mlines.Line2D | mpatches.Patch]:
    """Methods grouped under their family's name, what bands and points mean (where drawn),
    one entry per not-ok status, the mark of capped backward solves (where drawn)."""
    handles = method_handles(styles, shown)
    if banded:
        handles.append(mpatches.Patch(color="0.5", alpha=_BAND_ALPHA * 2,
                                      label=f"95 % t-interval ({BAND_MIN_SEEDS}+ seeds)"))
    if pointed:
        handles.append(mlines.Line2D([], [], linestyle="none", marker="o", markersize=3,
                                     color="0.4", alpha=0.6, label="one seed (fewer than "
                                     f"{BAND_MIN_SEEDS})"))
    handles += _status_handles(statuses, "top strip")
    if capped:
        handles.append(_capped_handle())
    return handles
