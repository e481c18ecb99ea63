"""Records on disk: one JSON file per cell, written atomically, read back as one table.

A results folder holds ``records/<cell_id>.json``. A record is written to a temporary file in
the same folder, synced, and linked into place, so a reader (or a crash, even SIGKILL) never
sees half a record and an existing record is never overwritten by accident. Replacing a record
(``--force``, ``--retry-failed``) moves the old one to ``records/superseded/`` first. A cell in
progress holds an exclusive lock (``records/.locks/<cell_id>.lock``, released by the OS if its
holder dies), so two runs sharing a folder never run or write the same cell twice.

Each suite run into the folder is noted in ``suites/<suite>.json``: the ids of every cell the
suite asked for (the union over its runs), so a report of one suite shows exactly its cells,
whichever suite ran them first, and says which are missing; and the suite's tuning declaration
(the latest run's), so the report selects configurations by the rule the sweep used.

A file in ``records/`` that is not a record of its cell (truncated, not JSON, not UTF-8, another
program's JSON, a record under another cell's name) or whose content was changed after it was
written (a checksum that no longer matches, a value that is not finite, a regret that disagrees
with its per-instance regrets: the checks of :mod:`l2obench.record`) is *damaged*: it is
reported by path, moved to ``records/damaged/`` (never deleted), and never counts as a recorded
cell, so its cell runs again on resume.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from l2obench.errors import L2OBenchError
from l2obench.record import RECORD_COLUMNS, Limits, Record, RecordError, disagreeing_scores, utc_now
from l2obench.tasks.base import DEFAULT_TASK, get_task

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

_CELL_ID = re.compile(r"[0-9a-f]{1,16}")
#: Records and folders are readable by everyone who can read the results folder.
_FILE_MODE = 0o644


class StoreError(L2OBenchError):
    """A results folder that cannot be read or written (permissions, a file in the way, …)."""


@dataclass
class CellLock:
    """A held lock on one cell (see :meth:`ResultStore.try_lock`)."""

    handle: int

    def release(self) -> None:
        with contextlib.suppress(OSError):
            fcntl.flock(self.handle, fcntl.LOCK_UN)
            os.close(self.handle)


class ResultStore:
    """A results folder: write a cell's record once, read which cells are done."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.records = self.root / "records"

    def path(self, cell_id: str) -> Path:
        return self.records / f"{cell_id}.json"

    def read(self, cell_id: str) -> Record | None:
        """The record of ``cell_id``, or ``None`` if it has none (a damaged one is moved aside)."""
        path = self.path(cell_id)
        try:
            return read_record(path, cell_id)
        except FileNotFoundError:
            return None
        except RecordError as exc:
            self.set_aside(path, str(exc))
            return None

    def peek(self, cell_id: str) -> Record | None:
        """The record of ``cell_id``, or ``None`` if it has none or a damaged one (left where it
        is: for a look that changes nothing, such as a dry run)."""
        try:
            return read_record(self.path(cell_id), cell_id)
        except (FileNotFoundError, RecordError):
            return None

    def has(self, cell_id: str) -> bool:
        return self.read(cell_id) is not None

    def find(self, prefix: str) -> list[Record]:
        """The records whose cell id starts with ``prefix`` (hex digits only)."""
        if not _CELL_ID.fullmatch(prefix):
            raise L2OBenchError(f"'{prefix}' is not a cell id: a cell id is up to 16 hex digits "
                                "(0-9, a-f)")
        found = []
        for path in sorted(self._record_files()):
            if path.stem.startswith(prefix):
                record = self.read(path.stem)
                if record is not None:
                    found.append(record)
        return found

    def scan(self) -> Iterator[Record]:
        """Every intact record of the folder; damaged files are moved aside as they are met."""
        for path in sorted(self._record_files()):
            record = self.read(path.stem)
            if record is not None:
                yield record

    def set_aside_disagreeing(self) -> None:
        """Move aside the records whose score disagrees with their per-instance values
        (:func:`disagreeing`; damaged files met on the way too), so their cells run again."""
        for cell_id, reason in disagreeing(self.scan()).items():
            self.set_aside(self.path(cell_id), reason)

    def _record_files(self) -> list[Path]:
        try:
            return [p for p in self.records.glob("*.json") if not p.name.startswith(".tmp-")]
        except OSError as exc:
            raise StoreError(f"cannot read the records folder {self.records}: {exc}") from None

    def set_aside(self, path: Path, reason: str) -> Path | None:
        """Move a damaged record file to ``records/damaged/``, warning with its path."""
        target = self.records / "damaged" / f"{path.stem}.{_stamp()}.json"
        try:
            target.parent.mkdir(exist_ok=True)
            os.replace(path, target)
        except OSError as exc:
            log.warning("damaged record %s (%s); could not move it aside: %s", path, reason, exc)
            return None
        log.warning("damaged record %s (%s): moved to %s; its cell will run again", path, reason,
                    target)
        return target

    # -- locks ---------------------------------------------------------------------------------

    def try_lock(self, cell_id: str) -> CellLock | None:
        """Take the cell's exclusive lock without waiting; ``None`` if another run holds it.

        The lock file is opened without following symbolic links, so a planted link cannot make
        the sweep create or truncate a file outside the folder. The OS releases the lock if
        this process dies.
        """
        locks = self.records / ".locks"
        self._mkdir(locks)
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            handle = os.open(locks / f"{cell_id}.lock", flags, _FILE_MODE)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StoreError(f"refusing the lock file {locks / cell_id}.lock: it is a "
                                 "symbolic link") from None
            raise StoreError(f"cannot create a lock in {locks}: {exc.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(handle)
            return None
        return CellLock(handle)

    # -- suites --------------------------------------------------------------------------------

    def note_suite(self, suite: str, cell_ids: Iterable[str],
                   tuning: Mapping[str, Any] | None = None, limits: Limits | None = None
                   ) -> None:
        """Add ``cell_ids`` to the cells of ``suite`` in this folder (``suites/<suite>.json``);
        ``tuning`` (a tuning declaration as JSON) and ``limits`` (the limits the suite declares,
        which ``rerun`` applies) replace the ones noted before, if given."""
        folder = self.root / "suites"
        self._mkdir(folder)
        lock = os.open(folder / ".lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                       _FILE_MODE)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)
            known = suite_cells(self.root, suite) or set()
            merged = sorted(known | set(cell_ids))
            noted: dict[str, Any] = {"suite": suite, "cells": merged}
            declared = suite_tuning(self.root, suite) if tuning is None else dict(tuning)
            if declared is not None:
                noted["tuning"] = declared
            kept = suite_limits(self.root, suite) if limits is None else limits
            if kept != Limits():
                noted["limits"] = {k: v for k, v in dataclasses.asdict(kept).items()
                                   if v is not None}
            _write_atomically(folder / f"{suite}.json", json.dumps(noted, indent=1))
        except OSError as exc:
            raise StoreError(f"cannot note suite '{suite}' in {folder}: {exc.strerror}") \
                from None
        finally:
            os.close(lock)

    # -- generations -------------------------------------------------------------------------

    @contextlib.contextmanager
    def generation(self, mode: str) -> Iterator[str]:
        """The start time shared by the sweeps of ``mode`` that run on this folder together.

        The first sweep of a mode starts a generation (now); a sweep that starts while another
        of the same mode is still running joins its generation. A ``--force`` sweep counts a
        record that started within its generation as already redone, so two of them started
        together run each cell once; a later one starts a generation of its own. Each
        participant holds a shared lock on ``records/.sweeps/<mode>`` while it runs.
        """
        folder = self.records / ".sweeps"
        self._mkdir(folder)
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        mutex = os.open(folder / ".mutex", flags, _FILE_MODE)
        handle = os.open(folder / mode, flags, _FILE_MODE)
        try:
            fcntl.flock(mutex, fcntl.LOCK_EX)
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                started = utc_now()  # nobody else running: a new generation
                os.ftruncate(handle, 0)
                os.pwrite(handle, started.encode(), 0)
            except BlockingIOError:
                started = os.pread(handle, 64, 0).decode(errors="replace").strip() or utc_now()
            fcntl.flock(handle, fcntl.LOCK_SH)
            fcntl.flock(mutex, fcntl.LOCK_UN)
            yield started
        finally:
            os.close(handle)
            os.close(mutex)

    # -- writing -------------------------------------------------------------------------------

    def check_writable(self) -> None:
        """Raise :class:`StoreError` now if records cannot be written here (before any work)."""
        self._mkdir(self.records)
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".probe", dir=self.records)
        except OSError as exc:
            raise StoreError(f"cannot write records in {self.records}: {exc.strerror}") from None
        os.close(fd)
        Path(tmp).unlink(missing_ok=True)

    def _mkdir(self, path: Path) -> None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            blocker = next((p for p in (path, *path.parents) if p.exists()), path)
            raise StoreError(f"cannot create the folder {path}: the file {blocker} is in the "
                             "way") from None
        except OSError as exc:
            raise StoreError(f"cannot create {path}: {exc.strerror}") from None

    def write(self, record: Record, *, replace: bool = False) -> Path:
        """Write ``record`` under its ``cell_id`` atomically.

        An existing record is an error unless ``replace``, which moves it to ``superseded/``.
        Raises :class:`StoreError` when the file system refuses (full disk, permissions).
        """
        target = self.path(record.cell_id)
        self._mkdir(self.records)
        text = json.dumps(record.sealed().to_json(), indent=1)
        tmp: str | None = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.records)
            os.fchmod(fd, _FILE_MODE & ~_umask())
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if replace and target.exists():
                self._supersede(target)
            try:
                os.link(tmp, target)  # fails if the target exists: never a silent overwrite
            except FileExistsError:
                raise FileExistsError(
                    f"a record for cell {record.cell_id} exists: {target}") from None
            _fsync_dir(self.records)
        except OSError as exc:
            if isinstance(exc, FileExistsError):
                raise
            raise StoreError(f"cannot write the record of cell {record.cell_id} in "
                             f"{self.records}: {exc.strerror or exc}") from None
        finally:
            if tmp is not None:
                Path(tmp).unlink(missing_ok=True)
        return target

    def hold_exactly(self, records: Sequence[Record], suite: str,
                     cells: Iterable[str] | None, tuning: Mapping[str, Any] | None) -> None:
        """Make this folder hold ``records`` and nothing else, as suite ``suite``'s (a published
        baseline taking a new run's records).

        Each record is written (one of the same cell already here is superseded); a record of
        any other cell moves to ``records/superseded/``, never deleted; the suite's noted cells
        become ``cells`` (the run's, including those without a record) and its tuning
        declaration ``tuning``.
        """
        keep = {record.cell_id for record in records}
        for path in self._record_files():
            if path.stem not in keep:
                self._supersede(path)
        for record in records:
            current = self.read(record.cell_id)
            if current is None or current.sealed() != record.sealed():
                self.write(record, replace=True)
        folder = self.root / "suites"
        self._mkdir(folder)
        noted: dict[str, Any] = {"suite": suite, "cells": sorted(cells if cells is not None
                                                                 else keep)}
        if tuning is not None:
            noted["tuning"] = dict(tuning)
        try:
            _write_atomically(folder / f"{suite}.json", json.dumps(noted, indent=1))
        except OSError as exc:
            raise StoreError(f"cannot note suite '{suite}' in {folder}: {exc.strerror}") \
                from None

    def _supersede(self, target: Path) -> None:
        old = self.records / "superseded"
        old.mkdir(exist_ok=True)
        os.replace(target, old / f"{target.stem}.{_stamp()}.json")


def _suite_file(root: str | os.PathLike[str], suite: str) -> dict[str, Any] | None:
    """The noted object of suite ``suite`` in ``root``; ``None`` if absent or damaged (warned)."""
    path = Path(root) / "suites" / f"{suite}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        cells = data["cells"]
        if not isinstance(cells, list) or not all(isinstance(c, str) for c in cells):
            raise TypeError("cells must be a list of cell ids")
        if not isinstance(data.get("tuning", {}), dict):
            raise TypeError("tuning must be an object")
        limits = data.get("limits", {})
        if not (isinstance(limits, dict) and set(limits) <= {"wall_seconds", "memory_mb"}
                and all(isinstance(v, int | float) and v > 0 for v in limits.values())):
            raise TypeError("limits must map wall_seconds and memory_mb to positive numbers")
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring the damaged suite file %s: %s", path, exc)
        return None
    return dict(data)


def suite_cells(root: str | os.PathLike[str], suite: str) -> set[str] | None:
    """The ids of the cells suite ``suite`` asked for in results folder ``root``, or ``None``
    where no run of it noted them (folders written before suites were noted)."""
    data = _suite_file(root, suite)
    return None if data is None else set(data["cells"])


def suite_tuning(root: str | os.PathLike[str], suite: str) -> dict[str, Any] | None:
    """The tuning declaration the latest run of ``suite`` noted in ``root`` (its JSON form,
    :meth:`l2obench.selection.Tuning.to_json`), or ``None``: no method of it is tuned."""
    data = _suite_file(root, suite)
    return None if data is None else data.get("tuning")


def suite_limits(root: str | os.PathLike[str], suite: str) -> Limits:
    """The limits suite ``suite`` declares, as the latest run of it noted them in ``root``
    (none where it declares none, or no run noted them)."""
    data = _suite_file(root, suite)
    noted = {} if data is None else data.get("limits", {})
    return Limits(**{k: float(v) for k, v in noted.items()})


def _write_atomically(target: Path, text: str) -> None:
    """Write ``text`` to ``target`` through a synced temporary file and a rename."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=target.parent)
    try:
        os.fchmod(fd, _FILE_MODE & ~_umask())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_record(path: Path, cell_id: str | None = None) -> Record:
    """The record in ``path``; :class:`RecordError` if it is damaged or foreign.

    ``FileNotFoundError`` passes through. With ``cell_id``, a record of another cell under that
    name is damaged too.
    """
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RecordError(f"cannot be read: {exc.strerror or exc}") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RecordError("not UTF-8 text") from None
    except ValueError as exc:
        raise RecordError(f"not valid JSON ({exc})") from None
    record = Record.from_json(data)
    if cell_id is not None and record.cell_id != cell_id:
        raise RecordError(f"holds the record of cell {record.cell_id}")
    return record


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def load_records(path: str | os.PathLike[str], *, strict: bool = False) -> list[Record]:
    """The records of a results folder (``path/records/*.json``, or ``path/*.json``).

    A damaged or foreign file is skipped with a warning naming it (``strict``: an
    :class:`~l2obench.errors.L2OBenchError` instead); reading never moves or changes a file.
    Each cell appears once: files are named by cell id, and a file whose record is of another
    cell is damaged. A missing folder or one without records is ``FileNotFoundError``.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"no results folder at {root}")
    folder = root / "records" if (root / "records").is_dir() else root
    try:
        files = sorted(p for p in folder.glob("*.json") if not p.name.startswith(".tmp-"))
    except OSError as exc:
        raise StoreError(f"cannot read {folder}: {exc}") from None
    records = []

    def damaged(file: Path, reason: str) -> None:
        if strict:
            raise L2OBenchError(f"damaged record {file}: {reason}")
        log.warning("skipping damaged record %s: %s", file, reason)

    for file in files:
        try:
            records.append(read_record(file, file.stem))
        except RecordError as exc:
            damaged(file, str(exc))
    doubtful = disagreeing(records)
    for record in records:
        if record.cell_id in doubtful:
            damaged(folder / f"{record.cell_id}.json", doubtful[record.cell_id])
    records = [record for record in records if record.cell_id not in doubtful]
    if not records:
        raise FileNotFoundError(f"no records under {root}")
    return records


def disagreeing(records: Iterable[Record]) -> dict[str, str]:
    """The records whose ranking metric (their task family's) disagrees with its own
    per-instance values (:func:`~l2obench.record.disagreeing_scores`), with what is wrong."""

    def scored(record: Record) -> tuple[str, float | None, str, list[float] | None] | None:
        try:
            metric = get_task(record.task or DEFAULT_TASK).ranking()
        except L2OBenchError:  # a family this installation does not know: nothing to compare
            return None
        if metric.per_instance is None:
            return None
        values = (record.per_instance or {}).get(metric.per_instance)
        return metric.name, record.metric(metric.name), metric.per_instance, values

    return disagreeing_scores(records, scored)


def suite_records(path: str | os.PathLike[str], suite: str) -> tuple[list[Record], int]:
    """The records of suite ``suite`` in a results folder, and how many of its cells have none.

    A suite's records are the cells its runs asked for in this folder (``suites/<suite>.json``),
    whichever suite's run recorded them; for folders written before runs noted their cells,
    the records whose ``suite`` is ``suite`` (and none counted missing).
    """
    records = load_records(path)
    wanted = suite_cells(path, suite)
    if wanted is None:
        return [r for r in records if r.suite == suite], 0
    mine = [r for r in records if r.cell_id in wanted]
    return mine, len(wanted) - len(mine)


def load_results(path: str | os.PathLike[str], *, strict: bool = False) -> pd.DataFrame:
    """Every record of a results folder as a table, one row per cell (see :func:`load_records`
    and :func:`results_frame`)."""
    return results_frame(load_records(path, strict=strict))


def results_frame(records: Sequence[Record]) -> pd.DataFrame:
    """``records`` as a table, one row per cell.

    The columns are :data:`~l2obench.record.RECORD_COLUMNS`, in that order, except that the
    ``metrics``, ``extras`` and ``per_instance`` maps become one column per entry, after them:
    every metric and extra the records' task families declare (:mod:`l2obench.tasks`), and any
    other entry a record holds. Columns that older records lack are empty.
    """
    import pandas as pd

    spread = ("metrics", "extras", "per_instance")
    declared: list[str] = []
    for name in sorted({r.task or DEFAULT_TASK for r in records}):
        task = get_task(name)
        for metric in (*task.metrics, task.validation, *task.extras):
            declared += [metric.name] + ([metric.per_instance] if metric.per_instance else [])
    rows: list[dict[str, Any]] = []
    for record in records:
        row = record.to_json()
        for key in spread:
            row.update(row.pop(key) or {})
        rows.append(row)
    extra = list(dict.fromkeys([*declared, *(k for r in rows for k in r)]))
    columns = [c for c in RECORD_COLUMNS if c not in spread]
    return pd.DataFrame(rows, columns=columns + [c for c in extra if c not in columns])
