"""Filtered backprojection: the ramp-filtered sinogram, backprojected by linear interpolation.

The filter is the Ram–Lak ramp in its spatial-domain discretisation (Kak & Slaney, "Principles of
Computerized Tomographic Imaging", 1988, eq. 3.61: ``h[0] = 1/(4Δ²)``, ``h[k] = −1/(π k Δ)²`` for
odd ``k``, 0 for even ``k ≠ 0``), applied by FFT on a zero-padded detector axis (no wrap-around),
as scikit-image's ``iradon`` with ``filter_name="ramp"``.

The backprojection ``(π / n_angles) Σ_θ q(θ, ⟨c_p, e(θ)⟩)`` samples each filtered projection at
every pixel centre ``c_p`` by linear interpolation between the two nearest bins (pixel-driven, as
``iradon``), held as a sparse matrix built once per geometry. The system matrix's transpose is
not used here: it spreads each ray over the pixels it crosses, in steps of whole lengths, which
adds a pixel-scale pattern to the ramp-filtered data that does not fade as pixels shrink.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from l2obench.tasks.ct.geometry import ParallelBeamGeometry
from l2obench.tasks.ct.operator import RayTransform, to_torch_csr
from l2obench.tasks.ct.phantoms import pixel_centres


def ramp_kernel(n_detectors: int, spacing: float, dtype: torch.dtype = torch.float64,
                device: torch.device | str = "cpu") -> tuple[Tensor, int]:
    """The ramp filter's frequency response on a padded length: ``(response[L//2+1], L)``."""
    length = max(64, 1 << math.ceil(math.log2(2 * n_detectors)))
    k = torch.arange(length, dtype=dtype, device=device)
    k = torch.minimum(k, length - k)  # circular distance
    h = torch.zeros(length, dtype=dtype, device=device)
    h[0] = 0.25
    odd = k % 2 == 1
    h[odd] = -1.0 / (math.pi * k[odd]) ** 2
    return torch.fft.rfft(h).real / spacing, length


def ramp_filter(sinograms: Tensor, spacing: float) -> Tensor:
    """The sinograms ``[N, A, D]`` convolved with the ramp along the detector axis."""
    d = sinograms.shape[-1]
    response, length = ramp_kernel(d, spacing, sinograms.dtype, sinograms.device)
    spectrum = torch.fft.rfft(sinograms, n=length, dim=-1) * response
    return torch.fft.irfft(spectrum, n=length, dim=-1)[..., :d]


@lru_cache(maxsize=8)
def interpolating_backprojector(geometry: ParallelBeamGeometry) -> sp.csr_matrix:
    """``B[n_pixels, n_rays]``: ``(B q)_p = Σ_θ q(θ, ⟨c_p, e(θ)⟩)``, linear in ``s`` (cached).

    Samples that fall outside the detector take the value 0.
    """
    x, y = pixel_centres(geometry.size)
    x, y = x.ravel(), y.ravel()
    pixels, rays, weights = [], [], []
    for k, theta in enumerate(geometry.angles):
        s = x * math.cos(theta) + y * math.sin(theta)
        f = (s - geometry.offsets[0]) / geometry.detector_spacing
        lo = np.floor(f).astype(np.int64)
        frac = f - lo
        for index, w in ((lo, 1.0 - frac), (lo + 1, frac)):
            ok = (index >= 0) & (index < geometry.detectors)
            pixels.append(np.nonzero(ok)[0])
            rays.append(k * geometry.detectors + index[ok])
            weights.append(w[ok])
    b = sp.coo_matrix((np.concatenate(weights), (np.concatenate(pixels), np.concatenate(rays))),
                      shape=(geometry.n_pixels, geometry.n_rays))
    return b.tocsr()


def fbp(sinograms: Tensor, op: RayTransform) -> Tensor:
    """Filtered backprojection of ``sinograms[N, A, D]``: images ``[N, n, n]`` on their device."""
    g = op.geometry
    q = ramp_filter(sinograms, g.detector_spacing).reshape(sinograms.shape[0], g.n_rays)
    b = to_torch_csr(interpolating_backprojector(g), sinograms.device, sinograms.dtype)
    return (b @ q.T).T.reshape(-1, g.size, g.size) * (math.pi / g.n_angles)
