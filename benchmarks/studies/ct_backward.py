"""The implicit L2O CT model: backward seconds and training memory of each backward mode.

Heaton & Wu Fung (Sci. Rep. 2023) train their L-ADMM model with Jacobian-free backprop because
the Jacobian-based gradient needs an adjoint solve through the whole fixed-point operator (a
tomography operator and a CNN on a whole image per step) and unrolling keeps every step on the
tape. Here the same model (same seed, same parameters) of ``l2o-jfb``, ``l2o-implicit`` (GMRES
adjoint, the suite's settings) and ``l2o-unrolled`` (K = 20) takes one training step on one
batch of random-ellipse sinograms at each image side; the forward pass (the L-ADMM solve and
its taped part) and the backward pass (``loss.backward()``) are timed apart, medians of rounds
that run the modes in turn. Check: ``l2o-jfb`` backward ÷ ``l2o-implicit`` backward at the
largest side, at most 0.1×.

A second series fixes the side and the number of forward iterations ``k`` exactly (the solver's
tolerance set unreachably small, so JFB and the implicit mode run ``k`` L-ADMM steps; the
unrolled mode ``K = k``). Each point runs one forward and backward in a fresh process and
records the rise of its resident-set high-water mark above the level after set-up and one
warm-up step with ``k = 1`` (Linux ``/proc/self/clear_refs``), and the bytes autograd saves
for the backward pass (exact). Checks: the spread of JFB's and of the implicit mode's peaks over
``k`` at most 0.05× the unrolled mode's rise over the same ``K``s (flat: their peaks sit within
a few MiB of the warm-up's level, so a ratio of largest to smallest peak would divide near
zeros); the unrolled mode's last ÷ first peak at least half the ratio of its ``K``'s (linear
growth). The figure ``benchmarks/results/ct-backward-memory.png`` draws the three series, peak
and tape.

Usage: ``python -m benchmarks.comparisons.ratios --only ct-backward``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import torch

from l2obench.implicit.backward import Unrolled
from l2obench.implicit.fixed_point import Picard
from l2obench.tasks.ct.data import make_data
from l2obench.tasks.ct.geometry import ParallelBeamGeometry
from l2obench.tasks.ct.l2o import ImplicitL2O
from l2obench.tasks.ct.operator import RayTransform
from l2obench.tasks.ct.reconstructors import METHODS, Learned, build

from ..comparisons.comparison import (
    RESULTS_DIR,
    Comparison,
    Findings,
    Side,
    Table,
    at_least,
    at_most,
    interleaved_medians,
    ratio,
    ratio_check,
)

log = logging.getLogger(__name__)

FAST = at_most(0.1, "×")
FLAT = at_most(0.05, "×")
MODES = ("l2o-jfb", "l2o-implicit", "l2o-unrolled")
SEED = 0
FIGURE = "ct-backward-memory.png"


@dataclass(frozen=True)
class Sizes:
    sides: tuple[int, ...]  # the timing series' image sides
    batch: int
    rounds: int  # timing rounds (medians), after one warm-up round
    memory_side: int
    iterations: tuple[int, ...]  # the memory series' forward iterations k (unrolled K)
    figure: bool


FULL = Sizes(sides=(32, 64, 128), batch=4, rounds=3, memory_side=64,
             iterations=(10, 25, 50, 100, 200), figure=True)
QUICK = Sizes(sides=(16,), batch=2, rounds=1, memory_side=16, iterations=(5, 10), figure=False)


def _model(mode: str, op: RayTransform) -> torch.nn.Module:
    torch.manual_seed(SEED)
    method = build(mode, op)
    assert isinstance(method, Learned)
    model = method.model
    model.train()
    return model


def _step_parts(model: torch.nn.Module, d: torch.Tensor, x: torch.Tensor
                ) -> tuple[Callable[[], object], Callable[[], object]]:
    """The forward (model and MSE) and the backward of one training step, as two callables
    sharing the loss; gradients are cleared each time so every round does the same work."""
    held: dict[str, torch.Tensor] = {}

    def forward() -> None:
        held["loss"] = ((model(d) - x) ** 2).mean()

    def backward() -> None:
        model.zero_grad(set_to_none=True)
        held.pop("loss").backward()

    return forward, backward


def timing(side: int, sizes: Sizes) -> dict[str, tuple[float, float, float]]:
    """Per mode: median forward seconds, median backward seconds, forward iterations."""
    g = ParallelBeamGeometry(side)
    op = RayTransform(g)
    data = make_data(g, sizes.batch, seed=SEED)
    d = torch.as_tensor(data.measurements, dtype=op.dtype)
    x = torch.as_tensor(data.images, dtype=op.dtype)
    parts = {mode: _step_parts(_model(mode, op), d, x) for mode in MODES}
    work: dict[str, Callable[[], object]] = {}
    for mode, (fwd, bwd) in parts.items():
        work[f"{mode} forward"] = fwd
        work[f"{mode} backward"] = bwd
    medians = interleaved_medians(work, sizes.rounds)
    out = {}
    for mode in MODES:
        model = _model(mode, op)
        with torch.no_grad():
            model(d)
        stats = getattr(model, "last_stats", None)
        iters = float(stats.iterations.float().mean()) if stats is not None else float("nan")
        out[mode] = (medians[f"{mode} forward"], medians[f"{mode} backward"], iters)
        log.info("side %d %s: forward %.3g s, backward %.3g s", side, mode, *out[mode][:2])
    return out


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def memory_point(mode: str, side: int, batch: int, k: int) -> tuple[float, float]:
    """In this (fresh) process: MiB of the resident high-water mark's rise over one forward and
    backward of ``mode`` with ``k`` forward iterations, and MiB autograd saved for backward."""
    torch.set_num_threads(1)
    g = ParallelBeamGeometry(side)
    op = RayTransform(g)
    data = make_data(g, batch, seed=SEED)
    d = torch.as_tensor(data.measurements, dtype=op.dtype)
    x = torch.as_tensor(data.images, dtype=op.dtype)

    def model(steps: int) -> ImplicitL2O:
        torch.manual_seed(SEED)
        if mode == "l2o-unrolled":
            return ImplicitL2O(op, backward=Unrolled(steps))
        spec = METHODS[mode].build(op)
        assert isinstance(spec, Learned) and isinstance(spec.model, ImplicitL2O)
        return ImplicitL2O(op, solver=Picard(tol=1e-30, max_iter=steps),
                           backward=spec.model.backward_mode)

    warm = model(1)  # first calls: kernels, libraries and the allocator's pools of one step
    warm.train()
    ((warm(d) - x) ** 2).mean().backward()
    del warm
    net = model(k)
    net.train()
    storages: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # resets VmHWM to the current resident set
    base = _status_kib("VmRSS")
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        loss = ((net(d) - x) ** 2).mean()
    loss.backward()
    return (_status_kib("VmHWM") - base) / 1024, sum(storages.values()) / 2**20


def memory(sizes: Sizes) -> dict[str, list[tuple[int, float, float]]]:
    """Per mode: ``(k, peak MiB, tape MiB)`` for each ``k``, one fresh process per point."""
    out: dict[str, list[tuple[int, float, float]]] = {}
    ctx = get_context("spawn")
    for mode in MODES:
        points = []
        for k in sizes.iterations:
            with ProcessPoolExecutor(max_workers=1, mp_context=ctx) as pool:
                peak, tape = pool.submit(memory_point, mode, sizes.memory_side, sizes.batch,
                                         k).result()
            log.info("%s k=%d: peak +%.1f MiB, tape %.1f MiB", mode, k, peak, tape)
            points.append((k, peak, tape))
        out[mode] = points
    return out


def draw(series: dict[str, list[tuple[int, float, float]]], side: int, batch: int,
         path: Path) -> None:
    """Peak memory against forward iterations, one line per mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode, points in series.items():
        line, = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o",
                        label=f"{mode}: peak")
        ax.plot([p[0] for p in points], [p[2] for p in points], linestyle="--",
                color=line.get_color(), label=f"{mode}: autograd tape")
    ax.set_xlabel("forward iterations k (unrolled: K)")
    ax.set_ylabel("MiB (peak: resident rise above set-up)")
    ax.set_title(f"implicit L2O, one training step, side {side}, batch {batch}, CPU")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def measure(sizes: Sizes) -> Findings:
    """Both series and their checks."""
    times = {side: timing(side, sizes) for side in sizes.sides}
    largest = max(sizes.sides)
    jfb, implicit = times[largest]["l2o-jfb"], times[largest]["l2o-implicit"]
    how = f"one batch of {sizes.batch} at side {largest}, median of {sizes.rounds} rounds"
    checks = [ratio_check(
        f"l2o-jfb backward ÷ l2o-implicit backward, side {largest}",
        Side(jfb[1], "s", how), Side(implicit[1], "s", how), FAST,
        note=f"whole step: {ratio(jfb[0] + jfb[1], implicit[0] + implicit[1]):.3g}×")]
    rows: list[list[float | int | str | None]] = [
        [side, mode, f, b, f + b, iters]
        for side, per_mode in times.items() for mode, (f, b, iters) in per_mode.items()]
    series = memory(sizes)
    first, last = series["l2o-unrolled"][0], series["l2o-unrolled"][-1]
    unrolled_rise = Side(last[1] - first[1], "MiB", f"l2o-unrolled, K={first[0]} to {last[0]}")
    for mode in ("l2o-jfb", "l2o-implicit"):
        hi = max(series[mode], key=lambda p: p[1])
        lo = min(series[mode], key=lambda p: p[1])
        checks.append(ratio_check(
            f"{mode} peak spread over k = {list(sizes.iterations)} ÷ l2o-unrolled's rise over "
            f"the same K", Side(hi[1] - lo[1], "MiB", f"k={hi[0]} minus k={lo[0]}"),
            unrolled_rise, FLAT, note=f"{mode} peak {lo[1]:.3g}–{hi[1]:.3g} MiB"))
    growth = last[0] / first[0]
    checks.append(ratio_check(
        f"l2o-unrolled peak MiB, K = {last[0]} ÷ K = {first[0]}",
        Side(last[1], "MiB", f"K={last[0]}"), Side(first[1], "MiB", f"K={first[0]}"),
        at_least(growth / 2, "×"), note=f"K grows {growth:.3g}×"))
    memory_rows: list[list[float | int | str | None]] = [
        [mode, k, peak, tape] for mode, points in series.items() for k, peak, tape in points]
    tables = [
        Table(f"one training step on a batch of {sizes.batch} (forward: L-ADMM solve and taped "
              "part, and the MSE; backward: loss.backward()), medians",
              ["side", "method", "forward s", "backward s", "step s",
               "forward iterations"], rows),
        Table(f"side {sizes.memory_side}, batch {sizes.batch}: one forward and backward per "
              "point in a fresh process",
              ["method", "forward iterations k (unrolled K)", "peak MiB above set-up",
               "autograd tape MiB"], memory_rows),
    ]
    notes = ["forward: Picard tol 1e-3, at most 100 L-ADMM steps (the suite's); implicit "
             "adjoint: GMRES tol 1e-2, at most 30 iterations; unrolled K = 20; float32, one "
             "PyTorch thread, CPU; the memory series runs exactly k steps (tol 1e-30)"]
    if sizes.figure:
        draw(series, sizes.memory_side, sizes.batch, RESULTS_DIR / FIGURE)
        notes.append(f"figure: benchmarks/results/{FIGURE}")
    return Findings(checks, tables, notes)


COMPARISON = Comparison(
    name="ct-backward",
    title="implicit L2O for CT: JFB vs Jacobian-based vs unrolled backward, time and memory",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
