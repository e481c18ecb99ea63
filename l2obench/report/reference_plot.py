"""The figure of a reference: l2obench's numbers and a paper's published ones against size.

One panel per compared column (normalized regret, time to the best epoch, ...), one colour per
method: l2obench's mean over its ok seeds as a solid line with filled markers, the published mean
as a dashed line with hollow markers, each with its minimum–maximum over seeds as a vertical bar
(the spread papers of three runs report). A method the suite did not run appears in the published
style only. Seconds span orders of magnitude between methods and machines: a column of seconds
gets a logarithmic axis.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import matplotlib.lines as mlines
import numpy as np
import pandas as pd

from l2obench.report.plots import PlotFiles, PlotSpec, method_handles, panel_grid, save
from l2obench.report.references import Reference
from l2obench.report.style import Style, style_of

_SECONDS = re.compile(r"(_s|seconds)$")


def reference_spec(reference: Reference) -> PlotSpec:
    """The figure of ``reference``: its file stem and title."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", reference.name)
    return PlotSpec(f"published-{name}", f"l2obench against published numbers ({reference.name})",
                    tuple(reference.columns()))


def plot_reference(comparison: pd.DataFrame, reference: Reference, out_dir: Path, stem: str,
                   styles: dict[str, Style], labels: dict[str, str],
                   size_name: str) -> PlotFiles | None:
    """Write ``<stem>-published-<name>.png/.svg`` from ``comparison`` (the rows of
    :func:`l2obench.report.references.compare_reference`); ``None`` where no compared column
    has a number on either side. ``styles`` fix the colours of the methods the suite ran (the
    report's), ``labels`` name the columns."""
    columns = [c for c in reference.columns() if f"{c}_ours_mean" in comparison
               and (comparison[f"{c}_mean"].notna().any()
                    or comparison[f"{c}_ours_mean"].notna().any())]
    if not columns:
        return None
    spec = reference_spec(reference)
    # a method's colour and marker as on the rest of the page; the line style says whose numbers
    looks = {m: replace(s, linestyle="-", hollow=False) for m, s in
             {**{str(m): style_of(str(m), "other") for m in comparison["method"]},
              **styles}.items()}
    shown: set[str] = set()
    with panel_grid(len(columns), spec.title) as (figure, axes):
        for ax, column in zip(axes, columns, strict=True):
            for method, rows in comparison.groupby("method", sort=True):
                style = looks[str(method)]
                rows = rows.sort_values("size")
                x = rows["size"].to_numpy(dtype=float)
                for prefix, dashed in ((f"{column}", True), (f"{column}_ours", False)):
                    mean = rows[f"{prefix}_mean"].to_numpy(dtype=float)
                    have = np.isfinite(mean)
                    if not have.any():
                        continue
                    line = {**style.line(4), "linestyle": "--" if dashed else "-",
                            "markerfacecolor": "white" if dashed else style.colour}
                    ax.plot(x[have], mean[have], linewidth=1.2, **line)
                    lo = rows.get(f"{prefix}_min", pd.Series(np.nan, rows.index))
                    hi = rows.get(f"{prefix}_max", pd.Series(np.nan, rows.index))
                    lo_v, hi_v = lo.to_numpy(dtype=float), hi.to_numpy(dtype=float)
                    spread = have & np.isfinite(lo_v) & np.isfinite(hi_v)
                    ax.vlines(x[spread], lo_v[spread], hi_v[spread], color=style.colour,
                              linewidth=1.0, alpha=0.6, linestyles="--" if dashed else "-")
                    shown.add(str(method))
            if _SECONDS.search(column):
                ax.set_yscale("log")
            ax.set_xlabel(size_name)
            ax.set_ylabel(labels.get(column, column))
            ax.set_title(labels.get(column, column), fontsize="small")
        handles = method_handles(looks, shown)
        handles += [mlines.Line2D([], [], color="0.3", marker="o", label="l2obench (mean, "
                                  "min–max over seeds)"),
                    mlines.Line2D([], [], color="0.3", marker="o", markerfacecolor="white",
                                  linestyle="--", label="published (mean, min–max)")]
        figure.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95),
                      frameon=False)
    return save(figure, spec, out_dir, stem)
