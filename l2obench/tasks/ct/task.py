"""The CT reconstruction task: a model outputs an image per sinogram; PSNR ranks (higher is
better), SSIM, and the shares of images outside the box ``[0, 1]`` or the fidelity ball.

The scorer is the family's only definition of its metrics (:mod:`l2obench.tasks.ct.scoring`,
scikit-image's PSNR and SSIM with ``data_range = 1``); the fidelity bound it checks is the
problem's ``fidelity_bound`` (relative to ``‖d‖``), the same for every method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from l2obench.tasks.base import Metric, Scores, Task
from l2obench.tasks.ct.scoring import box_violation, fidelity_violation, psnr, ssim


@dataclass(frozen=True)
class CTSplit:
    """Noisy sinograms, flattened (the contexts ``[N, n_angles·detectors]``), and the images
    behind them, flattened (``[N, size²]``)."""

    features: np.ndarray
    targets: np.ndarray

    def __len__(self) -> int:
        return int(self.features.shape[0])


class CTTask(Task):
    """Reconstruct each image from its sinogram."""

    description = "CT reconstruction: an image from its noisy parallel-beam sinogram"
    output = "a reconstructed image per instance [N, size²] (row-major)"
    n_vars_label = "pixels"
    metrics = (
        Metric("psnr", "PSNR", "max", unit="dB", per_instance="test_psnr",
               description="mean over test images of scikit-image's PSNR, data range 1"),
        Metric("ssim", "SSIM", "max", per_instance="test_ssim",
               description="mean over test images of scikit-image's SSIM, data range 1"),
        Metric("box_violation", "box violations", "min",
               description="share of test images leaving [0, 1] by more than 1e-6"),
        Metric("fidelity_violation", "fidelity violations", "min",
               description="share of test images with ‖Ax − d‖ above the problem's bound"),
    )
    rank_metric = "psnr"
    validation = Metric("val_psnr", "validation PSNR", "max", unit="dB")

    def ideal_outputs(self, split: Any) -> np.ndarray:
        """The ground-truth images."""
        return np.asarray(split.targets, dtype=np.float64)

    def score(self, problem: Any, split: Any, outputs: np.ndarray) -> Scores:
        outputs = self.checked_outputs(outputs, split.targets.shape)
        n = problem.size
        x = torch.from_numpy(outputs).reshape(-1, n, n)
        truth = torch.from_numpy(np.asarray(split.targets, np.float64)).reshape(-1, n, n)
        op = problem.operator(torch.device("cpu"), torch.float64)
        d = torch.from_numpy(np.asarray(split.features, np.float64)).reshape(
            -1, *op.geometry.sinogram_shape)
        p, s = psnr(x, truth), ssim(x, truth)
        box = box_violation(x)
        fidelity = fidelity_violation(x, d, op, problem.config["fidelity_bound"])
        return Scores(values={"psnr": float(p.mean()), "ssim": float(s.mean()),
                              "box_violation": float(box.double().mean()),
                              "fidelity_violation": float(fidelity.double().mean())},
                      per_instance={"test_psnr": p.tolist(), "test_ssim": s.tolist()})
