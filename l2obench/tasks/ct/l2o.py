"""The implicit L2O model of Heaton & Wu Fung ("Explainable AI via learning to optimize", Sci.
Rep. 2023): a reconstruction is the solution of a learned, constrained optimisation problem

    x(d) ∈ argmin_{x ∈ [0,1]ⁿ} f_Θ(K x)   subject to   ‖A x − d‖ ≤ e^δ ‖d‖,

with ``K`` a learned convolution (1 → ``channels``, 3×3) and ``f_Θ`` known only through its
learned proximal map ``R_Θ`` (three residual 5×5 convolutions with leaky ReLU), solved by
linearized ADMM (L-ADMM). With ``p = K x`` and ``w = A x`` split off, one step on the state
``z = (x, p, w, ν₁, ν₂)`` is

    p⁺ = R_Θ(p + λ(ν₁ + α(K x − p)))
    w⁺ = P_{B(d, ε)}(w + λ(ν₂ + α(A x − w)))
    ν₁⁺ = ν₁ + α(K x − p⁺),   ν₂⁺ = ν₂ + α(A x − w⁺)
    x⁺ = P_[0,1](x − β(Kᵀ(2ν₁⁺ − ν₁) + Aᵀ(2ν₂⁺ − ν₂)))

(``x`` last, so that the one taped application of JFB reaches every parameter). ``A`` and ``d``
are divided by ``‖A‖`` (the same constraint) and ``K``'s weights by a bound on its norm, so that
``β α (‖K‖² + ‖A‖²) < 1`` holds for the fixed step sizes. The fixed point is found by the shared
solvers and differentiated by the shared backward modes (JFB, Unrolled(K), Implicit).

Outputs lie in the box (the last operation is a clamp) and, outside training, within the
fidelity bound: :meth:`ImplicitL2O.restore_feasibility` takes projected-gradient steps on
``½‖A x − d‖²`` over the box from the L-ADMM point, per instance, until ``‖A x − d‖ ≤ ε``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from l2obench.implicit.backward import JFB, Backward
from l2obench.implicit.fixed_point import FixedPointSolver, FixedPointStats, Picard
from l2obench.tasks.ct.fbp import fbp
from l2obench.tasks.ct.operator import RayTransform
from l2obench.tasks.ct.tv import project_ball

ALPHA, LAMBDA, BETA = 1.0, 0.5, 0.45  # β α (‖K‖² + ‖A‖²) ≤ 0.45 · 2 < 1


class LearnedProx(nn.Module):
    """``R_Θ``: three residual 5×5 convolutions with leaky ReLU, ``channels`` → ``channels``.

    Initialised as ``p ↦ p + σ(−c p)`` per layer (each kernel ``−c`` at its centre on the
    diagonal, zero elsewhere): an elementwise, nondecreasing map with slopes in ``(0, 1)``, hence
    the proximal map of a strongly convex separable function. The untrained model is thus a
    well-posed convex problem whose L-ADMM iteration converges; training moves from there.
    """

    def __init__(self, channels: int, shrink: float = 0.1) -> None:
        super().__init__()
        convs = [nn.Conv2d(channels, channels, 5, padding=2) for _ in range(3)]
        with torch.no_grad():
            for conv in convs:
                weight = torch.zeros_like(conv.weight)
                weight[:, :, 2, 2] = -shrink * torch.eye(channels)
                conv.weight.copy_(weight)
                if conv.bias is not None:
                    conv.bias.zero_()
        self.convs = nn.ModuleList(convs)
        self.act = nn.LeakyReLU(0.1)

    def forward(self, p: Tensor) -> Tensor:
        for conv in self.convs:
            p = p + self.act(conv(p))
        return p


class ImplicitL2O(nn.Module):
    """Measurements ``[N, A, D]`` → the L-ADMM fixed point's image ``[N, n, n]``."""

    def __init__(self, op: RayTransform, channels: int = 2, delta: float = math.log(0.05),
                 shrink: float = 0.1,
                 solver: FixedPointSolver | None = None, backward: Backward | None = None,
                 restore_steps: int = 500) -> None:
        super().__init__()
        self.op = op
        self.channels = channels
        dt, dev = op.dtype, op.device
        self.kernel = nn.Parameter(torch.randn(channels, 1, 3, 3, dtype=dt, device=dev) / 3.0)
        self.prox = LearnedProx(channels, shrink).to(dtype=dt, device=dev)
        self.delta = nn.Parameter(torch.tensor(delta, dtype=dt, device=dev))
        self.solver = solver if solver is not None else Picard(tol=1e-3, max_iter=300)
        self.backward_mode = backward if backward is not None else JFB()
        self.restore_steps = restore_steps
        self.scale = op.norm()
        self.last_stats: FixedPointStats | None = None

    # --- the pieces ---------------------------------------------------------------------------

    def _kernel(self) -> Tensor:
        """``K``'s weights scaled so that ``‖K‖₂ ≤ 1`` (``‖K‖² ≤ Σ_c (Σ |w_c|)²``)."""
        bound = self.kernel.abs().flatten(1).sum(dim=1).pow(2).sum().sqrt()
        return self.kernel / torch.clamp(bound, min=1.0)

    def sizes(self) -> list[int]:
        """Lengths of ``(x, p, w, ν₁, ν₂)`` in the packed state."""
        g = self.op.geometry
        return [g.n_pixels, self.channels * g.n_pixels, g.n_rays,
                self.channels * g.n_pixels, g.n_rays]

    def bound(self, d: Tensor) -> Tensor:
        """``ε = e^δ ‖d‖`` per instance, for (scaled or not) data ``d[N, ...]``."""
        return torch.exp(self.delta) * torch.linalg.vector_norm(d.flatten(1), dim=1)

    def step(self, z: Tensor, d: Tensor) -> Tensor:
        """One L-ADMM step on packed states ``z[N, ·]`` for scaled data ``d[N, m]``."""
        g = self.op.geometry
        n, c = g.size, self.channels
        x, p, w, nu1, nu2 = torch.split(z, self.sizes(), dim=1)
        kernel = self._kernel()
        img = x.reshape(-1, 1, n, n)

        def a(v: Tensor) -> Tensor:
            return self.op.forward(v.reshape(-1, n, n)).reshape(-1, g.n_rays) / self.scale

        def at(v: Tensor) -> Tensor:
            return self.op.adjoint(v.reshape(-1, *g.sinogram_shape)).reshape(-1, g.n_pixels) \
                / self.scale

        kx = F.conv2d(img, kernel, padding=1).flatten(1)
        ax = a(x)
        p_new = self.prox((p + LAMBDA * (nu1 + ALPHA * (kx - p))).reshape(-1, c, n, n)).flatten(1)
        w_new = project_ball(w + LAMBDA * (nu2 + ALPHA * (ax - w)), d, self.bound(d))
        nu1_new = nu1 + ALPHA * (kx - p_new)
        nu2_new = nu2 + ALPHA * (ax - w_new)
        kt = F.conv_transpose2d((2 * nu1_new - nu1).reshape(-1, c, n, n), kernel, padding=1)
        x_new = torch.clamp(x - BETA * (kt.flatten(1) + at(2 * nu2_new - nu2)), 0.0, 1.0)
        return torch.cat([x_new, p_new, w_new, nu1_new, nu2_new], dim=1)

    def restore_feasibility(self, x: Tensor, d: Tensor) -> Tensor:
        """Projected-gradient steps on ``½‖A x − d‖²`` over the box (``d`` scaled, so step 1 is
        ``1/‖A‖²``), for the instances still outside ``‖A x − d‖ ≤ ε``; stops per instance."""
        g = self.op.geometry
        eps = self.bound(d)[:, None]

        def restore(x: Tensor, d: Tensor, eps: Tensor) -> Tensor:
            r = self.op.forward(x.reshape(-1, g.size, g.size)).reshape(-1, g.n_rays) / self.scale \
                - d
            outside = torch.linalg.vector_norm(r, dim=1, keepdim=True) > eps
            grad = self.op.adjoint(r.reshape(-1, *g.sinogram_shape)).reshape(x.shape) / self.scale
            return torch.where(outside, torch.clamp(x - grad, 0.0, 1.0), x)

        solver = Picard(tol=1e-12, max_iter=self.restore_steps)
        out, _ = solver(restore, x.detach(), (d, eps.detach()))
        return out

    def initial_state(self, measurements: Tensor, d: Tensor) -> Tensor:
        """The L-ADMM start: ``x₀`` the FBP clamped to the box, ``p₀ = K x₀``, ``w₀`` the
        projection of ``A x₀`` onto the ball, zero multipliers (no tape)."""
        g = self.op.geometry
        with torch.no_grad():
            x = torch.clamp(fbp(measurements, self.op), 0.0, 1.0)
            p = F.conv2d(x[:, None], self._kernel(), padding=1).flatten(1)
            ax = self.op.forward(x).reshape(-1, g.n_rays) / self.scale
            w = project_ball(ax, d, self.bound(d))
            zeros = d.new_zeros(d.shape[0], self.sizes()[3] + self.sizes()[4])
            return torch.cat([x.flatten(1), p, w, zeros], dim=1)

    def forward(self, measurements: Tensor) -> Tensor:
        g = self.op.geometry
        measurements = measurements.to(self.op.dtype)
        d = measurements.reshape(-1, g.n_rays) / self.scale
        z0 = self.initial_state(measurements, d)
        fn: Any = self.step
        z, self.last_stats = self.backward_mode(fn, z0, (d,), self.solver)
        x = z[:, : g.n_pixels]
        if not self.training:
            x = self.restore_feasibility(x, d)
        return x.reshape(-1, g.size, g.size)
