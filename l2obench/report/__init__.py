"""Reports: turn a results folder into figures, ``LEADERBOARD.md`` and a static ``index.html``.

Reports read records only through :func:`l2obench.store.load_results` and work on the table
with pandas; the runner knows nothing of them, so a report can be made of any results folder,
including one copied from another machine. ``build_report`` writes into ``out``::

    out/LEADERBOARD.md      GitHub-renderable, images linked relatively
    out/index.html          self-contained static page (inline CSS, no network requests)
    out/aggregates.csv      the aggregated numbers the pages show
    out/tables/<name>.csv / .tex   every table of the pages, as CSV and LaTeX (booktabs)
    out/figures/<suite>-<figure>.png / .svg   (<suite>-<problem>-… where the names differ)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from l2obench.errors import L2OBenchError
from l2obench.report.aggregate import aggregate
from l2obench.report.export import write_tables
from l2obench.report.leaderboard import section, write_pages
from l2obench.report.plots import plot_metrics
from l2obench.report.style import method_styles
from l2obench.store import load_results, suite_cells

__all__ = ["ReportFiles", "build_report", "publish_dir"]

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
                 allow_incomplete: bool = True) -> ReportFiles:
    """Aggregate the records under ``results`` and write figures and pages into ``out``.

    ``suite`` keeps only that suite's records; ``command`` is the command line that made the
    report, shown on the pages for provenance; ``notes`` is the publisher's Markdown text (what
    changed since the last baseline, caveats), shown at the top of both pages;
    ``allow_incomplete=False`` refuses a suite some of whose cells have no record. A folder without
    records, or a suite that has none in it, is an :class:`~l2obench.errors.L2OBenchError`
    naming what is there.
    """
    records, missing = _load(Path(results), suite)
    if missing and not allow_incomplete:
        raise L2OBenchError(f"suite '{suite}' has {missing} cells without a record in "
                            f"{results}; run them first (the same 'l2obench run' resumes), or "
                            "pass --allow-incomplete")
    out = Path(out)
    figures_dir = out / "figures"
    out.mkdir(parents=True, exist_ok=True)
    agg = aggregate(records)
    sections, figures, stems = [], [], []
    styles = method_styles(records)  # one look per method across the whole report
    for (suite_name, problem), part in agg.groupby(["suite", "problem"], sort=True):
        cells = records[(records["suite"] == suite_name) & (records["problem"] == problem)]
        stem = _slug(suite_name if suite_name == problem else f"{suite_name}-{problem}")
        plots = plot_metrics(part, cells, figures_dir, stem, styles)
        figures += [path for p in plots for path in (p.png, p.svg)]
        sections.append(section(cells, part, plots, out, missing=missing))
        stems.append(stem)
    aggregates = out / "aggregates.csv"
    agg.to_csv(aggregates, index=False)
    leaderboard, index = write_pages(sections, records, out, command, notes)
    tables = write_tables(zip(stems, sections, strict=True), out)
    return ReportFiles(out, leaderboard, index, aggregates, tuple(figures), missing,
                       tuple(tables))


def _load(results: Path, suite: str | None) -> tuple[pd.DataFrame, int]:
    """The records to report on and how many of the suite's cells have none, or an error a
    user can act on.

    A suite's records are the cells its runs asked for in this folder (``suites/<suite>.json``),
    whichever suite's run recorded them; for folders written before runs noted their cells,
    the records whose ``suite`` column names it.
    """
    try:
        records = load_results(results)
    except FileNotFoundError as exc:
        raise L2OBenchError(f"nothing to report: {exc} (run 'l2obench run --out {results}' "
                            f"first, or point --results at a folder with records/*.json)") \
            from None
    if suite is None:
        return records, 0
    wanted = suite_cells(results, suite)
    if wanted is not None:
        mine = records[records["cell_id"].isin(wanted)].copy()
        mine["suite"] = suite
        return mine.reset_index(drop=True), len(wanted) - len(mine)
    present = sorted(pd.unique(records["suite"].astype(str)))
    if suite not in present:
        raise L2OBenchError(f"no records of suite '{suite}' under {results}; suites present: "
                            f"{', '.join(present)}")
    return records[records["suite"] == suite].reset_index(drop=True), 0


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
