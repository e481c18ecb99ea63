"""The implicit classifier's gradients against central finite differences (float64).

The reference differentiates the converged network itself — the loss at parameters ``θ ± h e_j``
with the fixed point solved to 1e-13 — so it is independent of every backward mode. The
Jacobian-based mode must match it; unrolling must approach it as ``K`` grows (geometrically,
at the contraction's rate); JFB's direction is not the gradient but, for a contraction, a
descent direction, and its cosine with the gradient is measured.
"""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from l2obench.implicit.backward import JFB, Backward, Implicit, Unrolled
from l2obench.implicit.fixed_point import Picard
from l2obench.implicit.linear_solvers import ConjugateGradientNormal
from l2obench.tasks.classification.contractive import conv_norm_bound
from l2obench.tasks.classification.network import Architecture, ImplicitClassifier

F64 = torch.float64
TIGHT = Picard(tol=1e-13, max_iter=10_000)
CONTRACTION = 0.6


def tiny(backward: Backward, input_shape: tuple[int, ...] = (1, 6)) -> ImplicitClassifier:
    """A tiny classifier, the same parameters for every mode (seeded), in float64, with the
    latent kernel scaled so that its norm bound exceeds 1 (the rescaling is then active)."""
    torch.manual_seed(0)
    net = ImplicitClassifier(input_shape, 3, Architecture(width=3, contraction=CONTRACTION),
                             backward, TIGHT).double()
    with torch.no_grad():
        net.latent.conv.weight.mul_(4.0)
    return net


def data(input_shape: tuple[int, ...] = (1, 6)) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    return (torch.randn((5, *input_shape), generator=gen, dtype=F64),
            torch.randint(0, 3, (5,), generator=gen))


def loss_of(net: ImplicitClassifier, d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(net(d)[0], y)


def flat_grad(net: ImplicitClassifier, d: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    net.zero_grad()
    loss_of(net, d, y).backward()
    return torch.cat([p.grad.flatten() for p in net.parameters()])  # type: ignore[union-attr]


def finite_difference(net: ImplicitClassifier, d: torch.Tensor, y: torch.Tensor,
                      h: float = 1e-6) -> torch.Tensor:
    """Central differences of the converged loss in every parameter."""
    out = []
    with torch.no_grad():
        for p in net.parameters():
            flat = p.view(-1)
            for j in range(flat.numel()):
                saved = float(flat[j])
                flat[j] = saved + h
                up = float(loss_of(net, d, y))
                flat[j] = saved - h
                down = float(loss_of(net, d, y))
                flat[j] = saved
                out.append((up - down) / (2 * h))
    return torch.tensor(out, dtype=F64)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(a @ b / (a.norm() * b.norm()))


@pytest.mark.parametrize("input_shape", [
    (1, 6), pytest.param((2, 4, 4), marks=pytest.mark.slow),
], ids=["signal", "image"])
def test_jacobian_mode_matches_finite_differences(input_shape: tuple[int, ...]) -> None:
    d, y = data(input_shape)
    implicit = tiny(Implicit(ConjugateGradientNormal(tol=1e-12, max_iter=1000)), input_shape)
    with torch.no_grad():
        assert conv_norm_bound(implicit.latent.conv.weight) > 1.0  # the rescaling is active
    fd = finite_difference(tiny(JFB(), input_shape), d, y)
    grad = flat_grad(implicit, d, y)
    rel = float((grad - fd).norm() / fd.norm())
    assert rel < 1e-6, rel


def test_jfb_is_a_descent_direction_and_not_the_gradient() -> None:
    d, y = data()
    fd = finite_difference(tiny(JFB()), d, y)
    jfb = flat_grad(tiny(JFB()), d, y)
    c = cosine(jfb, fd)
    assert 0.0 < c < 1.0 - 1e-6, c  # a descent direction, not the gradient itself


def test_unrolled_gradient_converges_to_the_implicit_one() -> None:
    d, y = data()
    reference = flat_grad(tiny(Implicit(ConjugateGradientNormal(tol=1e-12, max_iter=1000))), d, y)
    errors = [float((flat_grad(tiny(Unrolled(K=k)), d, y) - reference).norm() / reference.norm())
              for k in (1, 3, 6, 60)]
    # From zero, K steps leave an error of order γ^K in z* and in the adjoint's Neumann sum.
    assert errors[0] > errors[1] > errors[2], errors
    assert all(e < 2 * CONTRACTION**k for e, k in zip(errors, (1, 3, 6), strict=False)), errors
    assert errors[3] < 1e-10, errors
