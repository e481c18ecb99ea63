"""The denoising task: a model outputs the clean signal; PSNR ranks (higher is better)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from l2obench.tasks.base import Metric, Scores, Task

#: Signals lie in [0, 1]: the peak of the PSNR.
DATA_RANGE = 1.0


@dataclass(frozen=True)
class DenoiseSplit:
    """Noisy observations (the contexts) and the clean signals behind them."""

    features: np.ndarray  # (N, n) float32
    targets: np.ndarray  # (N, n) float32

    def __len__(self) -> int:
        return int(self.features.shape[0])


class DenoiseTask(Task):
    """Recover each clean signal from its noisy observation."""

    description = "denoising: a clean signal from a noisy one (a test of the task seam)"
    output = "a denoised signal per instance [N, n]"
    n_vars_label = "samples per signal"
    metrics = (
        Metric("psnr", "PSNR", "max", unit="dB", per_instance="test_psnr",
               description="mean over test signals of 10·log10(1 / MSE)"),
        Metric("mse", "mean squared error", "min", description="mean over test signals"),
    )
    extras = (Metric("gram_condition", "Gram condition number", "min",
                     description="condition number of the ridge denoiser's normal equations"),)
    rank_metric = "psnr"
    validation = Metric("val_psnr", "validation PSNR", "max", unit="dB")

    def ideal_outputs(self, split: Any) -> np.ndarray:
        """The clean signals themselves."""
        return np.asarray(split.targets, dtype=np.float64)

    def score(self, problem: Any, split: Any, outputs: np.ndarray) -> Scores:
        outputs = self.checked_outputs(outputs, split.targets.shape)
        mse = ((outputs - split.targets.astype(np.float64)) ** 2).mean(axis=1)
        psnr = 10.0 * np.log10(DATA_RANGE**2 / np.maximum(mse, np.finfo(float).tiny))
        return Scores(values={"psnr": float(psnr.mean()), "mse": float(mse.mean())},
                      per_instance={"test_psnr": psnr.tolist()})
