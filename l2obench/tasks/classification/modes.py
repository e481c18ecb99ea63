"""The four ways a classification method trains the same network: the backward modes.

- ``jfb``: Jacobian-free backprop (Wu Fung et al., AAAI 2022) —
  :class:`~l2obench.implicit.backward.JFB`;
- ``jacobian``: the implicit-function-theorem gradient, its adjoint ``(I − J)ᵀ v = g`` solved by
  batched conjugate gradients on the normal equations (as the JFB paper's Jacobian-based
  baseline; Bai et al., "Deep Equilibrium Models", NeurIPS 2019, for the method) —
  :class:`~l2obench.implicit.backward.Implicit` with
  :class:`~l2obench.implicit.linear_solvers.ConjugateGradientNormal`;
- ``unrolled``: backprop through ``K`` taped iterations from zero —
  :class:`~l2obench.implicit.backward.Unrolled`;
- ``explicit``: the same parameters applied once, ``z = T(0; x)``, the JFB paper's explicit
  control — ``Unrolled(K=1)``, which is exactly that.

The forward solve of ``jfb`` and ``jacobian`` (and their evaluation) is
:class:`~l2obench.implicit.fixed_point.Picard` to ``forward_tol``; ``unrolled`` and
``explicit`` evaluate as they train (``K`` steps, one step).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from l2obench.errors import ParameterError, UnknownNameError, did_you_mean
from l2obench.implicit.backward import JFB, Backward, Implicit, Unrolled
from l2obench.implicit.fixed_point import FixedPointSolver, Picard
from l2obench.implicit.linear_solvers import ConjugateGradientNormal
from l2obench.tasks.classification.network import Architecture, ImplicitClassifier

MODES = ("jfb", "jacobian", "unrolled", "explicit")


@dataclass(frozen=True)
class ModeSettings:
    """The settings of the solves: the forward fixed point's ``forward_tol`` (absolute, on each
    instance's step ``‖z_{k+1} − z_k‖₂``) and ``forward_max_iter``; the adjoint's ``cg_tol``
    (relative) and ``cg_max_iter``; the unrolled mode's ``unroll_steps``."""

    forward_tol: float = 1e-3
    forward_max_iter: int = 200
    cg_tol: float = 1e-4
    cg_max_iter: int = 100
    unroll_steps: int = 10

    def __post_init__(self) -> None:
        checks = (
            ("forward_tol", self.forward_tol > 0, "positive"),
            ("forward_max_iter", self.forward_max_iter >= 1, "at least 1"),
            ("cg_tol", self.cg_tol > 0, "positive"),
            ("cg_max_iter", self.cg_max_iter >= 1, "at least 1"),
            ("unroll_steps", self.unroll_steps >= 1, "at least 1"),
        )
        for name, ok, rule in checks:
            if not ok:
                raise ParameterError(f"{name} must be {rule}, not {getattr(self, name)}")

    def solver(self) -> FixedPointSolver:
        """The forward solver: Picard iteration with per-instance stopping."""
        return Picard(tol=self.forward_tol, max_iter=self.forward_max_iter)


def make_backward(mode: str, settings: ModeSettings) -> Backward:
    """The backward mode called ``mode`` (one of :data:`MODES`) with ``settings``."""
    if mode == "jfb":
        return JFB()
    if mode == "jacobian":
        return Implicit(ConjugateGradientNormal(tol=settings.cg_tol, max_iter=settings.cg_max_iter))
    if mode == "unrolled":
        return Unrolled(K=settings.unroll_steps)
    if mode == "explicit":
        return Unrolled(K=1)
    raise UnknownNameError(f"unknown backward mode '{mode}'{did_you_mean(mode, MODES)}; "
                           f"known: {', '.join(MODES)}")


def build_classifier(input_shape: tuple[int, ...], n_classes: int, arch: Architecture, mode: str,
                     settings: ModeSettings, *, seed: int,
                     device: torch.device | None = None) -> ImplicitClassifier:
    """The network trained in ``mode``, its parameters drawn from ``seed`` alone: the same seed
    gives every mode the same initial parameters (what makes ``explicit`` a control). The
    process's global generator is left as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = ImplicitClassifier(input_shape, n_classes, arch, make_backward(mode, settings),
                                 settings.solver())
    return net.to(device) if device is not None else net
