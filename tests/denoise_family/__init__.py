"""A throwaway task family, denoising, built on the task seam alone: the test of that seam.

Everything a new family needs is in this package: its task (what a model outputs, how it is
scored, which metric ranks and in which direction: :mod:`.task`), a problem that draws its data
(:mod:`.problem`) and methods that serve it (:mod:`.methods`). Nothing outside the package names
it; :func:`register` adds it to l2obench's registries in this process, as the entry points of an
installed package would (``[project.entry-points."l2obench.tasks"] denoise =
"denoise_family.task:DenoiseTask"``, and likewise for ``l2obench.problems`` and
``l2obench.methods``).
"""

from __future__ import annotations

from l2obench.methods.base import register_method
from l2obench.problems.base import register_problem
from l2obench.tasks.base import register_task
from tests.denoise_family.methods import IdentityDenoiser, LinearDenoiser, RidgeDenoiser
from tests.denoise_family.problem import NoisySignals
from tests.denoise_family.task import DenoiseTask


def register() -> None:
    """Register the family, its problem and its methods in this process (idempotent)."""
    register_task("denoise")(DenoiseTask)
    register_problem("noisy-signals")(NoisySignals)
    register_method("denoise-identity")(IdentityDenoiser)
    register_method("denoise-linear")(LinearDenoiser)
    register_method("denoise-ridge")(RidgeDenoiser)
