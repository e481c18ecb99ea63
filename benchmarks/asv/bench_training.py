"""Training: one optimiser step of every registered method, and what a short training run records.

``TrainingStep`` times one step through the public ``Method.fit``. The ``Training*`` tracks read
one record per (k, method) from a short sweep run once through ``l2obench run`` (asv's
``setup_cache``, shared by every track class because they inherit the same function): each cell
trains in its own child process, so its peak host memory is that cell's alone (``VmHWM`` above the
level before training, as in every published record), and regret and iteration counts are the
runner's, computed from the true costs with the exact oracle, never reported by the method.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import tomli_w

from l2obench import Budget, load_results, method_registry
from l2obench.measure import synchronize

from .common import (
    BATCH,
    PROBLEM,
    SEED,
    SIZES,
    THREADS,
    asv_attributes,
    available_method,
    dataset,
    device,
)

#: Every registered method of the predict-then-optimize family (the benchmark trains on shortest
#: path), built in or added through an entry point.
METHODS = [name for name in method_registry.names()
           if method_registry.get(name).task == "decision"]

#: The largest k at which a method is trained here, for methods whose step at the next size
#: would take minutes on two CPU cores: cvx-net's step takes ~8 s at k = 10 and ~90 s at k = 20.
LARGEST_SIZE: dict[str, int] = {"cvx-net": 10}

#: One epoch over one mini-batch: exactly one optimiser step.
ONE_STEP = Budget(max_epochs=1)

#: The sweep's data and fixed budget: three epochs of two mini-batches (six steps), so that
#: regret has moved from the initial model's, and every cell stays within seconds at k = 20
#: except the slowest methods'.
SWEEP_DATA = {"n_train": 2 * BATCH, "n_val": 100, "n_test": 100}
SWEEP_EPOCHS = 3

#: Wall-time limit per cell (a cell over it is recorded as ``timeout``, failing its tracks), and
#: for the whole sweep.
CELL_TIMEOUT_S = 600
SWEEP_TIMEOUT_S = 1800

#: A record's columns that the tracks read, by (k, method).
Records = dict[tuple[int, str], dict[str, Any]]
TRACKED_COLUMNS = ("status", "error", "peak_mem_mb", "device_peak_mem_mb", "fwd_iters_mean",
                   "bwd_iters_mean", "norm_regret")


def fits(method: str, k: int) -> bool:
    """Whether ``method`` is trained at size ``k`` here (see :data:`LARGEST_SIZE`)."""
    return k <= LARGEST_SIZE.get(method, k)


def require_size(method: str, k: int) -> None:
    """asv's skip for a (k, method) pair that this suite does not train."""
    if not fits(method, k):
        raise NotImplementedError(f"{method} is trained up to k = {LARGEST_SIZE[method]} here")


class TrainingStep:
    """``Method.fit`` for one step on one mini-batch of 256, from a model that took one step.

    ``setup`` builds the method and takes a first step, so one-time costs (JAX compilation,
    lazy imports, allocator growth) stay out of the timing; asv re-runs it before every sample,
    so every sample times the same second step. ``fit`` also validates once (one instance) and
    snapshots the parameters: a negligible share of a step.
    """

    params = (list(SIZES), METHODS)
    param_names = ("k", "method")
    version = "1"
    timeout = 900
    rounds = 1
    warmup_time = 0.0

    def setup(self, k: int, method: str) -> None:
        require_size(method, k)
        method_cls = available_method(method)
        problem, self.data = dataset(k, BATCH, 1)
        self.method = method_cls(problem, device(), SEED)
        self.method.fit(self.data, ONE_STEP)

    def time_training_step(self, k: int, method: str) -> None:
        self.method.fit(self.data, ONE_STEP)
        synchronize(device())


def sweep_suite() -> dict[str, Any]:
    """The suite file of the training sweep: every method at every size, the fixed budget."""
    return {
        "name": "asv-training",
        "problem": PROBLEM,
        "sizes": list(SIZES),
        "seeds": [SEED],
        "data": SWEEP_DATA,
        "budget": {"max_epochs": SWEEP_EPOCHS},
        "methods": [{"name": name} for name in METHODS],
    }


def size_groups() -> dict[tuple[str, ...], list[int]]:
    """The sizes grouped by the methods trained at them: one ``l2obench run`` per group."""
    groups: dict[tuple[str, ...], list[int]] = {}
    for k in SIZES:
        groups.setdefault(tuple(m for m in METHODS if fits(m, k)), []).append(k)
    return groups


def run_sweep(suite_file: Path, out: Path, methods: tuple[str, ...], ks: list[int]) -> None:
    """``l2obench run`` on ``methods`` × ``ks``, one cell per CPU core at a time.

    Each cell's child process gets ``cpu_count // jobs`` = :data:`THREADS` PyTorch threads, as the
    other benchmarks have. Exit status 1 (some cell not ok) is left to the tracks of those cells.
    """
    jobs = max(1, (os.cpu_count() or 1) // THREADS)
    command = [
        sys.executable, "-m", "l2obench", "run", "--suite", str(suite_file), "--out", str(out),
        "--sizes", ",".join(map(str, ks)), "--methods", ",".join(methods),
        "--device", device().type, "--jobs", str(jobs), "--cell-timeout", str(CELL_TIMEOUT_S),
    ]
    status = subprocess.run(command, check=False).returncode
    if status not in (0, 1):
        raise RuntimeError(f"`{' '.join(command)}` exited with status {status} (output above)")


def train_sweep(folder: Path) -> Records:
    """Run the sweep in ``folder`` and return the tracked columns of each record."""
    suite_file = folder / "suite.toml"
    suite_file.write_text(tomli_w.dumps(sweep_suite()))
    for methods, ks in size_groups().items():
        run_sweep(suite_file, folder / "runs", methods, ks)
    records: Records = {}
    for row in load_results(folder / "runs").to_dict("records"):
        records[int(row["size"]), row["method"]] = {
            column: None if pd.isna(row[column]) else row[column] for column in TRACKED_COLUMNS
        }
    return records


def recorded_value(records: Records, k: int, method: str, column: str) -> float:
    """``column`` of the cell (k, method); asv's skip where the cell or the value does not exist,
    an error where the cell did not end ``ok``."""
    require_size(method, k)
    record = records.get((k, method))
    if record is None:
        raise RuntimeError(f"the sweep left no record of {method} at k = {k}")
    if record["status"] == "skipped":
        raise NotImplementedError(record["error"])
    if record["status"] != "ok":
        raise RuntimeError(f"{method} at k = {k} ended {record['status']}: {record['error']}")
    value = record[column]
    if value is None:
        raise NotImplementedError(f"{method} at k = {k} records no {column} (docs/records.md)")
    return float(value)


class _SweepRecords:
    """Base of the tracks: the sweep (run once, shared), and ``column`` of one cell's record."""

    params = (list(SIZES), METHODS)
    param_names = ("k", "method")
    timeout = 60
    column: ClassVar[str]

    @asv_attributes(timeout=SWEEP_TIMEOUT_S)
    def setup_cache(self) -> Records:
        with tempfile.TemporaryDirectory(prefix="l2obench-asv-") as folder:
            return train_sweep(Path(folder))

    def setup(self, records: Records, k: int, method: str) -> None:
        self.value = recorded_value(records, k, method, self.column)


class TrainingPeakHostMemory(_SweepRecords):
    """Peak resident host memory while training, above the cell's level before training."""

    version = "1"
    column = "peak_mem_mb"

    @asv_attributes(unit="MiB")
    def track_peak_host_memory(self, records: Records, k: int, method: str) -> float:
        return self.value


class TrainingPeakDeviceMemory(_SweepRecords):
    """Peak CUDA memory allocated while training, above the starting allocation (CUDA only)."""

    version = "1"
    column = "device_peak_mem_mb"

    @asv_attributes(unit="MiB")
    def track_peak_device_memory(self, records: Records, k: int, method: str) -> float:
        return self.value


class TrainingForwardIterations(_SweepRecords):
    """Forward fixed-point iterations per instance, mean over training (layer methods)."""

    version = "1"
    column = "fwd_iters_mean"

    @asv_attributes(unit="iterations per instance")
    def track_forward_iterations(self, records: Records, k: int, method: str) -> float:
        return self.value


class TrainingBackwardIterations(_SweepRecords):
    """Adjoint-solver iterations per training step, mean (methods that iterate backward)."""

    version = "1"
    column = "bwd_iters_mean"

    @asv_attributes(unit="iterations per step")
    def track_backward_iterations(self, records: Records, k: int, method: str) -> float:
        return self.value


class TrainingRegret(_SweepRecords):
    """Normalized regret on the test split after the sweep's fixed budget, scored by the runner."""

    version = "1"
    column = "norm_regret"

    @asv_attributes(unit="regret / optimal objective")
    def track_norm_regret(self, records: Records, k: int, method: str) -> float:
        return self.value
