"""Smooth random signals observed through additive Gaussian noise."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from l2obench.params import Param
from l2obench.problems.base import BaseProblem, Dataset
from tests.denoise_family.task import DenoiseSplit

#: Sinusoids summed into one signal.
COMPONENTS = 3


class NoisySignals(BaseProblem):
    """Signals of ``n`` samples in [0, 1] (sums of random low-frequency sinusoids) and their
    observations under Gaussian noise of standard deviation ``noise``."""

    task = "denoise"
    description = "smooth signals under Gaussian noise (a test of the task seam)"
    size_param = "n"
    params: ClassVar[dict[str, Param]] = {
        "n": Param(int, 16, "samples per signal", low=2, high=4096),
        "noise": Param(float, 0.2, "standard deviation of the noise", low=0.0, high=10.0),
        "n_train": Param(int, 200, "training signals", low=1, high=1_000_000),
        "n_val": Param(int, 50, "validation signals", low=1, high=1_000_000),
        "n_test": Param(int, 50, "test signals", low=1, high=1_000_000),
        "seed": Param(int, 0, "seed of the draw", low=0, high=2**32 - 1),
    }

    @property
    def n_vars(self) -> int:
        return self.size

    @property
    def n_features(self) -> int:
        return self.size

    def generate(self) -> Dataset[DenoiseSplit]:
        rng = np.random.default_rng(self.config["seed"])
        sizes = [self.config[k] for k in ("n_train", "n_val", "n_test")]
        t = np.linspace(0.0, 1.0, self.size)
        total = sum(sizes)
        freq = rng.uniform(0.5, 3.0, (total, COMPONENTS, 1))
        phase = rng.uniform(0.0, 2 * np.pi, (total, COMPONENTS, 1))
        weight = rng.uniform(0.2, 1.0, (total, COMPONENTS, 1))
        waves = (weight * np.sin(2 * np.pi * freq * t + phase)).sum(axis=1)
        clean = 0.5 + 0.5 * waves / weight.sum(axis=1)
        noisy = clean + self.config["noise"] * rng.standard_normal(clean.shape)
        cuts = np.cumsum(sizes)[:-1]
        splits = [DenoiseSplit(features=x.astype(np.float32), targets=y.astype(np.float32))
                  for x, y in zip(np.split(noisy, cuts), np.split(clean, cuts), strict=True)]
        return Dataset(*splits)
