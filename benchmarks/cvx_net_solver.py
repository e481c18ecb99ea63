"""The cone solver inside ``cvx-net``'s cvxpylayers layer: Clarabel (its choice) against SCS
(diffcp's default), on the layer's own program, against cvxpy's solve of the same program.

    python -m benchmarks.cvx_net_solver            # full sizes (about a minute on 2 cores)
    python -m benchmarks.cvx_net_solver --quick    # tiny sizes: checks that it runs

For each problem (shortest path on a 10×10 grid: a QP over an LP form; portfolio with 50 assets:
an SOCP with the risk cone) the layer ``qp_layer(problem.conic(), γ = 1)`` solves a batch of
random costs forward and backward with each ``solve_method``. Reported per solver: seconds per
instance (median of the repeats), the largest distance of a decision to cvxpy's Clarabel
solution of the same regularised program, and the largest violation of the form's constraints
(equalities, bounds and cones, each relative to its right-hand side where that is not zero).
The result is printed as a Markdown table and written as JSON to ``--out`` (default
``benchmarks/results/``). It needs the ``cvx`` extra.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from l2obench.methods.cvx_net import qp_layer
from l2obench.problems.base import ConicForm, Problem
from l2obench.problems.portfolio import Portfolio
from l2obench.problems.shortest_path import ShortestPath
from l2obench.provenance import cpu_model, git_commit

RESULTS_DIR = Path(__file__).resolve().parent / "results"
NAME = "cvx-net-solver"
SOLVERS = ("Clarabel", "SCS")
GAMMA = 1.0


@dataclass(frozen=True)
class Sizes:
    k: int
    n_assets: int
    batch: int
    repeats: int


FULL = Sizes(k=10, n_assets=50, batch=64, repeats=3)
QUICK = Sizes(k=3, n_assets=8, batch=4, repeats=1)


@dataclass(frozen=True)
class Row:
    problem: str
    n_vars: int
    solver: str
    seconds_per_instance: float  # forward and backward
    max_distance: float  # to cvxpy's Clarabel solve of the same program
    max_violation: float


def reference(form: ConicForm, costs: np.ndarray) -> np.ndarray:
    """cvxpy's Clarabel solutions of ``min ±cᵀx + (γ/2)‖x‖²`` over ``form``."""
    import cvxpy as cp

    lp = form.linear
    x = cp.Variable(lp.n_vars)
    c = cp.Parameter(lp.n_vars)
    constraints = [lp.A @ x == lp.b, x >= lp.lower, x <= lp.upper]
    constraints += [cp.norm(cone.F @ x) <= cone.bound for cone in form.cones]
    program = cp.Problem(cp.Minimize(lp.sign * c @ x + GAMMA / 2 * cp.sum_squares(x)),
                         constraints)
    solutions = []
    for row in costs:
        c.value = row
        program.solve(solver="CLARABEL")
        solutions.append(x.value)
    return np.array(solutions)


def violation(form: ConicForm, x: np.ndarray) -> float:
    lp = form.linear
    scale = np.maximum(np.abs(lp.b), 1.0)
    worst = [np.abs((x @ lp.A.T - lp.b) / scale).max(), (lp.lower - x).max(), (x - lp.upper).max()]
    for cone in form.cones:
        norms = np.linalg.norm(x @ cone.F.T, axis=1)
        worst.append(((norms - cone.bound) / max(cone.bound, 1.0)).max())
    return float(max(0.0, *worst))


def measure(name: str, problem: Problem, sizes: Sizes) -> list[Row]:
    form = problem.conic()
    rng = np.random.default_rng(0)
    costs = np.abs(rng.normal(0.5, 0.3, (sizes.batch, problem.n_vars)))
    target = reference(form, costs)
    layer = qp_layer(form, GAMMA, problem.n_vars)
    rows = []
    for solver in SOLVERS:
        args = {"solve_method": solver}
        times = []
        for _ in range(sizes.repeats):
            w = torch.tensor(costs, requires_grad=True)
            start = time.perf_counter()
            (x,) = layer(w, solver_args=args)
            x.sum().backward()
            times.append(time.perf_counter() - start)
        decisions = x.detach().numpy()
        rows.append(Row(name, problem.n_vars, solver, statistics.median(times) / sizes.batch,
                        float(np.abs(decisions - target).max()), violation(form, decisions)))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.cvx_net_solver",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks that it runs")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR,
                        help="folder for the JSON result (default benchmarks/results/)")
    args = parser.parse_args(argv)
    sizes = QUICK if args.quick else FULL
    torch.set_num_threads(1)
    started, load_before = datetime.now(UTC).isoformat(timespec="seconds"), os.getloadavg()
    rows = (measure(f"shortest-path k={sizes.k}", ShortestPath(k=sizes.k), sizes)
            + measure(f"portfolio n_assets={sizes.n_assets}",
                      Portfolio(n_assets=sizes.n_assets), sizes))
    result = {"name": NAME, "profile": "quick" if args.quick else "full", "sizes": asdict(sizes),
              "started": started, "load_before": [round(v, 2) for v in load_before],
              "load_after": [round(v, 2) for v in os.getloadavg()], "cpu": cpu_model(),
              "cores": os.cpu_count(), "commit": git_commit() or "?",
              "rows": [asdict(row) for row in rows]}
    print(f"{started} UTC, {result['cpu']}, {result['cores']} cores, load average "
          f"{result['load_before']} before and {result['load_after']} after, commit "
          f"`{result['commit'][:7]}`, batch {sizes.batch}, γ = {GAMMA}.\n")
    print("| problem | n_vars | layer solver | s/instance (fwd+bwd) | max \\|x − reference\\| "
          "| max constraint violation |\n|---|---:|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row.problem} | {row.n_vars} | {row.solver} | {row.seconds_per_instance:.4f} | "
              f"{row.max_distance:.1e} | {row.max_violation:.1e} |")
    args.out.mkdir(parents=True, exist_ok=True)
    stamp = started.replace("-", "").replace(":", "").replace("+0000", "Z")
    path = args.out / f"{NAME}-{stamp}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(result, indent=1) + "\n")
    print(f"\n{path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
