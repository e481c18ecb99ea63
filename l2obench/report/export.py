"""The pages' tables as files for papers and spreadsheets: CSV and LaTeX (booktabs).

Every table a report shows is written twice into ``<out>/tables/``: ``<name>.csv`` (the cells as
the pages show them, one header row) and ``<name>.tex`` (a ``tabular`` with ``booktabs`` rules,
numbers right-aligned, ``±`` and dashes typeset, bold cells — the pages' ``**…**``, and the
method of a bold row (a tie group) — as ``\\textbf``), ready for ``\\input`` inside a ``table``
environment of the paper's own.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from pathlib import Path

from l2obench.report.leaderboard import Section, Table

_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
}
_LATEX_TEXT = {"±": r"$\pm$", "—": "---", "–": "--", "×": r"$\times$", "≤": r"$\leq$",
               "≥": r"$\geq$", "…": r"\ldots{}", "γ": r"$\gamma$", "α": r"$\alpha$",
               "‡": r"$\ddagger$"}
_BOLD = re.compile(r"^\*\*(.*)\*\*$")


def section_tables(section: Section, slug: str) -> Iterable[tuple[str, Table]]:
    """The tables of one section with the file stem each is written under."""
    for ranking in section.rankings:
        yield f"{slug}-{ranking.stem}", ranking.table
    if section.selection is not None:
        yield f"{slug}-tuning", section.selection
    for size in section.sizes:
        block = f"{size.size}-{_slug(size.data)}" if size.data else size.size
        yield f"{slug}-size-{block}", size.table
        if size.losses is not None:
            yield f"{slug}-size-{block}-test-loss", size.losses
        if size.configurations is not None:
            yield f"{slug}-size-{block}-configurations", size.configurations
    for reference in section.references:
        yield f"{slug}-published-{_slug(reference.name)}", reference.table
    if section.baseline is not None:
        yield f"{slug}-baseline", section.baseline
    if section.not_ok is not None:
        yield f"{slug}-not-ok", section.not_ok


def write_tables(sections: Iterable[tuple[str, Section]], out: Path) -> list[Path]:
    """Write every table of every ``(slug, section)`` as CSV and LaTeX under ``out/tables``."""
    folder = out / "tables"
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for slug, section in sections:
        for stem, table in section_tables(section, slug):
            csv_path, tex_path = folder / f"{stem}.csv", folder / f"{stem}.tex"
            with csv_path.open("w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(table.columns)
                writer.writerows([[_plain(cell) for cell in row] for row in table.rows])
            tex_path.write_text(latex(table), encoding="utf-8")
            written += [csv_path, tex_path]
    return written


def latex(table: Table) -> str:
    """``table`` as a booktabs ``tabular``."""
    spec = "".join("r" if numeric else "l" for numeric in table.numeric)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule",
             " & ".join(latex_cell(c) for c in table.columns) + r" \\", r"\midrule"]
    for i, row in enumerate(table.rows):
        strong = bool(table.bold) and table.bold[i]
        cells = [f"**{c}**" if strong and name == "method" else c
                 for c, name in zip(row, table.columns, strict=True)]
        lines.append(" & ".join(latex_cell(c) for c in cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def latex_cell(text: str) -> str:
    """One cell as LaTeX: special characters escaped, a few symbols typeset, bold kept."""
    bold = _BOLD.match(text)
    inner = bold.group(1) if bold else text
    escaped = "".join(_LATEX_SPECIAL.get(ch, _LATEX_TEXT.get(ch, ch)) for ch in inner)
    return rf"\textbf{{{escaped}}}" if bold else escaped


def _slug(text: str) -> str:
    """A data point's label as part of a file name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")


def _plain(text: str) -> str:
    """A cell for CSV: the pages' bold markers dropped."""
    bold = _BOLD.match(text)
    return bold.group(1) if bold else text
