"""Run one cell to its record: fit, measure, and score with the task family's scorer.

The runner, not the method, computes every metric: it asks the method for its outputs on the
test split and has the problem's task family score them against the split's ground truth
(predict-then-optimize: the predicted costs, decided by the exact oracle and scored under the
true costs). A cell that raises, diverges or runs out of memory becomes a record with that
status and the error text; the next cell runs.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import traceback
from dataclasses import asdict, dataclass
from typing import Any

import torch

from l2obench.errors import L2OBenchError, MissingExtraError
from l2obench.measure import cpu_waiting, now, peak_memory
from l2obench.methods.base import BaseMethod
from l2obench.methods.base import method_registry as methods
from l2obench.problems.base import BaseProblem, Dataset
from l2obench.problems.base import problem_registry as problems
from l2obench.provenance import provenance
from l2obench.record import Cell, Record, Status
from l2obench.tasks.base import get_task

log = logging.getLogger(__name__)


def resolve_device(name: str) -> str:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` must be visible."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise L2OBenchError("--device cuda: no CUDA device is visible to PyTorch "
                            "(use --device cpu or auto)")
    return name


def data_key(cell: Cell) -> str:
    """What a cell's data set depends on: its problem and the problem's parameters."""
    return json.dumps([cell.problem, cell.problem_params], sort_keys=True)


@dataclass
class DataCache:
    """The last data set, reused by the cells that share a problem configuration.

    ``generated`` says whether :meth:`get` drew it (rather than receiving it by :meth:`put`).
    """

    key: str | None = None
    problem: BaseProblem | None = None
    data: Dataset[Any] | None = None
    generated: bool = False

    def get(self, cell: Cell) -> tuple[BaseProblem, Dataset[Any]]:
        key = data_key(cell)
        if key != self.key or self.problem is None or self.data is None:
            self.key, self.problem, self.data = None, None, None
            problem = problems.get(cell.problem)(**cell.problem_params)
            self.problem, self.data, self.key = problem, problem.generate(), key
            self.generated = True
        return self.problem, self.data

    def put(self, cell: Cell, data: Dataset[Any]) -> None:
        """Hold ``data``, drawn elsewhere for ``cell``'s problem configuration."""
        self.key, self.data, self.generated = data_key(cell), data, False
        self.problem = problems.get(cell.problem)(**cell.problem_params)


def start_record(cell: Cell) -> Record:
    """The record of ``cell`` before it runs: configuration and provenance filled in."""
    family = methods.get(cell.method).family if cell.method in methods else None
    return Record.start(cell, provenance(torch.device(cell.device)), family)


def run_cell(cell: Cell, cache: DataCache | None = None) -> Record:
    """Run one cell to a complete record; exceptions become a status, never escape."""
    record = start_record(cell)
    measurements: dict[str, Any] = {}
    with cpu_waiting() as cpu:
        try:
            status, error, measurements = _measure(cell, cache or DataCache())
        except MissingExtraError as exc:
            status, error = Status.SKIPPED, str(exc)
        except torch.cuda.OutOfMemoryError as exc:
            status, error = Status.OOM, _first_line(exc)
        except MemoryError as exc:
            status, error = Status.OOM, f"MemoryError: {exc}"
        except FloatingPointError as exc:
            status, error = Status.DIVERGED, str(exc)
        except Exception as exc:
            log.debug("cell %s failed:\n%s", cell.label, traceback.format_exc())
            status, error = Status.FAILED, f"{type(exc).__name__}: {exc}"
        finally:
            gc.collect()
            if cell.device.startswith("cuda"):
                torch.cuda.empty_cache()
    return record.ended(status, error, **measurements, cpu_s=cpu.cpu_s, cpu_wait_s=cpu.wait_s)


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def _measure(cell: Cell, cache: DataCache) -> tuple[Status, str | None, dict[str, Any]]:
    """Fit within the budget, then score on the test split: the status, error and measurements."""
    method_cls = methods.get(cell.method)
    method_cls.check_available()
    problem, data = cache.get(cell)
    task = get_task(problem.task)
    device = torch.device(cell.device)
    method: BaseMethod = method_cls(problem, device, cell.seed, **cell.method_params)

    gc.collect()
    with peak_memory(device) as memory:
        start = now(device)
        fit = method.fit(data, cell.budget)
        train_time = now(device) - start

    test = data.test
    scores = task.score(problem, test, method.predict(test.features))
    test_loss = method.loss(test)
    if not math.isfinite(test_loss):
        raise FloatingPointError(f"test loss is {test_loss}")

    start = now(device)
    task.deploy(problem, method, test.features)
    infer_time = (now(device) - start) / len(test)

    status, error = Status.OK, None
    if fit.epochs == 0:
        status = Status.TIMEOUT
        budget = cell.budget.describe()
        error = f"no epoch completed within the budget ({budget})"
    trained = asdict(fit)
    validation = {task.validation.name: trained.pop("val_score")}
    extras = trained.pop("extras")
    metrics = {m.name: scores.values.get(m.name) for m in task.metrics}
    return status, error, {
        **trained,
        "n_vars": problem.n_vars,
        "objective": method.objective_name(),
        "test_loss": test_loss,
        "metrics": {k: v for k, v in {**metrics, **validation}.items() if v is not None},
        "per_instance": scores.per_instance,
        "extras": extras or None,
        "train_time_s": train_time,
        "time_per_epoch_s": train_time / fit.epochs if fit.epochs else None,
        "infer_time_s": infer_time,
        "peak_mem_mb": memory.host_mb,
        "device_peak_mem_mb": memory.device_mb,
    }


def warm_up(device: torch.device) -> None:
    """Pay one-time costs before any cell, so the first cell's time and memory are not charged
    with them: the device's runtime (CUDA context, kernels, allocator) and the lazy imports of
    autograd and ``torch.optim`` (the first optimiser built imports torch._dynamo, slowly)."""
    x = torch.randn(64, 64, device=device, requires_grad=True)
    optimizer = torch.optim.Adam([x])
    (x @ x).relu().sum().backward()
    optimizer.step()
    now(device)
