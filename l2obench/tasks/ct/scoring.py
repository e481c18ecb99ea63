"""Scores of reconstructions against ground truth, per image: PSNR, SSIM and constraint checks.

PSNR and SSIM follow scikit-image's definitions with ``data_range = 1``
(``peak_signal_noise_ratio``; ``structural_similarity`` with its defaults: a 7×7 uniform window,
sample covariances, ``K1 = 0.01``, ``K2 = 0.03``, the mean over the pixels whose window lies
inside the image), written in torch so that a batch is scored at once on its device.
The constraint checks say whether an image leaves the box ``[0, 1]`` or the fidelity ball
``‖A x − d‖ ≤ ε`` by more than a tolerance; their means over a set are violation shares.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from l2obench.tasks.ct.operator import RayTransform

SSIM_WINDOW = 7
K1, K2 = 0.01, 0.03
#: Slack of the constraint checks: float32 arithmetic and the final projections' rounding.
BOX_TOL = 1e-6
FIDELITY_TOL = 1e-4


def psnr(images: Tensor, truth: Tensor) -> Tensor:
    """``10 log10(1 / MSE)`` per image (``data_range = 1``): ``[N]``, ``inf`` where equal."""
    mse = ((images - truth) ** 2).flatten(1).mean(dim=1)
    return 10.0 * torch.log10(1.0 / mse)


def ssim(images: Tensor, truth: Tensor) -> Tensor:
    """Mean structural similarity per image (scikit-image's default definition): ``[N]``."""
    x, y = images[:, None], truth[:, None]
    n_points = SSIM_WINDOW**2
    cov_norm = n_points / (n_points - 1)

    def mean(t: Tensor) -> Tensor:
        return F.avg_pool2d(t, SSIM_WINDOW, stride=1)

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = K1**2, K2**2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(dim=1)


def box_violation(images: Tensor, tol: float = BOX_TOL) -> Tensor:
    """Whether each image leaves ``[0, 1]`` by more than ``tol`` anywhere: bool ``[N]``."""
    flat = images.flatten(1)
    return (flat.min(dim=1).values < -tol) | (flat.max(dim=1).values > 1.0 + tol)


def fidelity_residual(images: Tensor, measurements: Tensor, op: RayTransform) -> Tensor:
    """``‖A x − d‖ / ‖d‖`` per image: ``[N]``."""
    r = op.forward(images.to(op.dtype)) - measurements.to(op.dtype)
    return torch.linalg.vector_norm(r.flatten(1), dim=1) / torch.linalg.vector_norm(
        measurements.flatten(1).to(op.dtype), dim=1)


def fidelity_violation(images: Tensor, measurements: Tensor, op: RayTransform,
                       bound: Tensor | float, tol: float = FIDELITY_TOL) -> Tensor:
    """Whether ``‖A x − d‖ > (1 + tol) · bound · ‖d‖`` per image (``bound`` relative, a
    scalar or ``[N]``): bool ``[N]``."""
    return fidelity_residual(images, measurements, op) > (1.0 + tol) * torch.as_tensor(bound)


def score(images: Tensor, truth: Tensor) -> dict[str, Tensor]:
    """The per-image image-quality metrics: ``{"psnr": [N], "ssim": [N]}`` (higher is better)."""
    images, truth = images.detach().double(), truth.detach().double()
    return {"psnr": psnr(images, truth), "ssim": ssim(images, truth)}
