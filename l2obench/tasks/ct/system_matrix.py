"""The sparse system matrix of a parallel-beam geometry: exact ray–pixel intersection lengths.

Entry ``A[r, p]`` is the length of ray ``r`` inside pixel ``p`` (Siddon, "Fast calculation of the
exact radiological path for a three-dimensional CT array", Med. Phys. 1985). So ``(A x)_r`` is the
exact line integral, along the ray through the bin's centre, of the image ``x`` taken as
piecewise constant on its pixels; it converges to the line integrals of the continuous object as
pixels shrink, with no interpolation kernel to tune, and its transpose is the exact adjoint (the
backprojection used by FBP, TV-min and the learned methods). Area-weighted strips would model
the bin's width as well; with bins about one pixel wide the difference is a blur well below the
noise, and line lengths keep ``A·1`` equal to each ray's chord through the grid exactly.

The matrix is built once per geometry in float64 with vectorised NumPy (every ray's crossings of
all grid lines at once) and kept in memory (:func:`system_matrix` is cached).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from l2obench.tasks.ct.geometry import ParallelBeamGeometry


def _ray_segments(geometry: ParallelBeamGeometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ray, pixel, length)`` of every non-empty ray–pixel intersection."""
    n = geometry.size
    half = n / 2.0
    theta = np.repeat(geometry.angles, geometry.detectors)
    s = np.tile(geometry.offsets, geometry.n_angles)
    px, py = s * np.cos(theta), s * np.sin(theta)
    dx, dy = -np.sin(theta), np.cos(theta)
    lines = np.arange(n + 1) - half
    with np.errstate(divide="ignore", invalid="ignore"):
        tx = (lines[None, :] - px[:, None]) / dx[:, None]
        ty = (lines[None, :] - py[:, None]) / dy[:, None]
    tx[~np.isfinite(tx)] = np.nan
    ty[~np.isfinite(ty)] = np.nan
    t = np.sort(np.concatenate([tx, ty], axis=1), axis=1)  # NaNs (parallel lines) sort last
    lengths = np.diff(t, axis=1)
    mid = 0.5 * (t[:, 1:] + t[:, :-1])
    x = px[:, None] + mid * dx[:, None]
    y = py[:, None] + mid * dy[:, None]
    with np.errstate(invalid="ignore"):
        col = np.floor(x + half)
        row = np.floor(half - y)
        keep = (lengths > 1e-12) & (col >= 0) & (col < n) & (row >= 0) & (row < n)
    rays = np.broadcast_to(np.arange(theta.size)[:, None], keep.shape)[keep]
    pixels = (row[keep] * n + col[keep]).astype(np.int64)
    return rays, pixels, lengths[keep]


@lru_cache(maxsize=8)
def system_matrix(geometry: ParallelBeamGeometry) -> sp.csr_matrix:
    """``A`` of ``geometry`` as a float64 CSR matrix ``[n_rays, n_pixels]`` (cached).

    Rays are ordered angle-major (``r = angle · detectors + bin``), pixels row-major.
    """
    rays, pixels, lengths = _ray_segments(geometry)
    a = sp.coo_matrix((lengths, (rays, pixels)), shape=(geometry.n_rays, geometry.n_pixels))
    a = a.tocsr()
    a.sum_duplicates()
    return a
