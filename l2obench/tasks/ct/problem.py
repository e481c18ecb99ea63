"""The CT problem: random-ellipse phantoms of one image size, their noisy sinograms."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import torch

from l2obench.params import Param
from l2obench.problems.base import BaseProblem, Dataset, declare_capability
from l2obench.tasks.ct.data import make_data
from l2obench.tasks.ct.geometry import MAX_ANGLES, MAX_SIZE, MIN_SIZE, ParallelBeamGeometry
from l2obench.tasks.ct.operator import RayTransform
from l2obench.tasks.ct.task import CTSplit

#: What the CT methods need from a problem: its scan's ray transform (:meth:`CTProblem.operator`).
RAY_TRANSFORM = declare_capability(
    "ray-transform", "a CT scan's ray transform A and its adjoint (operator(device, dtype))")


class CTProblem(BaseProblem):
    """Parallel-beam CT of ``size × size`` random-ellipse phantoms (docs/ct.md): ``angles``
    angles, ODL's default detector, Gaussian noise of ``noise`` times each beam."""

    task = "ct"
    offers = frozenset({RAY_TRANSFORM})
    description = "CT reconstruction of random-ellipse phantoms, parallel beam"
    size_param = "size"
    params: ClassVar[dict[str, Param]] = {
        "size": Param(int, 32, "image side (pixels)", low=MIN_SIZE, high=MAX_SIZE),
        "angles": Param(int, 30, "projection angles over [0, π)", low=1, high=MAX_ANGLES),
        "noise": Param(float, 0.015, "relative Gaussian noise on each beam", low=0.0, high=1.0),
        "fidelity_bound": Param(float, 0.05, "the scorer's bound on ‖Ax − d‖ / ‖d‖",
                                low=0.0, high=10.0),
        "n_train": Param(int, 256, "training images", low=1, high=1_000_000),
        "n_val": Param(int, 32, "validation images", low=1, high=1_000_000),
        "n_test": Param(int, 64, "test images", low=1, high=1_000_000),
        "seed": Param(int, 0, "seed of the draw", low=0, high=2**32 - 1),
    }

    @property
    def geometry(self) -> ParallelBeamGeometry:
        """The scan's geometry."""
        return ParallelBeamGeometry(self.size, self.config["angles"])

    @property
    def n_vars(self) -> int:
        return self.size * self.size

    @property
    def n_features(self) -> int:
        return self.geometry.n_rays

    def operator(self, device: torch.device, dtype: torch.dtype = torch.float32) -> RayTransform:
        """The ray transform the methods reconstruct with (its matrix is cached per geometry)."""
        return RayTransform(self.geometry, device, dtype)

    def generate(self) -> Dataset[CTSplit]:
        sizes = [self.config[k] for k in ("n_train", "n_val", "n_test")]
        data = make_data(self.geometry, sum(sizes), self.config["noise"], self.config["seed"])
        cuts = np.cumsum(sizes)[:-1]
        splits = [CTSplit(features=d.reshape(len(d), -1).astype(np.float32),
                          targets=x.reshape(len(x), -1).astype(np.float32))
                  for d, x in zip(np.split(data.measurements, cuts),
                                  np.split(data.images, cuts), strict=True)]
        return Dataset(*splits)
