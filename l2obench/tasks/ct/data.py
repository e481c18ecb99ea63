"""CT data sets: random-ellipse phantoms, their exact sinograms and noisy measurements.

Measurements are the exact line integrals of the continuous phantom
(:meth:`~l2obench.tasks.ct.phantoms.Phantom.projections`) plus Gaussian noise whose standard
deviation on each beam is ``noise`` times that beam's value (1.5 % in Heaton & Wu Fung, Sci. Rep.
2023): ``d_r = p_r (1 + noise · ξ_r)``, ``ξ_r ~ N(0, 1)``. Everything is drawn from one seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from l2obench.errors import ParameterError
from l2obench.tasks.ct.geometry import ParallelBeamGeometry
from l2obench.tasks.ct.phantoms import normalised_phantom, random_ellipses

MAX_NOISE = 1.0


@dataclass(frozen=True)
class CTData:
    """``images[N, n, n]`` in ``[0, 1]``, their exact ``clean[N, A, D]`` and noisy
    ``measurements[N, A, D]`` sinograms (float64), for one geometry and noise level."""

    geometry: ParallelBeamGeometry
    noise: float
    images: np.ndarray
    clean: np.ndarray
    measurements: np.ndarray

    def __len__(self) -> int:
        return len(self.images)

    def subset(self, rows: slice | np.ndarray) -> CTData:
        """The instances ``rows`` as a data set of their own."""
        return CTData(self.geometry, self.noise, self.images[rows], self.clean[rows],
                      self.measurements[rows])


def check_noise(noise: float) -> float:
    """``noise`` as a float in ``[0, MAX_NOISE]``, else one :class:`ParameterError`."""
    if isinstance(noise, bool) or not isinstance(noise, int | float) or not (
        0.0 <= noise <= MAX_NOISE
    ):
        raise ParameterError(f"noise must be a number in [0, {MAX_NOISE}], not {noise!r}")
    return float(noise)


def make_data(geometry: ParallelBeamGeometry, n: int, noise: float = 0.015,
              seed: int = 0) -> CTData:
    """``n`` phantoms of ``geometry``'s size with their sinograms, drawn from ``seed``."""
    noise = check_noise(noise)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ParameterError(f"the number of instances must be a positive integer, not {n!r}")
    rng = np.random.default_rng(seed)
    images, clean = [], []
    for _ in range(n):
        phantom = normalised_phantom(random_ellipses(rng), geometry.size)
        images.append(phantom.image(geometry.size))
        clean.append(phantom.projections(geometry))
    clean_arr = np.stack(clean)
    noisy = clean_arr * (1.0 + noise * rng.standard_normal(clean_arr.shape))
    return CTData(geometry, noise, np.stack(images), clean_arr, noisy)
