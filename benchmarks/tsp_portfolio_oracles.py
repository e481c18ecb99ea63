"""The TSP and portfolio oracles against PyEPO's Gurobi models solving one instance at a time,
and the measurements behind the TSP oracle's formulation and relaxation, all in one run.

    python -m benchmarks.tsp_portfolio_oracles            # full sizes (a few minutes on 2 cores)
    python -m benchmarks.tsp_portfolio_oracles --quick    # tiny sizes: checks that it runs

1. **TSP oracle vs PyEPO's Gurobi models.** A batch of PyEPO's own TSP costs (``genData``,
   20 nodes) solved by l2obench's oracle (HiGHS, DFJ with subtour cuts, instances spread over
   the CPUs; and in one process) against PyEPO's ``tspDFJModel`` (Gurobi, lazy subtour cuts in
   its callback) and ``tspGGModel`` (Gurobi, flow formulation) solving one instance at a time
   (``setObj`` + ``solve``, as PyEPO's training loops call them). Objectives are compared on
   every instance: the oracle's is optimal, so it is never above Gurobi's.
2. **Portfolio oracle vs PyEPO's Gurobi model.** The same for PyEPO's portfolio data (50 assets)
   against ``portfolioModel``.
3. **The TSP formulation.** The DFJ cut loop against the compact MTZ formulation, both on HiGHS
   in one process on the same instances (the choice of the oracle's default), and the DFJ loop
   with its HiGHS options (``DFJ_HIGHS_OPTIONS``: presolve off) against HiGHS's defaults.
4. **The TSP relaxation.** The mean gap to the optimal tour of the degree-2 relaxation (the LP
   form the layers train on) and of MTZ's LP relaxation, on the same instances.
5. **The portfolio cone's factor.** The sparse factor ``[Lᵀ; 0.01 τ I]`` of the covariance
   against its dense Cholesky factor, Clarabel in one process on the same instances.

Each figure is a median over repeats where a batch takes seconds or less; Gurobi's TSP batches,
which take tens of seconds, are timed once. The result (figures, machine, commit, load average
before and after) is printed as Markdown tables and written as JSON to ``--out`` (default
``benchmarks/results/``). It needs the ``dev`` extra (PyEPO with gurobipy).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from l2obench.problems import tsp_solvers
from l2obench.problems.base import ConicForm, SecondOrderCone
from l2obench.problems.conic_solvers import solve_conic_batch
from l2obench.problems.lp_solvers import solve_lp_batch
from l2obench.problems.portfolio import Portfolio
from l2obench.problems.tsp import TSP
from l2obench.problems.tsp_solvers import MTZForm, solve_tsp_batch
from l2obench.process_pool import available_cpus
from l2obench.provenance import cpu_model, git_commit

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NAME = "tsp-portfolio-oracles"
VERSIONED = ("l2obench", "numpy", "pyepo", "gurobipy", "highspy", "clarabel")
SEED = 0


@dataclass(frozen=True)
class Sizes:
    n_nodes: int
    n_assets: int
    batch: int  # instances per oracle-vs-Gurobi batch
    formulation_batch: int  # instances for the formulation, relaxation and factor comparisons
    repeats: int


FULL = Sizes(n_nodes=20, n_assets=50, batch=1000, formulation_batch=50, repeats=3)
QUICK = Sizes(n_nodes=8, n_assets=10, batch=40, formulation_batch=5, repeats=1)


@dataclass(frozen=True)
class Timing:
    """Seconds per batch (median over ``repeats``) and per instance."""

    side: str
    seconds: float
    repeats: int
    per_instance: float


@dataclass(frozen=True)
class Comparison:
    """One oracle against a reference solving the same instances, with their objectives."""

    what: str
    instances: int
    ours: Timing
    reference: Timing
    speed_up: float  # reference seconds ÷ ours
    objective_gap_max: float  # max over instances of |ours − reference|
    ours_never_worse: bool  # ours ≤ reference on every minimisation instance, ≥ on max (to
    # NEVER_WORSE_RTOL)


@dataclass(frozen=True)
class Result:
    name: str
    profile: str
    sizes: dict[str, int]
    started: str
    finished: str
    load_before: list[float]
    load_after: list[float]
    machine: dict[str, Any]
    comparisons: list[Comparison] = field(default_factory=list)
    relaxation_gap: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def clock(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def timing(side: str, fn: Callable[[], Any], repeats: int, instances: int) -> Timing:
    seconds = statistics.median(clock(fn) for _ in range(repeats))
    return Timing(side, seconds, repeats, seconds / instances)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Gurobi's licence banner and PyEPO's prints off the measurement's output."""
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def one_at_a_time(model: Any, costs: np.ndarray) -> np.ndarray:
    """PyEPO's model solving ``costs`` row by row (``setObj`` + ``solve``): the objectives."""
    objectives = np.empty(len(costs))
    for i, cost in enumerate(costs):
        model.setObj(cost)
        _, objectives[i] = model.solve()
    return objectives


#: ``ours_never_worse`` allows this relative difference: the solvers' own tolerances (tied
#: tours differ in the last digits of their float64 lengths).
NEVER_WORSE_RTOL = 1e-8


def compare(what: str, ours: Timing, reference: Timing, ours_obj: np.ndarray,
            ref_obj: np.ndarray, sense: str) -> Comparison:
    sign = 1.0 if sense == "min" else -1.0
    slack = NEVER_WORSE_RTOL * np.maximum(np.abs(ref_obj), 1.0)
    return Comparison(
        what=what, instances=len(ours_obj), ours=ours, reference=reference,
        speed_up=reference.seconds / ours.seconds,
        objective_gap_max=float(np.abs(ours_obj - ref_obj).max()),
        ours_never_worse=bool((sign * (ours_obj - ref_obj) <= slack).all()),
    )


def measure_tsp(sizes: Sizes) -> list[Comparison]:
    from pyepo.data.tsp import genData
    from pyepo.model.grb.tsp import tspDFJModel, tspGGModel

    n, batch = sizes.n_nodes, sizes.batch
    _, costs = genData(batch, 5, n, deg=4, noise_width=0.5, seed=SEED)
    costs = costs.astype(np.float64)
    problem = TSP(n_nodes=n)
    ours = timing("l2obench oracle (HiGHS, DFJ cuts)", lambda: problem.oracle(costs),
                  sizes.repeats, batch)
    one = timing("l2obench oracle, one process",
                 lambda: solve_tsp_batch(n, costs, "highs", processes=1), sizes.repeats, batch)
    ours_obj = problem.oracle(costs)[1]
    found = []
    for label, model_cls in (("tspDFJModel", tspDFJModel), ("tspGGModel", tspGGModel)):
        with quiet():
            model = model_cls(n)
            start = time.perf_counter()
            ref_obj = one_at_a_time(model, costs)
            seconds = time.perf_counter() - start
        reference = Timing(f"PyEPO {label} (Gurobi), one at a time", seconds, 1, seconds / batch)
        found.append(compare(f"TSP n_nodes={n}: oracle vs PyEPO {label}", ours, reference,
                             ours_obj, ref_obj, "min"))
        found.append(compare(f"TSP n_nodes={n}: oracle in one process vs PyEPO {label}", one,
                             reference, ours_obj, ref_obj, "min"))
    return found


def measure_portfolio(sizes: Sizes) -> list[Comparison]:
    from pyepo.data.portfolio import genData
    from pyepo.model.grb.portfolio import portfolioModel

    n, batch = sizes.n_assets, sizes.batch
    cov, _, returns = genData(batch, 5, n, deg=4, noise_level=1.0, seed=SEED)
    returns = returns.astype(np.float64)
    problem = Portfolio(n_assets=n, seed=SEED)
    if not np.array_equal(problem.covariance, cov):
        raise RuntimeError("the portfolio problem's covariance differs from PyEPO's")
    ours = timing("l2obench oracle (Clarabel)", lambda: problem.oracle(returns), sizes.repeats,
                  batch)
    one = timing("l2obench oracle, one process",
                 lambda: solve_conic_batch(problem.conic(), returns, "clarabel", processes=1),
                 sizes.repeats, batch)
    ours_obj = problem.oracle(returns)[1]
    with quiet():
        model = portfolioModel(n, cov)
        reference = timing("PyEPO portfolioModel (Gurobi), one at a time",
                           lambda: one_at_a_time(model, returns), sizes.repeats, batch)
        ref_obj = one_at_a_time(model, returns)
    return [
        compare(f"portfolio n_assets={n}: oracle vs PyEPO portfolioModel", ours, reference,
                ours_obj, ref_obj, "max"),
        compare(f"portfolio n_assets={n}: oracle in one process vs PyEPO portfolioModel", one,
                reference, ours_obj, ref_obj, "max"),
    ]


def measure_formulations(sizes: Sizes) -> tuple[list[Comparison], dict[str, float]]:
    """DFJ against MTZ on HiGHS (one process), and the two relaxations' gaps to the tour."""
    n, batch = sizes.n_nodes, sizes.formulation_batch
    problem = TSP(n_nodes=n, n_train=batch, n_val=1, n_test=1, seed=SEED)
    costs = problem.generate().train.costs.astype(np.float64)
    dfj = timing("DFJ cut loop (HiGHS, one process)",
                 lambda: solve_tsp_batch(n, costs, "highs", "dfj", processes=1), sizes.repeats,
                 batch)
    start = time.perf_counter()
    mtz_tours = solve_tsp_batch(n, costs, "highs", "mtz", processes=1)
    seconds = time.perf_counter() - start
    mtz = Timing("MTZ compact MIP (HiGHS, one process)", seconds, 1, seconds / batch)
    optimal = (costs * solve_tsp_batch(n, costs, "highs", "dfj", processes=1)).sum(axis=1)
    comparison = compare(f"TSP n_nodes={n}: DFJ cut loop vs compact MTZ, HiGHS", dfj, mtz,
                         optimal, (costs * mtz_tours).sum(axis=1), "min")
    with highs_defaults():
        presolving = timing("DFJ cut loop, HiGHS's default options",
                            lambda: solve_tsp_batch(n, costs, "highs", "dfj", processes=1),
                            sizes.repeats, batch)
        presolved = (costs * solve_tsp_batch(n, costs, "highs", "dfj", processes=1)).sum(axis=1)
    options = compare(f"TSP n_nodes={n}: DFJ with {tsp_solvers.DFJ_HIGHS_OPTIONS} vs HiGHS's "
                      "defaults", dfj, presolving, optimal, presolved, "min")
    _, degree2 = solve_lp_batch(problem.lp(), costs, "highs", processes=1)
    form = MTZForm.build(n)
    _, mtz_lp = solve_lp_batch(form.lp, form.price(costs), "highs", processes=1)
    gaps = {
        "n_nodes": float(n),
        "instances": float(batch),
        "degree2_mean_gap": float(np.mean((optimal - degree2) / optimal)),
        "mtz_lp_mean_gap": float(np.mean((optimal - mtz_lp) / optimal)),
    }
    return [comparison, options], gaps


@contextlib.contextmanager
def highs_defaults() -> Iterator[None]:
    """The DFJ loop without its own HiGHS options, for the time being."""
    saved = dict(tsp_solvers.DFJ_HIGHS_OPTIONS)
    tsp_solvers.DFJ_HIGHS_OPTIONS.clear()
    try:
        yield
    finally:
        tsp_solvers.DFJ_HIGHS_OPTIONS.update(saved)


def measure_factor(sizes: Sizes) -> list[Comparison]:
    """Portfolio's sparse covariance factor against a dense Cholesky factor, one process."""
    n, batch = sizes.n_assets, sizes.formulation_batch * 4
    problem = Portfolio(n_assets=n, n_train=batch, n_val=1, n_test=1, seed=SEED)
    returns = problem.generate().train.costs.astype(np.float64)
    sparse_form = problem.conic()
    cholesky = np.linalg.cholesky(problem.covariance / problem.risk_level).T
    dense_form = ConicForm(sparse_form.linear,
                           (SecondOrderCone(F=sp.csr_matrix(cholesky), bound=1.0),))
    runs = {}
    for label, form in (("sparse factor [Lᵀ; 0.01τI]", sparse_form),
                        ("dense Cholesky factor", dense_form)):
        runs[label] = (
            timing(f"Clarabel, {label}, one process",
                   lambda f=form: solve_conic_batch(f, returns, "clarabel", processes=1),
                   sizes.repeats, batch),
            solve_conic_batch(form, returns, "clarabel", processes=1)[1],
        )
    (sparse_t, sparse_obj), (dense_t, dense_obj) = runs.values()
    return [compare(f"portfolio n_assets={n}: sparse factor vs dense Cholesky factor, Clarabel",
                    sparse_t, dense_t, sparse_obj, dense_obj, "max")]


def machine() -> dict[str, Any]:
    versions = {}
    for package in VERSIONED:
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {"cpu": cpu_model(), "cores": os.cpu_count() or 1, "cpus_available": available_cpus(),
            "python": platform.python_version(), "versions": versions,
            "commit": git_commit() or "?"}


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def run(profile: str) -> Result:
    sizes = FULL if profile == "full" else QUICK
    started, load_before = utc_now(), load_average()
    comparisons = measure_tsp(sizes) + measure_portfolio(sizes)
    formulation, gaps = measure_formulations(sizes)
    comparisons += formulation + measure_factor(sizes)
    return Result(name=NAME, profile=profile, sizes=asdict(sizes), started=started,
                  finished=utc_now(), load_before=load_before, load_after=load_average(),
                  machine=machine(), comparisons=comparisons, relaxation_gap=gaps)


def seconds_text(value: float) -> str:
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value / 1e-6:.3g} µs"


def markdown(result: Result) -> str:
    """The result as RESULTS.md's tables."""
    lines = [
        f"{result.started} – {result.finished} UTC, {result.machine['cpu']}, "
        f"{result.machine['cores']} cores, load average {result.load_before} before and "
        f"{result.load_after} after, commit `{result.machine['commit'][:7]}`, "
        f"{result.profile} profile.",
        "",
        "| comparison | instances | l2obench | reference | speed-up | max \\|Δ objective\\| "
        "| l2obench never worse |",
        "|---|---:|---|---|---:|---:|---|",
    ]
    for c in result.comparisons:
        lines.append(
            f"| {c.what} | {c.instances} | {c.ours.side}: {seconds_text(c.ours.seconds)} "
            f"({seconds_text(c.ours.per_instance)}/instance) | {c.reference.side}: "
            f"{seconds_text(c.reference.seconds)} ({seconds_text(c.reference.per_instance)}"
            f"/instance) | {c.speed_up:.2f}× | {c.objective_gap_max:.1e} | "
            f"{'yes' if c.ours_never_worse else 'no'} |"
        )
    gaps = result.relaxation_gap
    lines += [
        "",
        f"TSP relaxations at n_nodes = {int(gaps['n_nodes'])}, {int(gaps['instances'])} "
        "instances, mean (tour − LP bound) / tour: degree-2 relaxation "
        f"{gaps['degree2_mean_gap']:.2%}, MTZ's LP relaxation {gaps['mtz_lp_mean_gap']:.2%}.",
    ]
    return "\n".join(lines)


def write(result: Result, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    stamp = result.started.replace("-", "").replace(":", "").replace("+0000", "Z")
    suffix = "-quick" if result.profile == "quick" else ""
    path = out / f"{result.name}-{stamp}{suffix}.json"
    path.write_text(json.dumps(asdict(result), indent=1, ensure_ascii=False) + "\n")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.tsp_portfolio_oracles",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR,
                        help="folder for the JSON result (default benchmarks/results/)")
    args = parser.parse_args(argv)
    result = run("quick" if args.quick else "full")
    print(markdown(result))
    print(f"\n{write(result, args.out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
