"""Run cells and turn each into a record: fit, measure, and score with the exact oracle.

The runner, not the method, computes every metric: it asks the method for predicted costs and
scores them with the problem's oracle against the true costs. A cell that raises, diverges or
runs out of memory becomes a record with that status and the error text; the next cell runs.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import traceback
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import torch

from l2obench.errors import L2OBenchError, MissingExtraError
from l2obench.measure import now, peak_memory
from l2obench.methods.base import Method
from l2obench.methods.base import method_registry as methods
from l2obench.metrics import decision_quality
from l2obench.problems.base import Dataset, Problem
from l2obench.problems.base import problem_registry as problems
from l2obench.provenance import provenance
from l2obench.store import RECORD_COLUMNS
from l2obench.suite import Cell

log = logging.getLogger(__name__)

STATUSES = ("ok", "failed", "diverged", "timeout", "oom", "skipped")


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` must be visible."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise L2OBenchError("--device cuda: no CUDA device is visible to PyTorch "
                            "(use --device cpu or auto)")
    return name


@dataclass
class DataCache:
    """The last generated data set, reused by the cells that share a problem configuration."""

    key: str | None = None
    problem: Problem | None = None
    data: Dataset | None = None

    def get(self, cell: Cell) -> tuple[Problem, Dataset]:
        key = json.dumps([cell.problem, cell.problem_params], sort_keys=True)
        if key != self.key or self.problem is None or self.data is None:
            self.key, self.problem, self.data = None, None, None
            problem = problems.get(cell.problem)(**cell.problem_params)
            self.problem, self.data, self.key = problem, problem.generate(), key
        return self.problem, self.data


def base_record(cell: Cell) -> dict[str, Any]:
    """A record with every documented column: the cell's configuration and provenance filled
    in, the measurements empty until the cell produces them."""
    device = torch.device(cell.device)
    p = cell.problem_params
    return {
        **dict.fromkeys(RECORD_COLUMNS),
        "cell_id": cell.cell_id,
        "suite": cell.suite,
        "problem": cell.problem,
        "size": cell.size,
        "size_param": cell.size_param,
        "n_vars": None,
        "method": cell.method,
        "method_label": cell.method_label,
        "params": json.dumps(cell.method_params, sort_keys=True),
        "problem_params": json.dumps(p, sort_keys=True),
        "seed": cell.seed,
        "device": cell.device,
        "status": None,
        "error": None,
        "budget_max_epochs": cell.budget.max_epochs,
        "budget_max_seconds": cell.budget.max_seconds,
        "n_train": p.get("n_train"),
        "n_val": p.get("n_val"),
        "n_test": p.get("n_test"),
        **provenance(device),
        "started_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def run_cell(cell: Cell, cache: DataCache | None = None) -> dict[str, Any]:
    """Run one cell to a complete record; exceptions become a status, never escape."""
    record = base_record(cell)
    try:
        record.update(_measure(cell, cache or DataCache()))
    except MissingExtraError as exc:
        record.update(status="skipped", error=str(exc))
    except torch.cuda.OutOfMemoryError as exc:
        record.update(status="oom", error=_first_line(exc))
    except MemoryError as exc:
        record.update(status="oom", error=f"MemoryError: {exc}")
    except FloatingPointError as exc:
        record.update(status="diverged", error=str(exc))
    except Exception as exc:
        log.debug("cell %s failed:\n%s", cell.label, traceback.format_exc())
        record.update(status="failed", error=f"{type(exc).__name__}: {exc}")
    finally:
        gc.collect()
        if cell.device.startswith("cuda"):
            torch.cuda.empty_cache()
    record["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return record


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _measure(cell: Cell, cache: DataCache) -> dict[str, Any]:
    """Fit within the budget, then score on the test split; returns the record's measurements."""
    method_cls = methods.get(cell.method)
    method_cls.check_available()
    problem, data = cache.get(cell)
    device = torch.device(cell.device)
    method: Method = method_cls(problem, device, cell.seed, **cell.method_params)

    gc.collect()
    with peak_memory(device) as memory:
        start = now(device)
        fit = method.fit(data, cell.budget)
        train_time = now(device) - start

    test = data.test
    pred_costs = method.predict_costs(test.features)
    quality = decision_quality(problem, test, pred_costs)
    test_loss = method.loss(test)
    if not math.isfinite(test_loss):
        raise FloatingPointError(f"test loss is {test_loss}")

    start = now(device)
    if method.outputs_decisions:
        method.predict_decisions(test.features)
    else:
        problem.oracle(method.predict_costs(test.features))
    infer_time = (now(device) - start) / len(test)

    status, error = "ok", None
    if fit.epochs == 0:
        status = "timeout"
        error = f"no epoch completed within max_seconds={cell.budget.max_seconds:g}"
    return {
        "n_vars": problem.n_vars,
        "status": status,
        "error": error,
        "test_loss": test_loss,
        "norm_regret": quality.norm_regret,
        "accuracy": quality.accuracy,
        "train_time_s": train_time,
        "epochs": fit.epochs,
        "best_epoch": fit.best_epoch,
        "stopped_by": fit.stopped_by,
        "time_per_epoch_s": train_time / fit.epochs if fit.epochs else None,
        "infer_time_s": infer_time,
        "peak_mem_mb": memory.host_mb,
        "device_peak_mem_mb": memory.device_mb,
        "fwd_iters_mean": fit.fwd_iters_mean,
        "fwd_iters_max": fit.fwd_iters_max,
        "fwd_unconverged": fit.fwd_unconverged,
        "bwd_iters_mean": fit.bwd_iters_mean,
        "bwd_unconverged": fit.bwd_unconverged,
        "history": fit.history,
    }


def warm_up(device: torch.device) -> None:
    """Pay one-time costs before any cell, so the first cell's time and memory are not charged
    with them: the device's runtime (CUDA context, kernels, allocator) and the lazy imports of
    autograd and ``torch.optim`` (the first optimiser built imports torch._dynamo, ~1 s)."""
    x = torch.randn(64, 64, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([x])
    (x @ x).relu().sum().backward()
    optimizer.step()
    now(device)
