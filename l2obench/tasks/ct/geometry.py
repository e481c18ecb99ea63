"""The parallel-beam geometry of a CT setting: image grid, angles and detector bins.

The image is an ``n × n`` grid of unit pixels on ``[−n/2, n/2]²``. Row ``i`` (from the top) and
column ``j`` of the array are the pixel ``x ∈ [j − n/2, j + 1 − n/2]``, ``y ∈ [n/2 − i − 1,
n/2 − i]`` (``y`` points up). A ray at angle ``θ`` and detector offset ``s`` is the line
``{s e(θ) + t e⊥(θ)}`` with ``e = (cos θ, sin θ)``, ``e⊥ = (−sin θ, cos θ)``: ``s = ⟨p, e⟩``.

The defaults are ODL's ``parallel_beam_geometry`` for such a grid (the setting of Heaton &
Wu Fung, Sci. Rep. 2023): angles at the midpoints of ``n_angles`` equal cells of ``[0, π)`` and
``2⌈ρ⌉ + 1`` detector bins of equal width covering ``[−ρ, ρ]``, ``ρ = n/√2`` the radius of the
grid's circumscribed circle (183 bins for ``n = 128``), so every ray that meets the grid is seen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from l2obench.errors import ParameterError

#: Image sides the family accepts: large enough for the U-Net's three poolings, small enough
#: that the system matrix fits in memory.
MIN_SIZE, MAX_SIZE = 8, 512
MAX_ANGLES = 1024


def default_detector_count(size: int) -> int:
    """ODL's default number of detector bins for a ``size × size`` unit grid: ``2⌈size/√2⌉+1``."""
    return 2 * math.ceil(size / math.sqrt(2.0)) + 1


@dataclass(frozen=True)
class ParallelBeamGeometry:
    """A 2-D parallel-beam geometry; bad values are refused with one :class:`ParameterError`."""

    size: int
    n_angles: int = 30
    n_detectors: int | None = None  # None: default_detector_count(size)

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or not (
            MIN_SIZE <= self.size <= MAX_SIZE
        ):
            raise ParameterError(
                f"image size must be an integer in [{MIN_SIZE}, {MAX_SIZE}], not {self.size!r}")
        if isinstance(self.n_angles, bool) or not isinstance(self.n_angles, int) or not (
            1 <= self.n_angles <= MAX_ANGLES
        ):
            raise ParameterError(
                f"angles must be an integer in [1, {MAX_ANGLES}], not {self.n_angles!r}")
        if self.n_detectors is not None and (
            isinstance(self.n_detectors, bool) or not isinstance(self.n_detectors, int)
            or self.n_detectors < 1
        ):
            raise ParameterError(
                f"detector count must be a positive integer (or default), not {self.n_detectors!r}")

    @property
    def detectors(self) -> int:
        """The number of detector bins."""
        return self.n_detectors if self.n_detectors is not None else default_detector_count(
            self.size)

    @property
    def radius(self) -> float:
        """``ρ = n/√2``: the detector covers ``[−ρ, ρ]``."""
        return self.size / math.sqrt(2.0)

    @property
    def detector_spacing(self) -> float:
        """The width of one detector bin."""
        return 2.0 * self.radius / self.detectors

    @cached_property
    def angles(self) -> np.ndarray:
        """The projection angles ``θ_k = (k + ½) π / n_angles``, radians, ``[n_angles]``."""
        return (np.arange(self.n_angles) + 0.5) * math.pi / self.n_angles

    @cached_property
    def offsets(self) -> np.ndarray:
        """The detector bin centres ``s_j``, ``[detectors]``."""
        return -self.radius + (np.arange(self.detectors) + 0.5) * self.detector_spacing

    @property
    def n_pixels(self) -> int:
        """``size²``, the number of unknowns."""
        return self.size * self.size

    @property
    def n_rays(self) -> int:
        """``n_angles · detectors``, the number of measurements."""
        return self.n_angles * self.detectors

    @property
    def sinogram_shape(self) -> tuple[int, int]:
        """``(n_angles, detectors)``: a sinogram's shape (rays ordered angle-major)."""
        return (self.n_angles, self.detectors)
