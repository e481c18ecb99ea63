"""The PyEPO roster in l2obench against PyEPO's own training loop on its Gurobi model.

    python benchmarks/roster_vs_pyepo.py --out roster.json          # the full comparison
    python benchmarks/roster_vs_pyepo.py --quick --out /tmp/r.json  # tiny sizes, a smoke run
    python benchmarks/roster_vs_pyepo.py --table roster.json        # the table of a saved run

For every method of the roster, on shortest path at k = 5 and k = 20, both sides are measured in
one run on the same data, cost model (the same initial weights), batch size, seed and mini-batch
order: l2obench's ``fit`` (training and the per-epoch validation the runner records as
``time_per_epoch_s``) against PyEPO's own loop (``pyepo.func``'s module on
``pyepo.model.grb.shortestPathModel``, data from ``optDataset`` — ``optDatasetConstrs`` for CaVE
— built outside the clock, the task loss of PyEPO's training recipes, Adam), seconds per epoch.
The target is at most 0.25× for every method. Both sides see the mini-batches in the same order
(PyEPO's ``DataLoader`` draws them through l2obench's sampler), so they follow the same training
trajectory: the check that they train the same thing is that their per-epoch mean training
losses agree. The Frank–Wolfe methods feed their module float64 costs on both sides (l2obench
does; in float32 PyEPO's default gap tolerance is never reached and every step runs all 10 000
iterations).

The result is a list of :class:`Row` (JSON with ``--out``) and a Markdown table on standard
output.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import torch
from torch import nn

from l2obench import Budget, method_registry
from l2obench.methods.torch_method import cost_model
from l2obench.problems.shortest_path import ShortestPath
from l2obench.provenance import cpu_model, git_commit

SEED = 0
TARGET = 0.25
CPU = torch.device("cpu")


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow what PyEPO and Gurobi print (progress bars, the licence banner)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


# -- the roster: l2obench's parameters, PyEPO's module and recipe loss -------------------------

Batch = tuple[torch.Tensor, ...]  # features, costs, solutions, objectives (, binding normals)


def objective_l1(module: nn.Module, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The recipe's ``L1(zp, z)``, with ``z = cᵀw`` summed as ``zp`` is: the dataset's ``z``
    (Gurobi's objective, rounded to float32) differs from it by rounding, which at a zero-regret
    instance turns the L1's zero gradient into ``±c`` at random."""
    _, c, w, _ = batch[:4]
    return nn.L1Loss()((module(pred) * c).sum(1).view(-1, 1), (w * c).sum(1).view(-1, 1))


def solution_l1(module: nn.Module, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
    return nn.L1Loss()(module(pred), batch[2])


def solution_mse(module: nn.Module, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
    return nn.MSELoss()(module(pred), batch[2].to(pred.dtype))


def against_solutions(module: nn.Module, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
    return module(pred, batch[2].to(pred.dtype))


def against_costs(module: nn.Module, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
    return module(pred, batch[1])


def spo_plus(module: nn.Module, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
    _, c, w, z = batch[:4]
    return module(pred, c, w, z.view(-1))


def cone_aligned(module: nn.Module, pred: torch.Tensor, batch: Batch) -> torch.Tensor:
    return module(pred, batch[4])


@dataclass(frozen=True)
class Spec:
    """One roster entry: the l2obench method and its PyEPO counterpart."""

    label: str
    method: str
    params: dict[str, Any]
    module: Callable[[Any, Any], nn.Module]  # (Gurobi model, optDataset) -> PyEPO module
    loss: Callable[[nn.Module, torch.Tensor, Batch], torch.Tensor]
    float64: bool = False  # costs handed to the module in float64 (Frank–Wolfe)
    constrs: bool = False  # data from optDatasetConstrs (CaVE)
    slow: bool = False  # one epoch per side instead of the profile's epochs


def func(name: str) -> Any:
    import pyepo.func

    return getattr(pyepo.func, name)


def gamma(seed: int) -> Any:
    from pyepo.func.utils import sumGammaDistribution

    return sumGammaDistribution(kappa=5, n_iterations=10, seed=seed)


ROSTER = [
    Spec("spo+", "spo+", {}, lambda m, d: func("SPOPlus")(m), spo_plus),
    Spec("pg", "pg", {}, lambda m, d: func("perturbationGradient")(m), against_costs),
    Spec("blackbox", "blackbox", {"loss": "objective"},
         lambda m, d: func("blackboxOpt")(m, lambd=10), objective_l1),
    Spec("nid", "nid", {}, lambda m, d: func("negativeIdentity")(m), objective_l1),
    Spec("pertopt dpo", "pertopt", {"loss": "dpo"},
         lambda m, d: func("perturbedOpt")(m, n_samples=10, sigma=1.0, seed=SEED), solution_mse),
    Spec("pertopt dpo mul", "pertopt", {"loss": "dpo", "perturbation": "multiplicative"},
         lambda m, d: func("perturbedOptMul")(m, n_samples=10, sigma=1.0, seed=SEED),
         solution_mse),
    Spec("pertopt pfyl", "pertopt", {},
         lambda m, d: func("perturbedFenchelYoung")(m, n_samples=10, sigma=1.0, seed=SEED),
         against_solutions),
    Spec("pertopt pfyl mul", "pertopt", {"perturbation": "multiplicative"},
         lambda m, d: func("perturbedFenchelYoungMul")(m, n_samples=10, sigma=1.0, seed=SEED),
         against_solutions),
    Spec("imle", "imle", {},
         lambda m, d: func("implicitMLE")(m, n_samples=10, sigma=1.0, lambd=10,
                                          distribution=gamma(SEED)), solution_l1),
    Spec("aimle", "aimle", {},
         lambda m, d: func("adaptiveImplicitMLE")(m, n_samples=10, sigma=1.0,
                                                  distribution=gamma(SEED)), solution_l1),
    Spec("rfwo", "rfwo", {}, lambda m, d: func("regularizedFrankWolfeOpt")(m), solution_mse,
         float64=True, slow=True),
    Spec("rfy", "rfy", {}, lambda m, d: func("regularizedFrankWolfeFenchelYoung")(m),
         against_solutions, float64=True, slow=True),
    Spec("nce", "nce", {}, lambda m, d: func("noiseContrastiveEstimation")(m, dataset=d),
         against_solutions),
    Spec("cmap", "cmap", {}, lambda m, d: func("contrastiveMAP")(m, dataset=d),
         against_solutions),
    Spec("ltr pointwise", "ltr", {"kind": "pointwise"},
         lambda m, d: func("pointwiseLearningToRank")(m, dataset=d), against_costs),
    Spec("ltr pairwise", "ltr", {"kind": "pairwise"},
         lambda m, d: func("pairwiseLearningToRank")(m, dataset=d), against_costs),
    Spec("ltr listwise", "ltr", {"kind": "listwise"},
         lambda m, d: func("listwiseLearningToRank")(m, dataset=d), against_costs),
    Spec("cave", "cave", {}, lambda m, d: func("coneAlignedCosine")(m), cone_aligned,
         constrs=True),
]


# -- measurement ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Profile:
    """Sizes, data and epochs of a run."""

    name: str
    sizes: tuple[int, ...]
    n_train: dict[int, int]  # per size
    batch_sizes: tuple[int, ...]
    epochs: int
    hidden: int = 0
    lr: float = 1e-2


FULL = Profile("full", sizes=(5, 20), n_train={5: 1000, 20: 200}, batch_sizes=(32, 256),
               epochs=2)
QUICK = Profile("quick", sizes=(3, 4), n_train={3: 64, 4: 64}, batch_sizes=(16,), epochs=1)


@dataclass
class Row:
    """One method at one size and batch size: both sides' seconds per epoch and their losses."""

    label: str
    method: str
    params: dict[str, Any]
    k: int
    n_vars: int
    n_train: int
    batch_size: int
    epochs: int
    l2obench_s_per_epoch: float
    pyepo_s_per_epoch: float
    ratio: float
    target: float
    passed: bool
    l2obench_train_loss: list[float] = field(default_factory=list)
    pyepo_train_loss: list[float] = field(default_factory=list)
    loss_rel_diff: float = math.nan  # max over epochs of |Δ| / max(|loss|, 1e-12)
    fwd_iters_mean: float | None = None
    load_average: str = ""


class SameOrder(torch.utils.data.Sampler):
    """Mini-batches in l2obench's order (``training.run_epochs``): a CPU generator seeded with
    ``seed`` draws one permutation per epoch, cut into consecutive slices."""

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        self.n, self.batch_size = n, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self) -> Iterator[list[int]]:
        order = torch.randperm(self.n, generator=self.generator)
        for first in range(0, self.n, self.batch_size):
            yield order[first : first + self.batch_size].tolist()

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)


def pyepo_epochs(spec: Spec, optmodel: Any, dataset: Any, problem: ShortestPath, batch_size: int,
                 epochs: int, profile: Profile) -> tuple[float, list[float]]:
    """PyEPO's own loop for ``epochs`` epochs: seconds per epoch and mean training losses."""
    from pyepo.data.dataset import optDataLoader

    torch.manual_seed(SEED)  # the same initial weights as l2obench's TorchMethod
    model = cost_model(problem.n_features, profile.hidden, problem.n_vars)
    optimizer = torch.optim.Adam(model.parameters(), lr=profile.lr)
    module = spec.module(optmodel, dataset)
    module._branch_rng = np.random.RandomState(SEED)  # as l2obench seeds it
    loader = optDataLoader(dataset, batch_sampler=SameOrder(len(dataset), batch_size, SEED))
    losses = []
    start = time.perf_counter()
    for _ in range(epochs):
        total = 0.0
        for batch in loader:
            pred = model(batch[0])
            if spec.float64:
                pred = pred.double()
            loss = spec.loss(module, pred, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch[0])
        losses.append(total / len(dataset))
    return (time.perf_counter() - start) / epochs, losses


def l2obench_epochs(spec: Spec, problem: ShortestPath, data: Any, batch_size: int, epochs: int,
                    profile: Profile) -> tuple[float, list[float], float | None]:
    """l2obench's ``fit`` for ``epochs`` epochs: seconds per epoch, training losses, iterations."""
    method = method_registry.get(spec.method)(
        problem, CPU, SEED, batch_size=batch_size, hidden=profile.hidden, lr=profile.lr,
        **spec.params)
    start = time.perf_counter()
    fit = method.fit(data, Budget(max_epochs=epochs))
    elapsed = time.perf_counter() - start
    return elapsed / epochs, [h["train_loss"] for h in fit.history], fit.fwd_iters_mean


def load_average() -> str:
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def compare(profile: Profile, specs: Sequence[Spec], log: Callable[[str], None]) -> list[Row]:
    """Every spec at every size and batch size of ``profile``."""
    from pyepo.data.dataset import optDataset, optDatasetConstrs
    from pyepo.model.grb import shortestPathModel

    rows = []
    for k in profile.sizes:
        n_train = profile.n_train[k]
        problem = ShortestPath(k=k, n_train=n_train, n_val=200, n_test=200, seed=SEED)
        data = problem.generate()
        train = data.train
        with quiet():
            optmodel = shortestPathModel((k, k))
            dataset = optDataset(optmodel, train.features, train.costs)
            constrs = (optDatasetConstrs(optmodel, train.features, train.costs)
                       if any(s.constrs for s in specs) else None)
        gap = float(np.abs(dataset.objs.numpy().ravel() - train.objectives).max())
        log(f"k={k}: {n_train} training instances; PyEPO's and l2obench's optimal objectives "
            f"agree to {gap:.1e}")
        with quiet():  # first calls (optimiser imports, allocators) outside the clock
            l2obench_epochs(specs[0], problem, data, profile.batch_sizes[0], 1, profile)
            pyepo_epochs(specs[0], optmodel, constrs if specs[0].constrs else dataset, problem,
                         profile.batch_sizes[0], 1, profile)
        for batch_size in profile.batch_sizes:
            for spec in specs:
                epochs = 1 if spec.slow else profile.epochs
                l2o, ours, iters = l2obench_epochs(spec, problem, data, batch_size, epochs,
                                                   profile)
                with quiet():
                    ref, theirs = pyepo_epochs(spec, optmodel, constrs if spec.constrs
                                               else dataset, problem, batch_size, epochs,
                                               profile)
                diff = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(ours, theirs,
                                                                            strict=True))
                ratio = l2o / ref
                row = Row(spec.label, spec.method, spec.params, k, problem.n_vars, n_train,
                          batch_size, epochs, l2o, ref, ratio, TARGET, ratio <= TARGET, ours,
                          theirs, diff, iters, load_average())
                rows.append(row)
                log(f"  {spec.label:18s} k={k:<3d} batch {batch_size:<4d} l2obench "
                    f"{l2o:8.3f} s/epoch, PyEPO {ref:8.3f} s/epoch: {ratio:6.3f}x "
                    f"({'PASS' if row.passed else 'FAIL'}); training losses agree to "
                    f"{diff:.1e}; load {row.load_average}")
    return rows


def table(rows: Sequence[Row]) -> str:
    """The Markdown table of ``rows``: one line per method, a column per (k, batch); each cell
    the ratio (bold: above the target) and both sides' seconds per epoch."""
    keys = sorted({(r.k, r.batch_size) for r in rows})
    head = "| method | " + " | ".join(f"k={k}, batch {b}" for k, b in keys) + " |"
    lines = [head, "|---|" + "---:|" * len(keys)]
    for label in dict.fromkeys(r.label for r in rows):
        cells = []
        for key in keys:
            match = [r for r in rows if r.label == label and (r.k, r.batch_size) == key]
            if not match:
                cells.append("—")
                continue
            row = match[0]
            ratio = f"{row.ratio:.3f}×" if row.passed else f"**{row.ratio:.3f}×**"
            seconds = f"{row.l2obench_s_per_epoch:.3g} / {row.pyepo_s_per_epoch:.3g} s"
            cells.append(f"{ratio} ({seconds})")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def provenance() -> dict[str, Any]:
    import pyepo

    return {"date": datetime.now(UTC).isoformat(timespec="seconds"), "machine": cpu_model(),
            "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "pyepo": pyepo.__version__, "commit": git_commit(),
            "torch_threads": torch.get_num_threads(), "load_average_start": load_average()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one epoch (a smoke run)")
    parser.add_argument("--only", help="comma-separated labels of the roster to run")
    parser.add_argument("--out", help="write the rows and the provenance as JSON here")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    parser.add_argument("--table", metavar="JSON", help="print a saved run's table; run nothing")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.table:
        with open(args.table) as saved:
            data = json.load(saved)
        print(table([Row(**row) for row in data["rows"]]))
        return 0
    torch.set_num_threads(args.threads)
    specs = ROSTER
    if args.only:
        wanted = set(args.only.split(","))
        unknown = wanted - {s.label for s in ROSTER}
        if unknown:
            print(f"unknown roster labels: {', '.join(sorted(unknown))}", file=sys.stderr)
            return 2
        specs = [s for s in ROSTER if s.label in wanted]
    profile = QUICK if args.quick else FULL
    info = provenance()
    print(f"roster vs PyEPO ({profile.name}) on {info['machine']}, {info['cores']} cores, "
          f"load {info['load_average_start']}, commit {info['commit']}, {info['date']}")
    rows = compare(profile, specs, lambda line: print(line, flush=True))
    info["load_average_end"] = load_average()
    print()
    print(table(rows))
    if args.out:
        with open(args.out, "w") as out:
            json.dump({"provenance": info, "profile": asdict(profile),
                       "rows": [asdict(r) for r in rows]}, out, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
