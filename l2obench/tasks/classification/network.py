"""The implicit classifier: a feature map, a contractive fixed-point layer, a linear classifier.

After the JFB paper's networks (Wu Fung et al., AAAI 2022): the input ``d`` is mapped to
features ``x = Q(d)`` once; the latent ``z*`` solves ``z* = T(z*; x)`` with ``T`` the
contraction of :class:`~.contractive.LatentMap`; the class scores are ``S(z*)``, affine. The
fixed point and its gradient come from the shared machinery: a
:class:`~l2obench.implicit.fixed_point.FixedPointSolver` and a
:class:`~l2obench.implicit.backward.Backward` mode, both values, so the four training modes
(:mod:`.modes`) share every parameter and differ only in how ``z`` is differentiated.
``width`` (the latent channels) is the model's size axis.

``Q``: two ``3``-wide convolutions (input channels → ``width`` → ``width``) with LeakyReLU, and
for images whose side is at least 16 a 2 × 2 max-pool after the first. ``S``: the latent
flattened, one linear map to the class scores. No batch normalisation inside ``T``: it would
couple the instances of a batch, which the per-instance stopping of the solver forbids.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from l2obench.errors import ParameterError
from l2obench.implicit.backward import Backward
from l2obench.implicit.fixed_point import FixedPointSolver, FixedPointStats
from l2obench.tasks.classification.contractive import LEAKY_SLOPE, LatentMap

POOL_FROM = 16  # images with a side at least this are max-pooled once in Q


@dataclass(frozen=True)
class Architecture:
    """The network's shape: latent ``width`` (channels), the latent map's ``contraction`` γ and
    its odd ``kernel`` size."""

    width: int = 32
    contraction: float = 0.5
    kernel: int = 3

    def __post_init__(self) -> None:
        if self.width < 1:
            raise ParameterError(f"width must be at least 1, not {self.width}")
        if not 0.0 < self.contraction < 1.0:
            raise ParameterError(f"contraction must lie in (0, 1), not {self.contraction}")
        if self.kernel < 1 or self.kernel % 2 == 0:
            raise ParameterError(f"kernel must be an odd positive integer, not {self.kernel}")


class ImplicitClassifier(nn.Module):
    """Class scores ``S(z*)``, ``z* = T(z*; Q(d))``, for inputs ``d[N, C, *spatial]``."""

    def __init__(self, input_shape: tuple[int, ...], n_classes: int, arch: Architecture,
                 backward: Backward, solver: FixedPointSolver) -> None:
        super().__init__()
        if len(input_shape) not in (2, 3):
            raise ParameterError(f"inputs must be [C, L] signals or [C, H, W] images, not "
                                 f"shape {tuple(input_shape)}")
        dims = len(input_shape) - 1
        conv: type[nn.Conv1d] | type[nn.Conv2d] = nn.Conv1d if dims == 1 else nn.Conv2d
        pool: type[nn.MaxPool1d] | type[nn.MaxPool2d] = nn.MaxPool1d if dims == 1 else nn.MaxPool2d
        channels, spatial = input_shape[0], list(input_shape[1:])
        layers: list[nn.Module] = [conv(channels, arch.width, 3, padding=1),
                                   nn.LeakyReLU(LEAKY_SLOPE)]
        if dims == 2 and min(spatial) >= POOL_FROM:
            layers.append(pool(2))
            spatial = [s // 2 for s in spatial]
        layers += [conv(arch.width, arch.width, 3, padding=1)]
        self.features = nn.Sequential(*layers)
        self.latent = LatentMap(arch.width, dims, arch.contraction, arch.kernel)
        self.head = nn.Linear(arch.width * math.prod(spatial), n_classes)
        self.backward_mode = backward
        self.solver = solver

    def forward(self, d: Tensor) -> tuple[Tensor, FixedPointStats]:
        """Class scores ``[N, n_classes]`` and the fixed-point solve's statistics."""
        x = self.features(d)
        z, stats = self.backward_mode(self.latent.operator(), torch.zeros_like(x), (x,),
                                      self.solver)
        return self.head(z.flatten(1)), stats
