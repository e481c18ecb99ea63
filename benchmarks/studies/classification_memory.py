"""Implicit classifiers: training peak host memory against the forward iterations.

An implicit network trained by JFB or by the Jacobian-based gradient keeps one application of
its latent map on the autograd tape, at the fixed point, however many iterations reached it
(the solve runs without a tape); unrolling keeps every one of its ``K`` iterations. So the
training peak memory of ``implicit-jfb`` and ``implicit-jacobian`` must stay flat as the forward
solve takes more iterations, and that of ``implicit-unrolled`` must grow linearly in ``K`` (Wu
Fung et al., "JFB: Jacobian-Free Backpropagation for Implicit Networks", AAAI 2022, §3).

Each point is one epoch of MNIST-1D in a fresh process, as the runner records it
(``peak_mem_mb``: the increase of the resident memory during training above its level before).
The forward iterations are set by the cap ``max_iter`` under a tolerance the float32 solve never
reaches, so every instance runs exactly the cap (the recorded mean says so). Targets: each
implicit mode's largest ÷ smallest peak at most 1.5×; unrolled's last ÷ first at least 2×, and
its peaks on a line in ``K`` (R² of the least-squares fit at least 0.98).

    python -m benchmarks.comparisons.ratios --only classification-memory
    python -m benchmarks.studies.classification_memory RESULT.json   # the figure, beside it
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from l2obench import Budget, method_registry
from l2obench.executors import run_isolated
from l2obench.params import readable_name
from l2obench.record import Cell, Limits, Record
from l2obench.tasks.classification.problem import ImageClassification

from ..comparisons.comparison import (
    Check,
    Comparison,
    Findings,
    Result,
    Side,
    Table,
    at_least,
    at_most,
    load_result,
    ratio_check,
)

log = logging.getLogger(__name__)

FLAT = at_most(1.5, "×")
GROWTH = at_least(2, "×")
LINE = at_least(0.98)
SEED = 0
#: A forward tolerance below float32's resolution: the solve runs to its cap.
NEVER = 1e-12
#: The table's columns; the figure reads the rows by them.
COLUMNS = ["method", "forward iterations per instance", "peak MB"]


@dataclass(frozen=True)
class Sizes:
    width: int
    iterations: tuple[int, ...]  # implicit-jfb's and implicit-jacobian's max_iter, unrolled's K
    n_train: int
    n_eval: int
    batch_size: int
    contraction: float


FULL = Sizes(width=64, iterations=(10, 30, 100, 300), n_train=512, n_eval=64, batch_size=64,
             contraction=0.9)
QUICK = Sizes(width=4, iterations=(5, 20), n_train=64, n_eval=16, batch_size=32,
              contraction=0.9)


@dataclass(frozen=True)
class Point:
    """One method at one iteration count: the runner's record of its epoch."""

    method: str
    iterations: int
    peak_mb: float
    fwd_iters_mean: float


def isolated_record(name: str, params: dict[str, Any], sizes: Sizes) -> Record:
    """The runner's record of one epoch of ``name`` at ``sizes.width``, in a fresh process."""
    method_cls = method_registry.get(name)
    problem_params = ImageClassification.validate(
        {"width": sizes.width, "n_train": sizes.n_train, "n_val": sizes.n_eval,
         "n_test": sizes.n_eval, "seed": SEED})
    params = {"contraction": sizes.contraction, "batch_size": sizes.batch_size, **params}
    cell = Cell(suite="ratios", problem="classification", size_param="width",
                problem_params=problem_params, method=name,
                method_params=method_cls.validate(params),
                method_label=readable_name(name, params), seed=SEED, device="cpu",
                budget=Budget(max_epochs=1))
    record = run_isolated(cell, Limits(wall_seconds=1800), threads=1)
    if record.status != "ok":
        raise RuntimeError(f"{cell.label}: {record.status}: {record.error}")
    return record


def series(name: str, sizes: Sizes) -> list[Point]:
    """Peak training memory of ``name`` at each of ``sizes.iterations``: the forward cap of an
    implicit mode, the depth ``K`` of unrolling."""
    points = []
    for n in sizes.iterations:
        params = {"K": n} if name == "implicit-unrolled" else {"max_iter": n, "tol": NEVER}
        record = isolated_record(name, params, sizes)
        iters = float(n) if name == "implicit-unrolled" else float(record.fwd_iters_mean or 0.0)
        points.append(Point(name, n, float(record.peak_mem_mb or 0.0), iters))
        log.info("%s at %d iterations: peak %.1f MB", name, n, points[-1].peak_mb)
    return points


def line_fit(points: Sequence[Point]) -> tuple[float, float, float]:
    """The least-squares line ``peak = a + b · iterations``: ``(a, b, R²)``."""
    x = np.array([p.fwd_iters_mean for p in points])
    y = np.array([p.peak_mb for p in points])
    b, a = np.polyfit(x, y, 1)
    residual = float(np.sum((y - (a + b * x)) ** 2))
    total = float(np.sum((y - y.mean()) ** 2))
    return float(a), float(b), 1.0 - residual / total if total > 0 else 0.0


def peak(point: Point) -> Side:
    return Side(point.peak_mb, "MB", f"{point.fwd_iters_mean:.4g} forward iterations")


def measure(sizes: Sizes) -> Findings:
    """The three series at ``sizes.width`` and their checks."""
    checks: list[Check] = []
    rows: list[list[float | int | str | None]] = []
    for name in ("implicit-jfb", "implicit-jacobian"):
        points = series(name, sizes)
        highest = max(points, key=lambda p: p.peak_mb)
        lowest = min(points, key=lambda p: p.peak_mb)
        checks.append(ratio_check(
            f"{name} peak MB, largest ÷ smallest over forward iterations "
            f"{', '.join(map(str, sizes.iterations))}", peak(highest), peak(lowest), FLAT))
        rows += [[p.method, p.fwd_iters_mean, p.peak_mb] for p in points]
    unrolled = series("implicit-unrolled", sizes)
    rows += [[p.method, p.fwd_iters_mean, p.peak_mb] for p in unrolled]
    checks.append(ratio_check("implicit-unrolled peak MB, last ÷ first K", peak(unrolled[-1]),
                              peak(unrolled[0]), GROWTH))
    a, b, r2 = line_fit(unrolled)
    checks.append(Check(
        "implicit-unrolled peak MB on a line in K: R² of the least-squares fit",
        Side(b, "MB", "slope per iteration"), Side(a, "MB", "intercept"), r2, LINE))
    table = Table(f"width {sizes.width}, batch {sizes.batch_size}, {sizes.n_train} MNIST-1D "
                  "signals: one epoch per point, each in a fresh process", COLUMNS, rows)
    notes = [f"contraction γ = {sizes.contraction}; implicit modes: max_iter = the iterations, "
             f"tol {NEVER} (never reached in float32); unrolled: K = the iterations; one "
             "PyTorch thread; peak = increase of the resident memory during training"]
    return Findings(checks, [table], notes)


def plot(result: Result, out: Path) -> list[Path]:
    """``out.png`` and ``out.svg``: peak memory against the forward iterations, one line per
    method, from ``result``'s table, on linear axes (so that linear growth reads as a line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    table = result.tables[0]
    method, iters, mb = (table.columns.index(c) for c in COLUMNS)
    fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for name, marker in (("implicit-jfb", "o"), ("implicit-jacobian", "s"),
                         ("implicit-unrolled", "^")):
        rows = [r for r in table.rows if r[method] == name]
        ax.plot([float(r[iters] or 0) for r in rows], [float(r[mb] or 0) for r in rows],
                marker=marker, label=name)
    ax.set_xlabel("forward iterations per instance (unrolled: K)")
    ax.set_ylabel("training peak host memory (MB above start)")
    ax.set_title(f"{table.title.split(':')[0]} ({result.started[:10]})", fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    paths = [out.with_suffix(".png"), out.with_suffix(".svg")]
    for path in paths:
        fig.savefig(path, dpi=150)
    plt.close(fig)
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Draw the figure of a stored result beside it."""
    parser = argparse.ArgumentParser(description="the memory figure of a stored result")
    parser.add_argument("result", type=Path, help="a classification-memory result (JSON)")
    args = parser.parse_args(argv)
    try:
        result = load_result(args.result)
    except (OSError, ValueError, KeyError) as exc:
        parser.error(f"{args.result}: {exc}")
    if result.comparison != COMPARISON.name or not result.tables:
        parser.error(f"{args.result}: not a {COMPARISON.name} result with its table")
    for path in plot(result, args.result.with_suffix("")):
        print(path)
    return 0


COMPARISON = Comparison(
    name="classification-memory",
    title="implicit classifiers: training peak memory against the forward iterations",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)


if __name__ == "__main__":
    sys.exit(main())
