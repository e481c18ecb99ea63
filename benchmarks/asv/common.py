"""What the benchmark modules share: problem sizes, threads, device, data, method lookup.

asv imports every module of this folder once in its benchmark server, then runs each benchmark
(each parameter combination, each round) in a process forked from that server. So the thread
setting made here on import holds in every benchmark, the data sets cached here are built at
most once per benchmark process, and nothing here may initialise CUDA on import (a forked child
cannot use a CUDA context made by its parent): the device is resolved on first use, inside the
benchmark's own process. The ratio comparisons (``python -m benchmarks.comparisons.ratios``)
take their data, seed and methods from here too.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import numpy as np
import torch

from l2obench import Dataset, Method, Problem, method_registry, problem_registry
from l2obench.errors import MissingExtraError
from l2obench.runner import resolve_device

#: The problem every benchmark runs on.
PROBLEM = "shortest-path"

#: Environment variable that narrows the sizes, e.g. ``5`` for CI's quick smoke pass. Stored
#: results should come from the default sizes, so that runs at different commits line up.
SIZES_ENV = "L2OBENCH_ASV_SIZES"

#: Default grid sides k (k×k nodes, 2k(k−1) arcs: 40, 180 and 760 variables): small enough that
#: a full run takes minutes on two CPU cores, large enough to show how costs grow with k.
DEFAULT_SIZES = (5, 10, 20)

#: Intra-op threads for PyTorch in every benchmark (and in each cell of the training sweep, which
#: runs one cell per CPU core): one thread keeps timings comparable between commits on a shared
#: machine. JAX's own thread pool is left at its default.
THREADS = 1

#: The mini-batch of every method (their default ``batch_size``) and of the layer benchmark.
BATCH = 256

#: The seed of every data draw and every method.
SEED = 0


def sizes() -> tuple[int, ...]:
    """The grid sides to benchmark: ``$L2OBENCH_ASV_SIZES`` (comma-separated) or the defaults."""
    raw = os.environ.get(SIZES_ENV, "").strip()
    if not raw:
        return DEFAULT_SIZES
    return tuple(int(part) for part in raw.split(","))


SIZES = sizes()
torch.set_num_threads(THREADS)


@functools.cache
def device() -> torch.device:
    """Where the benchmarks compute: CUDA when PyTorch sees a GPU, else the CPU."""
    return torch.device(resolve_device("auto"))


@functools.cache
def dataset(k: int, n_train: int, n_eval: int) -> tuple[Problem, Dataset]:
    """The problem at size ``k`` and one seeded draw of ``n_train`` training instances and
    ``n_eval`` validation and test instances each (cached: asv re-runs ``setup`` per sample)."""
    problem = problem_registry.get(PROBLEM)(
        k=k, n_train=n_train, n_val=n_eval, n_test=n_eval, seed=SEED
    )
    if not isinstance(problem, Problem):
        raise TypeError(f"{PROBLEM} is not a decision problem: the benchmarks need its oracle")
    return problem, problem.generate()


def build_method(
    name: str, problem: Problem, params: Mapping[str, Any], device: torch.device
) -> Method:
    """The method registered as ``name`` on ``problem``, seeded with :data:`SEED`, through its
    public parameters."""
    method = method_registry.get(name)(problem, device, SEED, **params)
    if not isinstance(method, Method):
        raise TypeError(f"{name} is not a decision method: the benchmarks need its predicted costs")
    return method


def available_method(name: str) -> type[Method]:
    """The method class registered as ``name``; a missing optional extra skips the benchmark
    (asv's convention: ``NotImplementedError`` raised in ``setup``)."""
    method_cls = method_registry.get(name)
    if not issubclass(method_cls, Method):
        raise NotImplementedError(f"{name} is not a decision method")
    try:
        method_cls.check_available()
    except MissingExtraError as exc:
        raise NotImplementedError(str(exc)) from exc
    return method_cls


Benchmark = TypeVar("Benchmark", bound=Callable[..., Any])


def asv_attributes(**attributes: object) -> Callable[[Benchmark], Benchmark]:
    """Sets asv's attributes of one benchmark (``unit``, ``timeout``) on its function, where asv
    reads them (a ``setup_cache``'s timeout only from the function itself)."""

    def mark(func: Benchmark) -> Benchmark:
        func.__dict__.update(attributes)
        return func

    return mark


def gurobi_objectives(model: Any, costs: np.ndarray) -> np.ndarray:
    """Objectives of PyEPO's Gurobi model solving ``costs`` one row at a time (setObj + solve)."""
    objectives = np.empty(len(costs))
    for i, cost in enumerate(costs):
        model.setObj(cost)
        _, objectives[i] = model.solve()
    return objectives
