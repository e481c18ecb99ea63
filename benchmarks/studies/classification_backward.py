"""Implicit classifiers: seconds per epoch and memory of each backward mode as the model grows.

The JFB paper's headline (Wu Fung et al., AAAI 2022) is that Jacobian-free backprop trains an
implicit network faster per epoch than the Jacobian-based gradient, whose backward pass solves
the adjoint system by conjugate gradients. Here the same network (same seed, same parameters)
trains one epoch of MNIST-1D in each mode, at each latent width; the forward pass (the
fixed-point solve and its taped step) and the backward pass (with the optimiser step) are timed
apart, each the median over rounds that train every mode in turn (so that a change of load on
the shared machine falls on every mode alike). Check: ``implicit-jfb`` s/epoch ÷
``implicit-jacobian``'s at the largest width, at most 0.5× (the paper's claim, with a
margin). A second series holds the width and tightens the forward tolerance, so the forward
solve takes more iterations: the tape autograd keeps (bytes of the distinct storages saved for
backward, exact) must stay flat for JFB and grow with ``K`` for unrolling. Check: JFB's
largest ÷ smallest tape at most 1.1×.
"""

from __future__ import annotations

import logging
import statistics
import time
from dataclasses import dataclass

import torch
from torch.nn import functional as F

from l2obench.tasks.classification.datasets import load_dataset
from l2obench.tasks.classification.modes import ModeSettings, build_classifier
from l2obench.tasks.classification.network import Architecture, ImplicitClassifier
from l2obench.tasks.classification.splits import ClassificationData

from ..comparisons.comparison import (
    Comparison,
    Findings,
    Side,
    Table,
    at_most,
    ratio,
    ratio_check,
)

log = logging.getLogger(__name__)

SPEED = at_most(0.5, "×")
FLAT = at_most(1.1, "×")
MODES = ("jfb", "jacobian", "unrolled", "explicit")
SEED = 0


@dataclass(frozen=True)
class Sizes:
    widths: tuple[int, ...]
    n_samples: int  # MNIST-1D instances generated (train, val and test together)
    batch_size: int
    contraction: float
    unroll_steps: int
    tolerances: tuple[float, ...]  # the memory series' forward tolerances, smallest width
    rounds: int  # timed epochs per mode and width (after one warm-up), medians kept


FULL = Sizes(widths=(16, 32, 64, 128), n_samples=5000, batch_size=128, contraction=0.9,
             unroll_steps=20, tolerances=(1e-1, 1e-2, 1e-3, 1e-4, 1e-5), rounds=3)
QUICK = Sizes(widths=(4, 8), n_samples=200, batch_size=32, contraction=0.9, unroll_steps=5,
              tolerances=(1e-1, 1e-4), rounds=1)


@dataclass
class Epoch:
    """One epoch of one mode at one width."""

    forward_s: float
    backward_s: float
    fwd_iters: float
    bwd_iters: float | None

    @property
    def total_s(self) -> float:
        return self.forward_s + self.backward_s


def build(data: ClassificationData, mode: str, width: int, contraction: float,
          settings: ModeSettings) -> ImplicitClassifier:
    return build_classifier(data.input_shape, data.n_classes,
                            Architecture(width=width, contraction=contraction), mode, settings,
                            seed=SEED)


def epoch(net: ImplicitClassifier, data: ClassificationData, batch_size: int) -> Epoch:
    """One epoch of Adam steps in a fixed order, forward and backward timed apart (CPU)."""
    x, y = torch.as_tensor(data.train.x), torch.as_tensor(data.train.y)
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(SEED))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    fwd = bwd = 0.0
    iters: list[float] = []
    bwd_iters: list[int] = []
    for first in range(0, len(order), batch_size):
        idx = order[first : first + batch_size]
        t0 = time.perf_counter()
        logits, stats = net(x[idx])
        loss = F.cross_entropy(logits, y[idx])
        t1 = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        t2 = time.perf_counter()
        fwd, bwd = fwd + t1 - t0, bwd + t2 - t1
        iters.append(float(stats.iterations.float().mean()))
        if stats.backward_iterations is not None:
            bwd_iters.append(stats.backward_iterations)
    return Epoch(fwd, bwd, sum(iters) / len(iters),
                 sum(bwd_iters) / len(bwd_iters) if bwd_iters else None)


def median_epoch(runs: list[Epoch]) -> Epoch:
    """The median of each timed part over ``runs`` (the iteration counts of the first run: every
    run starts from the same parameters and batches)."""
    return Epoch(statistics.median(r.forward_s for r in runs),
                 statistics.median(r.backward_s for r in runs), runs[0].fwd_iters,
                 runs[0].bwd_iters)


def tape_bytes(net: ImplicitClassifier, d: torch.Tensor) -> int:
    """Bytes of the distinct storages autograd saves for the backward pass of one forward."""
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    net.train()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(d)
    return sum(storages.values())


def measure(sizes: Sizes) -> Findings:
    """Both series and their checks."""
    data = load_dataset("mnist1d", seed=SEED, n_samples=sizes.n_samples)
    settings = ModeSettings(unroll_steps=sizes.unroll_steps)
    rows: list[list[float | int | str | None]] = []
    per_epoch: dict[tuple[str, int], Epoch] = {}
    for width in sizes.widths:
        runs: dict[str, list[Epoch]] = {mode: [] for mode in MODES}
        for round_ in range(1 + sizes.rounds):  # the first round warms up: allocations, caches
            for mode in MODES:
                net = build(data, mode, width, sizes.contraction, settings)
                run = epoch(net, data, sizes.batch_size)
                if round_:
                    runs[mode].append(run)
        for mode in MODES:
            run = per_epoch[mode, width] = median_epoch(runs[mode])
            log.info("width %d %s: %.3g s/epoch (forward %.3g, backward %.3g)", width, mode,
                     run.total_s, run.forward_s, run.backward_s)
            rows.append([width, f"implicit-{mode}" if mode != "explicit" else mode, run.total_s,
                         run.forward_s, run.backward_s, run.fwd_iters, run.bwd_iters])
    widest = max(sizes.widths)
    how = f"one epoch of {len(data.train)} MNIST-1D signals, batch {sizes.batch_size}"
    jacobian, jfb = per_epoch["jacobian", widest], per_epoch["jfb", widest]
    how += f", median of {sizes.rounds}"
    checks = [ratio_check(
        f"implicit-jfb s/epoch ÷ implicit-jacobian, width {widest}",
        Side(jfb.total_s, "s", how), Side(jacobian.total_s, "s", how), SPEED,
        note=f"backward alone: {ratio(jfb.backward_s, jacobian.backward_s):.3g}×; forward "
             f"share of the epoch: jfb {jfb.forward_s / jfb.total_s:.0%}, jacobian "
             f"{jacobian.forward_s / jacobian.total_s:.0%}",
    )]
    memory_rows: list[list[float | int | str | None]] = []
    jfb_tapes = []
    d = torch.as_tensor(data.train.x[: sizes.batch_size])
    width = min(sizes.widths)
    for tol in sizes.tolerances:
        tight = ModeSettings(forward_tol=tol)
        jfb_model = build(data, "jfb", width, sizes.contraction, tight)
        jfb_tape = tape_bytes(jfb_model, d)
        with torch.no_grad():
            iters = float(jfb_model(d)[1].iterations.float().mean())
        k = max(1, round(iters))
        unrolled = build(data, "unrolled", width, sizes.contraction, ModeSettings(unroll_steps=k))
        jfb_tapes.append(jfb_tape)
        memory_rows.append([tol, iters, jfb_tape / 2**20, k, tape_bytes(unrolled, d) / 2**20])
    checks.append(ratio_check(
        f"implicit-jfb tape, largest ÷ smallest over forward tol {list(sizes.tolerances)}",
        Side(max(jfb_tapes), "B", "the most forward iterations"),
        Side(min(jfb_tapes), "B", "the fewest"), FLAT))
    tables = [
        Table("seconds per epoch by latent width (forward: solve and taped step; backward: "
              "gradient and Adam step)",
              ["width", "method", "s/epoch", "forward s", "backward s", "forward iterations",
               "adjoint CG iterations"], rows),
        Table(f"autograd tape of one batch of {sizes.batch_size}, width {width}, against the "
              "forward iterations",
              ["forward tol", "forward iterations (JFB)", "implicit-jfb tape MiB",
               "unrolled K (= those iterations)", "implicit-unrolled tape MiB"], memory_rows),
    ]
    notes = [f"contraction γ = {sizes.contraction} in the timing series; forward tolerance "
             f"{settings.forward_tol} (absolute, per instance), CG tolerance {settings.cg_tol} "
             f"(relative), unrolled K = {sizes.unroll_steps}; one PyTorch thread"]
    return Findings(checks, tables, notes)


COMPARISON = Comparison(
    name="classification-backward",
    title="implicit classifiers: JFB vs Jacobian-based vs unrolled vs explicit, by width",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
