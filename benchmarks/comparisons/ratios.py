"""Ratios of l2obench against the references it must beat, both sides measured in the same run.

    python -m benchmarks.comparisons.ratios          # every comparison, full sizes (1.5-2.5 hours
                                                     # on 2 cores, most of it roster-vs-pyepo)
    python -m benchmarks.comparisons.ratios --quick  # tiny sizes: checks that each runs (< 1 min)
    python -m benchmarks.comparisons.ratios --only jax-vs-torch,oracle-vs-gurobi

Each comparison is a module of this folder or of ``benchmarks/studies/`` (see :data:`COMPARISONS`)
that returns a structured result: both sides' measured values, the checked ratio, its target and
verdict, the machine, the commit and the load average before and after. The driver writes one JSON
file per comparison into ``--out`` (default ``benchmarks/results/``,
``<comparison>-<UTC start>.json``; the quick profile's files carry ``-quick`` and are not committed)
and prints a short table; ``python -m benchmarks.comparisons.tables`` renders
``benchmarks/results/comparisons.md``'s tables from the committed files.

PyTorch runs one intra-op thread by default (``--threads``), on both sides: on a shared machine a
multi-threaded PyTorch waits, at each of the DYS layer's many small parallel regions, for a
thread that another process holds, and its times then say more about the neighbours than about
the code (comparisons.md records such a run). The exit status is 1 when a comparison could not run,
0 otherwise, whether or not its targets are met. It needs the ``dev`` extra (PyEPO with gurobipy,
JAX, Clarabel through cvxpy).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from l2obench.runner import warm_up

from ..studies import (
    classification_backward,
    classification_memory,
    ct_backward,
    cvx_net_solver,
    knapsack_oracle,
    memory_vs_iterations,
    portfolio_factor,
    tsp_formulation,
)
from . import (
    dys_vs_fpo_dys,
    jax_vs_torch,
    oracle_vs_gurobi,
    portfolio_vs_gurobi,
    roster_vs_pyepo,
    spo_vs_pyepo,
    tsp_vs_gurobi,
)
from .comparison import CPU, RESULTS_DIR, Comparison, Machine, Profile, Result, write_result

#: Every comparison, by name, in the order they run.
COMPARISONS: dict[str, Comparison[Any]] = {
    module.COMPARISON.name: module.COMPARISON
    for module in (oracle_vs_gurobi, spo_vs_pyepo, dys_vs_fpo_dys, memory_vs_iterations,
                   jax_vs_torch, tsp_vs_gurobi, portfolio_vs_gurobi, tsp_formulation,
                   portfolio_factor, knapsack_oracle, cvx_net_solver, roster_vs_pyepo,
                   classification_backward, classification_memory, ct_backward)
}


def summary(results: Sequence[Result]) -> str:
    """Every check of ``results`` as one fixed-width table."""
    rows = [("comparison", "check", "value", "target", "result")]
    for result in results:
        if result.error is not None:
            rows.append((result.comparison, "(could not run)", result.error, "runs", "ERROR"))
        rows += [(result.comparison, check.what, check.value_text, check.target.text,
                  check.verdict) for check in result.checks]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                     .rstrip() for row in rows)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.comparisons.ratios",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and budgets: checks that every comparison runs")
    parser.add_argument("--only", default=",".join(COMPARISONS),
                        help=f"comma-separated comparisons (default: all of "
                             f"{', '.join(COMPARISONS)})")
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch intra-op threads on both sides of every comparison "
                             "(default 1; see the module docstring)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR,
                        help="folder for the JSON results (default benchmarks/results/)")
    args = parser.parse_args(argv)
    args.only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(args.only) - set(COMPARISONS))
    if unknown or not args.only:
        parser.error(f"--only: unknown comparison(s) {', '.join(unknown) or '(none given)'}; "
                     f"they are {', '.join(COMPARISONS)}")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected comparisons, write each result and print the summary; 1 if one could
    not run."""
    args = parse_args(argv)
    progress = logging.StreamHandler(sys.stdout)
    progress.setFormatter(logging.Formatter("  %(message)s"))
    logger = logging.getLogger(__package__)  # the comparisons' progress lines, not libraries'
    logger.addHandler(progress)
    logger.setLevel(logging.INFO)
    profile: Profile = "quick" if args.quick else "full"
    torch.set_num_threads(args.threads)
    machine = Machine.current()
    print(f"l2obench ratios ({profile} profile): {machine.cpu}, {machine.cores} cores, torch "
          f"threads {machine.torch_threads}, commit {machine.commit}", flush=True)
    warm_up(CPU)
    results = []
    for name in args.only:
        comparison = COMPARISONS[name]
        print(f"\n== {name}: {comparison.title} ==", flush=True)
        result = comparison.run(profile, machine)
        path = write_result(result, args.out)
        print(f"  {result.wall_s:.0f} s, load average {result.load_before} before, "
              f"{result.load_after} after; {path}", flush=True)
        results.append(result)
    print("\n" + summary(results), flush=True)
    return 1 if any(result.error is not None for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
