"""The ray transform as a batched torch operator: ``A`` and its exact adjoint ``Aᵀ``.

Both apply the cached system matrix (:func:`~l2obench.tasks.ct.system_matrix.system_matrix`)
as torch sparse CSR tensors on the requested device, to a batch of images ``[N, n, n]`` or of
sinograms ``[N, n_angles, detectors]`` at once. :meth:`RayTransform.forward` and
:meth:`RayTransform.adjoint` are differentiable (each one's backward is the other), so learned
methods can put the physics inside a network.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from l2obench.tasks.ct.geometry import ParallelBeamGeometry
from l2obench.tasks.ct.system_matrix import system_matrix


def to_torch_csr(m: sp.csr_matrix, device: torch.device, dtype: torch.dtype) -> Tensor:
    """A SciPy CSR matrix as a torch sparse CSR tensor of ``dtype`` on ``device``."""
    with warnings.catch_warnings():  # torch's notice that sparse CSR support is in beta
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(
            torch.from_numpy(m.indptr.astype(np.int64)),
            torch.from_numpy(m.indices.astype(np.int64)),
            torch.from_numpy(m.data),
            size=m.shape,
            dtype=dtype,
            device=device,
            check_invariants=False,  # built by SciPy from sorted, deduplicated COO
        )


class _Apply(torch.autograd.Function):
    """``y = M x`` for rows ``x[N, k]``; the backward applies ``Mᵀ`` (given as its own CSR)."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, m: Tensor, mt: Tensor) -> Tensor:
        ctx.mt, ctx.m = mt, m
        return (m @ x.T).T

    @staticmethod
    def backward(ctx: Any, g: Tensor) -> tuple[Tensor, None, None]:
        return (ctx.mt @ g.T).T, None, None


class RayTransform:
    """``A`` (images → sinograms) and ``Aᵀ`` (sinograms → images) of one geometry on a device."""

    def __init__(
        self,
        geometry: ParallelBeamGeometry,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.geometry = geometry
        self.device = torch.device(device)
        self.dtype = dtype
        a = system_matrix(geometry)
        self.matrix = to_torch_csr(a, self.device, dtype)
        self.matrix_t = to_torch_csr(a.T.tocsr(), self.device, dtype)
        self._norm: float | None = None

    def forward(self, images: Tensor) -> Tensor:
        """``A x`` for ``images[N, n, n]``: sinograms ``[N, n_angles, detectors]``."""
        g = self.geometry
        rows = images.reshape(images.shape[0], g.n_pixels)
        return _Apply.apply(rows, self.matrix, self.matrix_t).reshape(-1, *g.sinogram_shape)

    def adjoint(self, sinograms: Tensor) -> Tensor:
        """``Aᵀ y`` for ``sinograms[N, n_angles, detectors]``: images ``[N, n, n]``."""
        g = self.geometry
        rows = sinograms.reshape(sinograms.shape[0], g.n_rays)
        return _Apply.apply(rows, self.matrix_t, self.matrix).reshape(-1, g.size, g.size)

    __call__ = forward

    def norm(self, iterations: int = 100) -> float:
        """``‖A‖₂`` by power iteration on ``AᵀA`` (cached after the first call)."""
        if self._norm is None:
            gen = torch.Generator().manual_seed(0)
            x = torch.rand(1, self.geometry.size, self.geometry.size, generator=gen,
                           dtype=self.dtype).to(self.device)
            with torch.no_grad():
                for _ in range(iterations):
                    x = self.adjoint(self.forward(x))
                    x = x / torch.linalg.vector_norm(x)
                self._norm = float(torch.linalg.vector_norm(self.forward(x)))
        return self._norm
