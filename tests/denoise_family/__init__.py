"""A throwaway task family, denoising, built on the task seam alone: the test of that seam.

Everything a new family needs is in this package: its task (what a model outputs, how it is
scored, which metric ranks and in which direction: :mod:`.task`), a problem that draws its data
(:mod:`.problem`) and methods that serve it (:mod:`.methods`). Nothing outside the package names
it; :func:`registered` adds it to l2obench's registries in this process while it is entered, as
the entry points of an
installed package would (``[project.entry-points."l2obench.tasks"] denoise =
"denoise_family.task:DenoiseTask"``, and likewise for ``l2obench.problems`` and
``l2obench.methods``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from l2obench.methods.base import BaseMethod, method_registry
from l2obench.problems.base import BaseProblem, problem_registry
from l2obench.tasks.base import Task, get_task, task_registry
from tests.denoise_family.methods import IdentityDenoiser, LinearDenoiser, RidgeDenoiser
from tests.denoise_family.problem import NoisySignals
from tests.denoise_family.task import DenoiseTask

#: What the package registers, by name (an installed package's entry points): its task, its
#: problem and its methods.
TASKS: dict[str, type[Task]] = {"denoise": DenoiseTask}
PROBLEMS: dict[str, type[BaseProblem]] = {"noisy-signals": NoisySignals}
METHODS: dict[str, type[BaseMethod]] = {
    "denoise-identity": IdentityDenoiser,
    "denoise-linear": LinearDenoiser,
    "denoise-ridge": RidgeDenoiser,
}


@contextmanager
def registered() -> Iterator[None]:
    """The family, its problem and its methods registered in this process, and forgotten on
    leaving (so that the other tests see l2obench's own registries)."""
    for name, task in TASKS.items():
        task_registry.register(name)(task)
    for name, problem in PROBLEMS.items():
        problem_registry.register(name)(problem)
    for name, method in METHODS.items():
        method_registry.register(name)(method)
    try:
        yield
    finally:
        for name in TASKS:
            task_registry.unregister(name)
        for name in PROBLEMS:
            problem_registry.unregister(name)
        for name in METHODS:
            method_registry.unregister(name)
        get_task.cache_clear()
