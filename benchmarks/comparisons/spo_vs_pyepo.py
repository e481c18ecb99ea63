"""``spo+`` seconds per epoch against PyEPO's own SPO+ loop on the same data, cost model and batch.

The reference is ``pyepo.func.SPOPlus`` on PyEPO's Gurobi ``shortestPathModel``, with its
``optDataset`` built outside the clock and a plain ``DataLoader`` loop; l2obench's side is the
method's own ``fit`` under a fixed epoch budget (training plus the per-epoch validation). Target:
at most 0.5×.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from l2obench import Problem, method_registry
from l2obench.methods.torch_method import cost_model

from ..asv.common import SEED, build_method, dataset
from .comparison import (
    CPU,
    Check,
    Comparison,
    Findings,
    Side,
    at_most,
    median_of,
    quiet,
    ratio_check,
    seconds,
    timed_fit,
)

log = logging.getLogger(__name__)

SPEED = at_most(0.5, "×")


@dataclass(frozen=True)
class Sizes:
    ks: tuple[int, ...]  # grid sides
    epochs: int  # per timed run, both sides
    repeats: int
    n_train: int
    n_eval: int


FULL = Sizes(ks=(5, 20), epochs=5, repeats=3, n_train=1000, n_eval=200)
QUICK = Sizes(ks=(3, 5), epochs=2, repeats=2, n_train=64, n_eval=32)


def pyepo_seconds_per_epoch(
    problem: Problem, loader: Any, optmodel: Any, config: dict[str, Any], epochs: int
) -> float:
    """PyEPO's own SPO+ loop for ``epochs`` epochs, from the same initial cost model as
    l2obench's; returns seconds per epoch."""
    from pyepo.func import SPOPlus

    torch.manual_seed(SEED)
    model = cost_model(problem.n_features, config["hidden"], problem.n_vars)
    optimizer = torch.optim.Adam(model.parameters(), lr=config["lr"])
    spo_plus = SPOPlus(optmodel, processes=1)
    start = time.perf_counter()
    for _ in range(epochs):
        for features, costs, solutions, objectives in loader:
            loss = spo_plus(model(features), costs, solutions, objectives)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return (time.perf_counter() - start) / epochs


def measure(sizes: Sizes) -> Findings:
    """Both loops at each grid side of ``sizes``."""
    return Findings([measure_at(k, sizes) for k in sizes.ks])


def measure_at(k: int, sizes: Sizes) -> Check:
    """Both loops at grid side ``k`` on the same data; medians of repeated runs."""
    from pyepo.data.dataset import optDataset
    from pyepo.model.grb import shortestPathModel
    from torch.utils.data import DataLoader

    config = method_registry.get("spo+").validate({})
    problem, data = dataset(k, sizes.n_train, sizes.n_eval)
    with quiet():
        optmodel = shortestPathModel((k, k))
        pyepo_data = optDataset(optmodel, data.train.features, data.train.costs)
    agree = float(np.abs(np.asarray(pyepo_data.objs).ravel() - data.train.objectives).max())
    loader = DataLoader(pyepo_data, batch_size=config["batch_size"], shuffle=True)
    epochs, repeats = sizes.epochs, sizes.repeats
    ours = median_of(
        lambda: timed_fit(build_method("spo+", problem, {}, CPU), data, epochs)[0], repeats
    )
    with quiet():
        theirs = median_of(
            lambda: pyepo_seconds_per_epoch(problem, loader, optmodel, config, epochs), repeats
        )
    log.info("k=%d: spo+ %s/epoch, PyEPO SPO+ %s/epoch", k, seconds(ours), seconds(theirs))
    how = f"s/epoch, median of {repeats} × {epochs} epochs"
    return ratio_check(
        f"spo+ s/epoch ÷ PyEPO SPO+ (Gurobi), k={k}", Side(ours, "s", how), Side(theirs, "s", how),
        SPEED, note=f"batch {config['batch_size']}; PyEPO's and l2obench's optimal training "
                    f"objectives agree to {agree:.1e}",
    )


COMPARISON = Comparison(
    name="spo-vs-pyepo",
    title="spo+ vs PyEPO's own SPO+ training loop (Gurobi)",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
