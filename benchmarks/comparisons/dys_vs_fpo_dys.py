"""``dys-jfb`` against the plain fpo-dys implementation of ``tests/reference/fpo_dys_reference.py``:
seconds per epoch, each instance's fixed-point residual and distance to the exact solution, and
normalized regret, on the same data with the same training settings.

Targets: at most 0.25× the reference's seconds per epoch, every instance's residual and distance
at least as small as the reference leaves them, and a normalized regret no worse. Two
configurations of ``dys-jfb`` run against one reference run per size: its defaults (the published
fpo-dys settings, each instance stopping at tol 1e-2) and an accurate one
(:data:`DYS_JFB_ACCURATE`). Both layers solve the same test costs (the reference model's
predictions). As the two operators differ (gradient ``w + γx`` against fpo-dys's ``w + γz``, and
possibly α), l2obench's points are mapped into the reference's operator
(``FpoDysLayer.equivalent_point``) and both residuals are that operator's; the distance of each
decision to a float64 solution by an independent solver (Clarabel) is checked too.
"""

from __future__ import annotations

import logging
import math
import statistics
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from l2obench import Dataset, LPForm, Method, Problem, method_registry
from l2obench.implicit.fixed_point import FixedPointSolver, FixedPointStats, Operator
from l2obench.methods.torch_method import cost_model
from l2obench.metrics import normalized_regret
from tests.reference.fpo_dys_reference import (
    FpoDysLayer,
    FpoDysSettings,
    predict_costs,
    train_reference,
)

from ..asv.common import SEED, build_method, dataset
from .comparison import (
    CPU,
    DYS_JFB_PARAMS,
    Check,
    Comparison,
    Findings,
    Side,
    Table,
    at_most,
    ratio_check,
    seconds,
    timed_fit,
)

log = logging.getLogger(__name__)

#: ``dys-jfb`` set up to leave every instance at least as close to its fixed point as the
#: reference does. The same γ, hence the same solutions ``x*``; α is only the step of the
#: iteration (the JFB gradient's direction does not depend on it, its scale does, which Adam
#: absorbs), and a larger one reaches the fixed point in far fewer steps on these problems. Each
#: instance iterates until its residual is 3e-5 or for 6 000 steps, a fixed budget per instance
#: like the reference's (benchmarks/results/comparisons.md records why not fewer: smaller
#: budgets left instances at k = 30 short of the reference's residual).
DYS_JFB_ACCURATE: dict[str, Any] = {
    "alpha": 1.0, "gamma": 5e-4, "tol": 3e-5, "max_iter": 6_000, "solver": "picard",
}

#: The ``dys-jfb`` configurations, each compared with the one reference run.
CONFIGS: dict[str, dict[str, Any]] = {"defaults": DYS_JFB_PARAMS, "accurate": DYS_JFB_ACCURATE}

SPEED = at_most(0.25, "×")
#: Per instance: those where l2obench's residual (or distance) exceeds the reference's.
EVERY_INSTANCE = at_most(0, "instances worse")
REGRET = at_most(1, "×")


@dataclass(frozen=True)
class Sizes:
    epochs: dict[int, int]  # grid side → epochs, for both sides
    repeats: int  # l2obench's fits per configuration (the reference trains once)
    n_train: int
    n_eval: int


FULL = Sizes(epochs={20: 2, 30: 1}, repeats=3, n_train=1000, n_eval=200)
QUICK = Sizes(epochs={3: 1, 5: 1}, repeats=1, n_train=64, n_eval=32)


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


def per_instance(l2o: np.ndarray, ref: np.ndarray, floor: float) -> tuple[int, float]:
    """The instances where l2obench's value exceeds the reference's, and the largest ratio
    l2obench / reference (how much worse its worst instance is).

    Values below ``floor``, the resolution of the measurement, count as ``floor``: two numbers
    that both are below it cannot be told apart.
    """
    l2o, ref = np.maximum(l2o, floor), np.maximum(ref, floor)
    return int(np.sum(l2o > ref)), float(np.max(l2o / ref))


def quantile_row(label: str, values: np.ndarray) -> list[float | int | str | None]:
    """``label`` and the min / median / 90 % / max of ``values``."""
    return [label, *(float(q) for q in np.quantile(values, [0.0, 0.5, 0.9, 1.0]))]


@dataclass
class Trained:
    """One side after training: s/epoch (with how it was measured), iterations, test regret."""

    seconds_per_epoch: float
    how: str
    iterations: str
    regret: float


@dataclass
class ReferenceSide:
    """The reference at one grid size: its training, and its solve of the common test costs."""

    training: Trained
    layer: FpoDysLayer
    costs: np.ndarray  # [N, n] the test costs both layers solve
    solve: Solve
    exact: np.ndarray  # [N, n] x* by Clarabel
    exact_bound: float  # the certificate of ``exact``


def train_l2obench(
    problem: Problem, data: Dataset, params: dict[str, Any], epochs: int, repeats: int
) -> tuple[Trained, Method]:
    """``dys-jfb`` fitted ``repeats`` times from the same seed (the same model each time): the
    median s/epoch and the last fitted method."""
    times, method, fit = [], None, None
    for _ in range(repeats):
        method = build_method("dys-jfb", problem, params, CPU)
        per_epoch, fit = timed_fit(method, data, epochs)
        times.append(per_epoch)
    assert method is not None and fit is not None
    regret = normalized_regret(problem, data.test, method.predict_costs(data.test.features))
    how = (f"s/epoch, median of {repeats} fit(s) of {epochs} epoch(s): "
           + ", ".join(f"{t:.3g}" for t in times))
    iterations = (f"per instance mean {fit.fwd_iters_mean:.0f}, max {fit.fwd_iters_max}, "
                  f"unconverged {fit.fwd_unconverged}")
    return Trained(statistics.median(times), how, iterations, regret), method


def train_fpo_dys(problem: Problem, data: Dataset, epochs: int, gamma: float) -> ReferenceSide:
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
    training = Trained(run.seconds_per_epoch, f"s/epoch, one run of {epochs} epoch(s)",
                       iterations, regret)
    return ReferenceSide(training, layer, costs, solve, exact, bound)


def measure(sizes: Sizes) -> Findings:
    """``dys-jfb`` in each configuration against the reference at each grid size."""
    settings = FpoDysSettings()
    notes = []
    for label, params in CONFIGS.items():
        config = method_registry.get("dys-jfb").validate(params)
        if config["gamma"] != settings.gamma:
            raise ValueError(f"dys-jfb ({label}) has γ = {config['gamma']}, the reference "
                             f"{settings.gamma}: their solutions would differ")
        notes.append(f"dys-jfb ({label}): {params}")
    notes.append(f"reference: {settings}")
    findings = Findings([], [], notes)
    for k, epochs in sizes.epochs.items():
        measure_at(k, epochs, sizes, settings.gamma, findings)
    return findings


def measure_at(k: int, epochs: int, sizes: Sizes, gamma: float, findings: Findings) -> None:
    """The reference and each configuration of ``dys-jfb`` trained ``epochs`` epochs on the same
    data at grid side ``k``; adds their checks, tables and notes to ``findings``."""
    problem, data = dataset(k, sizes.n_train, sizes.n_eval)
    ref = train_fpo_dys(problem, data, epochs, gamma)
    log.info("k=%d: fpo-dys reference %s/epoch, test regret %.4f", k,
             seconds(ref.training.seconds_per_epoch), ref.training.regret)
    findings.notes.append(
        f"k={k} ({problem.n_vars} arcs): the reference's forward iterations "
        f"{ref.training.iterations}; its test costs solved to x* by Clarabel in float64, "
        f"certified to ‖x* − x*_true‖ ≤ {ref.exact_bound:.1e}"
    )
    reference_time = Side(ref.training.seconds_per_epoch, "s", ref.training.how)
    for label, params in CONFIGS.items():
        ours, method = train_l2obench(problem, data, params, epochs, sizes.repeats)
        log.info("k=%d: dys-jfb (%s) %s/epoch, test regret %.4f", k, label,
                 seconds(ours.seconds_per_epoch), ours.regret)
        findings.notes.append(f"k={k}, dys-jfb ({label}): training forward iterations "
                              f"{ours.iterations}")
        findings.checks.append(ratio_check(
            f"dys-jfb ({label}) s/epoch ÷ fpo-dys, k={k}",
            Side(ours.seconds_per_epoch, "s", ours.how), reference_time, SPEED,
        ))
        accuracy(k, label, problem, method, ref, findings)
        findings.checks.append(ratio_check(
            f"dys-jfb ({label}) normalized regret ÷ fpo-dys, k={k}",
            Side(ours.regret, "", "test set"), Side(ref.training.regret, "", "test set"), REGRET,
        ))


def accuracy(
    k: int, label: str, problem: Problem, method: Method, ref: ReferenceSide, findings: Findings
) -> None:
    """Both layers on the same costs (the reference model's predictions for the test set), per
    instance: the fixed-point residual, on the reference operator's scale, and the distance to
    the float64 solution."""
    w = torch.as_tensor(ref.costs, dtype=torch.float32)
    ours = l2obench_solve(method, w, ref.layer)
    our_error = np.linalg.norm(ours.decisions - ref.exact, axis=1)
    ref_error = np.linalg.norm(ref.solve.decisions - ref.exact, axis=1)
    n = len(w)
    # A float32 application of T rounds each entry, so residuals are resolved to ≈ ε₃₂·√n.
    resolution = float(np.finfo(np.float32).eps) * math.sqrt(problem.n_vars)
    findings.tables.append(Table(
        f"k={k}, dys-jfb ({label}) and the reference on the {n} test instances (costs predicted "
        f"by the reference's model), per instance",
        ["", "min", "median", "90 %", "max"],
        [quantile_row("residual, l2obench (own operator)", ours.own_residuals),
         quantile_row("residual, l2obench (reference's)", ours.residuals),
         quantile_row("residual, reference", ref.solve.residuals),
         quantile_row("‖x − x*‖, l2obench", our_error),
         quantile_row("‖x − x*‖, reference", ref_error),
         quantile_row("forward iterations, l2obench", ours.iterations),
         quantile_row("forward iterations, reference (the batch's)", ref.solve.iterations)],
    ))
    for what, our_values, ref_values, floor, why in (
        ("residual, reference's ‖T(z)−z‖", ours.residuals, ref.solve.residuals, resolution,
         "float32 rounding of one step"),
        ("‖x − x*‖", our_error, ref_error, ref.exact_bound, "the certificate of x*"),
    ):
        worse, worst = per_instance(our_values, ref_values, floor)
        findings.checks.append(Check(
            f"dys-jfb ({label}) {what} per instance, k={k}",
            Side(float(np.median(our_values)), "", f"median of {n}"),
            Side(float(np.median(ref_values)), "", f"median of {n}"),
            worse, EVERY_INSTANCE,
            note=f"worst ratio l2obench ÷ reference {worst:.3g}; values below {floor:.1e} "
                 f"({why}) count as equal",
        ))


COMPARISON = Comparison(
    name="dys-vs-fpo-dys",
    title="dys-jfb vs the fpo-dys reference (tests/reference/fpo_dys_reference.py)",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
