"""Tests of the learned CT reconstructors: sizes, training steps, constraints and gradients.

References: the published U-Net's parameter count (Heaton & Wu Fung, Sci. Rep. 2023); the
implicit gradient (an adjoint solve to 1e-8 at a converged fixed point) for JFB's direction; the
fidelity bound and the box checked on the outputs by the scorer's own functions.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from l2obench.errors import ParameterError, UnknownNameError
from l2obench.implicit.backward import JFB, Backward, Implicit, Unrolled
from l2obench.implicit.fixed_point import Picard
from l2obench.implicit.linear_solvers import GMRES
from l2obench.tasks.ct.data import CTData, make_data
from l2obench.tasks.ct.ffpn import FFPN
from l2obench.tasks.ct.geometry import ParallelBeamGeometry
from l2obench.tasks.ct.l2o import ImplicitL2O
from l2obench.tasks.ct.operator import RayTransform
from l2obench.tasks.ct.reconstructors import METHODS, build
from l2obench.tasks.ct.scoring import box_violation, fidelity_residual
from l2obench.tasks.ct.training import train
from l2obench.tasks.ct.unet import FBPConvNet, UNet, parameter_count

F64 = torch.float64


@pytest.fixture(scope="module")
def data32() -> CTData:
    return make_data(ParallelBeamGeometry(32), 8, seed=0)


def test_unet_default_width_has_the_published_size() -> None:
    """533,593 parameters at 128 in the paper; the convolutions do not depend on the side."""
    assert parameter_count(UNet()) == 533_593
    assert parameter_count(UNet(16)) < parameter_count(UNet(32))


def test_unet_refuses_bad_sizes() -> None:
    with pytest.raises(ParameterError, match="divisible by 8"):
        FBPConvNet(RayTransform(ParallelBeamGeometry(36)))
    with pytest.raises(ParameterError, match="width"):
        UNet(0)


def _batch_loss(model: nn.Module, data: CTData) -> float:
    d = torch.as_tensor(data.measurements, dtype=torch.float32)
    x = torch.as_tensor(data.images, dtype=torch.float32)
    model.train()
    with torch.no_grad():
        return float(((model(d) - x) ** 2).mean())


@pytest.mark.parametrize("make", [
    pytest.param(lambda op: FBPConvNet(op, width=4), id="unet", marks=pytest.mark.slow),
    pytest.param(lambda op: FFPN(op, channels=8, solver=Picard(tol=1e-2, max_iter=20)),
                 id="ffpn"),
    pytest.param(lambda op: ImplicitL2O(op, solver=Picard(tol=1e-2, max_iter=30)), id="l2o-jfb"),
    pytest.param(lambda op: ImplicitL2O(op, backward=Unrolled(10)), id="l2o-unrolled"),
    pytest.param(lambda op: ImplicitL2O(op, solver=Picard(tol=1e-2, max_iter=30),
                                        backward=Implicit(GMRES(tol=1e-2, max_iter=20))),
                 id="l2o-implicit"),
])
def test_learned_methods_train(make: Callable[[RayTransform], nn.Module], data32: CTData) -> None:
    """A few Adam steps on one batch of side 32 lower that batch's MSE, and change Θ."""
    torch.manual_seed(0)
    model = make(RayTransform(data32.geometry))
    before = [p.detach().clone() for p in model.parameters()]
    loss0 = _batch_loss(model, data32)
    losses = train(model, data32, steps=3, batch_size=len(data32), lr=1e-3)
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses)
    assert _batch_loss(model, data32) < loss0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_l2o_outputs_are_in_the_box_and_the_fidelity_ball(data32: CTData) -> None:
    """Evaluation outputs satisfy x ∈ [0,1]ⁿ and ‖Ax − d‖ ≤ e^δ‖d‖, checked by the scorer."""
    op = RayTransform(data32.geometry)
    model = ImplicitL2O(op, delta=math.log(0.03), solver=Picard(tol=1e-2, max_iter=20))
    model.eval()
    d = torch.as_tensor(data32.measurements, dtype=torch.float32)
    with torch.no_grad():
        x = model(d)
        bound = float(torch.exp(model.delta))
    assert not box_violation(x).any()
    residual = fidelity_residual(x, d, op)
    assert (residual <= bound * (1 + 1e-4)).all(), (residual, bound)
    # the L-ADMM point alone (20 steps) is not feasible: the restoration did the work
    model.train()
    with torch.no_grad():
        raw = model(d)
    assert (fidelity_residual(raw, d, op) > bound * (1 + 1e-4)).any()


def _gradients(model: nn.Module, d: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    model.train()
    ((model(d) - x) ** 2).sum().backward()
    return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])


@pytest.mark.parametrize("name", [pytest.param("ffpn", marks=pytest.mark.slow), "l2o"])
def test_jfb_gradient_points_like_the_implicit_gradient(name: str) -> None:
    """On an 8×8 problem in float64: JFB's gradient against the implicit-function-theorem
    gradient (GMRES to 1e-8) at the same fixed point; their cosine is clearly positive."""
    g = ParallelBeamGeometry(8, 8)
    op = RayTransform(g, dtype=F64)
    data = make_data(g, 1, seed=0)
    d, x = torch.as_tensor(data.measurements), torch.as_tensor(data.images)
    solver = Picard(tol=1e-6, max_iter=5_000)

    def make(backward: Backward) -> FFPN | ImplicitL2O:
        torch.manual_seed(0)
        if name == "ffpn":
            return FFPN(op, channels=4, solver=solver, backward=backward)
        # an 8×8 grid misses the continuous phantom's projections by far more than 5 %: the
        # bound must leave the constraint set non-empty for a fixed point to exist
        return ImplicitL2O(op, delta=math.log(0.3), shrink=0.5, solver=solver, backward=backward)

    jfb = make(JFB())
    g_jfb = _gradients(jfb, d, x)
    implicit = make(Implicit(GMRES(tol=1e-8, max_iter=2000)))
    g_imp = _gradients(implicit, d, x)
    stats = implicit.last_stats
    assert stats is not None
    assert bool(stats.converged.all()) and stats.backward_converged
    cosine = float(g_jfb @ g_imp / (g_jfb.norm() * g_imp.norm()))
    assert cosine > 0.1, cosine


def test_every_named_method_builds_and_reconstructs() -> None:
    """The roster the runner wires: each name builds for side 16 and returns images."""
    g = ParallelBeamGeometry(16)
    op = RayTransform(g)
    data = make_data(g, 2, seed=0)
    d = torch.as_tensor(data.measurements, dtype=torch.float32)
    for name in METHODS:
        params = {"width": 4} if name == "unet" else {"max_iter": 5} if name == "tv-min" else {}
        images = build(name, op, **params).reconstruct(d)
        assert images.shape == (2, 16, 16) and torch.isfinite(images).all(), name


def test_unknown_method_is_one_message() -> None:
    with pytest.raises(UnknownNameError, match="did you mean 'ffpn'"):
        build("fpn", RayTransform(ParallelBeamGeometry(16)))
