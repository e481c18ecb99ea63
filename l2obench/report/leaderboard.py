"""Leaderboard pages: ranking tables per size and overall, provenance, figures.

The same tables go into ``LEADERBOARD.md`` (GitHub renders it; images linked relatively) and a
self-contained ``index.html`` (inline CSS, images beside it, a Content-Security-Policy that
forbids any request off the page's own folder). Both come from the templates in ``templates/``;
the HTML one escapes every value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jinja2
import pandas as pd
from markdown_it import MarkdownIt
from markupsafe import Markup

from l2obench.record import Status
from l2obench.report.aggregate import AGGREGATION_NOTE, METRICS, has_data
from l2obench.report.plots import PlotFiles

RANKING_RULE = (
    "At each size, methods are ranked by mean normalized regret (lower is better), ties broken "
    "by mean training time; a method without an ok cell at a size ranks last there (tied with "
    "any other such method). The overall rank orders methods by their mean rank over all sizes "
    "of the suite, ties broken by their mean rank of training time over the sizes (with the "
    "same last-place rule)."
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
    """A rendered table: header, rows of text, which columns are numbers (right-aligned)."""

    columns: list[str]
    rows: list[list[str]]
    numeric: list[bool]


@dataclass
class SizeSection:
    """The ranking table of one problem size."""

    size: str
    n_vars: str  # "40 decision variables", or unknown when no cell of the size got that far
    table: Table


@dataclass
class FigureLink:
    """A figure as the pages link it: paths relative to the page."""

    title: str
    png: str
    svg: str


@dataclass
class Section:
    """Everything the pages show for one (suite, problem)."""

    suite: str
    problem: str
    overall: Table
    sizes: list[SizeSection]
    figures: list[FigureLink]
    not_ok: Table | None
    counts: str


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
          tiebreak: str | None = None) -> dict[str, int]:
    """Rank of every method in ``methods`` on ``metric`` (lower is better) in ``agg``.

    ``agg`` holds one size's aggregate rows. Ties on ``metric`` are broken by ``tiebreak``;
    methods equal on both share the better rank. A method without a mean (no ok cell, or no
    row at all) ranks last: ``len(methods)``.
    """
    by_method = agg.set_index("method_label")

    def key(method: str, column: str | None) -> float:
        if column is None or method not in by_method.index:
            return math.nan
        return float(by_method.at[method, f"{column}_mean"])

    keys = {m: (key(m, metric), key(m, tiebreak)) for m in methods}
    ranked = {m: k for m, k in keys.items() if math.isfinite(k[0])}

    def order(k: tuple[float, float]) -> tuple[float, bool, float]:
        return (k[0], not math.isfinite(k[1]), k[1] if math.isfinite(k[1]) else 0.0)

    result = {m: len(methods) for m in methods}
    for method, k in ranked.items():
        result[method] = 1 + sum(order(other) < order(k) for other in ranked.values())
    return result


def overall_ranking(agg: pd.DataFrame) -> pd.DataFrame:
    """One row per method of one (suite, problem), best first (see :data:`RANKING_RULE`).

    Columns: ``method_label``, ``rank``, ``mean_rank``, ``mean_time_rank``, ``solved``,
    ``attempted`` and one ``rank@<size>`` per size.
    """
    methods = sorted(pd.unique(agg["method_label"]))
    sizes = sorted(pd.unique(agg["size"]))
    per_size = {s: agg[agg["size"] == s] for s in sizes}
    regret = {s: ranks(rows, methods, "norm_regret", "train_time_s")
              for s, rows in per_size.items()}
    time = {s: ranks(rows, methods, "train_time_s") for s, rows in per_size.items()}
    totals = agg.groupby("method_label")[["solved", "attempted"]].sum()
    rows = []
    for method in methods:
        row = {"method_label": method,
               "mean_rank": sum(regret[s][method] for s in sizes) / len(sizes),
               "mean_time_rank": sum(time[s][method] for s in sizes) / len(sizes),
               "solved": int(totals.at[method, "solved"]),
               "attempted": int(totals.at[method, "attempted"])}
        row.update({f"rank@{s}": regret[s][method] for s in sizes})
        rows.append(row)
    frame = pd.DataFrame(rows).sort_values(["mean_rank", "mean_time_rank", "method_label"])
    keys = list(zip(frame["mean_rank"], frame["mean_time_rank"], strict=True))
    frame.insert(1, "rank", [1 + keys.index(k) for k in keys])
    return frame.reset_index(drop=True)


def _shown_metrics(agg: pd.DataFrame) -> list[str]:
    """The metrics with data anywhere in ``agg``: columns without any are left out."""
    return [m for m in METRICS if has_data(agg, m)]


def size_table(rows: pd.DataFrame, methods: Sequence[str], metrics: Sequence[str]) -> Table:
    """One size's ranking: every method of the suite, in rank order, absent ones marked."""
    rank = ranks(rows, methods, "norm_regret", "train_time_s")
    by_method = rows.set_index("method_label")
    body = []
    for method in sorted(methods, key=lambda m: (rank[m], m)):
        if method in by_method.index:
            row = by_method.loc[method]
            cells = [estimate(row, m) for m in metrics]
            solved = f"{int(row['solved'])}/{int(row['attempted'])}"
            statuses = row["statuses"]
        else:
            cells, solved, statuses = ["—"] * len(metrics), "0/0", "not run"
        body.append([str(rank[method]), method, *cells, solved, statuses])
    return Table(["rank", "method", *(METRICS[m] for m in metrics), "solved", "statuses"], body,
                 [True, False, *([True] * len(metrics)), True, False])


def overall_table(agg: pd.DataFrame) -> Table:
    """The overall ranking with each size's rank, so the mean can be checked by eye."""
    frame = overall_ranking(agg)
    sizes = sorted(pd.unique(agg["size"]))
    body = [[str(r["rank"]), r["method_label"], f"{r['mean_rank']:.2f}",
             *(str(r[f"rank@{s}"]) for s in sizes), f"{r['mean_time_rank']:.2f}",
             f"{r['solved']}/{r['attempted']}"] for _, r in frame.iterrows()]
    columns = ["rank", "method", "mean regret rank", *(f"size {_plain(s)}" for s in sizes),
               "mean time rank", "solved"]
    return Table(columns, body, [True, False, True, *([True] * len(sizes)), True, True])


def not_ok_table(records: pd.DataFrame) -> Table | None:
    """Every cell that is not ok, with its error's first line; ``None`` when all are ok."""
    bad = records[records["status"] != Status.OK].sort_values(["size", "method_label", "seed"])
    if bad.empty:
        return None
    body = [[_plain(r["size"]), r["method_label"], _plain(r["seed"]), r["status"],
             _first_line(r.get("error"))] for _, r in bad.iterrows()]
    return Table(["size", "method", "seed", "status", "error"], body,
                 [True, False, True, False, False])


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


def section(records: pd.DataFrame, agg: pd.DataFrame, plots: Iterable[PlotFiles],
            page_dir: Path, missing: int = 0) -> Section:
    """The tables and figures of one (suite, problem); figure paths relative to ``page_dir``.

    ``missing`` cells of the suite have no record: the counts say so.
    """
    methods = sorted(pd.unique(agg["method_label"]))
    metrics = _shown_metrics(agg)
    sizes = []
    for size, rows in agg.groupby("size", sort=True):
        n_vars = rows["n_vars"].iloc[0]
        sizes.append(SizeSection(_plain(size), f"{_plain(n_vars)} decision variables"
                                 if pd.notna(n_vars) else "decision variables unknown",
                                 size_table(rows, methods, metrics)))
    figures = [FigureLink(p.spec.title, p.png.relative_to(page_dir).as_posix(),
                      p.svg.relative_to(page_dir).as_posix()) for p in plots]
    solved, attempted = int(agg["solved"].sum()), int(agg["attempted"].sum())
    return Section(str(agg["suite"].iloc[0]), str(agg["problem"].iloc[0]), overall_table(agg),
                   sizes, figures, not_ok_table(records),
                   counts=f"{solved}/{attempted} cells ok, {_count(len(methods), 'method')}, "
                          f"{_count(len(sizes), 'size')}"
                          + (f"; {_count(missing, 'cell')} of the suite not recorded (not run "
                             "yet, or failed to write)" if missing else ""))


def provenance(records: pd.DataFrame, command: str) -> list[tuple[str, str]]:
    """Where the records came from: the distinct values of each provenance column, the time
    span of the runs, when the report was made and the command that made it."""
    devices = records.get("device", pd.Series(index=records.index)).fillna("unknown device")
    models = records.get("device_name", pd.Series(index=records.index)).fillna("unknown model")
    items = [("device: CPU/GPU model",
              "; ".join(sorted({f"{d}: {m}" for d, m in zip(devices, models, strict=True)})))]
    for column, label in PROVENANCE_COLUMNS.items():
        values = records[column].dropna() if column in records else pd.Series()
        items.append((label, ", ".join(sorted({_plain(v) for v in values})) or "unknown"))
    started = records["started_at"].dropna() if "started_at" in records else pd.Series()
    finished = records["finished_at"].dropna() if "finished_at" in records else pd.Series()
    span = f"{started.min()} – {finished.max()}" if len(started) and len(finished) else "unknown"
    items += [("runs (UTC)", span),
              ("records", str(len(records))),
              ("report made (UTC)", datetime.now(UTC).isoformat(timespec="seconds")),
              ("command", command or "not given")]
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
    context = {
        "title": "l2obench leaderboard: " + ", ".join(dict.fromkeys(s.suite for s in sections)),
        "sections": sections,
        "provenance": provenance(records, command),
        "aggregation": AGGREGATION_NOTE,
        "ranking_rule": RANKING_RULE,
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


def md_escape(text: object) -> str:
    """Text safe inside a GitHub Markdown table cell: no markup, pipes or raw HTML."""
    return re.sub(r"([\\`*_\[\]|<>#])", r"\\\1", str(text)).replace("\n", " ")
