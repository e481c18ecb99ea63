"""The data-grid figure: the test ranking metric (regret) against one data parameter, a panel
per the others.

PyEPO's paper plots regret against the polynomial degree, one panel per training-set size and
noise level. Here the x axis is the varying data parameter with the most values (ties: the
first by name), one panel per combination of the other varying parameters and the size, one
line per method (its selected configuration) through the means over seeds, with the 95 %
t-interval as a band. Only drawn where a data parameter varies.
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.lines as mlines
import numpy as np
import pandas as pd

from l2obench.params import format_value
from l2obench.report.plots import PlotFiles, PlotSpec, heading, method_handles, panel_grid, save
from l2obench.report.style import Style, method_styles
from l2obench.tasks.base import Metric


def data_grid_spec(metric: Metric) -> PlotSpec:
    """The figure of ``metric`` (the task's ranking metric) across the data grid."""
    label = metric.label[:1].upper() + metric.label[1:]
    return PlotSpec("data-grid", f"{label} (test) across the data grid", (metric.name,))


def varying(points: list[dict[str, object]]) -> list[str]:
    """The parameters whose value differs between ``points``, sorted by name."""
    keys = sorted({k for p in points for k in p})
    return [k for k in keys if len({json.dumps(p.get(k)) for p in points}) > 1]


def plot_data_grid(agg: pd.DataFrame, out_dir: Path, stem: str, metric: Metric,
                   styles: dict[str, Style] | None = None,
                   size_name: str = "size") -> PlotFiles | None:
    """Write ``<stem>-data-grid.png/.svg`` of ``metric`` (the task's ranking metric) from the
    aggregate of one (suite, problem) that represents each method; ``None`` where no data
    parameter varies."""
    spec, m = data_grid_spec(metric), metric.name
    if "data" not in agg or agg[f"{m}_mean"].notna().sum() == 0:
        return None
    points = {d: json.loads(d) for d in pd.unique(agg["data"])}
    names = varying(list(points.values()))
    if not names:
        return None
    x_name = max(names, key=lambda k: (len({json.dumps(p.get(k)) for p in points.values()}),
                                       -names.index(k)))
    facets = [k for k in names if k != x_name]
    frame = agg.assign(_x=[points[d].get(x_name) for d in agg["data"]],
                       _facet=[",".join(f"{k}={format_value(points[d].get(k))}" for k in facets)
                               for d in agg["data"]])
    x_values = sorted(pd.unique(frame["_x"]), key=lambda v: (isinstance(v, str), v))
    numeric = all(isinstance(v, int | float) for v in x_values)
    position = {v: (float(v) if numeric else float(i)) for i, v in enumerate(x_values)}
    keys = sorted({(s, f) for s, f in zip(frame["size"], frame["_facet"], strict=True)})
    styles = styles or method_styles(agg)
    with panel_grid(len(keys), f"{heading(agg)}: {spec.title}") as (figure, axes):
        for ax, (size, facet) in zip(axes, keys, strict=True):
            panel = frame[(frame["size"] == size) & (frame["_facet"] == facet)]
            for method, lines in panel.groupby("method_label", sort=True):
                lines = lines.assign(_pos=lines["_x"].map(position)).sort_values("_pos")
                style = styles[str(method)]
                colour = style.colour
                ax.plot(lines["_pos"], lines[f"{m}_mean"], **style.line(4))
                ax.fill_between(lines["_pos"].to_numpy(float),
                                lines[f"{m}_lo"].clip(lower=0).to_numpy(float),
                                lines[f"{m}_hi"].to_numpy(float), color=colour,
                                alpha=0.2, linewidth=0)
            ax.set_xticks([position[v] for v in x_values],
                          labels=[format_value(v) for v in x_values])
            ax.set_xlabel(x_name)
            ax.set_ylabel(metric.axis_label)
            ax.set_title(f"{size_name} = {size}" + (f" · {facet}" if facet else ""),
                         fontsize="small")
            ax.set_ylim(bottom=0)
        handles = method_handles(styles, set(frame["method_label"]))
        if np.isfinite(frame[f"{m}_hi"].to_numpy(float)).any():
            handles.append(mlines.Line2D([], [], color="0.5", linewidth=6, alpha=0.4,
                                         label="95 % t-interval over seeds"))
        figure.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95),
                      frameon=False)
    return save(figure, spec, out_dir, stem)
