"""Training peak host memory of ``dys-jfb`` against its iteration cap ``max_iter`` and of
``dys-unrolled`` against its unrolled depth ``K``, each point one epoch in a fresh process, as
the runner records it (``peak_mem_mb``).

JFB differentiates through one application of the operator at the fixed point, so its memory
must not depend on how many iterations reached it; unrolling keeps every iteration on the tape.
Targets: ``dys-jfb`` flat (largest ÷ smallest peak at most 1.5×); ``dys-unrolled`` growing
(every point at least the previous one, the last at least 2× the first).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch

from l2obench import Budget, method_registry
from l2obench.executors import run_isolated
from l2obench.params import readable_name
from l2obench.problems.shortest_path import ShortestPath
from l2obench.record import Cell, Limits, Record

from ..asv.common import SEED
from ..comparisons.comparison import (
    DYS_JFB_PARAMS,
    Comparison,
    Findings,
    Side,
    Table,
    at_least,
    at_most,
    ratio,
    ratio_check,
)

log = logging.getLogger(__name__)

FLAT = at_most(1.5, "×")
STEP = at_least(1, "×")
GROWTH = at_least(2, "×")

#: Fresh processes measured at once (each with its share of the torch threads): each process's
#: high-water mark is its own, whatever runs beside it (only its seconds would change, and they
#: are not compared).
JOBS = 2


@dataclass(frozen=True)
class Sizes:
    k: int
    max_iters: tuple[int, ...]  # dys-jfb's max_iter
    unrolled_ks: tuple[int, ...]  # dys-unrolled's K
    n_train: int
    n_eval: int


FULL = Sizes(k=20, max_iters=(10, 100, 1000, 10_000), unrolled_ks=(10, 25, 50, 100),
             n_train=1000, n_eval=200)
QUICK = Sizes(k=5, max_iters=(10, 1000), unrolled_ks=(5, 20), n_train=64, n_eval=32)


@dataclass(frozen=True)
class Point:
    """One method at one value of its parameter: the runner's record of its epoch."""

    method: str
    param: str
    value: int
    peak_mb: float
    fwd_iters_mean: float


def isolated_record(name: str, params: dict[str, Any], sizes: Sizes) -> Record:
    """The runner's record of one epoch of ``name`` at the grid side of ``sizes``, in a fresh
    process."""
    method_cls = method_registry.get(name)
    problem_params = ShortestPath.validate(
        {"k": sizes.k, "seed": SEED, "n_train": sizes.n_train, "n_val": sizes.n_eval,
         "n_test": sizes.n_eval})
    cell = Cell(suite="ratios", problem="shortest-path", size_param="k",
                problem_params=problem_params, method=name,
                method_params=method_cls.validate(params),
                method_label=readable_name(name, params), seed=SEED, device="cpu",
                budget=Budget(max_epochs=1))
    threads = max(1, torch.get_num_threads() // JOBS)
    record = run_isolated(cell, Limits(wall_seconds=1800), threads=threads)
    if record.status != "ok":
        raise RuntimeError(f"{cell.label}: {record.status}: {record.error}")
    return record


def series(
    name: str, key: str, values: Sequence[int], base: dict[str, Any], sizes: Sizes
) -> list[Point]:
    """Peak training memory (MB above the process's level before ``fit``) for each value of the
    parameter ``key``, one fresh process per point, :data:`JOBS` at a time."""
    with ThreadPoolExecutor(max_workers=JOBS) as pool:
        records = list(pool.map(
            lambda value: isolated_record(name, {**base, key: value}, sizes), values))
    points = [Point(name, key, value, float(record.peak_mem_mb or 0.0),
                    float(record.fwd_iters_mean or 0.0))
              for value, record in zip(values, records, strict=True)]
    for point in points:
        log.info("%s %s=%d: peak %.1f MB", name, key, point.value, point.peak_mb)
    return points


def peak(point: Point) -> Side:
    return Side(point.peak_mb, "MB", f"{point.param}={point.value}")


def measure(sizes: Sizes) -> Findings:
    """Both series at grid side ``sizes.k`` and their checks."""
    jfb = series("dys-jfb", "max_iter", sizes.max_iters, DYS_JFB_PARAMS, sizes)
    unrolled = series("dys-unrolled", "K", sizes.unrolled_ks, {}, sizes)
    lowest = min(jfb, key=lambda p: p.peak_mb)
    highest = max(jfb, key=lambda p: p.peak_mb)
    step_before, step_after = min(itertools.pairwise(unrolled),
                                  key=lambda pair: ratio(pair[1].peak_mb, pair[0].peak_mb))
    checks = [
        ratio_check(f"dys-jfb peak MB, largest ÷ smallest over max_iter "
                    f"{', '.join(map(str, sizes.max_iters))}", peak(highest), peak(lowest), FLAT),
        ratio_check("dys-unrolled peak MB, smallest step from one K to the next",
                    peak(step_after), peak(step_before), STEP),
        ratio_check("dys-unrolled peak MB, last ÷ first K", peak(unrolled[-1]), peak(unrolled[0]),
                    GROWTH),
    ]
    table = Table(f"k={sizes.k}: one epoch per point, each in a fresh process",
                  ["method", "parameter", "value", "peak MB", "forward iterations per instance"],
                  [[p.method, p.param, p.value, p.peak_mb, p.fwd_iters_mean]
                   for p in (*jfb, *unrolled)])
    return Findings(checks, [table])


COMPARISON = Comparison(
    name="memory-vs-iterations",
    title="Training peak memory: dys-jfb vs max_iter, dys-unrolled vs K",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
