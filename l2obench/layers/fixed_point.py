"""Batched fixed-point solvers, passed to a layer as a value.

A solver finds ``z* = fn(z*, *args)`` for every instance of a batch at once, without an autograd
tape; the backward mode (:mod:`l2obench.layers.backward`) decides how gradients reach the
parameters afterwards. Every solver has the signature of :class:`FixedPointSolver`, so an
accelerated one (Anderson mixing) is another subclass, not a flag.

Stopping is per instance: instance ``i`` stops as soon as ``‖z_{k+1,i} − z_{k,i}‖₂ ≤ tol``, and
leaves the active batch, so later iterations compute only the instances still running. (The
fpo-dys code stops on the norm over the whole batch, which lets one hard instance keep every
other one iterating and makes the test depend on the batch size.)
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Concatenate

import torch
from torch import Tensor

#: An operator ``fn(z, *args) -> z_new``; each tensor in ``args`` is batch-aligned with ``z``.
Operator = Callable[Concatenate[Tensor, ...], Tensor]


@dataclass
class FixedPointStats:
    """How a fixed-point solve went, per instance (forward) and for the backward pass.

    ``iterations[i]`` is the number of applications of the operator to instance ``i`` by the
    solver (``max_iter`` if it never met the tolerance) and ``converged[i]`` whether it met it.
    The backward fields stay ``None`` for backward modes that do no iterative solve (JFB); modes
    that solve in the backward pass fill them in when it runs, hence the class is mutable.
    """

    iterations: Tensor  # LongTensor [N]
    converged: Tensor  # BoolTensor [N]
    backward_iterations: int | None = None
    backward_converged: bool | None = None


class FixedPointSolver(ABC):
    """Finds a fixed point of ``fn(·, *args)`` for each instance of a batch, without a tape."""

    @abstractmethod
    def __call__(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...]
    ) -> tuple[Tensor, FixedPointStats]:
        """Iterate from ``z0[N, ...]``; return ``z*`` (same shape, detached) and the statistics.

        ``args`` are passed to ``fn`` after ``z``; tensors among them are indexed along dim 0
        together with ``z`` when instances leave the active batch, other values pass unchanged.
        """


@dataclass(frozen=True)
class Picard(FixedPointSolver):
    """Plain fixed-point iteration ``z_{k+1} = fn(z_k)`` with per-instance stopping.

    Instance ``i`` stops at the first ``k`` with ``‖z_{k,i} − z_{k−1,i}‖₂ ≤ tol`` (the norm over
    all of its non-batch entries) and its result is ``z_{k,i}``; instances that have stopped are
    removed from ``z`` and ``args`` so they cost nothing afterwards. Each iteration reads one
    boolean back from the device to decide whether any instance stopped.
    """

    tol: float = 1e-2
    max_iter: int = 10_000

    def __post_init__(self) -> None:
        if not self.tol > 0:
            raise ValueError(f"tol must be positive, not {self.tol}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, not {self.max_iter}")

    def __call__(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...]
    ) -> tuple[Tensor, FixedPointStats]:
        n = z0.shape[0]
        device = z0.device
        iterations = torch.full((n,), self.max_iter, dtype=torch.long, device=device)
        converged = torch.zeros(n, dtype=torch.bool, device=device)
        with torch.no_grad():
            z_star = z0.detach().clone()
            active = torch.arange(n, device=device)  # original indices of the running instances
            z = z_star
            for k in range(1, self.max_iter + 1):
                if active.numel() == 0:
                    break
                z_next = fn(z, *args)
                done = torch.linalg.vector_norm((z_next - z).flatten(1), dim=1) <= self.tol
                z = z_next
                if bool(done.any()):
                    finished = active[done]
                    z_star[finished] = z[done]
                    iterations[finished] = k
                    converged[finished] = True
                    keep = torch.nonzero(~done).squeeze(1)
                    active, z = active[keep], z[keep]
                    args = tuple(a[keep] if isinstance(a, Tensor) else a for a in args)
            z_star[active] = z
        return z_star, FixedPointStats(iterations=iterations, converged=converged)
