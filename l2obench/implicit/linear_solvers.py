"""Batched solvers of the adjoint system of implicit differentiation, passed as values.

The implicit backward mode (:class:`~l2obench.implicit.backward.Implicit`) turns the gradient
``g = ∂ℓ/∂z`` at a fixed point into ``v = (I − J)⁻ᵀ g`` with ``J = ∂fn/∂z`` (docs/methods.md),
for every instance of a batch at once. Only vector–Jacobian products are available, as a
callable ``vjp(u) = uᵀJ`` on a batch ``u[N, ...]`` shaped like ``g``; written with row vectors the
system is

    v − vjp(v) = g.

Every solver has the signature of :class:`LinearSolver` and returns ``(v, iterations,
converged)``: ``iterations`` counts the solver's own iterations (each one a batched step taken
by all instances together; what one costs is in each class's docstring), ``converged[i]`` whether
instance ``i`` met ``‖g_i − (v_i − vjp(v_i))‖₂ ≤ tol · ‖g_i‖₂``. The tolerance is relative per
instance, so the scale of the loss does not change the work, and an instance with ``g_i = 0``
(e.g. every decision at a bound) is solved by ``v_i = 0`` at once. The products are batched and
cannot shrink: in fixed-point iteration an instance that met the tolerance keeps iterating while
others have not (which only lowers its residual); the Krylov solvers freeze it instead.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

#: ``vjp(u) = uᵀJ`` row by row, for ``u`` shaped like the gradient.
VJP = Callable[[Tensor], Tensor]
#: One Krylov cycle: ``(r[N, d], bound[N], steps) -> (correction[N, d], iterations taken)``.
Cycle = Callable[[Tensor, Tensor, int], tuple[Tensor, int]]


def row_norms(t: Tensor) -> Tensor:
    """``‖t_i‖₂`` over all non-batch entries of each instance: ``[N]``."""
    return torch.linalg.vector_norm(t.flatten(1), dim=1)


def _row_dot(a: Tensor, b: Tensor) -> Tensor:
    """``⟨a_i, b_i⟩`` for each row of ``[N, d]`` tensors: ``[N]``."""
    return torch.einsum("nd,nd->n", a, b)


def _safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` where ``den ≠ 0``, else 0 (an instance already solved exactly)."""
    ok = den != 0
    return torch.where(ok, num / torch.where(ok, den, torch.ones_like(den)), torch.zeros_like(num))


def _adjoint_operator(vjp: VJP, shape: torch.Size) -> Callable[[Tensor], Tensor]:
    """``v ↦ v − vjp(v)`` on flattened rows ``[N, d]``: the system's matrix ``(I − J)ᵀ``."""

    def apply(v: Tensor) -> Tensor:
        return v - vjp(v.reshape(shape)).reshape(v.shape)

    return apply


def jvp_from_vjp(vjp: VJP, like: Tensor) -> Callable[[Tensor], Tensor]:
    """``t ↦ J t`` row by row, from ``vjp`` alone, by differentiating it once more.

    ``h(u) = vjp(u) = uᵀJ`` is linear in ``u``, so the vector–Jacobian product of ``h`` itself with
    a cotangent ``t`` is ``∂⟨h(u), t⟩/∂u = J t``, whatever ``u`` is. One graph of ``h`` at ``u = 0``
    is built here and reused for every ``t``; each product is then one backward pass through it
    (about two vector–Jacobian products of work). ``vjp`` must keep the tape when its argument
    requires grad (``torch.autograd.grad(..., create_graph=u.requires_grad)``); the DYS operator
    is differentiable twice because its projections are linear and the clamp piecewise linear.
    This avoids forward-mode AD, which custom autograd functions (the factored affine projector)
    would each have to implement.
    """
    u = torch.zeros_like(like, requires_grad=True)
    with torch.enable_grad():
        h = vjp(u)
    if not h.requires_grad:
        raise ValueError("vjp must be differentiable in its argument (create_graph when it "
                         "requires grad) for a solver that needs Jacobian–vector products")

    def jvp(t: Tensor) -> Tensor:
        (out,) = torch.autograd.grad(h, u, t.reshape(like.shape), retain_graph=True)
        return out.reshape(t.shape)

    return jvp


@dataclass(frozen=True)
class LinearSolver(ABC):
    """Solves ``(I − J)ᵀ v = g`` per instance to ``tol · ‖g_i‖`` within ``max_iter`` iterations."""

    tol: float = 1e-4
    max_iter: int = 1_000

    def __post_init__(self) -> None:
        if not self.tol > 0:
            raise ValueError(f"tol must be positive, not {self.tol}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, not {self.max_iter}")

    @abstractmethod
    def __call__(self, vjp: VJP, g: Tensor) -> tuple[Tensor, int, Tensor]:
        """``(v, iterations, converged[N])`` for ``g[N, ...]``; ``v`` is shaped like ``g``."""


@dataclass(frozen=True)
class FixedPointIteration(LinearSolver):
    """``v ← g + vjp(v)`` from ``v = g``: the Neumann series of ``(I − J)⁻ᵀ g``.

    One vector–Jacobian product per iteration, which also yields the residual of the current
    iterate (``g + vjp(v) − v``), so the test costs nothing extra. Converges when the spectral
    radius of ``J`` is below 1, linearly at that rate: as slowly as plain fixed-point iteration
    in the forward pass. For the DYS layer at small ``αγ`` that rate is ``1 − αγ``, so reaching a
    relative tolerance takes of order ``1/(αγ)`` iterations. Stopped by ``max_iter`` it returns
    the partial sum ``Σ_{i≤K} (Jᵀ)^i g``, which stays bounded (by ``(K + 1)‖g‖`` for a
    nonexpansive ``fn``) and whose first term is JFB's gradient.
    """

    def __call__(self, vjp: VJP, g: Tensor) -> tuple[Tensor, int, Tensor]:
        bound = self.tol * row_norms(g)
        v = g
        converged = torch.zeros_like(bound, dtype=torch.bool)
        iterations = 0
        while iterations < self.max_iter:
            v_next = g + vjp(v)
            iterations += 1
            converged = row_norms(v_next - v) <= bound  # the residual of v
            v = v_next
            if bool(converged.all()):
                break
        return v, iterations, converged


@dataclass(frozen=True)
class _RestartedKrylov(LinearSolver):
    """Krylov cycles of at most ``restart`` iterations, each judged by its true residual.

    Every cycle solves for a correction ``c`` to ``Bᵀ c = r`` (``B = I − J``, ``r`` the current
    residual) and stops early once every running instance meets its bound by the cycle's own,
    recursively updated residual estimate. The true residual of ``v + c`` is then computed (one
    more product, not counted in ``iterations``), and an instance takes the correction only if
    it lowers that residual: in exact arithmetic a Krylov cycle never raises it, so a rise means
    rounding has taken over (in float32, with ``‖v‖ ≫ ‖g‖`` for a nearly singular ``B``) and the
    instance stops where it was, unconverged. The result is monotone in the true residual,
    finite, and ``converged`` is decided on the true residual. Instances that have stopped ride
    along in the batched products with a zero right-hand side.
    """

    restart: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.restart < 1:
            raise ValueError(f"restart must be at least 1, not {self.restart}")

    def __call__(self, vjp: VJP, g: Tensor) -> tuple[Tensor, int, Tensor]:
        rows = g.reshape(g.shape[0], -1)
        apply_bt = _adjoint_operator(vjp, g.shape)
        cycle = self._cycle_for(vjp, g)
        bound = self.tol * row_norms(rows)
        v = torch.zeros_like(rows)
        r = rows
        res = row_norms(r)
        running = res > bound
        iterations = 0
        while bool(running.any()) and iterations < self.max_iter:
            steps = min(self.restart, self.max_iter - iterations, rows.shape[1])
            correction, used = cycle(
                torch.where(running[:, None], r, 0),
                torch.where(running, bound, torch.inf),
                steps,
            )
            iterations += used
            candidate = v + correction
            r_new = rows - apply_bt(candidate)
            res_new = row_norms(r_new)
            better = running & (res_new < res)  # False where NaN
            v = torch.where(better[:, None], candidate, v)
            r = torch.where(better[:, None], r_new, r)
            res = torch.where(better, res_new, res)
            running = better & (res > bound)
        return v.reshape(g.shape), iterations, res <= bound

    @abstractmethod
    def _cycle_for(self, vjp: VJP, g: Tensor) -> Cycle:
        """The cycle for this system, with whatever it precomputes once per solve."""


@dataclass(frozen=True)
class ConjugateGradientNormal(_RestartedKrylov):
    """Conjugate gradients on the normal equations, ``B Bᵀ v = B g`` with ``B = I − J`` (CGLS).

    Minimises ``‖g − Bᵀv‖`` over growing Krylov spaces of ``B Bᵀ`` (symmetric positive
    semi-definite, so plain CG applies although ``J`` is not symmetric); from zero, a consistent
    singular system yields its least-norm solution. Each iteration costs one product with ``Bᵀ``
    (a vector–Jacobian product) and one with ``B``, a Jacobian–vector product obtained from
    ``vjp`` by :func:`jvp_from_vjp` (about two more), plus one per cycle to start. Convergence
    depends on the condition number of ``B`` squared, or on the number of distinct singular
    values when they cluster (the DYS Jacobian is built from projections, so they do). Cycles of
    ``restart`` iterations as in :class:`_RestartedKrylov`.
    """

    restart: int = 50

    def _cycle_for(self, vjp: VJP, g: Tensor) -> Cycle:
        apply_bt = _adjoint_operator(vjp, g.shape)
        jvp = jvp_from_vjp(vjp, g)

        def cycle(r: Tensor, bound: Tensor, steps: int) -> tuple[Tensor, int]:
            c = torch.zeros_like(r)
            s = r - jvp(r)  # B r
            p = s
            s_sq = _row_dot(s, s)
            for it in range(1, steps + 1):
                q = apply_bt(p)
                step = _safe_div(s_sq, _row_dot(q, q))[:, None]
                c = c + step * p
                r = r - step * q
                if it == steps or bool((row_norms(r) <= bound).all()):
                    return c, it
                s = r - jvp(r)
                s_sq_next = _row_dot(s, s)
                p = s + _safe_div(s_sq_next, s_sq)[:, None] * p
                s_sq = s_sq_next
            raise AssertionError("unreachable: steps ≥ 1")

        return cycle


@dataclass(frozen=True)
class GMRES(_RestartedKrylov):
    """Restarted GMRES(``restart``) on ``Bᵀ v = g``, one Krylov space per instance, in lockstep.

    Each iteration is one vector–Jacobian product (an Arnoldi step) plus small batched algebra:
    classical Gram–Schmidt applied twice (two batched products; orthogonal to working precision
    in float32) and one Givens rotation folded into a dense ``[N, restart+1, restart+1]``
    accumulated rotation, whose first column gives every instance's residual norm after every
    step. A cycle ends with a batched triangular solve; cycles are judged as in
    :class:`_RestartedKrylov`. The count depends on how many clusters the eigenvalues of ``J``
    form rather than on how close they come to 1. For a singular ``B`` GMRES is not guaranteed to
    converge even when the system is consistent (it is when the range and null space of ``B``
    meet only in 0); the DYS adjoint at small ``αγ`` is such a case, where GMRES converges in
    float64 but stalls in float32 and CG does not. Memory: ``restart + 1`` basis vectors per
    instance.
    """

    def _cycle_for(self, vjp: VJP, g: Tensor) -> Cycle:
        apply_bt = _adjoint_operator(vjp, g.shape)

        def cycle(r: Tensor, bound: Tensor, steps: int) -> tuple[Tensor, int]:
            return _gmres_cycle(apply_bt, r, bound, steps)

        return cycle


def _gmres_cycle(
    apply_bt: Callable[[Tensor], Tensor], r: Tensor, bound: Tensor, steps: int
) -> tuple[Tensor, int]:
    """At most ``steps`` Arnoldi steps from the residual ``r``: the correction, steps taken.

    A step whose new Arnoldi vector vanishes (to rounding) leaves a zero basis vector: the
    Krylov space is invariant and the instance is solved; its later columns are zero and their
    coefficients are set to zero.
    """
    n, d = r.shape
    eps = torch.finfo(r.dtype).eps
    beta = row_norms(r)
    basis = r.new_zeros(n, steps + 1, d)
    basis[:, 0] = r * _safe_div(torch.ones_like(beta), beta)[:, None]
    rotation = torch.eye(steps + 1, dtype=r.dtype, device=r.device).repeat(n, 1, 1)
    upper = r.new_zeros(n, steps, steps)  # the rotated Hessenberg matrix, upper triangular
    used = steps
    for j in range(steps):
        w = apply_bt(basis[:, j])
        w_norm = row_norms(w)
        h = r.new_zeros(n, steps + 1)
        for _ in range(2):  # classical Gram–Schmidt, twice
            coef = torch.einsum("nkd,nd->nk", basis[:, : j + 1], w)
            w = w - torch.einsum("nk,nkd->nd", coef, basis[:, : j + 1])
            h[:, : j + 1] += coef
        h_next = row_norms(w)
        alive = h_next > 10 * eps * w_norm
        h[:, j + 1] = torch.where(alive, h_next, 0)
        basis[:, j + 1] = torch.where(alive[:, None], w / h_next.clamp_min(eps)[:, None], 0)
        col = torch.einsum("nab,nb->na", rotation, h)
        radius = torch.hypot(col[:, j], col[:, j + 1])
        cos = _safe_div(col[:, j], radius) + (radius == 0).to(r.dtype)
        sin = _safe_div(col[:, j + 1], radius)
        top, bottom = rotation[:, j].clone(), rotation[:, j + 1].clone()
        rotation[:, j] = cos[:, None] * top + sin[:, None] * bottom
        rotation[:, j + 1] = cos[:, None] * bottom - sin[:, None] * top
        upper[:, : j + 1, j] = col[:, : j + 1]
        upper[:, j, j] = radius
        if bool(((beta * rotation[:, j + 1, 0]).abs() <= bound).all()):
            used = j + 1
            break
    rhs = beta[:, None] * rotation[:, :used, 0]
    tri = upper[:, :used, :used]
    diag = torch.diagonal(tri, dim1=1, dim2=2)
    tri = tri + torch.diag_embed((diag == 0).to(r.dtype))
    y = torch.linalg.solve_triangular(tri, rhs[:, :, None], upper=True)[:, :, 0]
    return torch.einsum("nk,nkd->nd", y, basis[:, :used]), used


@dataclass(frozen=True)
class FreeSetCG:
    """Preconditioned CG for a symmetric positive semidefinite system ``L y = b``, per instance.

    The solver of :class:`~l2obench.implicit.backward.ImplicitFreeSet`: ``L`` is the Laplacian
    ``A D Aᵀ`` of the free coordinates' graph (singular, the system consistent), the
    preconditioner a diagonal (Jacobi). Each iteration is one application of ``L``. From
    ``y = 0`` the iterates stay in the range of ``L`` in exact arithmetic and CG converges on a
    consistent singular system as on a definite one; in float32, rounding feeds the null space
    (constants on each connected component of the free graph), where nothing stops growth, and
    an iteration run past the attainable accuracy drifts away. So every ``check`` iterations
    the true residual ``‖b_i − L y_i‖`` of the running instances is computed (one more
    application, not counted in ``iterations``): an instance is converged once it is at most
    ``tol · max(‖b_i‖, scale_i)``, ``scale`` the size of the quantity ``b`` was computed from
    (for the adjoint, ``‖D g_i‖``: a right-hand side that cancels to rounding level against it
    is solved by ``y = 0``), and stops unconverged when its smallest true residual has not
    fallen for ``patience`` checks in a row (rounding has taken over); an instance whose recursive
    residual meets the bound before its true one restarts from the true residual. Every
    instance returns its iterate of smallest true residual; stopped instances are frozen while
    the others iterate.
    """

    tol: float = 1e-4
    max_iter: int = 1_000
    check: int = 10
    patience: int = 3

    def __post_init__(self) -> None:
        if not self.tol > 0:
            raise ValueError(f"tol must be positive, not {self.tol}")
        if self.max_iter < 1:
            raise ValueError(f"max_iter must be at least 1, not {self.max_iter}")
        if self.check < 1 or self.patience < 1:
            raise ValueError(f"check and patience must be at least 1, not {self.check}, "
                             f"{self.patience}")

    def solve(
        self, apply: Callable[[Tensor], Tensor], b: Tensor, precond: Tensor,
        scale: Tensor | None = None,
    ) -> tuple[Tensor, int, Tensor]:
        """``(y, iterations, converged[N])`` for rows ``b[N, m]``, the diagonal ``precond`` and
        the instances' scales ``scale[N]`` (default ``‖b_i‖``)."""
        with torch.no_grad():
            y = torch.zeros_like(b)
            r = b.clone()
            size = row_norms(b)
            bound = self.tol * (size if scale is None else torch.maximum(size, scale))
            best, best_res = y.clone(), size
            converged = best_res <= bound
            running = ~converged
            stale = torch.zeros_like(bound, dtype=torch.long)
            s = precond * r
            p = s.clone()
            rs = _row_dot(r, s)
            iterations = 0
            while bool(running.any()) and iterations < self.max_iter:
                q = apply(p)
                step = torch.where(running, _safe_div(rs, _row_dot(p, q)), 0.0)[:, None]
                y.add_(step * p)
                r.sub_(step * q)
                iterations += 1
                ahead = running & (row_norms(r) <= bound)
                periodic = iterations % self.check == 0 or iterations == self.max_iter
                if periodic or bool(ahead.any()):
                    true_r = b - apply(y)
                    true = row_norms(true_r)
                    looked = running if periodic else ahead
                    improved = looked & (true < best_res)
                    best = torch.where(improved[:, None], y, best)
                    best_res = torch.where(improved, true, best_res)
                    if periodic:
                        stale = torch.where(improved, 0, stale + 1)
                    converged = converged | (looked & (true <= bound))
                    running = running & ~converged & (stale < self.patience)
                    restart = ahead & running
                    r = torch.where(restart[:, None], true_r, r)
                    s = precond * r
                    p = torch.where(restart[:, None], s, p)
                    rs_next = _row_dot(r, s)
                    beta = torch.where(restart, 0.0, _safe_div(rs_next, rs))
                else:
                    s = precond * r
                    rs_next = _row_dot(r, s)
                    beta = _safe_div(rs_next, rs)
                p = s + beta[:, None] * p
                rs = rs_next
            return best, iterations, converged
