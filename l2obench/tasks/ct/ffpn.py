"""F-FPN: the feasibility-based fixed point network (Heaton, Wu Fung, Gibali & Yin, "Feasibility-
based fixed point networks", Fixed Point Theory Algorithms Sci. Eng. 2021), trained with JFB.

The reconstruction is the fixed point ``u* = T(u*; d)`` of

    T(u; d) = P_[0,1]( v − ω C Aᵀ R (A v − d) ),   v = u + N_Θ(u),

a learned regulariser step (a residual CNN) followed by one SART step towards the measurements
(``R`` and ``C`` the inverse row and column sums of ``A``, ``ω ∈ (0, 2)``; Andersen & Kak,
"Simultaneous algebraic reconstruction technique", Ultrasonic Imaging 1984), whose fixed points
are the data-consistent images when ``N_Θ = 0``. The CNN's convolutions are divided by their
weights' Frobenius norm (when above 1) and scaled by ``gain`` so that ``u ↦ u + N_Θ(u)`` stays
close to nonexpansive, as the paper's Lipschitz normalisation intends. Gradients come from the
shared backward modes; the paper's choice, and the default, is JFB.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from l2obench.implicit.backward import JFB, Backward
from l2obench.implicit.fixed_point import FixedPointSolver, FixedPointStats, Picard
from l2obench.tasks.ct.operator import RayTransform
from l2obench.tasks.ct.system_matrix import system_matrix


class _BoundedConv(nn.Conv2d):
    """A convolution whose weight is divided by ``max(1, ‖W‖_F)``: a fixed function of the
    parameters (no running estimate), so the operator stays the same during a solve."""

    def forward(self, x: Tensor) -> Tensor:
        w = self.weight / torch.clamp(torch.linalg.vector_norm(self.weight), min=1.0)
        return self._conv_forward(x, w, self.bias)


class ResidualCNN(nn.Module):
    """``N_Θ``: convolutions with leaky ReLU between them, each weight norm-bounded."""

    def __init__(self, channels: int, layers: int = 4, kernel: int = 5, gain: float = 0.5) -> None:
        super().__init__()
        sizes = [1] + [channels] * (layers - 1) + [1]
        self.convs = nn.ModuleList(
            _BoundedConv(a, b, kernel, padding=kernel // 2)
            for a, b in itertools.pairwise(sizes))
        self.act = nn.LeakyReLU(0.1)
        self.gain = gain

    def forward(self, u: Tensor) -> Tensor:
        h = u
        for i, conv in enumerate(self.convs):
            h = conv(h)
            if i + 1 < len(self.convs):
                h = self.act(h)
        return self.gain * h


class FFPN(nn.Module):
    """Measurements ``[N, A, D]`` → the fixed point of ``T(·; d)`` → images ``[N, n, n]``."""

    def __init__(self, op: RayTransform, channels: int = 44, omega: float = 1.0,
                 solver: FixedPointSolver | None = None, backward: Backward | None = None) -> None:
        super().__init__()
        self.op = op
        self.net = ResidualCNN(channels).to(dtype=op.dtype, device=op.device)
        self.omega = omega
        self.solver = solver if solver is not None else Picard(tol=1e-3, max_iter=100)
        self.backward_mode = backward if backward is not None else JFB()
        a = system_matrix(op.geometry)
        rows = np.asarray(a.sum(axis=1)).ravel()
        cols = np.asarray(a.sum(axis=0)).ravel()
        inv = lambda v: np.where(v > 0, 1.0 / np.where(v > 0, v, 1.0), 0.0)  # noqa: E731
        self.inv_rows = torch.as_tensor(inv(rows), dtype=op.dtype, device=op.device)
        self.inv_cols = torch.as_tensor(inv(cols), dtype=op.dtype, device=op.device)
        self.last_stats: FixedPointStats | None = None

    def step(self, u: Tensor, d: Tensor) -> Tensor:
        """``T(u; d)`` for images ``u[N, n, n]``."""
        g = self.op.geometry
        v = u + self.net(u[:, None])[:, 0]
        r = (self.op.forward(v) - d).reshape(-1, g.n_rays) * self.inv_rows
        back = self.op.adjoint(r.reshape(-1, *g.sinogram_shape)).reshape(-1, g.n_pixels)
        v = v - self.omega * (back * self.inv_cols).reshape(v.shape)
        return torch.clamp(v, 0.0, 1.0)

    def forward(self, measurements: Tensor) -> Tensor:
        d = measurements.to(self.op.dtype)
        g = self.op.geometry
        u0 = d.new_zeros(d.shape[0], g.size, g.size)
        fn: Any = self.step
        u, self.last_stats = self.backward_mode(fn, u0, (d,), self.solver)
        return u
