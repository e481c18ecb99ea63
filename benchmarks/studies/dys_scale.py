"""The DYS family at k = 50–100 against the layer at commit 0164524, both sides in one run.

    git worktree add --detach /tmp/ref-0164524 0164524      # the reference, once
    python -m benchmarks.studies.dys_scale ratios  --reference /tmp/ref-0164524
    python -m benchmarks.studies.dys_scale warm               # warm starts: iterations, regret
    python -m benchmarks.studies.dys_scale forms              # projection forms and chunks
    python -m benchmarks.studies.dys_scale threads --reference /tmp/ref-0164524
    python -m benchmarks.studies.dys_scale memory  --reference /tmp/ref-0164524
                                                              # dys-unrolled, k = 100
    python -m benchmarks.studies.dys_scale adjoint            # dys-implicit's adjoint
    python -m benchmarks.studies.dys_scale profile --reference /tmp/ref-0164524
                                                              # where an epoch goes
    python -m benchmarks.studies.dys_scale tables             # Markdown of what is stored
    python -m benchmarks.studies.dys_scale all --quick        # every section, tiny sizes

The comparisons of issue 18, each a function returning structured results, stored as one JSON
file per section under ``--out`` (default ``benchmarks/results/dys_scale/``) and printed:

- ``ratios``: seconds per epoch, iterations and test regret of each DYS method at its defaults
  against the same method at the reference commit: ``dys-jfb`` at k = 50 and 100 (target
  ≤ 0.25×, regret within seed noise), ``dys-unrolled``, ``dys-implicit``, ``dys-jfb-jax`` at
  k = 50 (≤ 0.5×). Same data (seed, 1 000 / 200 / 200), same seeds, the same per-instance
  tolerance (both sides' defaults: α 0.05, γ 5e-4, tol 1e-2).
- ``warm``: ``dys-jfb`` with and without ``warm_start``, epoch by epoch: iterations, seconds,
  validation and test regret (the measurement behind the parameter's default).
- ``forms``: one layer solve of a batch of 256 in every projection form and chunk size the
  grid offers, per size (the measurement behind the ``projection`` and ``chunk`` rules).
- ``threads``: ``dys-jfb`` epochs with one and two PyTorch threads, both sides.
- ``memory``: ``dys-unrolled``'s training peak memory against ``K`` at k = 100, both sides,
  and the ``K`` that fits in 8 GB.
- ``adjoint``: ``dys-implicit``'s adjoint solvers at k = 10 … 100: iterations and the error of
  the float32 gradient against the float64 implicit gradient.
- ``profile``: where one ``dys-jfb`` epoch's seconds go, both sides: the epoch without a
  profiler, then under cProfile (the Python functions of ``l2obench``, grouped into the step,
  the stopping checks, compaction, the model and its backward, validation) and under
  ``torch.profiler`` (the ATen operators by their own time).

Each fit runs in its own process (``python benchmarks/studies/dys_scale.py _fit SPEC``): the
reference side with ``--reference`` first on ``PYTHONPATH``, so that ``import l2obench`` is the
reference's code; the two sides alternate, so that both see the same load. Every result
records the load average before and after it, the commit, the PyTorch threads and the machine.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from l2obench import Method, Problem

HERE = Path(__file__).resolve().parent
#: The checkout this file belongs to.
REPO = HERE.parent.parent
DEFAULT_OUT = HERE.parent / "results" / "dys_scale"
#: The commit whose layer the targets are measured against.
REFERENCE_COMMIT = "0164524"
#: Steps per configuration and rounds of the ``forms`` section.
FORM_STEPS, FORM_ROUNDS = 20, 5
#: The dys-unrolled memory budget the issue asks about.
MEMORY_BUDGET_MB = 8 * 1024


@dataclass(frozen=True)
class Profile:
    """Sizes and budgets of a run: the full measurement or the ``--quick`` smoke run."""

    name: str
    data: dict[str, int]
    jfb_sizes: tuple[int, ...]
    other_size: int
    ratio_epochs: int
    ratio_seeds: tuple[int, ...]
    warm_sizes: tuple[int, ...]
    warm_epochs: int
    form_sizes: tuple[int, ...]
    thread_sizes: tuple[int, ...]
    memory_k: int
    memory_ks: tuple[int, ...]
    reference_memory_ks: tuple[int, ...]
    adjoint_sizes: tuple[int, ...]
    adjoint_batch: int


FULL = Profile(
    name="full", data={}, jfb_sizes=(50, 100), other_size=50, ratio_epochs=1, ratio_seeds=(0,),
    warm_sizes=(20, 50), warm_epochs=10, form_sizes=(10, 20, 30, 50, 100, 150),
    thread_sizes=(50, 100), memory_k=100, memory_ks=(10, 50, 100), reference_memory_ks=(5, 10),
    adjoint_sizes=(10, 20, 50, 100), adjoint_batch=64,
)
QUICK = Profile(
    name="quick", data={"n_train": 48, "n_val": 16, "n_test": 16}, jfb_sizes=(4,), other_size=4,
    ratio_epochs=1, ratio_seeds=(0,), warm_sizes=(4,), warm_epochs=2, form_sizes=(4, 24),
    thread_sizes=(4,), memory_k=4, memory_ks=(2, 4), reference_memory_ks=(2,),
    adjoint_sizes=(4,), adjoint_batch=8,
)


# -- one fit in its own process ----------------------------------------------------------------


@dataclass
class FitSpec:
    """One training run: a method with parameters on the shortest-path protocol."""

    method: str
    k: int
    params: dict[str, Any] = field(default_factory=dict)
    epochs: int = 1
    seed: int = 0
    threads: int = 1
    data: dict[str, int] = field(default_factory=dict)


@dataclass
class FitOutcome:
    """What one run measured (``side``: ``"l2obench"`` or ``"reference"``)."""

    spec: FitSpec
    side: str
    epochs: int
    seconds: float
    seconds_per_epoch: float
    first_epoch_seconds: float | None
    test_regret: float
    fwd_iters_mean: float | None
    fwd_iters_max: int | None
    fwd_unconverged: int | None
    bwd_iters_mean: float | None
    bwd_unconverged: int | None
    peak_mb: float | None
    val_history: list[float]
    epoch_seconds: list[float]
    epoch_iters: list[float]
    load_before: list[float]
    load_after: list[float]
    commit: str | None


def fit_worker(spec: FitSpec) -> dict[str, Any]:
    """Run ``spec`` in this process with whatever ``l2obench`` imports (the worker's side)."""
    import torch

    torch.set_num_threads(spec.threads)
    from l2obench import Budget, method_registry, problem_registry
    from l2obench.measure import peak_memory
    from l2obench.metrics import normalized_regret
    from l2obench.provenance import git_commit

    problem = problem_registry.get("shortest-path")(k=spec.k, seed=spec.seed, **spec.data)
    data = problem.generate()
    device = torch.device("cpu")
    _warm_up()
    method = method_registry.get(spec.method)(problem, device, spec.seed, **spec.params)
    load_before = list(os.getloadavg())
    epoch_ends: list[float] = []
    start = time.perf_counter()
    clock = _EpochClock(method, epoch_ends)
    with peak_memory(device) as memory:
        fit = method.fit(data, Budget(max_epochs=spec.epochs))
    seconds = time.perf_counter() - start
    clock.restore()
    # Duck-typed: this worker also runs other commits' l2obench, whose classes may differ.
    predicted = cast("Method", method).predict_costs(data.test.features)
    regret = normalized_regret(cast("Problem", problem), data.test, predicted)
    marks = [start, *epoch_ends]
    epoch_seconds = [b - a for a, b in itertools.pairwise(marks)]
    return {
        "epoch_iters": _epoch_iterations(method, len(data.train)),
        "epochs": fit.epochs, "seconds": seconds, "seconds_per_epoch": seconds / max(fit.epochs, 1),
        "first_epoch_seconds": epoch_seconds[0] if epoch_seconds else None,
        "test_regret": float(regret), "fwd_iters_mean": fit.fwd_iters_mean,
        "fwd_iters_max": fit.fwd_iters_max, "fwd_unconverged": fit.fwd_unconverged,
        "bwd_iters_mean": fit.bwd_iters_mean, "bwd_unconverged": fit.bwd_unconverged,
        "peak_mb": memory.host_mb,
        # the reference commit's history names the validation regret ``val_score``
        "val_history": [h["val_score"] for h in fit.history],
        "epoch_seconds": epoch_seconds, "load_before": load_before,
        "load_after": list(os.getloadavg()), "commit": git_commit(),
    }


def _epoch_iterations(method: Any, n_train: int) -> list[float]:
    """Mean forward iterations per instance in each epoch, from the DYS methods' tally of
    training steps (empty for other methods)."""
    steps = getattr(getattr(method, "tally", None), "steps", None)
    if not steps:
        return []
    per_epoch = math.ceil(n_train / method.config["batch_size"])
    means = []
    for first in range(0, len(steps), per_epoch):
        counts = [s.iterations.double() for s in steps[first : first + per_epoch]]
        total = sum(float(c.sum()) for c in counts)
        means.append(total / sum(c.numel() for c in counts))
    return means


class _EpochClock:
    """Notes the time at each validation (the end of each epoch) of a method's fit.

    Every method validates through :func:`l2obench.metrics.normalized_regret` once per epoch
    (the training loop's model selection); wrapping the module attribute the method modules
    imported notes when. Nothing of the fit changes.
    """

    def __init__(self, method: Any, marks: list[float]) -> None:
        self.module = sys.modules[type(method).__module__]
        self.modules = [m for m in (self.module, sys.modules.get("l2obench.methods.torch_method"))
                        if m is not None and hasattr(m, "normalized_regret")]
        self.originals = [vars(m)["normalized_regret"] for m in self.modules]
        for module, original in zip(self.modules, self.originals, strict=True):
            vars(module)["normalized_regret"] = self._wrap(original, marks)

    @staticmethod
    def _wrap(original: Callable[..., float], marks: list[float]) -> Callable[..., float]:
        def timed(*args: Any, **kwargs: Any) -> float:
            marks.append(time.perf_counter())
            return original(*args, **kwargs)

        return timed

    def restore(self) -> None:
        for module, original in zip(self.modules, self.originals, strict=True):
            vars(module)["normalized_regret"] = original


def _warm_up() -> None:
    """One-time costs (autograd, ``torch.optim``'s lazy imports) before any clock runs."""
    import torch

    x = torch.randn(64, 64, requires_grad=True)
    optimizer = torch.optim.Adam([x])
    (x @ x).relu().sum().backward()
    optimizer.step()


def run_fit(spec: FitSpec, side: str, reference: Path | None) -> FitOutcome:
    """``spec`` in a fresh process, on ``side``: this checkout, or the ``reference`` one."""
    env = _side_env(spec, side, reference)
    result = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "_fit", json.dumps(asdict(spec))],
        env=env, capture_output=True, text=True, check=False, cwd=str(REPO),
    )
    if result.returncode != 0:
        raise RuntimeError(f"{side} {spec.method} k={spec.k} failed:\n{result.stderr[-3000:]}")
    values = json.loads(result.stdout.strip().splitlines()[-1])
    return FitOutcome(spec=spec, side=side, **values)


def _side_env(spec: FitSpec, side: str, reference: Path | None) -> dict[str, str]:
    """The environment of a worker process on ``side``: the reference first on the path."""
    env = dict(os.environ, OMP_NUM_THREADS=str(spec.threads))
    if side == "reference":
        if reference is None:
            raise ValueError("the reference side needs --reference PATH")
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(reference),
                                                          env.get("PYTHONPATH", "")]))
    return env


def alternate(specs: Sequence[tuple[FitSpec, str]], reference: Path | None) -> list[FitOutcome]:
    """Run the ``(spec, side)`` pairs in order, printing a line for each."""
    outcomes = []
    for spec, side in specs:
        outcome = run_fit(spec, side, reference)
        print(f"  {side:<9} {spec.method:<13} k={spec.k:<4} {_params(spec.params):<28} "
              f"seed {spec.seed} threads {spec.threads}: {outcome.seconds_per_epoch:8.3g} s/epoch "
              f"({outcome.epochs} ep), iters {_num(outcome.fwd_iters_mean)}, regret "
              f"{outcome.test_regret:.4f}, peak {_num(outcome.peak_mb)} MB; load "
              f"{outcome.load_before[0]:.1f}→{outcome.load_after[0]:.1f}", flush=True)
        outcomes.append(outcome)
    return outcomes


def _params(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(params.items())) or "defaults"


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


# -- sections ----------------------------------------------------------------------------------


@dataclass
class Ratio:
    """l2obench against the reference for one method and size: medians over the runs."""

    method: str
    k: int
    l2obench_seconds_per_epoch: float
    reference_seconds_per_epoch: float
    ratio: float
    target: float
    l2obench_regret: list[float]
    reference_regret: list[float]
    l2obench_iters: float | None
    reference_iters: float | None
    load: list[float]

    @property
    def passed(self) -> bool:
        return self.ratio <= self.target


def ratios(profile: Profile, reference: Path | None, threads: int,
           methods: Sequence[str] | None = None) -> dict[str, Any]:
    """``ratios``: every DYS method (or those of ``methods``) at its defaults against the
    reference commit's."""
    plan = [("dys-jfb", k, 0.25) for k in profile.jfb_sizes]
    plan += [(name, profile.other_size, 0.5)
             for name in ("dys-unrolled", "dys-implicit", "dys-jfb-jax")]
    plan = [p for p in plan if methods is None or p[0] in methods]
    results, runs = [], []
    for method, k, target in plan:
        pairs = []
        for seed in profile.ratio_seeds:
            spec = FitSpec(method, k, {}, profile.ratio_epochs, seed, threads, profile.data)
            pairs += [(spec, "reference"), (spec, "l2obench")]
        outcomes = alternate(pairs, reference)
        runs += outcomes
        mine = [o for o in outcomes if o.side == "l2obench"]
        ref = [o for o in outcomes if o.side == "reference"]
        ours_s = statistics.median(o.seconds_per_epoch for o in mine)
        ref_s = statistics.median(o.seconds_per_epoch for o in ref)
        ratio = Ratio(
            method=method, k=k, l2obench_seconds_per_epoch=ours_s,
            reference_seconds_per_epoch=ref_s, ratio=ours_s / ref_s, target=target,
            l2obench_regret=[o.test_regret for o in mine],
            reference_regret=[o.test_regret for o in ref],
            l2obench_iters=_median_or_none([o.fwd_iters_mean for o in mine]),
            reference_iters=_median_or_none([o.fwd_iters_mean for o in ref]),
            load=[o.load_before[0] for o in outcomes] + [outcomes[-1].load_after[0]],
        )
        print(f"  => {method} k={k}: {ours_s:.3g} s/epoch against {ref_s:.3g}: "
              f"{ratio.ratio:.3f}× (target ≤ {target}×: {'PASS' if ratio.passed else 'FAIL'}); "
              f"regret {ratio.l2obench_regret} against {ratio.reference_regret}", flush=True)
        results.append(ratio)
    return {"ratios": [asdict(r) for r in results], "runs": [asdict(o) for o in runs]}


def _median_or_none(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def warm(profile: Profile, threads: int) -> dict[str, Any]:
    """``warm``: ``dys-jfb`` (and ``dys-jfb-jax``) with and without warm starts."""
    pairs = []
    for k in profile.warm_sizes:
        for method in ("dys-jfb", "dys-jfb-jax"):
            for flag in (False, True):
                spec = FitSpec(method, k, {"warm_start": flag}, profile.warm_epochs, 0, threads,
                               profile.data)
                pairs.append((spec, "l2obench"))
    return {"runs": [asdict(o) for o in alternate(pairs, None)]}


def forms(profile: Profile, threads: int, device_name: str = "cpu") -> dict[str, Any]:
    """``forms``: the cost of one DYS step per instance in every projection form and chunk size.

    Each configuration runs a fixed ``FORM_STEPS`` steps (no instance stops: tol is 0) on the
    costs an untrained cost model predicts for 256 training contexts, the host looking at every
    step on a CPU and every 8 on a GPU; the configurations take turns, ``FORM_ROUNDS`` rounds
    in a shuffled order, so that a change of the machine's load spreads over all of them, and
    the median and the minimum over the rounds are kept. The dense form is left out past 2 048
    variables and the factored one past 1 000 constraints (their matrix products dominate long
    before: at k = 50 a factored solve took 4× the Kronecker one); chunks, on a CPU only, are
    the rule's and a quarter and four times it.
    """
    import random

    import torch

    from l2obench.implicit.fixed_point import Picard
    from l2obench.layers.dys import DYSLayer
    from l2obench.layers.lp_data import AffineData, available_forms
    from l2obench.measure import now
    from l2obench.methods.torch_method import cost_model
    from l2obench.problems.shortest_path import ShortestPath

    torch.set_num_threads(threads)
    device = torch.device(device_name)
    check_every = 1 if device.type == "cpu" else 8
    steps = FORM_STEPS if profile.name == "full" else 3
    rows = []
    for k in profile.form_sizes:
        problem = ShortestPath(k=k, seed=0, n_train=256, n_val=8, n_test=8)
        data = problem.generate()
        torch.manual_seed(0)
        with torch.no_grad():
            w = cost_model(problem.n_features, 50, problem.n_vars)(
                torch.as_tensor(data.train.features, dtype=torch.float32)).to(device)
        lp = problem.lp()
        n = problem.n_vars
        chunks: list[int | None] = [None]
        if device.type == "cpu":
            rule = max(1, (1 << 19) // (4 * n))
            chunks += sorted(c for c in {max(1, rule // 4), rule, rule * 4} if c < 256)
        configs = {
            (form, chunk): DYSLayer(lp, solver=Picard(tol=1e-30, max_iter=steps,
                                                      check_every=check_every, chunk=chunk),
                                    affine_form=form, device=device)
            for form in available_forms(AffineData.from_lp(lp))
            if not ((form == "dense" and n > 2048) or (form == "factored" and k * k > 1000))
            for chunk in chunks
        }
        times: dict[tuple[str, int | None], list[float]] = {c: [] for c in configs}
        order = list(configs)
        with torch.no_grad():
            for layer in configs.values():
                layer(w[:32])  # warm-up: kernels, allocator
            for _ in range(FORM_ROUNDS if profile.name == "full" else 1):
                random.Random(len(times[order[0]])).shuffle(order)
                for config in order:
                    start = now(device)
                    configs[config](w)
                    times[config].append(now(device) - start)
        for (form, chunk), seconds in times.items():
            per_step = [t / (steps * len(w)) * 1e6 for t in seconds]
            row = {"k": k, "n_vars": n, "form": form, "chunk": chunk, "device": device_name,
                   "us_per_instance_step": statistics.median(per_step),
                   "us_min": min(per_step), "rounds": len(per_step),
                   "load": os.getloadavg()[0]}
            print(f"  k={k:<4} {form:<10} chunk {chunk!s:<5} "
                  f"{row['us_per_instance_step']:8.3g} µs per instance-step (median, min "
                  f"{row['us_min']:.3g}, {len(per_step)} rounds); load {row['load']:.1f}",
                  flush=True)
            rows.append(row)
    return {"rows": rows}


def threads_section(profile: Profile, reference: Path | None) -> dict[str, Any]:
    """``threads``: one and two PyTorch threads for ``dys-jfb``, both sides, alternating."""
    pairs = []
    for k in profile.thread_sizes:
        for threads in (1, 2):
            spec = FitSpec("dys-jfb", k, {}, profile.ratio_epochs, 0, threads, profile.data)
            pairs.append((spec, "l2obench"))
            if reference is not None:
                pairs.append((spec, "reference"))
    return {"runs": [asdict(o) for o in alternate(pairs, reference)]}


def memory(profile: Profile, reference: Path | None, threads: int) -> dict[str, Any]:
    """``memory``: ``dys-unrolled``'s training peak against ``K`` at ``memory_k``, one epoch.

    The peak grows linearly in ``K``; the fit through the points gives the ``K`` that fits in
    :data:`MEMORY_BUDGET_MB`.
    """
    k, budget = profile.memory_k, {**profile.data, "n_train": 256}
    pairs = [(FitSpec("dys-unrolled", k, {"K": K}, 1, 0, threads, budget), "l2obench")
             for K in profile.memory_ks]
    if reference is not None:
        pairs += [(FitSpec("dys-unrolled", k, {"K": K}, 1, 0, threads, budget), "reference")
                  for K in profile.reference_memory_ks]
    outcomes = alternate(pairs, reference)
    fits = {}
    for side in ("l2obench", "reference"):
        points = [(o.spec.params["K"], o.peak_mb) for o in outcomes
                  if o.side == side and o.peak_mb is not None]
        if len(points) >= 2:
            (k0, m0), (k1, m1) = points[0], points[-1]
            slope = (m1 - m0) / (k1 - k0)
            fits[side] = {"mb_per_step": slope, "mb_at_zero": m0 - slope * k0,
                          "K_in_8GB": math.floor((MEMORY_BUDGET_MB - (m0 - slope * k0)) / slope)
                          if slope > 0 else None}
    return {"runs": [asdict(o) for o in outcomes], "fits": fits}


def adjoint(profile: Profile, threads: int) -> dict[str, Any]:
    """``adjoint``: ``dys-implicit``'s adjoint solvers in float32 against float64 gradients.

    The costs are an untrained model's predictions for ``adjoint_batch`` training contexts,
    the forward solve the defaults' (tol 1e-2). The float64 reference is the free-coordinates
    solve at tol 1e-10, checked at the smaller sizes against CG on ``(I − J)ᵀ v = g`` in
    float64 at tol 1e-10 (the existing tests' reference), which it equals.
    """
    import torch

    from l2obench.implicit.backward import Implicit, ImplicitFreeSet
    from l2obench.implicit.fixed_point import Picard
    from l2obench.implicit.linear_solvers import ConjugateGradientNormal, FreeSetCG
    from l2obench.layers.dys import DYSLayer
    from l2obench.methods.torch_method import cost_model
    from l2obench.problems.shortest_path import ShortestPath

    torch.set_num_threads(threads)
    rows = []
    for k in profile.adjoint_sizes:
        problem = ShortestPath(k=k, seed=0, n_train=profile.adjoint_batch, n_val=8, n_test=8)
        data = problem.generate()
        torch.manual_seed(0)
        model = cost_model(problem.n_features, 50, problem.n_vars)
        with torch.no_grad():
            w = model(torch.as_tensor(data.train.features, dtype=torch.float32))
        target = torch.as_tensor(data.train.solutions)
        lp = problem.lp()

        def gradient(backward: Any, dtype: torch.dtype, lp: Any = lp, w: Any = w,
                     target: Any = target) -> tuple[Any, Any, float]:
            layer = DYSLayer(lp, solver=Picard(tol=1e-2), backward=backward, dtype=dtype)
            w_req = w.to(dtype).clone().requires_grad_(True)
            x, stats = layer(w_req)
            start = time.perf_counter()
            ((x - target.to(dtype)) ** 2).sum().backward()
            return w_req.grad.double(), stats, time.perf_counter() - start

        reference, _, _ = gradient(ImplicitFreeSet(FreeSetCG(1e-10, 100_000)), torch.float64)
        cases: list[tuple[str, Any, Any]] = [
            ("free-cg 1e-3", ImplicitFreeSet(FreeSetCG(1e-3, 500)), torch.float32),
            ("free-cg 1e-4", ImplicitFreeSet(FreeSetCG(1e-4, 500)), torch.float32),
            ("cg 2e-2 (before)", Implicit(ConjugateGradientNormal(2e-2, 500)), torch.float32),
        ]
        if k <= 20:
            cases.append(("cg64 1e-10", Implicit(ConjugateGradientNormal(1e-10, 100_000)),
                          torch.float64))
        for label, backward, dtype in cases:
            grad, stats, seconds = gradient(backward, dtype)
            err = (torch.linalg.vector_norm(grad - reference, dim=1)
                   / torch.linalg.vector_norm(reference, dim=1).clamp_min(1e-300))
            row = {"k": k, "solver": label, "iterations": stats.backward_iterations,
                   "converged": stats.backward_converged, "backward_seconds": seconds,
                   "rel_error_median": float(err.median()), "rel_error_max": float(err.max()),
                   "load": os.getloadavg()[0]}
            print(f"  k={k:<4} {label:<17} {row['iterations']:>6} iterations "
                  f"(converged {row['converged']}), backward {seconds:.3g} s, gradient error "
                  f"median {row['rel_error_median']:.2e} max {row['rel_error_max']:.2e}; load "
                  f"{row['load']:.1f}", flush=True)
            rows.append(row)
    return {"rows": rows}


#: cProfile's functions of a fit, by (file name's tail, function name), grouped into what the
#: ``profile`` section reports; cumulative seconds, so a group is a call tree's root. The names
#: are this checkout's and the reference's (``_complement`` and ``operator`` exist in both).
PROFILE_GROUPS: dict[str, tuple[tuple[str, str], ...]] = {
    "forward solves": (("fixed_point.py", "_solve"), ("fixed_point.py", "__call__")),
    "DYS steps (in the solves and the taped one)": (("dys.py", "_step"),
                                                   ("dys.py", "operator")),
    "affine projection's complement N": (("projections.py", "_complement"),),
    "  of it: the (A Aᵀ)⁺ products": (("projections.py", "_gram_grid"),
                                      ("projections.py", "_gram_columns")),
    "stopping checks (observe/retire)": (("fixed_point.py", "observe"),
                                         ("fixed_point.py", "retire"),
                                         ("fixed_point.py", "_retired")),
    "compaction (keep, take)": (("fixed_point.py", "keep"), ("fixed_point.py", "_take")),
    "validation (regret of predicted costs)": (("training.py", "validate_eval"),),
    "optimiser step": (("adam.py", "step"),),
    "backward pass": (("_tensor.py", "backward"),),
}


#: The largest grid side whose epoch runs under ``torch.profiler``: it keeps every operator
#: event in memory, and at k = 100 (millions of small operations per epoch) its worker was killed
#: for memory past 20 GB. Larger sizes get the plain and cProfile epochs only.
TORCH_PROFILER_MAX_K = 50


def profile_worker(spec: FitSpec) -> dict[str, Any]:
    """One epoch of ``spec`` three times in this process: plain, under cProfile, under
    ``torch.profiler`` (up to :data:`TORCH_PROFILER_MAX_K`); the seconds of each, cProfile's
    groups and top functions, and the top ATen operators by self time."""
    import cProfile
    import pstats

    import torch

    torch.set_num_threads(spec.threads)
    from l2obench import Budget, method_registry, problem_registry
    from l2obench.provenance import git_commit

    problem = problem_registry.get("shortest-path")(k=spec.k, seed=spec.seed, **spec.data)
    data = problem.generate()
    _warm_up()

    def epoch() -> tuple[float, Any]:
        method = method_registry.get(spec.method)(problem, torch.device("cpu"), spec.seed,
                                                  **spec.params)
        start = time.perf_counter()
        fit = method.fit(data, Budget(max_epochs=1))
        return time.perf_counter() - start, fit

    load_before = list(os.getloadavg())
    plain_s, fit = epoch()
    profiler = cProfile.Profile()
    profiler.enable()
    cprofile_s, _ = epoch()
    profiler.disable()
    stats = pstats.Stats(profiler)
    entries = stats.stats  # type: ignore[attr-defined]
    functions = []
    for (path, line, name), (_, ncalls, tottime, cumtime, _) in entries.items():
        functions.append({"file": "/".join(Path(path).parts[-2:]), "line": line, "name": name,
                          "calls": ncalls, "tottime": tottime, "cumtime": cumtime})
    groups = {}
    for group, keys in PROFILE_GROUPS.items():
        # the outermost of the group's functions: the largest cumulative time among them
        # counts (recursion and nesting would count twice otherwise)
        matching = [f for f in functions
                    if any(f["file"].endswith(tail) and f["name"] == name for tail, name in keys)]
        groups[group] = max((f["cumtime"] for f in matching), default=0.0)
    top_functions = sorted(functions, key=lambda f: -f["tottime"])[:30]

    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    ops: list[dict[str, Any]] = []
    torch_profiler_s = None
    if spec.k <= TORCH_PROFILER_MAX_K:
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            torch_profiler_s, _ = epoch()
        for event in prof.key_averages():
            ops.append({"op": event.key, "calls": event.count,
                        "self_s": event.self_cpu_time_total / 1e6,
                        "total_s": event.cpu_time_total / 1e6})
        ops.sort(key=lambda o: -o["self_s"])
    return {"plain_s": plain_s, "cprofile_s": cprofile_s, "torch_profiler_s": torch_profiler_s,
            "fwd_iters_mean": fit.fwd_iters_mean, "groups": groups,
            "top_functions": top_functions, "ops": ops[:30],
            "ops_self_s_total": sum(o["self_s"] for o in ops),
            "load_before": load_before, "load_after": list(os.getloadavg()),
            "commit": git_commit()}


def profile_section(profile: Profile, reference: Path | None, threads: int) -> dict[str, Any]:
    """``profile``: where a ``dys-jfb`` epoch's seconds go at ``jfb_sizes``, both sides."""
    runs = []
    for k in profile.jfb_sizes:
        spec = FitSpec("dys-jfb", k, {}, 1, 0, threads, profile.data)
        for side in ("l2obench", "reference") if reference is not None else ("l2obench",):
            env = _side_env(spec, side, reference)
            result = subprocess.run(
                [sys.executable, str(Path(__file__).resolve()), "_profile",
                 json.dumps(asdict(spec))],
                env=env, capture_output=True, text=True, check=False, cwd=str(REPO))
            if result.returncode != 0:
                raise RuntimeError(f"{side} profile k={k} failed:\n{result.stderr[-3000:]}")
            values = json.loads(result.stdout.strip().splitlines()[-1])
            under_torch = values["torch_profiler_s"]
            print(f"  {side:<9} dys-jfb k={k}: epoch {values['plain_s']:.3g} s plain, "
                  f"{values['cprofile_s']:.3g} s under cProfile, "
                  f"{_num(under_torch)} s under torch.profiler; load "
                  f"{values['load_before'][0]:.1f}→{values['load_after'][0]:.1f}", flush=True)
            for group, seconds in values["groups"].items():
                print(f"    {group:<44} {seconds:7.3f} s", flush=True)
            for op in values["ops"][:12]:
                print(f"    {op['op']:<44} {op['self_s']:7.3f} s self, {op['calls']} calls",
                      flush=True)
            runs.append({"side": side, "spec": asdict(spec), **values})
    return {"runs": runs}


# -- storage and tables ------------------------------------------------------------------------


def machine_state(threads: int, reference: Path | None) -> dict[str, Any]:
    """Commit, machine, threads, load and reference of a section's run."""
    from l2obench.provenance import cpu_model, git_commit

    return {"commit": git_commit(), "reference": str(reference) if reference else None,
            "reference_commit": REFERENCE_COMMIT, "cpu": cpu_model(), "cores": os.cpu_count(),
            "torch_threads": threads, "python": platform.python_version(),
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "load": list(os.getloadavg())}


def store(out: Path, section: str, result: dict[str, Any], state: dict[str, Any]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{section}.json"
    path.write_text(json.dumps({"machine": state, **result}, indent=1, default=str) + "\n")
    return path


def _stored(out: Path, section: str) -> list[tuple[str, dict[str, Any]]]:
    """The stored runs of ``section``: ``section.json`` and those stored with ``--name
    section-…``, by file name."""
    paths = sorted(out.glob(f"{section}.json")) + sorted(out.glob(f"{section}-*.json"))
    return [(path.stem, json.loads(path.read_text())) for path in paths]


def tables(out: Path) -> str:
    """The Markdown tables of the stored sections, one per stored file."""
    parts = []
    for name, data in _stored(out, "ratios"):
        rows = ["| method | k | l2obench s/epoch | 0164524 s/epoch | ratio | target | "
                "fwd iters l2obench / 0164524 | test regret l2obench / 0164524 | load |",
                "|---|---:|---:|---:|---:|---:|---:|---|---|"]
        for r in data["ratios"]:
            rows.append(
                f"| {r['method']} | {r['k']} | {r['l2obench_seconds_per_epoch']:.3g} | "
                f"{r['reference_seconds_per_epoch']:.3g} | {r['ratio']:.3f}× | ≤ {r['target']}× | "
                f"{_num(r['l2obench_iters'])} / {_num(r['reference_iters'])} | "
                f"{', '.join(f'{v:.4f}' for v in r['l2obench_regret'])} / "
                f"{', '.join(f'{v:.4f}' for v in r['reference_regret'])} | "
                f"{min(r['load']):.1f}–{max(r['load']):.1f} |")
        parts.append(f"{name}:\n\n" + "\n".join(rows))
    for section in ("warm", "threads", "memory"):
        for name, data in _stored(out, section):
            parts.append(f"{name}:\n\n" + _runs_table(section, data))
    for section in ("forms", "adjoint"):
        for name, data in _stored(out, section):
            keys = list(data["rows"][0]) if data["rows"] else []
            rows = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
            rows += ["| " + " | ".join(_cell(r[key]) for key in keys) + " |"
                     for r in data["rows"]]
            parts.append(f"{name}:\n\n" + "\n".join(rows))
    return "\n\n".join(parts)


def _runs_table(section: str, data: dict[str, Any]) -> str:
    """The fits of a ``warm``, ``threads`` or ``memory`` file, one row each."""
    rows = ["| side | method | k | params | threads | epochs | s/epoch | fwd iters | "
            "test regret | peak MB | load |",
            "|---|---|---:|---|---:|---:|---:|---:|---:|---:|---|"]
    for o in data["runs"]:
        s = o["spec"]
        rows.append(f"| {o['side']} | {s['method']} | {s['k']} | {_params(s['params'])} | "
                    f"{s['threads']} | {o['epochs']} | {o['seconds_per_epoch']:.3g} | "
                    f"{_num(o['fwd_iters_mean'])} | {o['test_regret']:.4f} | "
                    f"{_num(o['peak_mb'])} | {o['load_before'][0]:.1f}→"
                    f"{o['load_after'][0]:.1f} |")
    if section == "memory":
        rows.append("")
        rows += [f"{side}: {fit['mb_per_step']:.1f} MB per taped step, K in 8 GB ≈ "
                 f"{fit['K_in_8GB']}" for side, fit in data.get("fits", {}).items()]
    return "\n".join(rows)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


# -- driver ------------------------------------------------------------------------------------

SECTIONS = ("ratios", "warm", "forms", "threads", "memory", "adjoint", "profile")


def run_section(section: str, profile: Profile, reference: Path | None, threads: int,
                device: str = "cpu", methods: Sequence[str] | None = None) -> dict[str, Any]:
    print(f"== {section} ({profile.name} profile) ==", flush=True)
    if section == "ratios":
        return ratios(profile, reference, threads, methods)
    if section == "warm":
        return warm(profile, threads)
    if section == "forms":
        return forms(profile, threads, device)
    if section == "threads":
        return threads_section(profile, reference)
    if section == "memory":
        return memory(profile, reference, threads)
    if section == "profile":
        return profile_section(profile, reference, threads)
    return adjoint(profile, threads)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("section", choices=(*SECTIONS, "all", "tables", "_fit", "_profile"))
    parser.add_argument("spec", nargs="?", help=argparse.SUPPRESS)
    parser.add_argument("--reference", type=Path,
                        help=f"a checkout of commit {REFERENCE_COMMIT} (the reference side); "
                             "--quick without it uses this checkout on both sides")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: every section runs")
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                        help="device of the forms section (the fits run on the CPU)")
    parser.add_argument("--sizes", help="grid sides of the section (for ratios: dys-jfb's), "
                        "e.g. 50,100")
    parser.add_argument("--epochs", type=int, help="epochs per fit (ratios, warm, threads)")
    parser.add_argument("--seeds", help="seeds of the ratios' fits, e.g. 0,1,2")
    parser.add_argument("--methods", help="the ratios' methods, e.g. dys-jfb,dys-jfb-jax")
    parser.add_argument("--name", help="file name of the stored section (default: its name)")
    args = parser.parse_args(argv)
    if args.sizes:
        args.sizes = tuple(int(s) for s in args.sizes.split(","))
    if args.seeds:
        args.seeds = tuple(int(s) for s in args.seeds.split(","))
    if args.methods:
        args.methods = tuple(args.methods.split(","))
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.section == "_fit":
        print(json.dumps(fit_worker(FitSpec(**json.loads(args.spec)))), flush=True)
        return 0
    if args.section == "_profile":
        print(json.dumps(profile_worker(FitSpec(**json.loads(args.spec)))), flush=True)
        return 0
    if args.section == "tables":
        print(tables(args.out))
        return 0
    profile = QUICK if args.quick else FULL
    if args.sizes:
        profile = replace(profile, form_sizes=args.sizes, adjoint_sizes=args.sizes,
                          jfb_sizes=args.sizes, warm_sizes=args.sizes, thread_sizes=args.sizes)
    if args.epochs:
        profile = replace(profile, ratio_epochs=args.epochs, warm_epochs=args.epochs)
    if args.seeds:
        profile = replace(profile, ratio_seeds=args.seeds)
    reference = args.reference
    if reference is None and args.quick:
        reference = REPO  # the machinery, exercised with this checkout on both sides
    if reference is None and args.section in ("ratios", "all"):
        print(f"dys_scale: {args.section} needs --reference PATH (a checkout of "
              f"{REFERENCE_COMMIT})", file=sys.stderr)
        return 2
    sections = SECTIONS if args.section == "all" else (args.section,)
    for section in sections:
        state = machine_state(args.threads, reference)
        result = run_section(section, profile, reference, args.threads, args.device,
                             args.methods)
        state["load_after"] = list(os.getloadavg())
        name = args.name or section
        print(f"  stored {store(args.out, name, result, state)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
