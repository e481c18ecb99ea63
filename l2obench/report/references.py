"""Numbers other projects published, shown beside l2obench's (``l2obench report --reference``).

A reference is a CSV file whose leading ``#`` lines say where its numbers come from (the paper,
the repository and commit, the hardware: they are shown on the page as written) and whose rows
are one method at one size::

    # fpo-dys (McKenzie et al., TMLR 2024), src/shortest_path/results/csv at commit 04a131d, ...
    method,source_method,k,norm_regret_mean,norm_regret_min,norm_regret_max,time_to_best_s_mean
    dys-jfb,DYS,5,0.0880,0.0788,0.0982,67.9

- ``method``: the l2obench method identity the row compares with, as the pages name it
  (``dys-jfb``, ``pertopt[loss=dpo]``); a row whose method the suite did not run is shown with
  no l2obench numbers, never matched to a near namesake;
- the size column, named as the suite's size parameter (``k``);
- ``<column>_mean`` (and optionally ``_min`` and ``_max``) for record columns: the task's
  metrics (``norm_regret``) or run measurements (``time_to_best_s``);
- optionally ``source_method``, the method's name in the source.

l2obench's side of each row is the mean, minimum and maximum over the ok seeds of the cells that
represent the method on the page (its selected configuration), the same statistics a paper's
"mean of three runs, min and max" reports. Published folders keep their references under
``references/``, so that a published page regenerates with them.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from l2obench.errors import L2OBenchError
from l2obench.record import Status

__all__ = ["Reference", "compare_reference", "publish_references", "read_reference",
           "references_of"]

#: The folder of a results folder that holds the references its pages show.
FOLDER = "references"
_STATISTICS = ("mean", "min", "max")


@dataclass(frozen=True)
class Reference:
    """One reference file: its name (the file's stem), its source (the leading comment lines)
    and its rows."""

    name: str
    source: str
    rows: pd.DataFrame

    def columns(self) -> list[str]:
        """The record columns the reference has numbers for, in file order."""
        return [c.removesuffix("_mean") for c in self.rows.columns if c.endswith("_mean")]


def read_reference(path: str | Path) -> Reference:
    """Read a reference CSV, or raise an :class:`~l2obench.errors.L2OBenchError` that names the
    file and what is wrong with it."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise L2OBenchError(f"cannot read the reference {path}: {exc}") from None
    lines = text.splitlines()
    comment = []
    while lines and lines[0].startswith("#"):
        comment.append(lines.pop(0).lstrip("#").strip())
    source = " ".join(c for c in comment if c)
    if not source:
        raise L2OBenchError(f"reference {path}: its first lines must say where the numbers come "
                            "from ('# ...' lines: paper, repository and commit, hardware)")
    try:
        rows = pd.read_csv(path, skiprows=len(comment))
    except pd.errors.EmptyDataError:
        raise L2OBenchError(f"reference {path}: no table below its comment lines") from None
    except (ValueError, pd.errors.ParserError) as exc:
        raise L2OBenchError(f"reference {path}: not a CSV table: {exc}") from None
    if "method" not in rows or rows.empty:
        raise L2OBenchError(f"reference {path}: needs a 'method' column and at least one row; "
                            f"columns: {', '.join(map(str, rows.columns)) or 'none'}")
    reference = Reference(path.stem, source, rows)
    if not reference.columns():
        raise L2OBenchError(f"reference {path}: no '<column>_mean' column (e.g. "
                            "norm_regret_mean): nothing to compare")
    for column in rows.columns:
        if column.endswith(tuple(f"_{s}" for s in _STATISTICS)):
            values = pd.to_numeric(rows[column], errors="coerce")
            bad = rows[column][values.isna() | ~values.map(_finite)]
            if len(bad):
                raise L2OBenchError(f"reference {path}: column '{column}' has a value that is not "
                                    f"a finite number in row {int(bad.index[0]) + 1}: "
                                    f"{bad.iloc[0]!r}")
    return reference


def _finite(value: float) -> bool:
    return math.isfinite(float(value))


def references_of(results: Path) -> list[Path]:
    """The reference files kept in a results folder (``references/*.csv``), sorted."""
    return sorted((results / FOLDER).glob("*.csv"))


def publish_references(paths: Sequence[str | Path], out: Path) -> None:
    """Keep copies of the reference files ``paths`` in the published folder ``out``, after
    checking each, so that its page regenerates with them."""
    for path in paths:
        read_reference(path)
    if not paths:
        return
    folder = out / FOLDER
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for path in paths:
            target = folder / Path(path).name
            if Path(path).resolve() != target.resolve():
                shutil.copyfile(path, target)
    except OSError as exc:
        raise L2OBenchError(f"cannot copy the references into {folder}: {exc}") from None


def compare_reference(cells: pd.DataFrame, reference: Reference) -> pd.DataFrame:
    """One row per reference row: the reference's numbers and l2obench's beside them.

    ``cells`` are the ranked records of one (suite, problem) (``method_label`` the method's
    identity). Rows sorted by size, then method; columns: ``size``, ``method``,
    ``source_method``, ``seeds`` (ok cells of l2obench at that size over those attempted, or
    ``not run``), then for each compared column ``c``: ``c_ours_mean``, ``c_ours_min``,
    ``c_ours_max``, the reference's ``c_mean`` (``c_min``, ``c_max``), and ``c_ratio`` (ours
    over theirs, mean over mean).
    """
    names = cells["size_param"].dropna() if "size_param" in cells else pd.Series(dtype=str)
    size_param = str(names.iloc[0]) if len(names) else "size"
    rows = reference.rows
    if size_param not in rows:
        raise L2OBenchError(f"reference {reference.name}: needs a '{size_param}' column (the "
                            f"suite's size parameter); columns: {', '.join(map(str, rows))}")
    if "data" in cells and cells["data"].astype(str).nunique() > 1:
        raise L2OBenchError(f"reference {reference.name}: the suite has several data points; a "
                            "reference compares with a suite of one")
    compared = [c for c in reference.columns() if c in cells]
    if not compared:
        raise L2OBenchError(f"reference {reference.name}: none of its columns "
                            f"({', '.join(reference.columns())}) is a column of the records")
    out = []
    for _, row in rows.iterrows():
        mine = cells[(cells["method_label"].astype(str) == str(row["method"]))
                     & (pd.to_numeric(cells["size"], errors="coerce") == float(row[size_param]))]
        ok = mine[mine["status"] == Status.OK]
        entry: dict[str, object] = {
            "size": row[size_param], "method": str(row["method"]),
            "source_method": str(row.get("source_method", "") or ""),
            "seeds": f"{len(ok)}/{len(mine)}" if len(mine) else "not run"}
        for column in compared:
            values = pd.to_numeric(ok[column], errors="coerce").dropna()
            theirs = float(row[f"{column}_mean"])
            ours = float(values.mean()) if len(values) else math.nan
            entry[f"{column}_ours_mean"] = ours
            entry[f"{column}_ours_min"] = float(values.min()) if len(values) else math.nan
            entry[f"{column}_ours_max"] = float(values.max()) if len(values) else math.nan
            for statistic in _STATISTICS:
                name = f"{column}_{statistic}"
                entry[name] = float(row[name]) if name in row else math.nan
            entry[f"{column}_ratio"] = ours / theirs if theirs else math.nan
        out.append(entry)
    return pd.DataFrame(out).sort_values(["size", "method"], kind="stable").reset_index(drop=True)
