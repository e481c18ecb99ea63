"""Ratios of l2obench against the references it must beat, both sides measured in the same run.

    python benchmarks/ratios.py            # the full measurement (about 15 minutes on 2 cores)
    python benchmarks/ratios.py --quick    # every section at tiny sizes, well under a minute
    python benchmarks/ratios.py --only 1,3 # some sections only

The five comparisons of issue #5 ("Ratios"), each printed with its measured values, the ratio, the
target and PASS/FAIL, then a summary table:

1. l2obench's exact shortest-path oracle on a batch against PyEPO's Gurobi ``shortestPathModel``
   solving one instance at a time (``setObj`` + ``solve``): at least 50× faster, the same
   objectives on every instance; and the oracle solves k = 100, which Gurobi's bundled
   size-limited licence refuses.
2. ``spo+`` seconds per epoch against PyEPO's own SPO+ loop (``pyepo.func.SPOPlus`` on its Gurobi
   model, ``optDataset`` built outside the clock, a plain ``DataLoader`` loop) on the same data,
   cost model and batch size: at most 0.5×.
3. ``dys-jfb`` seconds per epoch against the plain fpo-dys implementation of
   ``benchmarks/fpo_dys_reference.py``: at most 0.25×, with every instance's fixed-point residual
   at least as small as the reference leaves it and normalized regret no worse. Two
   configurations of ``dys-jfb`` run against the one reference: its defaults (the published
   fpo-dys settings, each instance stopping at tol 1e-2) and an accurate one
   (:data:`DYS_JFB_ACCURATE`). Both layers solve the same test costs; as the two operators differ
   (gradient ``w + γx`` against fpo-dys's ``w + γz``, and possibly α), l2obench's points are
   mapped into the reference's operator (``FpoDysLayer.equivalent_point``) and both residuals are
   that operator's; the distance of each decision to a float64 solution is checked too.
4. Training peak host memory of ``dys-jfb`` against ``max_iter`` (flat) and of ``dys-unrolled``
   against ``K`` (growing), each point in a fresh process, as the runner records it.
5. ``dys-jfb-jax`` against ``dys-jfb`` seconds per epoch on CPU: JAX at most 1.5× torch.

l2obench's seconds per epoch are always those of the method's own ``fit`` under a fixed epoch
budget (the runner's ``time_per_epoch_s``: training plus the per-epoch validation). Timings that
are short are medians over repeats, after a warm-up: the machines this runs on are shared. PyTorch
runs one intra-op thread by default (``--threads``) on both sides: with two threads on a shared
2-core machine, the same ``dys-jfb`` epoch at k = 20 took 1.1 s in one section of a run and 31 s
in a later one, when other processes held a core (load average ≈ 3.5; JAX's epoch, beside it,
stayed at 2.2 s): a multi-threaded PyTorch waits at each of the layer's many small parallel
regions for a thread that is not running. The exit status is 1 when a section could not run, 0
otherwise, whether or not its targets are met.
It needs the ``dev`` extra (PyEPO with gurobipy, JAX, Clarabel through cvxpy).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from l2obench import Budget, Dataset, FitResult, LPForm, Method, method_registry
from l2obench.executors import run_isolated
from l2obench.layers.fixed_point import FixedPointSolver, FixedPointStats, Operator
from l2obench.methods.torch_method import cost_model
from l2obench.metrics import normalized_regret
from l2obench.params import readable_name
from l2obench.problems.shortest_path import ShortestPath
from l2obench.provenance import cpu_model, git_commit
from l2obench.record import Cell, Limits, Record
from l2obench.runner import warm_up

if __package__:
    from .fpo_dys_reference import FpoDysLayer, FpoDysSettings, predict_costs, train_reference
else:  # run as a script (python benchmarks/ratios.py): its own folder is on sys.path
    from fpo_dys_reference import FpoDysLayer, FpoDysSettings, predict_costs, train_reference

#: The ``dys-jfb`` parameters of every comparison that runs it (sections 3, 4 and 5), passed to
#: the method as public parameters: change them here when the layer gains new levers. These are
#: the method's defaults: the fpo-dys α, γ, tol and max_iter, with l2obench's per-instance
#: stopping test, solved by plain fixed-point iteration (``"solver": "anderson"`` accelerates).
DYS_JFB_PARAMS: dict[str, Any] = {
    "alpha": 0.05, "gamma": 5e-4, "tol": 1e-2, "max_iter": 10_000, "solver": "picard",
}

#: ``dys-jfb`` set up to leave every instance at least as close to its fixed point as the
#: reference does, for section 3. The same γ, hence the same solutions ``x*``; α is only the step
#: of the iteration (the JFB gradient's direction does not depend on it, its scale does, which
#: Adam absorbs), and a larger one reaches the fixed point in far fewer steps on these problems.
#: Each instance iterates until its residual is 3e-5 or for 6 000 steps, a fixed budget per
#: instance (the reference takes 2 000–3 000 steps of α = 0.05 for the whole batch at k = 20, 30;
#: a budget of 500 steps left 2 % of the instances at k = 20 and 10 % at k = 30 short of it, one
#: of 2 000 steps every instance at k = 20 and 3 % at k = 30).
DYS_JFB_ACCURATE: dict[str, Any] = {
    "alpha": 1.0, "gamma": 5e-4, "tol": 3e-5, "max_iter": 6_000, "solver": "picard",
}

#: Section 3's ``dys-jfb`` configurations, each compared with the one reference run.
SECTION3_CONFIGS: dict[str, dict[str, Any]] = {
    "defaults": DYS_JFB_PARAMS, "accurate": DYS_JFB_ACCURATE,
}

#: The seed of every data set and model.
SEED = 0
CPU = torch.device("cpu")


@dataclass(frozen=True)
class Profile:
    """Sizes, budgets and repeats of one run: the full measurement or the ``--quick`` smoke run.

    ``data`` overrides the shortest-path data sizes (empty: the problem's 1 000 / 200 / 200).
    """

    name: str
    data: dict[str, int]
    oracle_k: int
    oracle_batch: int
    oracle_repeats: int
    big_k: int  # a grid past Gurobi's size-limited licence (k ≥ 33)
    big_batch: int
    spo_sizes: tuple[int, ...]
    spo_epochs: int
    spo_repeats: int
    dys_epochs: dict[int, int]  # grid side → epochs, for both sides of section 3
    dys_repeats: int
    memory_k: int
    memory_max_iters: tuple[int, ...]
    memory_unrolled_ks: tuple[int, ...]
    jax_k: int
    jax_epochs: int
    jax_repeats: int


FULL = Profile(
    name="full", data={}, oracle_k=5, oracle_batch=1000, oracle_repeats=7, big_k=100,
    big_batch=1000, spo_sizes=(5, 20), spo_epochs=5, spo_repeats=3, dys_epochs={20: 2, 30: 1},
    dys_repeats=3, memory_k=20, memory_max_iters=(10, 100, 1000, 10_000),
    memory_unrolled_ks=(10, 25, 50, 100), jax_k=20, jax_epochs=2, jax_repeats=3,
)
QUICK = Profile(
    name="quick", data={"n_train": 64, "n_val": 32, "n_test": 32}, oracle_k=5, oracle_batch=100,
    oracle_repeats=3, big_k=33, big_batch=10, spo_sizes=(3, 5), spo_epochs=2, spo_repeats=2,
    dys_epochs={3: 1, 5: 1}, dys_repeats=1, memory_k=5, memory_max_iters=(10, 1000),
    memory_unrolled_ks=(5, 20), jax_k=5, jax_epochs=1, jax_repeats=1,
)


@dataclass(frozen=True)
class Outcome:
    """One checked comparison: what was measured, the target, and whether it was met."""

    section: int
    what: str
    measured: str
    target: str
    passed: bool | None  # None: the section failed to run

    @property
    def verdict(self) -> str:
        return "ERROR" if self.passed is None else "PASS" if self.passed else "FAIL"


def report(outcome: Outcome) -> Outcome:
    """Print ``outcome``'s result line and return it."""
    print(f"  => {outcome.what}: {outcome.measured}; target {outcome.target}: {outcome.verdict}")
    return outcome


# -- shared helpers ----------------------------------------------------------------------------


def shortest_path(k: int, profile: Profile, **data: int) -> ShortestPath:
    """The shortest-path problem on a k×k grid with the profile's data sizes and :data:`SEED`."""
    return ShortestPath(k=k, seed=SEED, **{**profile.data, **data})


def build_method(name: str, problem: ShortestPath, params: dict[str, Any]) -> Method:
    """An l2obench method by its registered name, on CPU, through its public parameters."""
    return method_registry.get(name)(problem, CPU, SEED, **params)


def timed_fit(method: Method, data: Dataset, epochs: int) -> tuple[float, FitResult]:
    """Seconds per epoch of ``method.fit`` under a budget of exactly ``epochs`` epochs."""
    start = time.perf_counter()
    fit = method.fit(data, Budget(max_epochs=epochs))
    elapsed = time.perf_counter() - start
    if fit.epochs != epochs:
        raise RuntimeError(f"fit completed {fit.epochs} epochs, not {epochs}")
    return elapsed / epochs, fit


def clock(work: Callable[[], object]) -> float:
    """Seconds that ``work()`` takes."""
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def median_of(measure: Callable[[], float], repeats: int, warm_up_first: bool = True) -> float:
    """The median of ``repeats`` calls of ``measure`` (after one discarded call if asked)."""
    if warm_up_first:
        measure()
    return statistics.median(measure() for _ in range(repeats))


def seconds(value: float) -> str:
    """A duration with a unit that keeps three significant digits readable."""
    if value < 1e-3:
        return f"{value * 1e6:.3g} µs"
    if value < 1.0:
        return f"{value * 1e3:.3g} ms"
    return f"{value:.3g} s"


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Swallow what a library prints (PyEPO's progress bars, solver banners)."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield


# -- 1. exact oracle vs Gurobi -----------------------------------------------------------------


def gurobi_objectives(model: Any, costs: np.ndarray) -> np.ndarray:
    """Objectives of PyEPO's Gurobi model solving ``costs`` one row at a time (setObj + solve)."""
    objectives = np.empty(len(costs))
    for i, cost in enumerate(costs):
        model.setObj(cost)
        _, objectives[i] = model.solve()
    return objectives


def oracle_vs_gurobi(profile: Profile) -> list[Outcome]:
    """Section 1: batch oracle against one-at-a-time Gurobi, then a grid past the licence."""
    import gurobipy
    from pyepo.model.grb import shortestPathModel

    k, n = profile.oracle_k, profile.oracle_batch
    problem = shortest_path(k, profile, n_train=n)
    costs = problem.generate().train.costs.astype(np.float64)
    with quiet():
        model = shortestPathModel((k, k))
    t_oracle = median_of(lambda: clock(lambda: problem.oracle(costs)), 3 * profile.oracle_repeats)
    t_gurobi = median_of(lambda: clock(lambda: gurobi_objectives(model, costs)),
                         profile.oracle_repeats)
    gap = float(np.abs(problem.oracle(costs)[1] - gurobi_objectives(model, costs)).max())
    ratio = t_gurobi / t_oracle
    print(f"  k={k}, batch of {n}: l2obench oracle {seconds(t_oracle)} per batch "
          f"({seconds(t_oracle / n)} per instance), Gurobi one at a time {seconds(t_gurobi)} "
          f"({seconds(t_gurobi / n)} per instance); medians")
    outcomes = [
        report(Outcome(1, f"oracle speed-up over Gurobi, k={k}", f"{ratio:.1f}×", "≥ 50×",
                       ratio >= 50)),
        report(Outcome(1, f"objectives, k={k}", f"max |Δ| = {gap:.1e} over {n} instances",
                       "≤ 1e-6 on every instance", gap <= 1e-6)),
    ]

    big_k, big_n = profile.big_k, profile.big_batch
    big = shortest_path(big_k, profile, n_train=big_n)
    big_costs = big.generate().train.costs
    t_big = median_of(lambda: clock(lambda: big.oracle(big_costs)), 3, warm_up_first=False)
    print(f"  k={big_k} ({big.n_vars} arcs), batch of {big_n}: l2obench oracle {seconds(t_big)}")
    try:
        with quiet():
            big_model = shortestPathModel((big_k, big_k))
            big_model.setObj(big_costs[0])
            big_model.solve()
        gurobi_note, refused = "Gurobi solved it", False
    except gurobipy.GurobiError as exc:
        gurobi_note, refused = f"GurobiError {getattr(exc, 'errno', '?')}: {exc}", True
    print(f"  Gurobi at k={big_k}: {gurobi_note}")
    outcomes.append(report(Outcome(
        1, f"k={big_k}", f"oracle {seconds(t_big)} per batch of {big_n}; "
        f"Gurobi {'refused (licence)' if refused else 'solved'}",
        "oracle solves, bundled Gurobi cannot", refused)))
    return outcomes


# -- 2. spo+ vs PyEPO's SPO+ loop --------------------------------------------------------------


def pyepo_spo_seconds_per_epoch(
    problem: ShortestPath, loader: Any, optmodel: Any, config: dict[str, Any], epochs: int
) -> float:
    """PyEPO's own SPO+ loop (``pyepo.func.SPOPlus`` on its Gurobi model) for ``epochs``
    epochs, from the same initial cost model as l2obench's; returns seconds per epoch."""
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


def spo_plus_vs_pyepo(profile: Profile) -> list[Outcome]:
    """Section 2: l2obench ``spo+`` against PyEPO's SPO+ loop, at each size of the profile."""
    return [spo_plus_at(k, profile) for k in profile.spo_sizes]


def spo_plus_at(k: int, profile: Profile) -> Outcome:
    """Section 2 at grid side ``k``: both loops on the same data, medians of repeated runs."""
    from pyepo.data.dataset import optDataset
    from pyepo.model.grb import shortestPathModel
    from torch.utils.data import DataLoader

    config = method_registry.get("spo+").validate({})
    problem = shortest_path(k, profile)
    data = problem.generate()
    with quiet():
        optmodel = shortestPathModel((k, k))
        dataset = optDataset(optmodel, data.train.features, data.train.costs)
    same = float(np.abs(np.asarray(dataset.objs).ravel() - data.train.objectives).max())
    loader = DataLoader(dataset, batch_size=config["batch_size"], shuffle=True)
    epochs, repeats = profile.spo_epochs, profile.spo_repeats
    l2o = median_of(lambda: timed_fit(build_method("spo+", problem, {}), data, epochs)[0],
                    repeats)
    with quiet():
        ref = median_of(
            lambda: pyepo_spo_seconds_per_epoch(problem, loader, optmodel, config, epochs), repeats
        )
    ratio = l2o / ref
    print(f"  k={k}: l2obench spo+ {seconds(l2o)}/epoch, PyEPO SPO+ with Gurobi {seconds(ref)}"
          f"/epoch (medians of {repeats} × {epochs} epochs, batch {config['batch_size']}; "
          f"PyEPO's and l2obench's optimal training objectives agree to {same:.1e})")
    return report(Outcome(2, f"spo+ s/epoch ÷ PyEPO, k={k}", f"{ratio:.3f}×", "≤ 0.5×",
                          ratio <= 0.5))


# -- 3. dys-jfb vs the fpo-dys reference -------------------------------------------------------


class ResidualProbe(FixedPointSolver):
    """A layer's fixed-point solver, wrapped to keep the point where it stops and each instance's
    residual there.

    The residual ``‖T(z*) − z*‖₂`` is computed with the very operator and arguments the layer
    hands its solver, so it measures the layer's own fixed point whatever solver it uses.
    """

    def __init__(self, inner: FixedPointSolver) -> None:
        self.inner = inner
        self.z: Tensor | None = None
        self.residuals: Tensor | None = None

    def __call__(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...]
    ) -> tuple[Tensor, FixedPointStats]:
        z, stats = self.inner(fn, z0, args)
        with torch.no_grad():
            self.z = z
            self.residuals = torch.linalg.vector_norm((fn(z, *args) - z).flatten(1), dim=1)
        return z, stats


@dataclass
class Solve:
    """One layer's result on a batch: decisions, fixed-point residuals (in the reference's
    operator, and in the layer's own) and iterations."""

    decisions: np.ndarray  # [N, n] float64
    residuals: np.ndarray  # [N], the reference operator's residual at the (mapped) point
    own_residuals: np.ndarray  # [N], the layer's own operator
    iterations: np.ndarray  # [N]


def l2obench_solve(method: Any, costs: Tensor, reference: FpoDysLayer) -> Solve:
    """``dys-jfb``'s layer on ``costs`` (its forward, no tape), with the solver probed; its
    points are also mapped into the reference's operator (:meth:`FpoDysLayer.equivalent_point`)."""
    layer = method.layer
    probe = ResidualProbe(layer.solver)
    layer.solver = probe
    try:
        with torch.no_grad():
            decisions, stats = layer(costs)
    finally:
        layer.solver = probe.inner
    assert probe.z is not None and probe.residuals is not None
    mapped = reference.equivalent_point(probe.z, layer.box(probe.z), layer.alpha)
    return Solve(decisions.double().numpy(), reference.residuals(mapped, costs).numpy(),
                 probe.residuals.numpy(), stats.iterations.numpy())


def reference_solve(layer: FpoDysLayer, costs: Tensor) -> Solve:
    """The fpo-dys layer on ``costs``: the decisions its forward returns, its residuals."""
    z = layer.solve(costs)
    with torch.no_grad():
        decisions = layer.project_box(layer.step(z, costs))
    residuals = layer.residuals(z, costs).numpy()
    return Solve(decisions.double().numpy(), residuals, residuals,
                 np.full(len(costs), layer.last_iterations))


def regularized_solutions(lp: LPForm, costs: np.ndarray, gamma: float) -> tuple[np.ndarray, float]:
    """``x*_i = argmin cᵢᵀx + (γ/2)‖x‖²`` over the LP's feasible set, in float64 by Clarabel.

    This is the point both DYS layers converge to (their fixed points have this ``x``), found by
    an interior-point method independent of either. Returns the solutions and a certified bound
    on their own error: for a γ-strongly convex objective ``‖x − x*‖ ≤ √(2·gap/γ)``, with
    ``gap`` the largest primal–dual gap Clarabel reports.
    """
    import clarabel
    import scipy.sparse as sp

    if lp.sense != "min" or not (np.isfinite(lp.lower).all() and np.isfinite(lp.upper).all()):
        raise ValueError("regularized_solutions handles minimisation over a bounded box")
    m, n = lp.A.shape
    hessian = sp.identity(n, format="csc") * gamma
    constraints = sp.vstack([lp.A, -sp.identity(n), sp.identity(n)]).tocsc()
    rhs = np.concatenate([lp.b, -lp.lower, lp.upper])
    cones = [clarabel.ZeroConeT(m), clarabel.NonnegativeConeT(2 * n)]
    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = settings.tol_feas = 1e-12
    solutions, worst_gap = np.empty_like(costs, dtype=np.float64), 0.0
    for i, cost in enumerate(costs.astype(np.float64)):
        result = clarabel.DefaultSolver(hessian, cost, constraints, rhs, cones, settings).solve()
        if result.status != clarabel.SolverStatus.Solved:
            raise RuntimeError(f"Clarabel did not solve instance {i}: {result.status}")
        solutions[i] = result.x
        worst_gap = max(worst_gap, abs(result.obj_val - result.obj_val_dual))
    return solutions, math.sqrt(2.0 * worst_gap / gamma)


def per_instance(l2o: np.ndarray, ref: np.ndarray, floor: float) -> tuple[float, float]:
    """The share of instances where l2obench's value is at most the reference's, and the
    largest ratio l2obench / reference (how much worse its worst instance is).

    Values below ``floor``, the resolution of the measurement, count as ``floor``: two numbers
    that both are below it cannot be told apart.
    """
    l2o, ref = np.maximum(l2o, floor), np.maximum(ref, floor)
    return float(np.mean(l2o <= ref)), float(np.max(l2o / ref))


def quantile_row(label: str, values: np.ndarray) -> str:
    """``label`` and the min / median / 90 % / max of ``values``, on one line."""
    q = np.quantile(values, [0.0, 0.5, 0.9, 1.0])
    return f"    {label:<34}" + "".join(f"{v:>11.3g}" for v in q)


@dataclass
class DysSide:
    """One side of section 3 after training: s/epoch, iterations, test regret."""

    seconds_per_epoch: float
    iterations: str
    regret: float


@dataclass
class ReferenceSide:
    """The reference at one grid size: its training, and its solve of the common test costs."""

    training: DysSide
    layer: FpoDysLayer
    costs: np.ndarray  # [N, n] the test costs both layers solve
    solve: Solve
    exact: np.ndarray  # [N, n] x* by Clarabel
    exact_bound: float  # the certificate of ``exact``


def train_l2obench_dys(
    problem: ShortestPath, data: Dataset, params: dict[str, Any], epochs: int, repeats: int
) -> tuple[DysSide, Method]:
    """``dys-jfb`` fitted ``repeats`` times from the same seed (the same model each time): the
    median s/epoch and the last fitted method."""
    times, method, fit = [], None, None
    for _ in range(repeats):
        method = build_method("dys-jfb", problem, params)
        per_epoch, fit = timed_fit(method, data, epochs)
        times.append(per_epoch)
    assert method is not None and fit is not None
    print(f"    l2obench s/epoch of the {repeats} fit(s): " + ", ".join(f"{t:.3g}" for t in times))
    regret = normalized_regret(problem, data.test, method.predict_costs(data.test.features))
    iterations = (f"per instance mean {fit.fwd_iters_mean:.0f}, max {fit.fwd_iters_max}, "
                  f"unconverged {fit.fwd_unconverged}")
    return DysSide(statistics.median(times), iterations, regret), method


def train_fpo_dys(
    problem: ShortestPath, data: Dataset, epochs: int, gamma: float
) -> ReferenceSide:
    """The fpo-dys reference trained with the training settings of ``dys-jfb`` (MLP, Adam,
    batch), then its solve of its model's test costs and the exact solutions of those."""
    config = method_registry.get("dys-jfb").validate(DYS_JFB_PARAMS)
    torch.manual_seed(SEED)
    model = cost_model(problem.n_features, config["hidden"], problem.n_vars)
    layer = FpoDysLayer(problem.lp())
    run = train_reference(model, layer, problem, data, epochs=epochs, lr=config["lr"],
                          batch_size=config["batch_size"], seed=SEED)
    per_batch = np.asarray(run.batch_iterations)
    iterations = f"per batch mean {per_batch.mean():.0f}, max {per_batch.max()}"
    costs = predict_costs(model, data.test.features)
    regret = normalized_regret(problem, data.test, costs)
    solve = reference_solve(layer, torch.as_tensor(costs, dtype=torch.float32))
    exact, bound = regularized_solutions(problem.lp(), costs, gamma)
    return ReferenceSide(DysSide(run.seconds_per_epoch, iterations, regret), layer, costs, solve,
                         exact, bound)


def dys_vs_fpo_dys(profile: Profile) -> list[Outcome]:
    """Section 3: ``dys-jfb`` in each configuration against the fpo-dys reference: speed,
    accuracy and regret."""
    settings = FpoDysSettings()
    for label, params in SECTION3_CONFIGS.items():
        config = method_registry.get("dys-jfb").validate(params)
        if config["gamma"] != settings.gamma:
            raise ValueError(f"dys-jfb ({label}) has γ = {config['gamma']}, the reference "
                             f"{settings.gamma}: their solutions would differ")
        print(f"  dys-jfb ({label}): {params}")
    print(f"  reference: {settings}")
    outcomes = []
    for k, epochs in profile.dys_epochs.items():
        outcomes += dys_at(k, epochs, profile, settings.gamma)
    return outcomes


def dys_at(k: int, epochs: int, profile: Profile, gamma: float) -> list[Outcome]:
    """Section 3 at grid side ``k``: the reference and each configuration of ``dys-jfb`` trained
    ``epochs`` epochs on the same data."""
    problem = shortest_path(k, profile)
    data = problem.generate()
    print(f"  k={k} ({problem.n_vars} arcs), {epochs} epoch(s) each:", flush=True)
    ref = train_fpo_dys(problem, data, epochs, gamma)
    print(f"    fpo-dys reference: {seconds(ref.training.seconds_per_epoch)}/epoch, forward "
          f"iterations {ref.training.iterations}; test regret {ref.training.regret:.4f}")
    outcomes = []
    for label, params in SECTION3_CONFIGS.items():
        print(f"   dys-jfb ({label}):", flush=True)
        l2o, method = train_l2obench_dys(problem, data, params, epochs, profile.dys_repeats)
        ratio = l2o.seconds_per_epoch / ref.training.seconds_per_epoch
        print(f"    l2obench dys-jfb : {seconds(l2o.seconds_per_epoch)}/epoch (median), forward "
              f"iterations {l2o.iterations}; test regret {l2o.regret:.4f}")
        outcomes += [
            report(Outcome(3, f"dys-jfb ({label}) s/epoch ÷ fpo-dys, k={k}", f"{ratio:.3f}×",
                           "≤ 0.25×", ratio <= 0.25)),
            *accuracy_outcomes(k, label, problem, method, ref),
            report(Outcome(3, f"dys-jfb ({label}) normalized regret, k={k}",
                           f"l2obench {l2o.regret:.4f}, reference {ref.training.regret:.4f}",
                           "l2obench ≤ reference", l2o.regret <= ref.training.regret)),
        ]
    return outcomes


def accuracy_outcomes(
    k: int, label: str, problem: ShortestPath, method: Method, ref: ReferenceSide
) -> list[Outcome]:
    """Both layers on the same costs (the reference model's predictions for the test set), per
    instance: the fixed-point residual, on the reference operator's scale, and the distance to
    the float64 solution."""
    w = torch.as_tensor(ref.costs, dtype=torch.float32)
    l2o = l2obench_solve(method, w, ref.layer)
    l2o_err = np.linalg.norm(l2o.decisions - ref.exact, axis=1)
    ref_err = np.linalg.norm(ref.solve.decisions - ref.exact, axis=1)
    n = len(w)
    print(f"    on the {n} test instances (costs predicted by the reference's model): iterations "
          f"l2obench per instance mean {l2o.iterations.mean():.0f} / max {l2o.iterations.max()}, "
          f"reference {ref.solve.iterations[0]} for the batch; x* by Clarabel in float64, "
          f"certified to ‖x* − x*_true‖ ≤ {ref.exact_bound:.1e}")
    print(f"    {'per instance':<34}{'min':>11}{'median':>11}{'90 %':>11}{'max':>11}")
    for row, values in (("residual, l2obench (own operator)", l2o.own_residuals),
                        ("residual, l2obench (reference's)", l2o.residuals),
                        ("residual, reference", ref.solve.residuals),
                        ("‖x − x*‖, l2obench", l2o_err), ("‖x − x*‖, reference", ref_err)):
        print(quantile_row(row, values))
    # A float32 application of T rounds each entry, so residuals are resolved to ≈ ε₃₂·√n.
    resolution = float(np.finfo(np.float32).eps) * math.sqrt(problem.n_vars)
    print(f"    values below the resolution count as equal: residuals {resolution:.1e} "
          f"(float32 rounding of one step), ‖x − x*‖ {ref.exact_bound:.1e} (the certificate)")
    res_share, res_worst = per_instance(l2o.residuals, ref.solve.residuals, resolution)
    err_share, err_worst = per_instance(l2o_err, ref_err, ref.exact_bound)
    return [
        report(Outcome(3, f"dys-jfb ({label}) residual per instance, reference's ‖T(z)−z‖, k={k}",
                       f"l2obench ≤ reference on {round(res_share * n)} of {n}, worst ratio "
                       f"{res_worst:.3g}", "every instance", res_share == 1.0)),
        report(Outcome(3, f"dys-jfb ({label}) ‖x − x*‖ per instance, k={k}",
                       f"l2obench ≤ reference on {round(err_share * n)} of {n}, worst ratio "
                       f"{err_worst:.3g}", "every instance", err_share == 1.0)),
    ]


# -- 4. peak memory series ---------------------------------------------------------------------

#: Fresh processes measured at once in section 4 (each with its share of the torch threads).
MEMORY_JOBS = 2



def isolated_record(name: str, params: dict[str, Any], k: int, profile: Profile) -> Record:
    """The runner's record of one epoch of ``name`` at grid side ``k``, in a fresh process."""
    method_cls = method_registry.get(name)
    problem_params = shortest_path(k, profile).config
    cell = Cell(suite="ratios", problem="shortest-path", size_param="k",
                problem_params=problem_params,
                method=name, method_params=method_cls.validate(params),
                method_label=readable_name(name, params), seed=SEED, device="cpu",
                budget=Budget(max_epochs=1))
    threads = max(1, torch.get_num_threads() // MEMORY_JOBS)
    record = run_isolated(cell, Limits(wall_seconds=1800), threads=threads)
    if record.status != "ok":
        raise RuntimeError(f"{cell.label}: {record.status}: {record.error}")
    return record


def memory_series(
    name: str, key: str, values: Sequence[int], base: dict[str, Any], profile: Profile
) -> list[float]:
    """Training peak host memory (MB above the process's level before ``fit``) for each value
    of the parameter ``key``, one fresh process per point; prints one line per point.

    The points run :data:`MEMORY_JOBS` at a time: each process's high-water mark is its own,
    whatever runs beside it (only its seconds would change, so they are not printed).
    """
    with ThreadPoolExecutor(max_workers=MEMORY_JOBS) as pool:
        records = list(pool.map(
            lambda value: isolated_record(name, {**base, key: value}, profile.memory_k, profile),
            values,
        ))
    for value, record in zip(values, records, strict=True):
        print(f"    {name:<13}{key}={value:<7} peak {record.peak_mem_mb:8.1f} MB   forward "
              f"iterations per instance mean {record.fwd_iters_mean:.0f}")
    return [float(record.peak_mem_mb or 0.0) for record in records]


def memory_vs_iterations(profile: Profile) -> list[Outcome]:
    """Section 4: peak training memory against ``max_iter`` (JFB) and ``K`` (unrolled)."""
    k = profile.memory_k
    print(f"  k={k}, one epoch per point, each in a fresh process (the runner's peak_mem_mb)")
    jfb = memory_series("dys-jfb", "max_iter", profile.memory_max_iters, DYS_JFB_PARAMS, profile)
    unrolled = memory_series("dys-unrolled", "K", profile.memory_unrolled_ks, {}, profile)
    jfb_growth = max(jfb) / max(min(jfb), 1e-3)
    unrolled_growth = unrolled[-1] / max(unrolled[0], 1e-3)
    increasing = all(b >= a for a, b in itertools.pairwise(unrolled))
    return [
        report(Outcome(4, f"dys-jfb peak MB, max_iter {series(profile.memory_max_iters)}",
                       f"{series(jfb)} (max ÷ min {jfb_growth:.2f})", "flat: max ÷ min ≤ 1.5",
                       jfb_growth <= 1.5)),
        report(Outcome(4, f"dys-unrolled peak MB, K {series(profile.memory_unrolled_ks)}",
                       f"{series(unrolled)} (last ÷ first {unrolled_growth:.1f})",
                       "growing: increasing, last ÷ first ≥ 2",
                       increasing and unrolled_growth >= 2)),
    ]


def series(values: Sequence[float]) -> str:
    """``a / b / c``, floats to one decimal."""
    return " / ".join(f"{v:.1f}" if isinstance(v, float) else str(v) for v in values)


# -- 5. JAX vs torch ---------------------------------------------------------------------------


def steady_seconds_per_epoch(
    method: Method, data: Dataset, epochs: int, repeats: int
) -> tuple[float, float, FitResult]:
    """The first epoch's seconds (compilation included), then the median s/epoch of
    ``repeats`` further fits of ``epochs`` epochs of the same (compiled) method."""
    first, _ = timed_fit(method, data, 1)
    runs = [timed_fit(method, data, epochs) for _ in range(repeats)]
    return first, statistics.median(t for t, _ in runs), runs[-1][1]


def jax_vs_torch(profile: Profile) -> list[Outcome]:
    """Section 5: ``dys-jfb-jax`` against ``dys-jfb`` at the same settings on CPU."""
    jax_cls = method_registry.get("dys-jfb-jax")
    shared = {key: value for key, value in DYS_JFB_PARAMS.items() if key in jax_cls.params}
    dropped = sorted(set(DYS_JFB_PARAMS) - set(shared))
    if dropped:
        print(f"  note: dys-jfb-jax has no parameter {', '.join(dropped)}; both run {shared}")
    k = profile.jax_k
    problem = shortest_path(k, profile)
    data = problem.generate()
    results = {}
    for name in ("dys-jfb", "dys-jfb-jax"):
        first, steady, fit = steady_seconds_per_epoch(
            build_method(name, problem, shared), data, profile.jax_epochs, profile.jax_repeats)
        results[name] = steady
        print(f"  k={k}: {name:<12} first epoch {seconds(first)} (JIT compilation included), "
              f"then {seconds(steady)}/epoch (median of {profile.jax_repeats} × "
              f"{profile.jax_epochs} epochs); forward iterations per instance mean "
              f"{fit.fwd_iters_mean:.0f}, max {fit.fwd_iters_max}")
    ratio = results["dys-jfb-jax"] / results["dys-jfb"]
    return [report(Outcome(5, f"dys-jfb-jax s/epoch ÷ dys-jfb, k={k}", f"{ratio:.2f}×",
                           "≤ 1.5×", ratio <= 1.5))]


# -- driver ------------------------------------------------------------------------------------

SECTIONS: dict[int, tuple[str, Callable[[Profile], list[Outcome]]]] = {
    1: ("Exact oracle vs PyEPO's Gurobi shortestPathModel, one instance at a time",
        oracle_vs_gurobi),
    2: ("spo+ vs PyEPO's own SPO+ training loop (Gurobi)", spo_plus_vs_pyepo),
    3: ("dys-jfb vs the fpo-dys reference (benchmarks/fpo_dys_reference.py)", dys_vs_fpo_dys),
    4: ("Training peak memory: dys-jfb vs max_iter, dys-unrolled vs K", memory_vs_iterations),
    5: ("dys-jfb-jax vs dys-jfb on CPU", jax_vs_torch),
}


def machine() -> str:
    """The machine, software and commit this run measures."""
    commit = git_commit() or _benchmarks_commit()
    return (f"{cpu_model()}, {os.cpu_count()} cores (torch threads {torch.get_num_threads()}), "
            f"load average {load_average()}; Python "
            f"{platform.python_version()}, torch {torch.__version__}; commit {commit}; "
            f"{datetime.now(UTC).isoformat(timespec='seconds')}")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages: how busy the shared machine was."""
    return ", ".join(f"{x:.1f}" for x in os.getloadavg())


def _benchmarks_commit() -> str:
    """The commit of this script's checkout, when l2obench is installed from elsewhere."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent,
                              capture_output=True, text=True, timeout=10).stdout.strip() or "?"
    except (OSError, subprocess.SubprocessError):
        return "?"


def summary(outcomes: list[Outcome]) -> str:
    """The results as a Markdown table."""
    rows = ["| # | comparison | measured | target | result |", "|---|---|---|---|---|"]
    rows += [f"| {o.section} | {md_cell(o.what)} | {md_cell(o.measured)} | {md_cell(o.target)} | "
             f"{o.verdict} |" for o in outcomes]
    return "\n".join(rows)


def md_cell(text: str) -> str:
    """``text`` as a Markdown table cell (its pipes escaped)."""
    return text.replace("|", "\\|")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="tiny sizes and budgets: checks that every section runs")
    parser.add_argument("--only", default=",".join(map(str, SECTIONS)),
                        help="comma-separated sections to run (default: all of 1-5)")
    parser.add_argument("--threads", type=int, default=1,
                        help="PyTorch intra-op threads on both sides of every comparison "
                             "(default 1; see the module docstring)")
    args = parser.parse_args(argv)
    try:
        args.only = sorted({int(s) for s in args.only.split(",") if s.strip()})
    except ValueError:
        parser.error(f"--only takes section numbers like 1,3, not {args.only!r}")
    if not args.only or not set(args.only) <= set(SECTIONS):
        parser.error(f"--only: sections are {', '.join(map(str, SECTIONS))}")
    if args.threads < 1:
        parser.error("--threads must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected sections, print each result and the summary; 1 if a section failed."""
    args = parse_args(argv)
    profile = QUICK if args.quick else FULL
    torch.set_num_threads(args.threads)
    print(f"l2obench ratios ({profile.name} profile) on {machine()}", flush=True)
    warm_up(CPU)
    outcomes: list[Outcome] = []
    for number in args.only:
        title, run = SECTIONS[number]
        print(f"\n== {number}. {title} ==", flush=True)
        start = time.perf_counter()
        try:
            outcomes += run(profile)
        except Exception as exc:
            traceback.print_exc()
            outcomes.append(report(Outcome(number, title, f"{type(exc).__name__}: {exc}",
                                           "runs", None)))
        print(f"  ({time.perf_counter() - start:.0f} s; load average now {load_average()})",
              flush=True)
    print("\n== Summary ==\n" + summary(outcomes), flush=True)
    return 1 if any(o.passed is None for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
