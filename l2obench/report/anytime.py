"""The anytime figure: the validation score against training time, one panel per size.

benchopt's convergence curve for learning methods: which method reaches a good decision first.
Each line is one method (its selected configuration); its points are its completed epochs: the
mean over seeds of the validation score (the task's validation metric, validation regret for
predict-then-optimize) of the model kept so far (the best epoch up to then:
what model selection would return if training stopped there) against the mean over seeds of the
training seconds at the end of that epoch (validation excluded). A seed whose training stopped
earlier (a seconds budget reached after fewer epochs) enters the later epochs with its final
clock and kept score, so that both means only move forward (averaging only the seeds still
running would let them jump back when the slowest or best seed drops out). A star marks the
kept epoch (mean ``time_to_best_s``, mean validation score); with one seed it sits on the
line's last level. The time axis is logarithmic: methods differ by orders of
magnitude in seconds per epoch. Records written before the history had a clock (no ``train_s``)
are left out; without any, no figure is drawn.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.lines as mlines
import numpy as np
import pandas as pd
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from l2obench.record import epoch_val_score
from l2obench.report.plots import PlotFiles, PlotSpec, heading, method_handles, panel_grid, save
from l2obench.report.style import Style, method_styles
from l2obench.tasks.base import Metric


def anytime_spec(metric: Metric) -> PlotSpec:
    """The figure of the validation ``metric`` against training time."""
    label = metric.label[:1].upper() + metric.label[1:]
    return PlotSpec("anytime", f"{label} against training time (selected configurations)",
                    (metric.name,))


def curve(histories: Sequence[list[dict[str, float]]],
          metric: Metric) -> tuple[np.ndarray, np.ndarray]:
    """``(seconds, score)`` per epoch: means over the histories of the training seconds and of
    the best validation score so far (best in ``metric``'s direction), a history that ended
    before an epoch counting there with its last clock and score.

    An entry without ``train_s`` (an older record) or without a validation score ends its
    history there.
    """
    runs: list[list[tuple[float, float]]] = []
    for history in histories:
        best, points = metric.worst, []
        for entry in history:
            clock, value = entry.get("train_s"), epoch_val_score(entry)
            if not isinstance(clock, int | float) or value is None:
                break
            best = value if metric.better(value, best) else best
            points.append((float(clock), best))
        if points:
            runs.append(points)
    n_epochs = max((len(points) for points in runs), default=0)
    at = [[points[min(e, len(points) - 1)] for points in runs] for e in range(n_epochs)]
    seconds = np.array([np.mean([s for s, _ in row]) for row in at])
    score = np.array([np.mean([r for _, r in row]) for row in at])
    return seconds, score


def panels(records: pd.DataFrame) -> list[tuple[str, object, pd.DataFrame]]:
    """``(data label, size, ok records)`` of every panel with at least one timed history."""
    ok = records[records["status"] == "ok"]
    timed = ok[ok["history"].map(lambda h: isinstance(h, list) and bool(h)
                                 and isinstance(h[0], dict) and "train_s" in h[0])]
    labels = timed["data_label"] if "data_label" in timed else pd.Series("", index=timed.index)
    keys = sorted({(str(d), s) for d, s in zip(labels, timed["size"], strict=True)},
                  key=lambda k: (k[1], k[0]))
    return [(d, s, timed[(labels == d) & (timed["size"] == s)]) for d, s in keys]


def plot_anytime(records: pd.DataFrame, out_dir: Path, stem: str, metric: Metric,
                 styles: dict[str, Style] | None = None,
                 size_name: str = "size") -> PlotFiles | None:
    """Write ``<stem>-anytime.png/.svg`` of the validation ``metric`` from the records of one
    (suite, problem) that represent each method (``method_label``: the method); ``None``
    without timed histories."""
    found = panels(records)
    if not found:
        return None
    spec = anytime_spec(metric)
    styles = styles or method_styles(records)
    with panel_grid(len(found), f"{heading(records)}: {spec.title}") as (figure, axes):
        shown: set[str] = set()
        for ax, (data, size, cells) in zip(axes, found, strict=True):
            for method, runs in cells.groupby("method_label", sort=True):
                seconds, score = curve(list(runs["history"]), metric)
                if not len(seconds):
                    continue
                style = styles[str(method)]
                colour = style.colour
                ax.plot(seconds, score, linewidth=1.2, **style.line(3))
                best_t = pd.to_numeric(runs["time_to_best_s"], errors="coerce").mean()
                best_v = pd.to_numeric(runs[metric.name], errors="coerce").mean()
                if math.isfinite(best_t) and math.isfinite(best_v) and best_t > 0:
                    ax.scatter([best_t], [best_v], marker="*", s=90, color=colour,
                               edgecolors="black", linewidths=0.5, zorder=5)
                shown.add(str(method))
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_title(f"{size_name} = {size}" + (f" · {data}" if data else ""),
                         fontsize="small")
            ax.set_xlabel("training seconds (validation excluded)")
            ax.set_ylabel(f"{metric.axis_label} (best so far)")
        handles = method_handles(styles, shown)
        handles.append(mlines.Line2D([], [], linestyle="none", marker="*", markersize=9,
                                     markerfacecolor="0.6", markeredgecolor="black",
                                     label="kept epoch (mean over seeds)"))
        figure.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 0.95),
                      frameon=False)
    return save(figure, spec, out_dir, stem)
