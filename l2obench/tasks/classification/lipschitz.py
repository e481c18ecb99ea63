"""Measurements of a map's Lipschitz constant, independent of how the map was built.

Used to check the construction of :mod:`.contractive`: a lower bound from random pairs (what
the map actually does) and the exact ℓ₂ operator norm of a linear map by power iteration (what
the certified bound should dominate).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from l2obench.implicit.linear_solvers import row_norms


def pair_ratios(fn: Callable[[Tensor], Tensor], z: Tensor, scale: float,
                generator: torch.Generator) -> Tensor:
    """``‖fn(z_i) − fn(z'_i)‖ / ‖z_i − z'_i‖`` per instance, ``z' = z + scale · ε`` with Gaussian
    ``ε``: each is a lower bound on ``fn``'s Lipschitz constant (in ℓ₂ over each instance)."""
    with torch.no_grad():
        eps = torch.randn(z.shape, generator=generator, dtype=z.dtype, device=z.device)
        z2 = z + scale * eps
        return row_norms(fn(z) - fn(z2)) / row_norms(z - z2)


def operator_norm(linear: Callable[[Tensor], Tensor], shape: tuple[int, ...], *,
                  iterations: int = 500, generator: torch.Generator | None = None,
                  dtype: torch.dtype = torch.float64) -> float:
    """``‖A‖₂`` of a linear map ``A`` on inputs of ``shape`` (no batch axis), by power iteration
    on ``AᵀA`` with ``Aᵀ`` from autograd: the largest singular value, from below."""
    v = torch.randn((1, *shape), generator=generator, dtype=dtype)
    v = v / row_norms(v)[0]
    sigma = 0.0
    for _ in range(iterations):
        x = v.clone().requires_grad_(True)
        y = linear(x)
        (ata_v,) = torch.autograd.grad(y, x, y.detach())  # Aᵀ A v
        norm = float(row_norms(ata_v)[0])
        if norm == 0.0:
            return 0.0
        v = ata_v.detach() / norm
        sigma = norm ** 0.5
    return sigma
