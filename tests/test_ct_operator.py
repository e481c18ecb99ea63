"""Tests of the CT geometry, phantoms, ray transform, FBP, scoring and TV-min.

References, each independent of the code under test: the transpose identity in float64; the
closed-form line integrals of ellipses; scikit-image's ``radon``/``iradon``,
``peak_signal_noise_ratio`` and ``structural_similarity``; cvxpy (Clarabel) for TV-min.
"""

from __future__ import annotations

import warnings

import cvxpy as cp
import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.transform import iradon, radon

from l2obench.errors import ParameterError
from l2obench.tasks.ct.data import make_data
from l2obench.tasks.ct.fbp import fbp
from l2obench.tasks.ct.geometry import ParallelBeamGeometry, default_detector_count
from l2obench.tasks.ct.operator import RayTransform
from l2obench.tasks.ct.phantoms import (
    Ellipses,
    ellipse_image,
    ellipse_projections,
    normalised_phantom,
    pixel_centres,
    random_ellipses,
    square_chords,
)
from l2obench.tasks.ct.scoring import box_violation, fidelity_violation, psnr, ssim
from l2obench.tasks.ct.system_matrix import system_matrix
from l2obench.tasks.ct.tv import TVMin, anisotropic_tv, gradient, gradient_adjoint

F64 = torch.float64


def smooth_phantom(n: int) -> np.ndarray:
    """Two Gaussian bumps well inside the inscribed circle (skimage's radon needs zero outside)."""
    x, y = pixel_centres(n)
    r = n / 2
    return (np.exp(-((x - 0.2 * r) ** 2 + (y - 0.1 * r) ** 2) / (0.15 * r) ** 2)
            + 0.5 * np.exp(-((x + 0.3 * r) ** 2 + (y + 0.25 * r) ** 2) / (0.1 * r) ** 2))


def rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


# --- geometry -------------------------------------------------------------------------------


def test_default_detector_count_is_odls() -> None:
    assert default_detector_count(128) == 183
    assert ParallelBeamGeometry(128).detectors == 183
    assert ParallelBeamGeometry(32).sinogram_shape == (30, 47)


@pytest.mark.parametrize("kwargs", [{"size": 4}, {"size": 64.0}, {"size": 64, "n_angles": 0},
                                    {"size": 64, "n_angles": True},
                                    {"size": 64, "n_detectors": -3}])
def test_bad_geometry_is_one_message(kwargs: dict) -> None:
    with pytest.raises(ParameterError, match="must be"):
        ParallelBeamGeometry(**kwargs)


@pytest.mark.parametrize("noise", [-0.1, 2.0, "0.1"])
def test_bad_noise_is_one_message(noise: object) -> None:
    with pytest.raises(ParameterError, match="noise must be"):
        make_data(ParallelBeamGeometry(16), 1, noise=noise)  # type: ignore[arg-type]


# --- the operator ---------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 33])
def test_adjoint_identity(size: int) -> None:
    """⟨Ax, y⟩ = ⟨x, Aᵀy⟩ on random batches, in float64."""
    op = RayTransform(ParallelBeamGeometry(size, 17), dtype=F64)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, size, size, dtype=F64, generator=gen)
    y = torch.randn(3, *op.geometry.sinogram_shape, dtype=F64, generator=gen)
    lhs = (op.forward(x) * y).sum(dim=(1, 2))
    rhs = (x * op.adjoint(y)).sum(dim=(1, 2))
    assert torch.allclose(lhs, rhs, rtol=1e-6, atol=0)
    # and Aᵀ's autograd is A's: the gradient of ⟨Ax, y⟩ in x is Aᵀy
    xr = x.clone().requires_grad_(True)
    (op.forward(xr) * y).sum().backward()
    assert xr.grad is not None and torch.allclose(xr.grad, op.adjoint(y), rtol=1e-12)


def test_ones_project_to_square_chords() -> None:
    """A·1 is each ray's chord through the grid (the slab method), to rounding."""
    g = ParallelBeamGeometry(32, 7)
    chords = system_matrix(g) @ np.ones(g.n_pixels)
    assert np.abs(chords - square_chords(g).ravel()).max() < 1e-10


def test_operator_matches_skimage_radon_with_falling_error() -> None:
    """A x against skimage's radon (interpolated at our bin centres) on a smooth phantom.

    Odd sides put skimage's rotation centre (pixel n//2) at our origin. Both are discretisations
    of the same line integrals, so their gap must shrink as the grid refines.
    """
    errors = []
    for n in (33, 65, 129):
        g = ParallelBeamGeometry(n)
        img = smooth_phantom(n)
        ours = (system_matrix(g) @ img.ravel()).reshape(g.sinogram_shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sk = radon(img, theta=np.degrees(g.angles), circle=True)
        pos = np.arange(n) - n // 2
        ref = np.stack([np.interp(g.offsets, pos, sk[:, k], left=0, right=0)
                        for k in range(g.n_angles)])
        errors.append(rel(ours, ref))
    assert errors[0] < 0.06 and errors[-1] < 0.005, errors
    assert errors[0] > errors[1] > errors[2], errors


def test_operator_matches_analytic_ellipse_projections_with_falling_error() -> None:
    """A (pixel image) against the exact line integrals of the continuous ellipse phantom."""
    phantom_ellipses = random_ellipses(np.random.default_rng(1))
    errors = []
    for n in (32, 64, 128):
        g = ParallelBeamGeometry(n)
        p = normalised_phantom(phantom_ellipses, n)
        errors.append(rel(system_matrix(g) @ p.image(n).ravel(), p.projections(g).ravel()))
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[-1] < 0.01, errors


def test_single_ellipse_projection_against_brute_force_quadrature() -> None:
    """The closed-form chord of a rotated, clipped ellipse against sampling along the ray."""
    e = Ellipses(np.array([0.7]), np.array([[0.5, -0.3]]), np.array([[0.6, 0.25]]),
                 np.array([0.9]))
    g = ParallelBeamGeometry(16, 5)
    exact = ellipse_projections(e, g)
    es = e.scaled(16)
    t = np.linspace(-20, 20, 400_001)
    dt = t[1] - t[0]
    (cx, cy), (a, b), phi = es.centres[0], es.half_axes[0], es.rotations[0]
    for k, theta in enumerate(g.angles):
        for j in (3, 11, 17):
            s = g.offsets[j]
            x = s * np.cos(theta) - t * np.sin(theta)
            y = s * np.sin(theta) + t * np.cos(theta)
            u = (x - cx) * np.cos(phi) + (y - cy) * np.sin(phi)
            w = -(x - cx) * np.sin(phi) + (y - cy) * np.cos(phi)
            inside = ((u / a) ** 2 + (w / b) ** 2 <= 1) & (np.abs(x) <= 8) & (np.abs(y) <= 8)
            assert exact[k, j] == pytest.approx(0.7 * inside.sum() * dt, abs=2e-3)


def test_phantoms_are_normalised_and_seeded() -> None:
    g = ParallelBeamGeometry(32)
    a, b = make_data(g, 3, seed=5), make_data(g, 3, seed=5)
    assert np.array_equal(a.measurements, b.measurements)
    assert a.images.min() == 0.0 and np.allclose(a.images.max(axis=(1, 2)), 1.0)
    noise = np.linalg.norm(a.measurements - a.clean) / np.linalg.norm(a.clean)
    assert 0.01 < noise < 0.02  # 1.5 % per beam
    img = ellipse_image(random_ellipses(np.random.default_rng(0)), 16)
    assert img.shape == (16, 16)


# --- FBP ------------------------------------------------------------------------------------


def test_fbp_close_to_skimage_iradon() -> None:
    """Our FBP of our sinogram and skimage's iradon of its radon: both close to the phantom, and
    to each other, on a smooth phantom inside the circle."""
    n = 65
    g = ParallelBeamGeometry(n)
    op = RayTransform(g, dtype=F64)
    img = smooth_phantom(n)
    ours = fbp(op.forward(torch.from_numpy(img)[None]), op)[0].numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        deg = np.degrees(g.angles)
        sk = iradon(radon(img, deg, circle=True), deg, circle=True, filter_name="ramp")
    x, y = pixel_centres(n)
    disk = x**2 + y**2 < (n / 2) ** 2
    ours_err, sk_err = rel(ours[disk], img[disk]), rel(sk[disk], img[disk])
    assert ours_err < 1.2 * sk_err and sk_err < 0.05, (ours_err, sk_err)
    assert rel(ours[disk], sk[disk]) < 0.03


# --- scoring --------------------------------------------------------------------------------


def test_psnr_and_ssim_equal_skimage() -> None:
    data = make_data(ParallelBeamGeometry(32), 3, seed=2)
    truth = torch.from_numpy(data.images)
    gen = torch.Generator().manual_seed(0)
    noisy = (truth + 0.1 * torch.randn(truth.shape, dtype=F64, generator=gen)).clamp(0, 1)
    ours_p, ours_s = psnr(noisy, truth), ssim(noisy, truth)
    for i in range(3):
        t, x = data.images[i], noisy[i].numpy()
        assert float(ours_p[i]) == pytest.approx(peak_signal_noise_ratio(t, x, data_range=1),
                                                 rel=1e-10)
        assert float(ours_s[i]) == pytest.approx(structural_similarity(t, x, data_range=1),
                                                 rel=1e-10)


def test_violation_checks() -> None:
    g = ParallelBeamGeometry(16)
    op = RayTransform(g, dtype=F64)
    x = torch.full((2, 16, 16), 0.5, dtype=F64)
    x[1, 0, 0] = 1.01
    assert box_violation(x).tolist() == [False, True]
    d = op.forward(x)
    assert not fidelity_violation(x, d, op, 0.0).any()
    assert fidelity_violation(x + 0.1, d, op, 0.01).all()


# --- TV-min ---------------------------------------------------------------------------------


def test_gradient_adjoint() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 7, 7, dtype=F64, generator=gen)
    g = torch.randn(2, 2, 7, 7, dtype=F64, generator=gen)
    assert torch.allclose((gradient(x) * g).sum(), (x * gradient_adjoint(g)).sum(), rtol=1e-12)


def test_tv_min_matches_cvxpy() -> None:
    """PDHG's objective against Clarabel's on an 8×8 image with the fidelity bound active."""
    g = ParallelBeamGeometry(8, 6)
    data = make_data(g, 1, noise=0.05, seed=3)
    op = RayTransform(g, dtype=F64)
    a = system_matrix(g).toarray()
    d = data.measurements[0].ravel()
    eps = 0.05 * np.linalg.norm(d)
    x = cp.Variable((8, 8))
    objective = cp.sum(cp.abs(x[:, 1:] - x[:, :-1])) + cp.sum(cp.abs(x[1:, :] - x[:-1, :]))
    problem = cp.Problem(cp.Minimize(objective),
                         [cp.norm(a @ cp.vec(x, order="C") - d) <= eps, x >= 0, x <= 1])
    problem.solve(solver=cp.CLARABEL)
    ours, stats = TVMin(fidelity=0.05, tol=1e-6, max_iter=50_000)(
        torch.from_numpy(data.measurements), op)
    assert bool(stats.converged.all())
    tv = float(anisotropic_tv(ours)[0])
    assert abs(tv - problem.value) <= 1e-4 * problem.value, (tv, problem.value)
    assert np.linalg.norm(a @ ours[0].numpy().ravel() - d) <= eps * (1 + 1e-4)
    assert float(ours.min()) >= 0 and float(ours.max()) <= 1


def test_bad_tv_bound_is_one_message() -> None:
    with pytest.raises(ParameterError, match="fidelity bound"):
        TVMin(fidelity=0.0)
