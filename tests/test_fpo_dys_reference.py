"""The fpo-dys reference of ``benchmarks/`` against l2obench's DYS layer, in float64.

The ratios script compares the two layers' fixed-point residuals on the reference operator's
scale by mapping l2obench's points into it (``FpoDysLayer.equivalent_point``); these tests check
that the map sends a fixed point of l2obench's operator, whatever its step α, to a fixed point of
the reference's, and that both layers' fixed points carry the same solution.
"""

from __future__ import annotations

import torch

from l2obench.implicit.fixed_point import Picard
from l2obench.layers.dys import DYSLayer
from l2obench.problems.shortest_path import ShortestPath
from tests.reference.fpo_dys_reference import FpoDysLayer, FpoDysSettings

GAMMA = 0.05  # larger than the published 5e-4, so that float64 fixed points come in few steps


def fixed_points(alpha: float) -> tuple[FpoDysLayer, DYSLayer, torch.Tensor, torch.Tensor]:
    """The reference and an l2obench layer with step ``alpha`` on a 3×3 grid, random costs,
    and l2obench's fixed point for them."""
    lp = ShortestPath(k=3).lp()
    reference = FpoDysLayer(lp, FpoDysSettings(alpha=0.05, gamma=GAMMA, tol=1e-13,
                                               max_iter=200_000), dtype=torch.float64)
    layer = DYSLayer(lp, alpha=alpha, gamma=GAMMA, solver=Picard(tol=1e-13, max_iter=200_000),
                     dtype=torch.float64)
    w = torch.rand(6, lp.n_vars, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        z, stats = layer.solver(layer.operator, torch.zeros_like(w), (layer.aff(-alpha * w),))
    assert bool(stats.converged.all())
    return reference, layer, w, z


def test_equivalent_point_maps_fixed_points_onto_fixed_points() -> None:
    for alpha in (0.05, 0.7, 3.0):
        reference, layer, w, z = fixed_points(alpha)
        mapped = reference.equivalent_point(z, layer.box(z), alpha)
        assert float(reference.residuals(mapped, w).max()) < 1e-9
        # Unmapped, the point is not the reference's fixed point: the map does the work.
        assert float(reference.residuals(z, w).min()) > 1e-6


def test_both_layers_fixed_points_carry_the_same_solution() -> None:
    reference, layer, w, z = fixed_points(0.7)
    z_ref = reference.solve(w)
    assert float(reference.residuals(z_ref, w).max()) < 1e-11
    x_ref = reference.project_box(z_ref)
    torch.testing.assert_close(layer.box(z), x_ref, atol=1e-9, rtol=0)
