"""The latent map is a contraction as built, measured independently of its construction.

Two measurements (:mod:`l2obench.tasks.classification.lipschitz`): ratios on random pairs (a
lower bound on the constant of the nonlinear map) and the exact operator norm of the scaled
convolution by power iteration. Both must stay below the certified bound, itself at most γ < 1,
for random kernels whose raw bound is above 1 (the rescaling active) and below it (inactive),
and after training steps with a large learning rate.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from l2obench.record import Budget
from l2obench.tasks.classification.contractive import LatentMap, conv_norm_bound
from l2obench.tasks.classification.datasets import load_dataset
from l2obench.tasks.classification.fit import fit_classifier
from l2obench.tasks.classification.lipschitz import operator_norm, pair_ratios
from l2obench.tasks.classification.modes import ModeSettings, build_classifier
from l2obench.tasks.classification.network import Architecture

F64 = torch.float64


def conv_of(latent: LatentMap, weight: torch.Tensor) -> torch.nn.Module:
    fn = F.conv1d if latent.spatial_dims == 1 else F.conv2d
    pad = latent.conv.padding

    class Linear(torch.nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return fn(z, weight, padding=pad)

    return Linear()


@pytest.mark.parametrize("dims, spatial", [(1, (24,)), (2, (7, 9))], ids=["signal", "image"])
@pytest.mark.parametrize("scale", [0.05, 1.0, 5.0])
def test_latent_map_is_a_contraction(dims: int, spatial: tuple[int, ...], scale: float) -> None:
    torch.manual_seed(3)
    gamma, width = 0.7, 6
    latent = LatentMap(width, dims, gamma).double()
    with torch.no_grad():
        latent.conv.weight.mul_(scale)
        raw_bound = float(conv_norm_bound(latent.conv.weight))
        weight = latent.scaled_weight()
    certified = latent.lipschitz_bound()
    assert certified <= gamma + 1e-12
    shape = (width, *spatial)
    gen = torch.Generator().manual_seed(0)
    # The bound dominates the exact norm of the raw convolution (power iteration) ...
    raw_norm = operator_norm(conv_of(latent, latent.conv.weight.detach()), shape, generator=gen)
    assert raw_norm <= raw_bound * (1 + 1e-9)
    # ... so the scaled one's exact norm is below the certified constant.
    scaled_norm = operator_norm(conv_of(latent, weight), shape, generator=gen)
    assert scaled_norm <= certified * (1 + 1e-9)
    # The map itself, on random pairs around random points, with random injections.
    z = torch.randn((512, *shape), generator=gen, dtype=F64)
    x = torch.randn((512, *shape), generator=gen, dtype=F64)
    fn = latent.operator()
    for step in (1e-3, 1.0):
        ratios = pair_ratios(lambda v: fn(v, x), z, step, gen)
        assert float(ratios.max()) <= scaled_norm * (1 + 1e-9) < 1.0


def test_bound_is_exact_for_a_pointwise_kernel() -> None:
    """A 1-wide kernel is a matrix applied at each position: its bound is its spectral norm,
    which is the convolution's norm; the bound is not loose where it need not be."""
    torch.manual_seed(0)
    latent = LatentMap(5, 1, 0.5, kernel=1).double()
    bound = float(conv_norm_bound(latent.conv.weight.detach()))
    norm = operator_norm(conv_of(latent, latent.conv.weight.detach()), (5, 10),
                         generator=torch.Generator().manual_seed(0))
    assert norm == pytest.approx(bound, rel=1e-6)


@pytest.mark.slow
def test_contraction_survives_training() -> None:
    data = load_dataset("mnist1d", seed=0, n_samples=200)
    net = build_classifier(data.input_shape, data.n_classes,
                           Architecture(width=8, contraction=0.9), "jfb", ModeSettings(), seed=0)
    fit_classifier(net, data.train, Budget(max_epochs=1), validate=lambda: 0.0,
                   direction="max", lr=0.05, batch_size=32, seed=0, device=torch.device("cpu"))
    assert net.latent.lipschitz_bound() <= 0.9
    with torch.no_grad():
        x = net.features(torch.as_tensor(data.test.x))
    fn = net.latent.operator()
    ratios = pair_ratios(lambda v: fn(v, x), torch.randn_like(x), 0.1,
                         torch.Generator().manual_seed(0))
    assert float(ratios.max()) < net.latent.lipschitz_bound()
