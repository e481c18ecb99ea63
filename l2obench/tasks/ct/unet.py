"""FBPConvNet: a U-Net applied to the filtered backprojection (Jin, McCann, Froustey & Unser,
"Deep convolutional neural network for inverse problems in imaging", IEEE TIP 2017).

The architecture is the one of Heaton & Wu Fung's CT comparison (Sci. Rep. 2023): three
contracting blocks (two convolutions with batch norm and ReLU, then a 3×3 max-pool of stride 2)
of ``w``, ``2w``, ``4w`` channels, the first with 7×7 kernels, and three expanding blocks (two
3×3 convolutions with batch norm and ReLU, then a transposed convolution of stride 2) with skip
connections by concatenation. ``width = w = 32`` gives their model's size at every image side
(the convolutions do not depend on it); the image side must be a multiple of 8.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from l2obench.errors import ParameterError
from l2obench.tasks.ct.fbp import fbp
from l2obench.tasks.ct.operator import RayTransform


def _contract(c_in: int, c_out: int, kernel: int) -> nn.Sequential:
    pad = kernel // 2
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=pad), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.Conv2d(c_out, c_out, kernel, padding=pad), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
    )


def _expand(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.Conv2d(c_out, c_out, 3, padding=1), nn.BatchNorm2d(c_out), nn.ReLU(),
        nn.ConvTranspose2d(c_out, c_out, 3, stride=2, padding=1, output_padding=1),
    )


class UNet(nn.Module):
    """The U-Net of the module docstring: images ``[N, 1, n, n]`` to ``[N, 1, n, n]``."""

    def __init__(self, width: int = 32) -> None:
        super().__init__()
        if isinstance(width, bool) or not isinstance(width, int) or width < 1:
            raise ParameterError(f"U-Net width must be a positive integer, not {width!r}")
        w = width
        self.down1, self.down2, self.down3 = _contract(1, w, 7), _contract(w, 2 * w, 3), \
            _contract(2 * w, 4 * w, 3)
        self.up3, self.up2, self.up1 = _expand(4 * w, 2 * w), _expand(4 * w, w), _expand(2 * w, 1)

    def forward(self, x: Tensor) -> Tensor:
        d1 = self.down1(x)
        d2 = self.down2(d1)
        u3 = self.up3(self.down3(d2))
        u2 = self.up2(torch.cat([u3, d2], dim=1))
        return self.up1(torch.cat([u2, d1], dim=1))


def parameter_count(module: nn.Module) -> int:
    """The number of trainable scalars of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


class FBPConvNet(nn.Module):
    """Measurements ``[N, A, D]`` → FBP → ``FBP + UNet(FBP)`` → images ``[N, n, n]``.

    The U-Net learns the correction to the FBP (residual learning, as in Jin et al.), so an
    untrained model starts from the FBP rather than from noise.
    """

    def __init__(self, op: RayTransform, width: int = 32) -> None:
        super().__init__()
        if op.geometry.size % 8:
            raise ParameterError(
                f"the U-Net needs an image side divisible by 8, not {op.geometry.size}")
        self.op = op
        self.unet = UNet(width)

    def forward(self, measurements: Tensor) -> Tensor:
        with torch.no_grad():
            x = fbp(measurements.to(self.op.dtype), self.op)
        x = x[:, None].to(next(self.parameters()).dtype)
        return (x + self.unet(x))[:, 0]
