"""The DYS layer's accuracy target after the protocol's 100 epochs: tolerance study, regret check.

    python -m benchmarks.studies.dys_accuracy tolerance --sizes 10,20  # tols 1e-1 … 1e-5
    python -m benchmarks.studies.dys_accuracy reference --sizes 10,20  # fpo-dys, 100 epochs
    python -m benchmarks.studies.dys_accuracy defaults --sizes 10,20   # dys-jfb defaults, 100 ep.
    python -m benchmarks.studies.dys_accuracy long --sizes 100         # dys-jfb defaults at k = 100
    python -m benchmarks.studies.dys_accuracy table                    # the tables of what ran

Two comparisons of issue 18, both on the shortest-path protocol (1 000 train / 200 val /
200 test, seed 0, MLP 5→50→|E|, Adam 1e-2, batch 256, model selection on validation regret):

- **Tolerance study**: ``dys-jfb`` trained ``--epochs`` (100) epochs at each per-instance
  tolerance, every other parameter at its default: test normalized regret, forward iterations
  per instance and seconds. A tighter solve does not train better at γ = 5e-4 (at an accurate
  fixed point the solution is a vertex and the JFB gradient ``−α D M`` nearly vanishes); this
  measures by how much, and what each tolerance costs.
- **Regret condition**: ``dys-jfb`` with its defaults against the fpo-dys reference
  (``tests/reference/fpo_dys_reference.py``) trained the same 100 epochs on the same data, from the
  same initial model, with the same mini-batches.

Every run is one JSON file under ``--out`` (default ``benchmarks/results/dys_accuracy/``), named
by what it ran, written when it finishes: a long series can be stopped and resumed (a run whose
file exists is skipped) and committed as it accumulates. ``table`` prints the Markdown tables of
the files present, ``figure`` draws the study's figure. Each file records the commit, the
machine, the PyTorch threads and the load average before and after the run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from l2obench import Budget, Method, method_registry
from l2obench.methods.torch_method import cost_model
from l2obench.metrics import normalized_regret
from l2obench.problems.shortest_path import ShortestPath
from l2obench.provenance import cpu_model, git_commit
from l2obench.runner import warm_up
from tests.reference.fpo_dys_reference import FpoDysLayer, predict_costs, train_reference

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE.parent / "results" / "dys_accuracy"
SEED = 0
CPU = torch.device("cpu")
#: The tolerances of the study: the default 1e-2 and two decades either side... and beyond.
STUDY_TOLS = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5)


@dataclass
class Run:
    """One training run of either side, as stored in its JSON file."""

    kind: str  # "tolerance" | "reference" | "defaults" | "long"
    k: int
    epochs: int
    params: dict[str, Any]
    seconds: float
    seconds_per_epoch: float
    test_regret: float
    best_epoch: int | None
    fwd_iters_mean: float | None
    fwd_iters_max: int | None
    fwd_unconverged: int | None
    val_history: list[float] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return run_name(self.kind, self.k, self.params)


def run_name(kind: str, k: int, params: dict[str, Any]) -> str:
    """The file stem of a run: what it ran, readably."""
    extra = "".join(f"-{key}{value:g}" if isinstance(value, float) else f"-{key}{value}"
                    for key, value in sorted(params.items()))
    return f"{kind}-k{k}{extra}"


def machine_state() -> dict[str, Any]:
    """Commit, machine, threads and load at this moment."""
    return {
        "commit": git_commit(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "load": list(os.getloadavg()),
    }


def problem_at(k: int) -> ShortestPath:
    return ShortestPath(k=k, seed=SEED)


def train_l2obench(kind: str, k: int, params: dict[str, Any], epochs: int) -> Run:
    """``dys-jfb`` with ``params`` (the rest defaults) for ``epochs`` epochs, in this process."""
    problem = problem_at(k)
    data = problem.generate()
    before = machine_state()
    method = method_registry.get("dys-jfb")(problem, CPU, SEED, **params)
    assert isinstance(method, Method)  # dys-jfb predicts costs
    start = time.perf_counter()
    fit = method.fit(data, Budget(max_epochs=epochs))
    elapsed = time.perf_counter() - start
    regret = normalized_regret(problem, data.test, method.predict_costs(data.test.features))
    return Run(
        kind=kind, k=k, epochs=fit.epochs, params=params, seconds=elapsed,
        seconds_per_epoch=elapsed / max(fit.epochs, 1), test_regret=float(regret),
        best_epoch=fit.best_epoch, fwd_iters_mean=fit.fwd_iters_mean,
        fwd_iters_max=fit.fwd_iters_max, fwd_unconverged=fit.fwd_unconverged,
        val_history=[h["val_score"] for h in fit.history],
        machine={"before": before, "after": machine_state()},
    )


def train_fpo_dys(k: int, epochs: int) -> Run:
    """The fpo-dys reference for ``epochs`` epochs with ``dys-jfb``'s training settings."""
    problem = problem_at(k)
    data = problem.generate()
    config = method_registry.get("dys-jfb").validate({})
    before = machine_state()
    torch.manual_seed(SEED)
    model = cost_model(problem.n_features, config["hidden"], problem.n_vars)
    layer = FpoDysLayer(problem.lp())
    run = train_reference(model, layer, problem, data, epochs=epochs, lr=config["lr"],
                          batch_size=config["batch_size"], seed=SEED)
    regret = normalized_regret(problem, data.test, predict_costs(model, data.test.features))
    per_batch = np.asarray(run.batch_iterations)
    return Run(
        kind="reference", k=k, epochs=run.epochs, params={}, seconds=run.seconds,
        seconds_per_epoch=run.seconds_per_epoch, test_regret=float(regret),
        best_epoch=run.best_epoch, fwd_iters_mean=float(per_batch.mean()),
        fwd_iters_max=int(per_batch.max()), fwd_unconverged=None,
        val_history=[], machine={"before": before, "after": machine_state()},
    )


def save(run: Run, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{run.name}.json"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(asdict(run), indent=1) + "\n")
    tmp.replace(path)
    return path


def load_runs(out: Path) -> list[Run]:
    """Every run stored under ``out``."""
    return [Run(**json.loads(p.read_text())) for p in sorted(out.glob("*.json"))]


def planned(kind: str, sizes: Sequence[int], tols: Sequence[float]) -> list[tuple[int, dict]]:
    """The ``(k, params)`` pairs a command runs."""
    if kind == "tolerance":
        return [(k, {"tol": tol}) for k in sizes for tol in tols]
    return [(k, {}) for k in sizes]


def execute(kind: str, sizes: Sequence[int], tols: Sequence[float], epochs: int,
            out: Path) -> None:
    """Run what ``kind`` plans and is not stored yet, one run at a time, saving each."""
    for k, params in planned(kind, sizes, tols):
        path = out / f"{run_name(kind, k, params)}.json"
        if path.exists():
            print(f"{path.name}: stored, skipped", flush=True)
            continue
        print(f"{path.stem}: {epochs} epochs ...", flush=True)
        run = train_fpo_dys(k, epochs) if kind == "reference" else train_l2obench(
            kind, k, params, epochs)
        save(run, out)
        print(f"  {run.seconds:.0f} s ({run.seconds_per_epoch:.3g} s/epoch), test regret "
              f"{run.test_regret:.4f}, best epoch {run.best_epoch}, iterations mean "
              f"{run.fwd_iters_mean}; load {run.machine['after']['load'][:3]}", flush=True)


def study_table(runs: Sequence[Run]) -> str:
    """The tolerance study as a Markdown table."""
    rows = ["| k | tol | test regret | best epoch | fwd iters / instance (mean, max) | "
            "unconverged | s/epoch | total s | load (1 min, before → after) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in sorted((r for r in runs if r.kind == "tolerance"),
                    key=lambda r: (r.k, -r.params["tol"])):
        rows.append(
            f"| {r.k} | {r.params['tol']:g} | {r.test_regret:.4f} | {r.best_epoch} | "
            f"{r.fwd_iters_mean:.0f}, {r.fwd_iters_max} | {r.fwd_unconverged} | "
            f"{r.seconds_per_epoch:.3g} | {r.seconds:.0f} | {_load(r)} |")
    return "\n".join(rows)


def comparison_table(runs: Sequence[Run]) -> str:
    """Defaults against the reference (and the long runs) as a Markdown table."""
    rows = ["| k | side | epochs | test regret | best epoch | fwd iterations (mean, max) | "
            "s/epoch | total s | load (1 min, before → after) |",
            "|---:|---|---:|---:|---:|---|---:|---:|---|"]
    label = {"reference": "fpo-dys reference (per batch)", "defaults": "dys-jfb defaults",
             "long": "dys-jfb defaults"}
    for r in sorted((r for r in runs if r.kind in label), key=lambda r: (r.k, r.kind)):
        iters = "—" if r.fwd_iters_mean is None else f"{r.fwd_iters_mean:.0f}, {r.fwd_iters_max}"
        rows.append(f"| {r.k} | {label[r.kind]} | {r.epochs} | {r.test_regret:.4f} | "
                    f"{r.best_epoch} | {iters} | {r.seconds_per_epoch:.3g} | {r.seconds:.0f} | "
                    f"{_load(r)} |")
    return "\n".join(rows)


def _load(r: Run) -> str:
    before, after = r.machine.get("before", {}), r.machine.get("after", {})
    return f"{before.get('load', [math.nan])[0]:.1f} → {after.get('load', [math.nan])[0]:.1f}"


def figure(runs: Sequence[Run], path: Path) -> Path:
    """Test regret and seconds per epoch against the tolerance, one line per grid size."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    study = [r for r in runs if r.kind == "tolerance"]
    fig, (ax_regret, ax_time) = plt.subplots(1, 2, figsize=(9, 3.6))
    for k in sorted({r.k for r in study}):
        pts = sorted((r.params["tol"], r) for r in study if r.k == k)
        tols = [t for t, _ in pts]
        ax_regret.plot(tols, [r.test_regret for _, r in pts], marker="o", label=f"k = {k}")
        ax_time.plot(tols, [r.seconds_per_epoch for _, r in pts], marker="o", label=f"k = {k}")
    for r in runs:
        if r.kind == "reference":
            ax_regret.axhline(r.test_regret, linestyle=":", color="grey")
            ax_regret.annotate(f"fpo-dys k={r.k}", (1e-5, r.test_regret), fontsize=7,
                               color="grey", va="bottom")
    for ax, label in ((ax_regret, "test normalized regret"), (ax_time, "seconds per epoch")):
        ax.set_xscale("log")
        ax.set_xlabel("per-instance tolerance ‖z_{k+1} − z_k‖ ≤ tol")
        ax.set_ylabel(label)
        ax.grid(True, alpha=0.3)
        ax.legend()
    ax_time.set_yscale("log")
    fig.suptitle("dys-jfb after 100 epochs against its fixed-point tolerance (shortest path)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command",
                        choices=("tolerance", "reference", "defaults", "long", "table", "figure"))
    parser.add_argument("--sizes", default="10,20", help="grid sides k (default 10,20)")
    parser.add_argument("--tols", default=",".join(f"{t:g}" for t in STUDY_TOLS),
                        help="tolerances of the study")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--threads", type=int, default=1, help="PyTorch intra-op threads")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    args.tols = [float(s) for s in args.tols.split(",") if s.strip()]
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "table":
        runs = load_runs(args.out)
        print(study_table(runs) + "\n\n" + comparison_table(runs))
        return 0
    if args.command == "figure":
        print(figure(load_runs(args.out), args.out / "tolerance_study.png"))
        return 0
    torch.set_num_threads(args.threads)
    warm_up(CPU)
    execute(args.command, args.sizes, args.tols, args.epochs, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
