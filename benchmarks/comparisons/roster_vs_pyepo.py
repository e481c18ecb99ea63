"""The PyEPO roster in l2obench against PyEPO's own training loop on its Gurobi model.

    python -m benchmarks.comparisons.ratios --only roster-vs-pyepo          # about an hour, 2 cores
    python -m benchmarks.comparisons.ratios --only roster-vs-pyepo --quick  # four methods at k = 3
    L2OBENCH_ROSTER_KS=5 python -m benchmarks.comparisons.ratios --only roster-vs-pyepo  # k = 5

For every method of the roster, on shortest path at k = 5 and k = 20 and at batch sizes 32
(PyEPO's protocol) and 256 (l2obench's default), both sides are measured in one run on the same
data, cost model (the same initial weights), batch size, seed and mini-batch order: l2obench's
``fit`` (training and the per-epoch validation the runner records as ``time_per_epoch_s``)
against PyEPO's own loop (``pyepo.func``'s module on ``pyepo.model.grb.shortestPathModel``, data
from ``optDataset`` — ``optDatasetConstrs`` for CaVE — built outside the clock, the task loss of
PyEPO's training recipes, Adam), seconds per epoch. Target: at most 0.25× for every method.
Both sides see the mini-batches in the same order (PyEPO's ``DataLoader`` draws them through
l2obench's sampler), so they follow the same training trajectory, and the check that they train
the same thing is that their per-epoch mean training losses agree (to 1e-5 relative). The
Frank–Wolfe methods feed their module float64 costs on both sides (l2obench does; in float32
PyEPO's default gap tolerance is never reached and every step runs all 10 000 iterations) and
run one epoch per side, the others ``epochs``; at k = 20 their iterations per step are capped
(``frank_wolfe_max_iter``, the same on both sides), since PyEPO's loop alone would take hours.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from l2obench import Budget, method_registry
from l2obench.methods.torch_method import cost_model
from l2obench.problems.shortest_path import ShortestPath

from .comparison import (
    CPU,
    Check,
    Comparison,
    Findings,
    Profile,
    Side,
    Table,
    at_most,
    load_average,
    quiet,
    ratio_check,
    seconds,
)

log = logging.getLogger(__name__)

SEED = 0
SPEED = at_most(0.25, "×")
#: Both sides' per-epoch mean training losses, largest relative difference.
SAME_TRAINING = at_most(1e-5)


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
    module: Callable[..., nn.Module]  # (Gurobi model, optDataset[, max_iter]) -> PyEPO module
    loss: Callable[[nn.Module, torch.Tensor, Batch], torch.Tensor]
    frank_wolfe: bool = False  # float64 costs; iterations capped where the sizes say so
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
    Spec("rfwo", "rfwo", {},
         lambda m, d, max_iter=10_000: func("regularizedFrankWolfeOpt")(m, max_iter=max_iter),
         solution_mse, frank_wolfe=True, slow=True),
    Spec("rfy", "rfy", {},
         lambda m, d, max_iter=10_000: func("regularizedFrankWolfeFenchelYoung")(
             m, max_iter=max_iter), against_solutions, frank_wolfe=True, slow=True),
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
class Sizes:
    """Grid sides (each with its training-set size), batch sizes, epochs, and which methods."""

    ks: tuple[int, ...]
    n_train: tuple[int, ...]  # per grid side
    batch_sizes: tuple[int, ...]
    epochs: int
    labels: tuple[str, ...] = ()  # roster entries to run (empty: all)
    #: Frank–Wolfe iterations per step at most, on both sides, per grid side (0: PyEPO's default
    #: of 10 000; at k = 20 PyEPO's loop, scanning its 2n + 2 slots per instance twice an
    #: iteration, needs ~0.1 s per iteration at batch 32 and thousands of iterations per step).
    frank_wolfe_max_iter: tuple[int, ...] = ()
    hidden: int = 0  # PyEPO's protocol: a linear cost model
    lr: float = 1e-2


FULL = Sizes(ks=(5, 20), n_train=(1000, 200), batch_sizes=(32, 256), epochs=2,
             frank_wolfe_max_iter=(0, 100))
QUICK = Sizes(ks=(3,), n_train=(64,), batch_sizes=(16,), epochs=1,
              labels=("spo+", "rfy", "nce", "cave"))

#: The grid sides of the full profile to run, comma-separated (unset or empty: all of them);
#: the result's settings record the sides that ran.
KS_ENV = "L2OBENCH_ROSTER_KS"


def only_ks(sizes: Sizes, raw: str) -> Sizes:
    """``sizes`` restricted to the grid sides listed in ``raw`` (all of them if it is empty)."""
    if not raw.strip():
        return sizes
    try:
        wanted = {int(k) for k in raw.split(",") if k.strip()}
    except ValueError:
        raise ValueError(f"{KS_ENV}={raw!r}: not comma-separated grid sides") from None
    if not wanted or not wanted <= set(sizes.ks):
        raise ValueError(f"{KS_ENV}={raw!r}: the grid sides are "
                         f"{', '.join(map(str, sizes.ks))}")
    keep = [i for i, k in enumerate(sizes.ks) if k in wanted]
    caps = sizes.frank_wolfe_max_iter
    return dataclasses.replace(
        sizes, ks=tuple(sizes.ks[i] for i in keep), n_train=tuple(sizes.n_train[i] for i in keep),
        frank_wolfe_max_iter=tuple(caps[i] for i in keep) if caps else ())


@dataclass
class Row:
    """One method at one size and batch size: both sides' seconds per epoch and their losses."""

    label: str
    k: int
    batch_size: int
    epochs: int
    l2obench_s: float
    pyepo_s: float
    l2obench_losses: list[float] = field(default_factory=list)
    pyepo_losses: list[float] = field(default_factory=list)
    fwd_iters_mean: float | None = None

    @property
    def loss_gap(self) -> float:
        """The largest relative difference of the two sides' per-epoch training losses."""
        return max(abs(a - b) / max(abs(b), 1e-12)
                   for a, b in zip(self.l2obench_losses, self.pyepo_losses, strict=True))


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
                 epochs: int, sizes: Sizes, options: dict[str, Any]) -> tuple[float, list[float]]:
    """PyEPO's own loop for ``epochs`` epochs: seconds per epoch and mean training losses."""
    from pyepo.data.dataset import optDataLoader

    torch.manual_seed(SEED)  # the same initial weights as l2obench's TorchMethod
    model = cost_model(problem.n_features, sizes.hidden, problem.n_vars)
    optimizer = torch.optim.Adam(model.parameters(), lr=sizes.lr)
    # PyEPO's module (untyped): its private branch generator is seeded below.
    module: Any = spec.module(optmodel, dataset, **options)
    module._branch_rng = np.random.RandomState(SEED)  # as l2obench seeds it
    loader = optDataLoader(dataset, batch_sampler=SameOrder(len(dataset), batch_size, SEED))
    losses = []
    start = time.perf_counter()
    for _ in range(epochs):
        total = 0.0
        for batch in loader:
            pred = model(batch[0])
            if spec.frank_wolfe:
                pred = pred.double()
            loss = spec.loss(module, pred, batch)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch[0])
        losses.append(total / len(dataset))
    return (time.perf_counter() - start) / epochs, losses


def l2obench_epochs(spec: Spec, problem: ShortestPath, data: Any, batch_size: int, epochs: int,
                    sizes: Sizes, options: dict[str, Any]
                    ) -> tuple[float, list[float], float | None]:
    """l2obench's ``fit`` for ``epochs`` epochs: seconds per epoch, training losses, iterations."""
    method = method_registry.get(spec.method)(
        problem, CPU, SEED, batch_size=batch_size, hidden=sizes.hidden, lr=sizes.lr,
        **spec.params, **options)
    start = time.perf_counter()
    fit = method.fit(data, Budget(max_epochs=epochs))
    elapsed = time.perf_counter() - start
    return elapsed / epochs, [h["train_loss"] for h in fit.history], fit.fwd_iters_mean


def measure_rows(sizes: Sizes, specs: Sequence[Spec]) -> tuple[list[Row], list[str]]:
    """Every spec at every grid side and batch size of ``sizes``; rows and notes."""
    from pyepo.data.dataset import optDataset, optDatasetConstrs
    from pyepo.model.grb import shortestPathModel

    rows, notes = [], []
    caps = sizes.frank_wolfe_max_iter or (0,) * len(sizes.ks)
    for k, n_train, cap in zip(sizes.ks, sizes.n_train, caps, strict=True):
        problem = ShortestPath(k=k, n_train=n_train, n_val=200, n_test=200, seed=SEED)
        data = problem.generate()
        train = data.train
        with quiet():
            optmodel = shortestPathModel((k, k))
            dataset = optDataset(optmodel, train.features, train.costs)
            constrs = (optDatasetConstrs(optmodel, train.features, train.costs)
                       if any(s.constrs for s in specs) else None)
        gap = float(np.abs(dataset.objs.numpy().ravel() - train.objectives).max())
        notes.append(f"k = {k}: {n_train} training instances; PyEPO's (Gurobi) and l2obench's "
                     f"optimal objectives agree to {gap:.1e}.")
        if cap:
            notes.append(f"k = {k}: Frank–Wolfe capped at {cap} iterations per step on both "
                         "sides.")
        first = specs[0]
        with quiet():  # first calls (optimiser imports, allocators) outside the clock
            l2obench_epochs(first, problem, data, sizes.batch_sizes[0], 1, sizes, {})
            pyepo_epochs(first, optmodel, constrs if first.constrs else dataset, problem,
                         sizes.batch_sizes[0], 1, sizes, {})
        for batch_size in sizes.batch_sizes:
            for spec in specs:
                epochs = 1 if spec.slow else sizes.epochs
                options = {"max_iter": cap} if spec.frank_wolfe and cap else {}
                ours, our_losses, iters = l2obench_epochs(spec, problem, data, batch_size,
                                                          epochs, sizes, options)
                with quiet():
                    theirs, their_losses = pyepo_epochs(
                        spec, optmodel, constrs if spec.constrs else dataset, problem,
                        batch_size, epochs, sizes, options)
                row = Row(spec.label, k, batch_size, epochs, ours, theirs, our_losses,
                          their_losses, iters)
                rows.append(row)
                log.info("%-18s k=%-3d batch %-4d l2obench %s/epoch, PyEPO %s/epoch: %.3f×; "
                         "training losses agree to %.1e; load %s", spec.label, k, batch_size,
                         seconds(ours), seconds(theirs), ours / theirs, row.loss_gap,
                         load_average())
    return rows, notes


def check_of(row: Row) -> Check:
    how = f"s/epoch over {row.epochs} epoch{'s' if row.epochs > 1 else ''}"
    iters = (f"; {row.fwd_iters_mean:.0f} Frank–Wolfe iterations per step"
             if row.fwd_iters_mean is not None else "")
    return ratio_check(
        f"{row.label} s/epoch ÷ PyEPO (Gurobi), k={row.k}, batch {row.batch_size}",
        Side(row.l2obench_s, "s", how), Side(row.pyepo_s, "s", how), SPEED,
        note=f"training losses agree to {row.loss_gap:.1e}{iters}",
    )


def table_of(rows: Sequence[Row]) -> Table:
    """One line per method, a column per (k, batch): the ratio and both sides' seconds."""
    keys = sorted({(r.k, r.batch_size) for r in rows})
    lines: list[list[float | int | str | None]] = []
    for label in dict.fromkeys(r.label for r in rows):
        line: list[float | int | str | None] = [label]
        for key in keys:
            match = [r for r in rows if r.label == label and (r.k, r.batch_size) == key]
            if not match:
                line.append(None)
                continue
            row = match[0]
            ratio = row.l2obench_s / row.pyepo_s
            text = f"{ratio:.3f}×" if SPEED.met(ratio) else f"**{ratio:.3f}×**"
            line.append(f"{text} ({seconds(row.l2obench_s)} / {seconds(row.pyepo_s)})")
        lines.append(line)
    return Table("seconds per epoch, l2obench ÷ PyEPO (l2obench / PyEPO); above the target in "
                 "bold", ["method", *(f"k={k}, batch {b}" for k, b in keys)], lines)


def measure(sizes: Sizes) -> Findings:
    """Every roster entry of ``sizes`` against PyEPO's loop, and whether both sides train the
    same thing."""
    specs = [s for s in ROSTER if not sizes.labels or s.label in sizes.labels]
    rows, notes = measure_rows(sizes, specs)
    return findings_of(rows, notes)


def findings_of(rows: Sequence[Row], notes: list[str]) -> Findings:
    """The checks (one per row, one per grid side for the training losses), the table, notes."""
    checks = [check_of(row) for row in rows]
    for k in dict.fromkeys(r.k for r in rows):
        worst = max((r for r in rows if r.k == k), key=lambda r: r.loss_gap)
        gap = worst.loss_gap
        checks.append(Check(
            f"training losses, l2obench against PyEPO, k={k}",
            Side(gap, "", "largest relative difference over methods, batch sizes and epochs"),
            Side(0.0, "", "the same losses"), gap if math.isfinite(gap) else math.inf,
            SAME_TRAINING, note=f"largest: {worst.label}, batch {worst.batch_size}"))
    return Findings(checks, [table_of(rows)], notes)


def profiles() -> dict[Profile, Sizes]:
    """The profiles, the full one restricted to ``$L2OBENCH_ROSTER_KS``'s grid sides (a bad
    value: exit 2 with one message)."""
    try:
        return {"full": only_ks(FULL, os.environ.get(KS_ENV, "")), "quick": QUICK}
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


COMPARISON = Comparison(
    name="roster-vs-pyepo",
    title="every PyEPO loss in l2obench vs PyEPO's own training loop (Gurobi)",
    sizes=profiles(),
    measure=measure,
)
