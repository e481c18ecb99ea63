"""The latent map of the fixed-point layer, a contraction in ``z`` by construction.

``T(z; x) = σ(Ŵ ⋆ (z + x) + c)``: a convolution ``Ŵ`` (``width`` channels, zero padding, bias
``c``) of the latent ``z`` plus the injected features ``x`` — the JFB paper's ``R(u, v)`` acts on
``u + v`` likewise, so that the explicit network ``T(0; x)`` uses the same weights — through
the 1-Lipschitz LeakyReLU ``σ``. The kernel is rescaled at every use to

    Ŵ = γ · W / max(1, b(W)),    b(W) = Σ_o ‖W[:, :, o]‖₂,

the sum over kernel offsets ``o`` of the spectral norms of the channel-mixing matrices. A
zero-padded convolution is ``Σ_o S_o ⊗ W_o`` with ``S_o`` a shift that drops what leaves the
signal (norm ≤ 1), so by the triangle inequality ``‖W ⋆ z‖₂ ≤ b(W) ‖z‖₂`` at every input size,
and ``‖T(z; x) − T(z'; x)‖ ≤ ‖Ŵ‖ ‖z − z'‖ ≤ γ ‖z − z'‖``: ``T`` is a ``γ``-contraction for any
parameters, so the fixed point exists, is unique, and plain iteration converges at rate ``γ``
(Banach). The JFB paper's networks instead rescale their latent convolutions whenever a
sampled ratio exceeds ``γ``, which bounds the constant only on the pairs sampled; this bound
holds everywhere, at the price of being loose by at most the kernel's size. ``b`` is
differentiable (through the singular value decompositions), so training sees the rescaling.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from l2obench.implicit.fixed_point import Operator

LEAKY_SLOPE = 0.1


def conv_norm_bound(weight: Tensor) -> Tensor:
    """``Σ_o ‖weight[:, :, o]‖₂`` over the kernel offsets ``o``: a bound on the ℓ₂ operator norm
    of the zero-padded convolution with ``weight[out, in, *kernel]``, whatever the input size."""
    per_offset = weight.flatten(2).permute(2, 0, 1)  # [offsets, out, in]
    return torch.linalg.matrix_norm(per_offset, ord=2).sum()


class LatentMap(nn.Module):
    """``T(z; x) = LeakyReLU(Ŵ ⋆ (z + x) + c)``, a ``contraction``-Lipschitz map of ``z`` (see the
    module's notes); ``spatial_dims`` is 1 for signals, 2 for images."""

    def __init__(self, width: int, spatial_dims: int, contraction: float, kernel: int = 3) -> None:
        super().__init__()
        if spatial_dims not in (1, 2):
            raise ValueError(f"spatial_dims must be 1 or 2, not {spatial_dims}")
        if not 0.0 < contraction < 1.0:
            raise ValueError(f"contraction must lie in (0, 1), not {contraction}")
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel must be odd and positive, not {kernel}")
        conv: type[nn.Conv1d] | type[nn.Conv2d] = nn.Conv1d if spatial_dims == 1 else nn.Conv2d
        self.conv = conv(width, width, kernel, padding=kernel // 2)
        self.contraction = contraction
        self.spatial_dims = spatial_dims

    def scaled_weight(self) -> Tensor:
        """``Ŵ = γ W / max(1, b(W))``, on the tape."""
        w = self.conv.weight
        return w * (self.contraction / torch.clamp(conv_norm_bound(w), min=1.0))

    def lipschitz_bound(self) -> float:
        """The certified Lipschitz constant of ``T`` in ``z``: ``γ · min(1, b(W)) ≤ γ``."""
        with torch.no_grad():
            b = float(conv_norm_bound(self.conv.weight))
        return self.contraction * min(1.0, b)

    def operator(self) -> Operator:
        """``fn(z, x) = T(z; x)`` with ``Ŵ`` computed once, for a fixed-point solver and a backward
        mode: ``x`` is batch-aligned with ``z``; the parameters reach ``fn`` through ``Ŵ``."""
        weight, bias = self.scaled_weight(), self.conv.bias
        pad = self.conv.padding
        conv = F.conv1d if self.spatial_dims == 1 else F.conv2d

        def fn(z: Tensor, x: Tensor) -> Tensor:
            return F.leaky_relu(conv(z + x, weight, bias, padding=pad), LEAKY_SLOPE)

        return fn

    def forward(self, z: Tensor, x: Tensor) -> Tensor:
        """One application ``T(z; x)``."""
        return self.operator()(z, x)
