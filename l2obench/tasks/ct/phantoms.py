"""Random-ellipse phantoms, their pixel images and their exact line integrals.

The recipe is dival's ``EllipsesDataset`` (Leuschner et al., "The LoDoPaB-CT dataset", 2021), the
training data of Heaton & Wu Fung (Sci. Rep. 2023): ``min(Poisson(40), 70)`` ellipses of value
``U(−0.4, 1)``, half-axes ``0.2·Exp(1)``, centres ``U(−0.9, 0.9)²`` and rotation ``U(0, 2π)``, in
coordinates where the grid is ``[−1, 1]²``; the summed image is shifted by its minimum and
divided by its maximum into ``[0, 1]``.

A phantom here is that continuous function, ``f = (Σ_k v_k 1_{E_k} − m) / M`` on the grid's
square, with ``m`` and ``M`` taken from its pixel image so that the image lies in ``[0, 1]``.
Its line integrals are exact (closed form for each ellipse, and the chord of the square for the
constant ``−m``), so measurements never come from the discrete operator that the methods
reconstruct with (no inverse crime).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l2obench.tasks.ct.geometry import ParallelBeamGeometry

MEAN_ELLIPSES, MAX_ELLIPSES = 40, 70
#: Sub-samples per pixel side for the pixel image: the image is the mean over a
#: ``SUPERSAMPLE × SUPERSAMPLE`` grid of points in each pixel (an approximation of the pixel
#: average, i.e. of the L² projection of ``f`` onto pixel-wise constant images).
SUPERSAMPLE = 4


@dataclass(frozen=True)
class Ellipses:
    """Ellipses in grid-relative coordinates (the grid is ``[−1, 1]²``), arrays of length K."""

    values: np.ndarray
    centres: np.ndarray  # [K, 2] (x, y)
    half_axes: np.ndarray  # [K, 2] (a along the rotated x-axis, b)
    rotations: np.ndarray  # [K] radians

    def scaled(self, size: int) -> Ellipses:
        """The same ellipses in the unit-pixel coordinates of a ``size × size`` grid."""
        half = size / 2.0
        return Ellipses(self.values, self.centres * half, self.half_axes * half, self.rotations)


def random_ellipses(rng: np.random.Generator) -> Ellipses:
    """One draw of dival's random-ellipse recipe (see the module docstring)."""
    k = MAX_ELLIPSES
    values = rng.uniform(-0.4, 1.0, k)
    half_axes = 0.2 * rng.exponential(1.0, (k, 2))
    centres = rng.uniform(-0.9, 0.9, (k, 2))
    rotations = rng.uniform(0.0, 2.0 * np.pi, k)
    n = min(int(rng.poisson(MEAN_ELLIPSES)), MAX_ELLIPSES)
    return Ellipses(values[:n], centres[:n], half_axes[:n], rotations[:n])


def pixel_centres(size: int, supersample: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """``(x, y)`` of the sample points of a ``size × size`` grid, ``[size·s, size·s]`` each."""
    h = size * supersample
    c = (np.arange(h) + 0.5) / supersample - size / 2.0
    x = np.broadcast_to(c[None, :], (h, h))
    y = np.broadcast_to(-c[:, None], (h, h))
    return x, y


def ellipse_image(ellipses: Ellipses, size: int, supersample: int = SUPERSAMPLE) -> np.ndarray:
    """``Σ_k v_k 1_{E_k}`` averaged over ``supersample²`` points per pixel: ``[size, size]``."""
    e = ellipses.scaled(size)
    x, y = pixel_centres(size, supersample)
    img = np.zeros(x.shape)
    for v, (cx, cy), (a, b), phi in zip(e.values, e.centres, e.half_axes, e.rotations,
                                        strict=True):
        dx, dy = x - cx, y - cy
        u = dx * np.cos(phi) + dy * np.sin(phi)
        w = -dx * np.sin(phi) + dy * np.cos(phi)
        img += v * ((u / a) ** 2 + (w / b) ** 2 <= 1.0)
    return img.reshape(size, supersample, size, supersample).mean(axis=(1, 3))


def ellipse_projections(ellipses: Ellipses, geometry: ParallelBeamGeometry) -> np.ndarray:
    """Exact line integrals of ``Σ_k v_k 1_{E_k}`` over the grid's square along every ray:
    ``[n_angles, detectors]``.

    The phantom lives on the square (ellipses may reach past it), so each ellipse contributes
    ``v_k`` times the length of the intersection of two intervals of the ray parameter ``t``: the
    ellipse's chord, the roots of the quadratic ``(p(t) − c)ᵀ M (p(t) − c) = 1`` with
    ``M = R diag(a⁻², b⁻²) Rᵀ``, and the square's (:func:`square_chords`).
    """
    e = ellipses.scaled(geometry.size)
    theta = geometry.angles[:, None, None]
    s = geometry.offsets[None, :, None]
    lo, hi = _square_interval(geometry)
    lo, hi = lo[..., None], hi[..., None]
    cos_t, sin_t = np.cos(theta), np.sin(theta)
    a, b, phi = e.half_axes[:, 0], e.half_axes[:, 1], e.rotations
    # ⟨e, M e⟩, ⟨e, M e⊥⟩, ⟨e⊥, M e⊥⟩ with e = (cos θ, sin θ), e⊥ = (−sin θ, cos θ)
    cu, su = np.cos(theta - phi), np.sin(theta - phi)  # e in the ellipse's frame: (cu, su)
    m_ee = cu**2 / a**2 + su**2 / b**2
    m_ep = -cu * su / a**2 + su * cu / b**2
    m_pp = su**2 / a**2 + cu**2 / b**2
    sigma = s - (e.centres[:, 0] * cos_t + e.centres[:, 1] * sin_t)
    centre_t = -e.centres[:, 0] * sin_t + e.centres[:, 1] * cos_t
    disc = np.clip((sigma * m_ep) ** 2 - m_pp * (sigma**2 * m_ee - 1.0), 0.0, None)
    mid = centre_t - sigma * m_ep / m_pp
    half = np.sqrt(disc) / m_pp
    length = np.clip(np.minimum(mid + half, hi) - np.maximum(mid - half, lo), 0.0, None)
    return (e.values * length).sum(axis=-1)


def _square_interval(geometry: ParallelBeamGeometry) -> tuple[np.ndarray, np.ndarray]:
    """``(t_in, t_out)`` of every ray in the grid's square (``t_in = t_out`` if it misses it)."""
    half = geometry.size / 2.0
    theta = geometry.angles[:, None]
    s = geometry.offsets[None, :]
    px, py = s * np.cos(theta), s * np.sin(theta)  # a point on the ray
    dx, dy = -np.sin(theta), np.cos(theta)  # its direction
    lo, hi = np.full(px.shape, -np.inf), np.full(px.shape, np.inf)
    for p, d in ((px, dx), (py, dy)):
        d = np.broadcast_to(d, p.shape)
        moving = np.abs(d) > 1e-15
        with np.errstate(divide="ignore", invalid="ignore"):
            t1, t2 = (-half - p) / d, (half - p) / d
        lo = np.where(moving, np.maximum(lo, np.minimum(t1, t2)), lo)
        hi = np.where(moving, np.minimum(hi, np.maximum(t1, t2)), hi)
        hi = np.where(~moving & (np.abs(p) >= half), lo, hi)
    hi = np.maximum(hi, lo)
    return lo, hi


def square_chords(geometry: ParallelBeamGeometry) -> np.ndarray:
    """Length of every ray inside the grid's square ``[−n/2, n/2]²`` (slab method): the line
    integrals of the constant 1. ``[n_angles, detectors]``."""
    lo, hi = _square_interval(geometry)
    return hi - lo


@dataclass(frozen=True)
class Phantom:
    """A normalised phantom: ``f = (Σ v_k 1_{E_k} − shift) / scale``, its image in ``[0, 1]``."""

    ellipses: Ellipses
    shift: float
    scale: float

    def image(self, size: int) -> np.ndarray:
        """The pixel image, ``[size, size]`` in ``[0, 1]``."""
        return (ellipse_image(self.ellipses, size) - self.shift) / self.scale

    def projections(self, geometry: ParallelBeamGeometry) -> np.ndarray:
        """The exact line integrals of ``f`` along every ray of ``geometry``."""
        raw = ellipse_projections(self.ellipses, geometry)
        return (raw - self.shift * square_chords(geometry)) / self.scale


def normalised_phantom(ellipses: Ellipses, size: int) -> Phantom:
    """``ellipses`` shifted by the minimum of their ``size`` image and divided by its maximum."""
    raw = ellipse_image(ellipses, size)
    shift = float(raw.min())
    scale = float(raw.max() - shift)
    return Phantom(ellipses, shift, scale if scale > 0 else 1.0)
