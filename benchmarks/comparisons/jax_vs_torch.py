"""``dys-jfb-jax`` against ``dys-jfb`` seconds per epoch on CPU, at the same settings and data.

The JAX layer compiles on its first epoch: both sides are timed after one warm-up epoch of the
same fitted method, which is then fitted again. Target: JAX at most 1.5× the PyTorch layer.
"""

from __future__ import annotations

import logging
import statistics
from dataclasses import dataclass

from l2obench import Dataset, FitResult, Method, method_registry

from ..asv.common import build_method, dataset
from .comparison import (
    CPU,
    DYS_JFB_PARAMS,
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

SPEED = at_most(1.5, "×")


@dataclass(frozen=True)
class Sizes:
    k: int
    epochs: int  # per timed fit
    repeats: int
    n_train: int
    n_eval: int


FULL = Sizes(k=20, epochs=2, repeats=3, n_train=1000, n_eval=200)
QUICK = Sizes(k=5, epochs=1, repeats=1, n_train=64, n_eval=32)


def steady_seconds_per_epoch(
    method: Method, data: Dataset, epochs: int, repeats: int
) -> tuple[float, float, FitResult]:
    """The first epoch's seconds (compilation included), then the median s/epoch of
    ``repeats`` further fits of ``epochs`` epochs of the same (compiled) method."""
    first, _ = timed_fit(method, data, 1)
    runs = [timed_fit(method, data, epochs) for _ in range(repeats)]
    return first, statistics.median(t for t, _ in runs), runs[-1][1]


def measure(sizes: Sizes) -> Findings:
    """Both layers at grid side ``sizes.k`` with the parameters they share."""
    jax_cls = method_registry.get("dys-jfb-jax")
    shared = {key: value for key, value in DYS_JFB_PARAMS.items() if key in jax_cls.params}
    dropped = sorted(set(DYS_JFB_PARAMS) - set(shared))
    notes = [f"both run {shared}"]
    if dropped:
        notes.append(f"dys-jfb-jax has no parameter {', '.join(dropped)}; dys-jfb keeps its "
                     f"{', '.join(f'{key}={DYS_JFB_PARAMS[key]}' for key in dropped)}")
    problem, data = dataset(sizes.k, sizes.n_train, sizes.n_eval)
    steady, rows = {}, []
    for name in ("dys-jfb", "dys-jfb-jax"):
        first, steady[name], fit = steady_seconds_per_epoch(
            build_method(name, problem, shared, CPU), data, sizes.epochs, sizes.repeats)
        log.info("k=%d: %s first epoch %s, then %s/epoch", sizes.k, name, seconds(first),
                 seconds(steady[name]))
        rows.append([name, first, steady[name], fit.fwd_iters_mean, fit.fwd_iters_max])
    how = f"s/epoch, median of {sizes.repeats} × {sizes.epochs} epochs after a warm-up epoch"
    check = ratio_check(f"dys-jfb-jax s/epoch ÷ dys-jfb, k={sizes.k}",
                        Side(steady["dys-jfb-jax"], "s", how), Side(steady["dys-jfb"], "s", how),
                        SPEED)
    table = Table(f"k={sizes.k}: seconds per epoch and forward iterations per instance",
                  ["method", "first epoch s (compilation included)", "s/epoch after it",
                   "forward iterations mean", "max"], rows)
    return Findings([check], [table], notes)


COMPARISON = Comparison(
    name="jax-vs-torch",
    title="dys-jfb-jax vs dys-jfb on CPU",
    sizes={"full": FULL, "quick": QUICK},
    measure=measure,
)
