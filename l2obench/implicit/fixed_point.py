"""Batched fixed-point solvers, passed to a layer as a value.

A solver finds ``z* = fn(z*, *args)`` for every instance of a batch at once, without an autograd
tape; the backward mode (:mod:`l2obench.implicit.backward`) decides how gradients reach the
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
    ``z_star`` is the point the solve returned (detached), kept so that a caller can start the
    next solve of the same instances there (a warm start). The backward fields stay ``None``
    for backward modes that do no iterative solve (JFB); modes that solve in the backward pass
    fill them in when it runs, hence the class is mutable.
    """

    iterations: Tensor  # LongTensor [N]
    converged: Tensor  # BoolTensor [N]
    backward_iterations: int | None = None
    backward_converged: bool | None = None
    z_star: Tensor | None = None

    @classmethod
    def concatenate(cls, parts: list[FixedPointStats]) -> FixedPointStats:
        """The statistics of solves of consecutive slices of one batch, as one."""
        z_parts = [p.z_star for p in parts]
        return cls(
            iterations=torch.cat([p.iterations for p in parts]),
            converged=torch.cat([p.converged for p in parts]),
            z_star=None if any(z is None for z in z_parts) else torch.cat(z_parts),  # type: ignore[arg-type]
        )


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


class _ActiveBatch:
    """Per-instance stopping for a batched iteration: who still runs, and what finished.

    Rows of the compute batch are instances; ``rows[r]`` is row ``r``'s original index. A row
    that meets the tolerance is *retired*: its result and iteration count are recorded, and it
    leaves the compute batch at the next compaction. Compacting copies the solver's state, so it
    waits until at least :attr:`COMPACT_FRACTION` of the rows are retired (retired rows iterate
    on meanwhile, at most that fraction of extra work); a solver with a large state (Anderson's
    history) pays a copy only a few times per solve.

    With ``check_every = c > 1`` the host learns which rows stopped only every ``c`` steps (on
    a GPU each look is a synchronisation): each step :meth:`mark` records, on the device, the
    first step at which a row met the tolerance and its point then, and :meth:`retire_marked`
    retires the marked rows with exactly those values. The results are those of ``c = 1``; a
    row that stopped only iterates on, at most ``c − 1`` steps, until the host looks.
    """

    COMPACT_FRACTION = 0.125

    def __init__(self, z0: Tensor, max_iter: int, check_every: int = 1) -> None:
        n, device = z0.shape[0], z0.device
        self.z_star = z0.detach().clone()
        self.iterations = torch.full((n,), max_iter, dtype=torch.long, device=device)
        self.converged = torch.zeros(n, dtype=torch.bool, device=device)
        self.rows = torch.arange(n, device=device)
        self.live = torch.ones(n, dtype=torch.bool, device=device)
        self.n_live = n
        self.check_every = check_every
        if check_every > 1:
            self.hit_at = torch.zeros(n, dtype=torch.long, device=device)  # 0: not yet
            self.captured = torch.empty_like(self.z_star)

    def observe(self, done: Tensor, z: Tensor, k: int, last: bool) -> bool:
        """Step ``k``'s test ``done`` at ``z``: :meth:`retire` every step, or :meth:`mark` and
        every ``check_every`` steps (and at the ``last`` one) :meth:`retire_marked`. Returns
        whether the compute batch should be compacted now."""
        if self.check_every == 1:
            return self.retire(done, z, k)
        self.mark(done, z, k)
        if k % self.check_every and not last:
            return False
        return self.retire_marked()

    def retire(self, done: Tensor, z: Tensor, k: int) -> bool:
        """Record rows with ``done`` (among the live ones) as converged at ``z`` after ``k`` steps.

        Returns whether the compute batch should be compacted now (see :meth:`keep`).
        """
        done = done & self.live
        if not bool(done.any()):  # the one read-back per iteration
            return False
        finished = self.rows[done]
        self.z_star[finished] = z[done]
        self.iterations[finished] = k
        self.converged[finished] = True
        return self._retired(done)

    def mark(self, done: Tensor, z: Tensor, k: int) -> None:
        """Note on the device the rows that meet the test for the first time, and where."""
        new = done & (self.hit_at == 0)
        self.hit_at = torch.where(new, k, self.hit_at)
        self.captured = torch.where(new.view(-1, *(1,) * (z.dim() - 1)), z, self.captured)

    def retire_marked(self) -> bool:
        """:meth:`retire` the live rows that :meth:`mark` saw stop, with their own step and
        point; the one read-back per ``check_every`` steps."""
        done = (self.hit_at > 0) & self.live
        if not bool(done.any()):
            return False
        finished = self.rows[done]
        self.z_star[finished] = self.captured[done]
        self.iterations[finished] = self.hit_at[done]
        self.converged[finished] = True
        return self._retired(done)

    def _retired(self, done: Tensor) -> bool:
        self.live &= ~done
        self.n_live = int(self.live.sum())
        retired = self.rows.numel() - self.n_live
        return self.n_live == 0 or retired >= self.COMPACT_FRACTION * self.rows.numel()

    def keep(self) -> Tensor:
        """Compact the bookkeeping to the live rows; returns their indices in the old batch."""
        keep = torch.nonzero(self.live).squeeze(1)
        self.rows, self.live = self.rows[keep], self.live[keep]
        if self.check_every > 1:
            self.hit_at, self.captured = self.hit_at[keep], self.captured[keep]
        return keep

    def finish(self, z: Tensor) -> tuple[Tensor, FixedPointStats]:
        """The results, with the live rows (those that hit ``max_iter``) taken from ``z``."""
        self.z_star[self.rows[self.live]] = z[self.live]
        return self.z_star, FixedPointStats(
            iterations=self.iterations, converged=self.converged, z_star=self.z_star
        )


def _take(args: tuple[Any, ...], keep: Tensor) -> tuple[Any, ...]:
    """``args`` restricted to the rows ``keep``: tensors are indexed, other values pass."""
    return tuple(a[keep] if isinstance(a, Tensor) else a for a in args)


def _check_settings(tol: float, max_iter: int, check_every: int, chunk: int | None) -> None:
    if not tol > 0:
        raise ValueError(f"tol must be positive, not {tol}")
    if max_iter < 1:
        raise ValueError(f"max_iter must be at least 1, not {max_iter}")
    if check_every < 1:
        raise ValueError(f"check_every must be at least 1, not {check_every}")
    if chunk is not None and chunk < 1:
        raise ValueError(f"chunk must be at least 1 (or None), not {chunk}")


Solve = Callable[[Operator, Tensor, tuple[Any, ...]], tuple[Tensor, FixedPointStats]]


def solve_in_chunks(
    solve: Solve, fn: Operator, z0: Tensor, args: tuple[Any, ...], chunk: int | None
) -> tuple[Tensor, FixedPointStats]:
    """``solve`` on consecutive slices of at most ``chunk`` instances, one after the other.

    Instances stop each on its own, so the results are those of one solve of the batch (up to
    the rounding of products whose batch size differs, as after any compaction); a slice whose
    state fits in the processor's caches makes each of the many passes over it cheaper.
    """
    n = z0.shape[0]
    if chunk is None or n <= chunk:
        return solve(fn, z0, args)
    parts = [
        solve(fn, z0[i : i + chunk],
              tuple(a[i : i + chunk] if isinstance(a, Tensor) else a for a in args))
        for i in range(0, n, chunk)
    ]
    stats = FixedPointStats.concatenate([p[1] for p in parts])
    assert stats.z_star is not None
    return stats.z_star, stats


@dataclass(frozen=True)
class Picard(FixedPointSolver):
    """Plain fixed-point iteration ``z_{k+1} = fn(z_k)`` with per-instance stopping.

    Instance ``i`` stops at the first ``k`` with ``‖z_{k,i} − z_{k−1,i}‖₂ ≤ tol`` (the norm over
    all of its non-batch entries) and its result is ``z_{k,i}``; instances that have stopped
    leave the computed batch (:class:`_ActiveBatch`). The host looks at which instances stopped
    every ``check_every`` steps (one boolean read back each time; the results do not depend on
    it), and the batch is solved ``chunk`` instances at a time (:func:`solve_in_chunks`; None:
    all at once).
    """

    tol: float = 1e-2
    max_iter: int = 10_000
    check_every: int = 1
    chunk: int | None = None

    def __post_init__(self) -> None:
        _check_settings(self.tol, self.max_iter, self.check_every, self.chunk)

    def __call__(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...]
    ) -> tuple[Tensor, FixedPointStats]:
        return solve_in_chunks(self._solve, fn, z0, args, self.chunk)

    def _solve(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...]
    ) -> tuple[Tensor, FixedPointStats]:
        batch = _ActiveBatch(z0, self.max_iter, self.check_every)
        with torch.no_grad():
            z = batch.z_star.clone()
            for k in range(1, self.max_iter + 1):
                z_next = fn(z, *args)
                done = torch.linalg.vector_norm((z_next - z).flatten(1), dim=1) <= self.tol
                z = z_next
                if batch.observe(done, z, k, last=k == self.max_iter):
                    if batch.n_live == 0:
                        break
                    keep = batch.keep()
                    z, args = z[keep], _take(args, keep)
            return batch.finish(z)


@dataclass(frozen=True)
class Anderson(FixedPointSolver):
    """Anderson-accelerated fixed-point iteration (type II), with per-instance stopping.

    Each step extrapolates from the last ``memory`` pairs ``(fn(z_j), g_j = fn(z_j) − z_j)``:
    ``z_{k+1} = Σ_j a_j fn(z_j)`` with the weights ``a`` (summing to one) that minimise
    ``‖Σ_j a_j g_j‖`` per instance, regularised by ``ridge`` relative to the residuals' scale.
    Instance ``i`` stops at the first ``k`` with ``‖g_{k,i}‖ = ‖fn(z_k) − z_k‖ ≤ tol`` — the
    quantity :class:`Picard` tests — and its result is ``fn(z_{k,i})``. It reaches the same
    fixed points in fewer applications of ``fn`` where the iteration converges linearly and
    slowly, for ``memory`` extra vectors per instance and a small least-squares solve per step;
    an instance whose solve fails takes a plain step. ``check_every`` and ``chunk`` as for
    :class:`Picard`.
    """

    tol: float = 1e-2
    max_iter: int = 10_000
    memory: int = 5
    ridge: float = 1e-6
    check_every: int = 1
    chunk: int | None = None

    def __post_init__(self) -> None:
        _check_settings(self.tol, self.max_iter, self.check_every, self.chunk)
        if self.memory < 1:
            raise ValueError(f"memory must be at least 1, not {self.memory}")
        if not self.ridge >= 0:
            raise ValueError(f"ridge must be non-negative, not {self.ridge}")

    def __call__(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...]
    ) -> tuple[Tensor, FixedPointStats]:
        return solve_in_chunks(self._solve, fn, z0, args, self.chunk)

    def _solve(
        self, fn: Operator, z0: Tensor, args: tuple[Any, ...]
    ) -> tuple[Tensor, FixedPointStats]:
        batch = _ActiveBatch(z0, self.max_iter, self.check_every)
        n = z0.shape[0]
        with torch.no_grad():
            z = batch.z_star.clone().flatten(1)
            shape = z0.shape[1:]
            values = z.new_zeros(n, self.memory, z.shape[1])  # fn(z_j), a ring buffer
            residuals = torch.zeros_like(values)  # g_j
            for k in range(1, self.max_iter + 1):
                f = fn(z.view(-1, *shape), *args).reshape(z.shape)
                g = f - z
                slot = (k - 1) % self.memory
                values[:, slot], residuals[:, slot] = f, g
                done = torch.linalg.vector_norm(g, dim=1) <= self.tol
                if batch.observe(done, f.view(-1, *shape), k, last=k == self.max_iter):
                    if batch.n_live == 0:
                        break
                    keep = batch.keep()
                    f, values, residuals = f[keep], values[keep], residuals[keep]
                    args = _take(args, keep)
                z = self._mix(values[:, :k], residuals[:, :k], f)
            return batch.finish(z.view(-1, *shape))

    def _mix(self, values: Tensor, residuals: Tensor, fallback: Tensor) -> Tensor:
        """``Σ_j a_j values_j`` with the constrained least-squares weights, per instance."""
        gram = residuals @ residuals.transpose(1, 2)  # [N, h, h]
        h = gram.shape[-1]
        scale = gram.diagonal(dim1=1, dim2=2).mean(dim=1).clamp_min(torch.finfo(gram.dtype).tiny)
        eye = torch.eye(h, dtype=gram.dtype, device=gram.device)
        gram = gram + (self.ridge * scale)[:, None, None] * eye
        ones = gram.new_ones(gram.shape[0], h, 1)
        weights, info = torch.linalg.solve_ex(gram, ones)
        weights = weights / weights.sum(dim=1, keepdim=True)
        mixed = (weights.transpose(1, 2) @ values).squeeze(1)
        return torch.where((info == 0)[:, None], mixed, fallback)
