"""TV-min: the anisotropic total variation subject to data fidelity and the box, by PDHG.

    min_x ‖D x‖₁   subject to   ‖A x − d‖₂ ≤ ε,   0 ≤ x ≤ 1,

with ``D`` the forward differences along rows and columns (zero across the last row/column),
``ε = fidelity · ‖d‖`` (``fidelity`` the parameter to tune, about the relative noise level). The
solver is the primal–dual hybrid gradient method (Chambolle & Pock, "A first-order primal-dual
algorithm for convex problems with applications to imaging", JMIV 2011) on ``K = [D; A/‖A‖]``:
the ℓ₁ term and the ball (scaled by ``1/‖A‖`` with ``A``, an equivalent constraint) are handled
through their conjugates' proximal maps, the box by clamping, with ``τ = σ = 0.99/‖K‖``,
``‖K‖² ≤ 8 + 1``. One PDHG step is a fixed-point operator on the packed primal–dual state, solved
by :class:`~l2obench.implicit.fixed_point.Picard` with per-instance stopping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from l2obench.errors import ParameterError
from l2obench.implicit.fixed_point import FixedPointStats, Picard
from l2obench.tasks.ct.operator import RayTransform


def gradient(x: Tensor) -> Tensor:
    """``D x`` for images ``[N, n, n]``: ``[N, 2, n, n]`` (row- then column-differences)."""
    g = torch.zeros(x.shape[0], 2, *x.shape[1:], dtype=x.dtype, device=x.device)
    g[:, 0, :, :-1] = x[:, :, 1:] - x[:, :, :-1]
    g[:, 1, :-1, :] = x[:, 1:, :] - x[:, :-1, :]
    return g


def gradient_adjoint(g: Tensor) -> Tensor:
    """``Dᵀ g`` for ``g[N, 2, n, n]``: images ``[N, n, n]``."""
    h, v = g[:, 0], g[:, 1]
    out = torch.zeros_like(h)
    out[:, :, :-1] -= h[:, :, :-1]
    out[:, :, 1:] += h[:, :, :-1]
    out[:, :-1, :] -= v[:, :-1, :]
    out[:, 1:, :] += v[:, :-1, :]
    return out


def anisotropic_tv(x: Tensor) -> Tensor:
    """``‖D x‖₁`` per image: ``[N]``."""
    return gradient(x).abs().flatten(1).sum(dim=1)


def project_ball(u: Tensor, centre: Tensor, radius: Tensor) -> Tensor:
    """Rows of ``u[N, m]`` projected onto the balls ``‖· − centre_i‖ ≤ radius_i``."""
    r = u - centre
    dist = torch.linalg.vector_norm(r, dim=1, keepdim=True)
    scale = torch.clamp(radius[:, None] / dist.clamp_min(torch.finfo(u.dtype).tiny), max=1.0)
    return centre + scale * r


@dataclass(frozen=True)
class TVMin:
    """TV-min by PDHG; ``fidelity`` the relative bound ``ε / ‖d‖``, ``tol`` PDHG's stopping
    threshold on the change of the (scaled) primal–dual state, ``max_iter`` its cap, and
    ``balance`` the ratio ``σ/τ`` of the dual and primal steps (``τσ‖K‖² < 1`` either way): it
    changes how fast PDHG converges, not where."""

    fidelity: float = 0.02
    tol: float = 1e-4
    max_iter: int = 2000
    balance: float = 30.0

    def __post_init__(self) -> None:
        if not (isinstance(self.balance, int | float) and self.balance > 0):
            raise ParameterError(f"TV-min's step balance must be positive, not {self.balance!r}")
        if not (isinstance(self.fidelity, int | float) and 0.0 < self.fidelity < 1.0):
            raise ParameterError(
                f"TV-min's fidelity bound must be in (0, 1), not {self.fidelity!r}")

    def __call__(self, measurements: Tensor, op: RayTransform,
                 x0: Tensor | None = None) -> tuple[Tensor, FixedPointStats]:
        """Reconstructions ``[N, n, n]`` of ``measurements[N, A, D]`` and the solve's stats."""
        g = op.geometry
        n_pix, n_rays = g.n_pixels, g.n_rays
        scale = op.norm()
        d = measurements.reshape(-1, n_rays).to(op.dtype) / scale
        radius = self.fidelity * torch.linalg.vector_norm(d, dim=1)
        tau = 0.99 / (math.sqrt(9.0) * self.balance)
        sigma = 0.99 * self.balance / math.sqrt(9.0)

        def pdhg(z: Tensor, d: Tensor, radius: Tensor) -> Tensor:
            """One Chambolle–Pock step on ``z = [x, x̄ − x, y₁, y₂]`` (rows)."""
            x = z[:, :n_pix].reshape(-1, g.size, g.size)
            x_bar = x + z[:, n_pix:2 * n_pix].reshape(x.shape)
            y1 = z[:, 2 * n_pix:4 * n_pix].reshape(-1, 2, g.size, g.size)
            y2 = z[:, 4 * n_pix:]
            y1 = torch.clamp(y1 + sigma * gradient(x_bar), -1.0, 1.0)
            v = y2 + sigma * op.forward(x_bar).reshape(-1, n_rays) / scale
            y2 = v - sigma * project_ball(v / sigma, d, radius)
            back = gradient_adjoint(y1) + op.adjoint(y2.reshape(-1, *g.sinogram_shape)) / scale
            x_new = torch.clamp(x - tau * back, 0.0, 1.0)
            return torch.cat([x_new.flatten(1), (x_new - x).flatten(1), y1.flatten(1), y2], 1)

        n = d.shape[0]
        x_start = (x0.to(op.dtype) if x0 is not None
                   else torch.zeros(n, g.size, g.size, dtype=op.dtype, device=op.device))
        z0 = torch.cat([x_start.flatten(1), d.new_zeros(n, 3 * n_pix + n_rays)], dim=1)
        solver = Picard(tol=self.tol, max_iter=self.max_iter)
        z, stats = solver(pdhg, z0, (d, radius))
        return z[:, :n_pix].reshape(-1, g.size, g.size), stats
