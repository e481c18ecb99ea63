"""Reports: turn a results folder into figures, ``LEADERBOARD.md`` and a static ``index.html``.

Reports read records only through :func:`l2obench.store.load_results` and work on the table
with pandas; the runner knows nothing of them, so a report can be made of any results folder,
including one copied from another machine. ``build_report`` writes into ``out``::

    out/LEADERBOARD.md      GitHub-renderable, images linked relatively
    out/index.html          self-contained static page (inline CSS, no network requests)
    out/aggregates.csv      the aggregated numbers of every configuration (``selected`` marks
                            the ones representing their method)
    out/tables/<name>.csv / .tex   every table of the pages, as CSV and LaTeX (booktabs)
    out/figures/<suite>-<figure>.png / .svg   (<suite>-<problem>-… where the names differ;
                            <…>-<data point>-<figure> for a figure of one data point)

Where a suite declares tuning, each method is represented by the configuration its rule selects
on validation regret (:mod:`l2obench.report.configurations`); where data parameters vary, the
tables come per size and data point, the metric-against-size figures per data point, and a
data-grid figure plots regret across the grid. The anytime figure draws validation regret
against training seconds; the paired tests and the rank test are :mod:`l2obench.report.stats`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from l2obench.errors import L2OBenchError
from l2obench.report.aggregate import aggregate, metric_labels, records_task
from l2obench.report.baseline import compare
from l2obench.report.configurations import (
    annotate,
    describe_shared,
    ranked,
    suite_tunings,
    without_shared_parameters,
)
from l2obench.report.references import (
    Reference,
    compare_reference,
    publish_references,
    read_reference,
    references_of,
)
from l2obench.store import load_records, load_results, results_frame, suite_records

if TYPE_CHECKING:
    from l2obench.report.plots import PlotFiles
    from l2obench.report.style import Style

__all__ = ["ReportFiles", "build_report", "publish_dir", "publish_references"]

_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


@dataclass(frozen=True)
class ReportFiles:
    """The files a report wrote."""

    out: Path
    leaderboard: Path
    index: Path
    aggregates: Path
    figures: tuple[Path, ...]
    missing: int = 0  # cells the suite asked for that have no record (yet)
    tables: tuple[Path, ...] = ()  # every table as CSV and LaTeX, under out/tables/

    def all(self) -> list[Path]:
        """Every written file: pages, aggregates, figures, then the exported tables."""
        return [self.leaderboard, self.index, self.aggregates, *self.figures, *self.tables]


def build_report(results: str | Path, out: str | Path, *, suite: str | None = None,
                 command: str = "", notes: str = "",
                 allow_incomplete: bool = True,
                 baseline: str | Path | None = None,
                 references: Sequence[str | Path] = ()) -> ReportFiles:
    """Aggregate the records under ``results`` and write figures and pages into ``out``.

    ``suite`` keeps only that suite's records; ``command`` is the command line that made the
    report, shown on the pages for provenance; ``notes`` is the publisher's Markdown text (what
    changed since the last baseline, caveats), shown at the top of both pages;
    ``allow_incomplete=False`` refuses a suite some of whose cells have no record; ``baseline``
    (a results folder, e.g. a published one) adds each method's change against it
    (:mod:`l2obench.report.baseline`); ``references`` (CSV files of numbers other projects
    published, :mod:`l2obench.report.references`) are shown beside l2obench's, with those the
    results folder keeps under ``references/``. A folder without
    records, or a suite that has none in it, is an :class:`~l2obench.errors.L2OBenchError`
    naming what is there.
    """
    # Figures and pages load matplotlib: imported here, so that the aggregation alone (the
    # terminal's summary of a run) does not.
    from l2obench.report.export import write_tables
    from l2obench.report.leaderboard import section, write_pages
    from l2obench.report.style import method_styles

    records, missing = _load(Path(results), suite)
    published = _references([*references_of(Path(results)), *map(Path, references)])
    records_task(records)  # records of several task families do not compare: refused here
    records, shared = without_shared_parameters(records)
    against = _baseline(Path(baseline), shared) if baseline is not None else None
    if missing and not allow_incomplete:
        raise L2OBenchError(f"suite '{suite}' has {missing} cells without a record in "
                            f"{results}; run them first (the same 'l2obench run' resumes), or "
                            "pass --allow-incomplete")
    out = Path(out)
    figures_dir = out / "figures"
    out.mkdir(parents=True, exist_ok=True)
    tunings = suite_tunings(Path(results), sorted(pd.unique(records["suite"].astype(str))))
    records, selections = annotate(records, tunings)
    every = aggregate(records)
    shown = ranked(records)
    agg = aggregate(shown)
    sections, figures, stems = [], [], []
    styles = method_styles(shown)  # one look per method across the whole report
    for (suite_name, problem), part in agg.groupby(["suite", "problem"], sort=True):
        cells = shown[(shown["suite"] == suite_name) & (shown["problem"] == problem)]
        stem = _slug(suite_name if suite_name == problem else f"{suite_name}-{problem}")
        plots = _figures(part, cells, figures_dir, stem, styles)
        comparisons = [(r, compare_reference(cells, r)) for r in published]
        plots += _reference_figures(comparisons, cells, figures_dir, stem, styles)
        figures += [path for p in plots for path in (p.png, p.svg)]
        configurations = every[(every["suite"] == suite_name) & (every["problem"] == problem)]
        changes = None
        if against is not None:
            changes = compare(cells, against[against["problem"] == problem],
                              records_task(records).ranking())
        sections.append(section(cells, part, plots, out, missing=missing,
                                every=configurations,
                                selections=selections.get(str(suite_name)),
                                baseline=changes, baseline_name=str(baseline),
                                shared=describe_shared(shared), references=comparisons))
        stems.append(stem)
    aggregates = out / "aggregates.csv"
    every.to_csv(aggregates, index=False)
    leaderboard, index = write_pages(sections, records, out, command, notes)
    tables = write_tables(zip(stems, sections, strict=True), out)
    return ReportFiles(out, leaderboard, index, aggregates, tuple(figures), missing,
                       tuple(tables))


def _figures(agg: pd.DataFrame, records: pd.DataFrame, out: Path, stem: str,
             styles: dict[str, Style]) -> list[PlotFiles]:
    """The figures of one (suite, problem): every metric against size (per data point, and then
    only the summary, where data parameters vary), the data-grid figure, the anytime figure."""
    from l2obench.report.anytime import plot_anytime
    from l2obench.report.data_grid import plot_data_grid
    from l2obench.report.plots import plot_metrics, plot_specs

    names = records["size_param"].dropna()
    size_name = str(names.iloc[0]) if len(names) else "size"
    task = records_task(records)
    points = sorted(pd.unique(agg["data"]))
    plots: list[PlotFiles] = []
    if len(points) == 1:
        plots += plot_metrics(agg, records, out, stem, styles)
    else:
        for point in points:
            rows = agg[agg["data"] == point]
            if rows["size"].nunique() < 2:
                continue  # one size: the tables say it all, the data-grid figure draws it
            label = str(rows["data_label"].iloc[0])
            plots += plot_metrics(rows, records[records["data"] == point], out,
                                  f"{stem}-{_slug(label)}", styles, specs=plot_specs(task)[:1],
                                  subtitle=label)
    anytime = plot_anytime(records, out, stem, task.validation, styles, size_name)
    grid = plot_data_grid(agg, out, stem, task.ranking(), styles, size_name)
    # the data grid before the anytime curve: with one size, it is the page's leading figure
    return plots + [p for p in (grid, anytime) if p is not None]


def _reference_figures(comparisons: Sequence[tuple[Reference, pd.DataFrame]],
                       records: pd.DataFrame, out: Path, stem: str,
                       styles: dict[str, Style]) -> list[PlotFiles]:
    """The figure of each reference: l2obench's numbers and the published ones against size."""
    from l2obench.report.reference_plot import plot_reference

    names = records["size_param"].dropna()
    size_name = str(names.iloc[0]) if len(names) else "size"
    labels = metric_labels(records_task(records))
    found = [plot_reference(comparison, reference, out, stem, styles, labels, size_name)
             for reference, comparison in comparisons]
    return [p for p in found if p is not None]


def _baseline(path: Path, shared: frozenset[str]) -> pd.DataFrame:
    """A baseline's records, each method represented as on its own pages, its labels without
    the parameters the report's labels leave out (``shared``)."""
    try:
        records = load_results(path)
    except FileNotFoundError as exc:
        raise L2OBenchError(f"--baseline: {exc}") from None
    records, _ = without_shared_parameters(records, shared)
    tunings = suite_tunings(path, sorted(pd.unique(records["suite"].astype(str))))
    annotated, _ = annotate(records, tunings)
    return ranked(annotated)


def _references(paths: Sequence[Path]) -> list[Reference]:
    """The references read from ``paths``, each file once (a file given again, or a copy of one
    the results folder keeps, by its name)."""
    chosen: dict[str, Path] = {}
    for path in paths:
        chosen[path.name] = path
    return [read_reference(path) for path in chosen.values()]


def _load(results: Path, suite: str | None) -> tuple[pd.DataFrame, int]:
    """The records to report on and how many of the suite's cells have none (see
    :func:`~l2obench.store.suite_records`), or an error a user can act on."""
    try:
        if suite is None:
            return load_results(results), 0
        records, missing = suite_records(results, suite)
        if not records:
            present = sorted({r.suite for r in load_records(results)})
            raise L2OBenchError(f"no records of suite '{suite}' under {results}; suites "
                                f"present: {', '.join(present)}")
    except FileNotFoundError as exc:
        raise L2OBenchError(f"nothing to report: {exc} (run 'l2obench run --out {results}' "
                            f"first, or point --results at a folder with records/*.json)") \
            from None
    frame = results_frame(records)
    frame["suite"] = suite  # the suite's cells, whichever suite's run recorded them
    return frame, missing


def _slug(text: str) -> str:
    """A file-name-safe form of a suite or problem name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "suite"


def publish_dir(suite: str) -> Path:
    """``results/<suite>/`` of the l2obench source checkout, where published baselines live.

    Only a checkout has that folder (an installed wheel does not); the suite's name must be one
    path component, so a name cannot point the report elsewhere.
    """
    if not _SAFE_NAME.fullmatch(suite):
        raise L2OBenchError(f"cannot publish suite '{suite}': a suite name to publish must be "
                            f"letters, digits, '.', '_' or '-'")
    root = Path(__file__).resolve().parents[2]
    results = root / "results"
    if not (results.is_dir() and (root / "pyproject.toml").is_file()):
        raise L2OBenchError(f"--publish needs a source checkout of l2obench: no results/ folder "
                            f"at {root}")
    return results / suite
