"""Records: one JSON file per cell, written atomically, read back as one long-format table.

A results folder holds ``records/<cell_id>.json``. A record is written to a temporary file in
the same folder and renamed into place, so a reader (or a crash) never sees half a record, and
an existing record is never rewritten.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

#: The documented columns, in the order tables show them (records may carry more).
RECORD_COLUMNS = [
    "cell_id", "suite", "problem", "size", "n_vars", "method", "method_label", "params",
    "problem_params", "seed", "device", "status", "error", "test_loss", "norm_regret", "accuracy",
    "train_time_s", "epochs", "best_epoch", "stopped_by", "time_per_epoch_s", "infer_time_s",
    "peak_mem_mb", "device_peak_mem_mb", "fwd_iters_mean", "fwd_iters_max", "fwd_unconverged",
    "bwd_iters_mean", "budget_max_epochs", "budget_max_seconds", "n_train", "n_val", "n_test",
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

    def write(self, record: dict[str, Any]) -> Path:
        """Write ``record`` under its ``cell_id`` atomically; refuse to overwrite one."""
        target = self.path(record["cell_id"])
        if target.exists():
            raise FileExistsError(f"a record for cell {record['cell_id']} exists: {target}")
        self.records.mkdir(parents=True, exist_ok=True)
        text = json.dumps(_jsonable(record), indent=1, sort_keys=False)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=self.records)
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(text)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target


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
