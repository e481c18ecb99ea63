"""Records: one JSON file per cell, written atomically, read back as one long-format table.

A results folder holds ``records/<cell_id>.json``. A record is written to a temporary file in
the same folder, synced, and linked into place, so a reader (or a crash, even SIGKILL) never
sees half a record and an existing record is never overwritten by accident. Replacing a record
(``--force``, ``--retry-failed``) moves the old one to ``records/superseded/`` first. A cell in
progress holds an exclusive lock (``records/.locks/<cell_id>.lock``, released by the OS if its
holder dies), so two runs sharing a folder never run or write the same cell twice.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pandas as pd

#: The documented columns, in the order tables show them (records may carry more).
RECORD_COLUMNS = [
    "cell_id", "suite", "problem", "size", "size_param", "n_vars", "method", "method_label",
    "params", "problem_params", "seed", "device", "status", "error", "test_loss", "norm_regret",
    "accuracy",
    "train_time_s", "epochs", "best_epoch", "stopped_by", "time_per_epoch_s", "infer_time_s",
    "peak_mem_mb", "device_peak_mem_mb", "fwd_iters_mean", "fwd_iters_max", "fwd_unconverged",
    "bwd_iters_mean", "bwd_unconverged", "budget_max_epochs", "budget_max_seconds", "n_train",
    "n_val", "n_test",
    "l2obench_version", "git_commit", "torch_version", "numpy_version", "python_version",
    "hostname", "device_name", "torch_threads", "started_at", "finished_at", "history",
]


class ResultStore:
    """A results folder: write a cell's record once, check which cells are done."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.records = self.root / "records"

    def path(self, cell_id: str) -> Path:
        return self.records / f"{cell_id}.json"

    def has(self, cell_id: str) -> bool:
        return self.path(cell_id).is_file()

    def read(self, cell_id: str) -> dict[str, Any] | None:
        """The record of ``cell_id``, or ``None`` if the cell has none."""
        try:
            return json.loads(self.path(cell_id).read_text())
        except FileNotFoundError:
            return None

    def find(self, prefix: str) -> list[dict[str, Any]]:
        """The records whose cell id starts with ``prefix``."""
        return [json.loads(p.read_text()) for p in sorted(self.records.glob(f"{prefix}*.json"))]

    def try_lock(self, cell_id: str) -> IO[str] | None:
        """Take the cell's exclusive lock without waiting; ``None`` if another run holds it.

        Release it with :meth:`unlock`; the OS releases it if this process dies.
        """
        locks = self.records / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        handle = open(locks / f"{cell_id}.lock", "a")  # noqa: SIM115 (held across calls)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return None
        return handle

    @staticmethod
    def unlock(handle: IO[str]) -> None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()

    def write(self, record: dict[str, Any], *, replace: bool = False) -> Path:
        """Write ``record`` under its ``cell_id`` atomically.

        An existing record is an error unless ``replace``, which moves it to ``superseded/``.
        """
        target = self.path(record["cell_id"])
        self.records.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_jsonable(record), indent=1, sort_keys=False)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.records)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            if replace and target.exists():
                self._supersede(target)
            try:
                os.link(tmp, target)  # fails if the target exists: never a silent overwrite
            except FileExistsError:
                raise FileExistsError(
                    f"a record for cell {record['cell_id']} exists: {target}") from None
            _fsync_dir(self.records)
        finally:
            Path(tmp).unlink(missing_ok=True)
        return target

    def _supersede(self, target: Path) -> None:
        old = self.records / "superseded"
        old.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        os.replace(target, old / f"{target.stem}.{stamp}.json")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _jsonable(value: Any) -> Any:
    """Plain JSON: NaN and infinities become null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def load_results(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Every record under ``path`` (a results folder, or any folder of record files) as a table.

    Documented columns come first; a missing folder or one without records is an error.
    """
    root = Path(path)
    if not root.is_dir():
        raise FileNotFoundError(f"no results folder at {root}")
    files = sorted(root.rglob("records/*.json")) or sorted(root.glob("*.json"))
    rows = [json.loads(f.read_text()) for f in files if not f.name.startswith(".tmp-")]
    if not rows:
        raise FileNotFoundError(f"no records under {root}")
    frame = pd.DataFrame(rows)
    known = [c for c in RECORD_COLUMNS if c in frame.columns]
    return frame[known + [c for c in frame.columns if c not in known]]
