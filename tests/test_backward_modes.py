"""Tests of the unrolled and implicit backward modes, their adjoint solvers and DYS methods.

References, each computed independently of the mode under test: central finite differences of
the converged layer; the closed form ``dz*/dw = (I − ∂T/∂z)⁻¹ ∂T/∂w`` of docs/methods.md with
dense NumPy algebra; dense solves of small explicit linear systems. Unrolled memory is measured
as the bytes autograd saves for the backward pass, not by wall-clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor

from l2obench.implicit.backward import JFB, Backward, Implicit, ImplicitFreeSet, Unrolled
from l2obench.implicit.fixed_point import Anderson, Picard
from l2obench.implicit.linear_solvers import (
    GMRES,
    ConjugateGradientNormal,
    FixedPointIteration,
    FreeSetCG,
    LinearSolver,
    jvp_from_vjp,
    row_norms,
)
from l2obench.layers.dys import DYSLayer
from l2obench.methods.base import Budget, method_registry
from l2obench.methods.dys import DYSMethod, resolve_chunk
from l2obench.problems.shortest_path import ShortestPath, path_laplacian
from tests.test_dys_layer import grid_lp, old_operator, top_right_path

F64 = torch.float64
SOLVERS: dict[str, type[LinearSolver]] = {
    "fixed-point": FixedPointIteration,
    "cg": ConjugateGradientNormal,
    "gmres": GMRES,
}
#: A tight forward solve: the fixed point to far below the finite-difference step's effect.
TIGHT = Picard(tol=1e-12, max_iter=200_000)


def tight_implicit(name: str) -> Implicit:
    return Implicit(SOLVERS[name](tol=1e-12, max_iter=100_000))


#: Lower end of the uniform cost range ``[low, 1)`` for each γ used below, chosen so that every
#: instance has some arcs strictly inside ``[0, 1]`` and others at a bound: near-ties for small γ
#: (with costs in ``[0, 1)`` many instances sit at a vertex and have a zero gradient), a wide
#: range for large γ (else every arc is inside and ``∂T/∂z`` has one eigenvalue on ``ℓ``'s span).
COST_LOW = {0.5: 0.0, 0.2: 0.0, 0.05: 0.8}


def costs(gamma: float, n_inst: int, n: int, seed: int = 0) -> Tensor:
    low = COST_LOW[gamma]
    gen = torch.Generator().manual_seed(seed)
    return low + (1.0 - low) * torch.rand(n_inst, n, dtype=F64, generator=gen)


def assert_mixed_bounds(layer: DYSLayer, w: Tensor) -> None:
    """Every instance's solution has arcs strictly inside the box and arcs at a bound."""
    with torch.no_grad():
        inside = layer.box.jacobian_mask(layer(w)[0]).sum(dim=1)
    assert ((inside > 0) & (inside < w.shape[1])).all(), inside


def gradient(layer: DYSLayer, w: Tensor, target: Tensor) -> Tensor:
    """``dℓ/dw`` of ``ℓ = Σ ‖x(w) − target‖²`` through ``layer``'s backward mode."""
    return gradient_and_stats(layer, w, target)[0]


def gradient_and_stats(layer: DYSLayer, w: Tensor, target: Tensor) -> tuple[Tensor, Any]:
    """:func:`gradient`, and the layer's statistics after the backward pass."""
    w_req = w.clone().requires_grad_(True)
    x_req, stats = layer(w_req)
    ((x_req - target) ** 2).sum().backward()
    assert w_req.grad is not None
    return w_req.grad, stats


def relative_errors(a: Tensor, b: Tensor) -> Tensor:
    """``‖a_i − b_i‖ / ‖b_i‖`` per row."""
    return row_norms(a - b) / row_norms(b)


# --- implicit gradients against references ----------------------------------------------------


@pytest.mark.parametrize("solver", list(SOLVERS))
@pytest.mark.parametrize("gamma", [0.5, 0.05])
def test_implicit_gradient_matches_finite_differences(solver: str, gamma: float) -> None:
    """dℓ/dw against central differences of the converged layer, per instance.

    The DYS operator is piecewise affine, so ``x(w)`` is piecewise affine and central differences
    are exact away from the kinks; eps = 1e-6 keeps the 1e-12 solve error negligible. γ = 0.05
    makes ``J`` contract slowly (hundreds of fixed-point iterations); costs are drawn so that every
    instance has some decisions strictly inside the box, hence a nonzero gradient.
    """
    k, eps, n_inst = 3, 1e-6, 4
    lp = grid_lp(k)
    n = lp.n_vars
    layer = DYSLayer(lp, alpha=1.0, gamma=gamma, solver=TIGHT, backward=tight_implicit(solver),
                     dtype=F64)
    target = top_right_path(k, lp)
    w = costs(gamma, n_inst, n)
    assert_mixed_bounds(layer, w)
    grad, stats = gradient_and_stats(layer, w, target)
    assert stats.backward_converged

    steps = eps * torch.eye(n, dtype=F64)
    w_pert = torch.cat([w[:, None, :] + steps, w[:, None, :] - steps], dim=1).reshape(-1, n)
    with torch.no_grad():
        loss = ((layer(w_pert)[0] - target) ** 2).sum(dim=1).reshape(n_inst, 2, n)
    fd = (loss[:, 0] - loss[:, 1]) / (2 * eps)
    assert (row_norms(fd) > 1e-2).all(), row_norms(fd)
    assert (relative_errors(grad, fd) < 1e-4).all(), relative_errors(grad, fd)


def test_implicit_gradient_matches_closed_form() -> None:
    """``dx/dw = D (I − J)⁺ (−α M)`` with ``J = I − D + M((2 − αγ)D − I)`` at ``z*``.

    The layer returns ``x = P_box(z)`` for ``z = T(z*)``; since ``T(z*) = z*`` and
    ``J (I − J)⁻¹ + I = (I − J)⁻¹``, the taped step adds nothing, and ``D`` is the clamp's mask at
    ``z*`` for both factors. The costs enter through ``P_aff(−α w)``: ``∂T/∂w = −α M``.

    With bounds active, ``I − J`` is singular: a ``u`` in the range of ``Aᵀ`` supported on the
    clamped arcs has ``J u = u``. Such directions are invisible in ``x`` (``D u = 0``) and the
    system is consistent, so any solution gives the same ``dx/dw``; the pseudo-inverse picks one.
    """
    lp = grid_lp(3)
    n = lp.n_vars
    alpha, gamma = 1.0, 0.2
    layer = DYSLayer(lp, alpha=alpha, gamma=gamma, solver=TIGHT, backward=tight_implicit("gmres"),
                     dtype=F64)
    w = costs(gamma, 1, n, seed=1)
    g = torch.randn(1, n, dtype=F64, generator=torch.Generator().manual_seed(4))
    w_req = w.clone().requires_grad_(True)
    x, _ = layer(w_req)
    (grad,) = torch.autograd.grad(x, w_req, g)

    with torch.no_grad():
        z_star, _ = TIGHT(layer.operator, torch.zeros_like(w), (layer.aff(-alpha * w),))
    A = lp.A.toarray()
    M = np.eye(n) - np.linalg.pinv(A) @ A
    D = np.diag(layer.box.jacobian_mask(z_star[0]).numpy().astype(float))
    assert 0 < D.trace() < n  # active and inactive bounds both occur
    B = np.eye(n) - (np.eye(n) - D + M @ ((2 - alpha * gamma) * D - np.eye(n)))
    _, sv, vt = np.linalg.svd(B)
    null = vt[sv < 1e-10].T
    assert null.shape[1] >= 1 and np.abs(D @ null).max() < 1e-12  # singular, invisible in x
    Y = np.linalg.pinv(B) @ (-alpha * M)
    np.testing.assert_allclose(B @ Y, -alpha * M, atol=1e-12)  # consistent
    dx_dw = D @ Y
    np.testing.assert_allclose(grad[0].numpy(), g[0].numpy() @ dx_dw, rtol=0, atol=1e-9)
    assert not np.allclose(dx_dw, D @ (-alpha * M), atol=1e-3)  # differs from JFB's


@pytest.mark.parametrize("gamma", [0.5, 0.05])
@pytest.mark.parametrize("shortest_path", [False, True])
def test_free_set_adjoint_equals_the_implicit_gradient(gamma: float, shortest_path: bool) -> None:
    """The free-coordinates adjoint gives the gradient of CG on ``(I − J)ᵀ v = g``, in float64,
    on a grid in the node order (sparse products) and in PyEPO's order (stencils)."""
    k = 4
    lp = ShortestPath(k=k).lp() if shortest_path else grid_lp(k)
    target = torch.as_tensor(ShortestPath(k=k).generate().train.solutions[0]) if shortest_path \
        else top_right_path(k, lp)
    w = costs(gamma, 6, lp.n_vars)
    setting: dict[str, Any] = {"alpha": 1.0, "gamma": gamma, "solver": TIGHT, "dtype": F64}
    layer = DYSLayer(lp, backward=ImplicitFreeSet(FreeSetCG(1e-10, 10_000)), **setting)
    assert_mixed_bounds(layer, w)
    free, stats = gradient_and_stats(layer, w, target)
    implicit = gradient(DYSLayer(lp, backward=tight_implicit("cg"), **setting), w, target)
    assert stats.backward_converged and 0 < stats.backward_iterations < 100
    assert (row_norms(implicit) > 1e-2).all()
    assert (relative_errors(free, implicit) < 1e-8).all(), relative_errors(free, implicit)


def test_free_set_adjoint_at_the_defaults_in_float32() -> None:
    """At α = 0.05, γ = 5e-4 and tol 1e-2 (unconverged, nearly singular ``I − J``) the float32
    free-coordinates gradient stays close to the float64 one; CG on ``(I − J)ᵀ v = g`` in
    float64 is the reference, the free-coordinates solve in float64 equals it."""
    problem = ShortestPath(k=6, n_train=32, seed=0)
    data = problem.generate()
    lp = problem.lp()
    torch.manual_seed(0)
    w = torch.nn.Linear(5, lp.n_vars)(torch.as_tensor(data.train.features)).detach().double()
    target = torch.as_tensor(data.train.solutions)
    setting: dict[str, Any] = {"solver": Picard(tol=1e-2)}
    ref = gradient(DYSLayer(lp, backward=Implicit(ConjugateGradientNormal(1e-11, 100_000)),
                            dtype=F64, **setting), w, target)
    free64 = gradient(DYSLayer(lp, backward=ImplicitFreeSet(FreeSetCG(1e-11, 10_000)),
                               dtype=F64, **setting), w, target)
    moving = row_norms(ref) > 0  # instances at a vertex have no gradient at all
    assert 0 < int(moving.sum()) < len(ref) and bool((free64[~moving] == 0).all())
    ref, free64, target, w = ref[moving], free64[moving], target[moving], w[moving]
    assert (relative_errors(free64, ref) < 1e-6).all()
    layer32 = DYSLayer(lp, backward=ImplicitFreeSet(FreeSetCG(1e-4, 500)), **setting)
    w32 = w.float().clone().requires_grad_(True)
    x, stats = layer32(w32)
    ((x - target.float()) ** 2).sum().backward()
    assert stats.backward_converged
    assert w32.grad is not None
    errors = relative_errors(w32.grad.double(), ref)
    assert float(errors.median()) < 1e-3, errors


def test_free_set_cg_solves_a_singular_consistent_laplacian() -> None:
    """A graph Laplacian with several components (singular), a right-hand side in its range:
    the solution meets the tolerance and ``L y = b``; an unreachable tolerance stops at the
    best iterate instead of drifting."""
    gen = torch.Generator().manual_seed(0)
    blocks = [torch.as_tensor(path_laplacian(m)) for m in (4, 7, 2)] + [torch.zeros(1, 1)]
    L = torch.block_diag(*blocks).double()
    b = (torch.randn(3, L.shape[0], generator=gen, dtype=F64) @ L)  # in the range of L
    precond = 1.0 / L.diagonal().clamp_min(1.0).expand_as(b)
    y, iterations, converged = FreeSetCG(1e-10, 200).solve(lambda v: v @ L, b, precond)
    assert bool(converged.all()) and 0 < iterations < 50
    torch.testing.assert_close(y @ L, b, atol=1e-9, rtol=0)
    y32, _, conv32 = FreeSetCG(1e-12, 10_000).solve(lambda v: v @ L.float(), b.float(),
                                                    precond.float())
    assert not conv32.any()  # float32 cannot reach 1e-12
    assert float((y32.double() @ L - b).abs().max()) < 1e-4


def test_free_set_adjoint_needs_an_operator_that_has_one() -> None:
    def fn(z: Tensor, a: Tensor) -> Tensor:
        return 0.5 * z + a

    with pytest.raises(TypeError, match="free_set_adjoint"):
        ImplicitFreeSet()(fn, torch.zeros(2, 3), (torch.ones(2, 3),), TIGHT)


def test_unrolled_gradient_equals_autograd_through_the_plain_steps() -> None:
    """The taped step that keeps only the clamp's derivative gives autograd's own gradient."""
    lp = ShortestPath(k=4).lp()
    layer = DYSLayer(lp, alpha=0.5, gamma=0.1, backward=Unrolled(30), dtype=F64)
    w = costs(0.5, 5, lp.n_vars, seed=3).requires_grad_(True)
    g = torch.randn(5, lp.n_vars, dtype=F64, generator=torch.Generator().manual_seed(1))
    x, _ = layer(w)
    (ours,) = torch.autograd.grad(x, w, g)
    shift = layer.aff(-layer.alpha * w)
    z = torch.zeros_like(w)
    for _ in range(30):
        z = old_operator(layer, z, shift)
    (plain,) = torch.autograd.grad(layer.box(z), w, g)
    torch.testing.assert_close(ours, plain, atol=1e-12, rtol=1e-10)


def test_unrolled_gradient_approaches_implicit() -> None:
    """From ``z = 0``, K steps: the error to the implicit gradient falls with K (rate ≈ 0.95)."""
    k = 3
    lp = grid_lp(k)
    target = top_right_path(k, lp)
    w = costs(0.05, 4, lp.n_vars)
    setting: dict[str, Any] = {"alpha": 1.0, "gamma": 0.05, "solver": TIGHT, "dtype": F64}
    implicit = gradient(DYSLayer(lp, backward=tight_implicit("gmres"), **setting), w, target)
    errors = [
        float(relative_errors(gradient(DYSLayer(lp, backward=Unrolled(K), **setting), w, target),
                              implicit).max())
        for K in (5, 50, 500)
    ]
    assert errors[0] > errors[1] > errors[2], errors
    assert errors[0] > 0.1 and errors[2] < 1e-8, errors


@pytest.mark.parametrize("gamma", [0.5, 0.05])
def test_jfb_gradient_agrees_in_sign_with_the_implicit_gradient(gamma: float) -> None:
    k = 4
    lp = grid_lp(k)
    target = top_right_path(k, lp)
    w = costs(gamma, 8, lp.n_vars)
    setting: dict[str, Any] = {"alpha": 1.0, "gamma": gamma, "solver": TIGHT, "dtype": F64}
    implicit = gradient(DYSLayer(lp, backward=tight_implicit("gmres"), **setting), w, target)
    jfb = gradient(DYSLayer(lp, backward=JFB(), **setting), w, target)
    assert (row_norms(implicit) > 1e-2).all()
    assert ((jfb * implicit).sum(dim=1) > 0).all()


# --- memory -----------------------------------------------------------------------------------


def saved_bytes(layer: DYSLayer, w: Tensor) -> int:
    """Bytes of the distinct storages autograd keeps for the backward pass of one forward."""
    storages: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        layer(w.clone().requires_grad_(True))
    return sum(storages.values())


def test_unrolled_memory_grows_with_k_and_implicit_memory_does_not() -> None:
    lp = grid_lp(4)
    w = costs(0.05, 32, lp.n_vars)

    def layer(backward: Backward) -> DYSLayer:
        return DYSLayer(lp, alpha=1.0, gamma=0.05, solver=Picard(1e-10, 100_000),
                        backward=backward, dtype=F64)

    one_step = saved_bytes(layer(JFB()), w)  # includes M, shared by all steps
    k10, k100 = saved_bytes(layer(Unrolled(10)), w), saved_bytes(layer(Unrolled(100)), w)
    assert k100 - k10 == 10 * (k10 - one_step) > 0, (one_step, k10, k100)  # linear in K
    # Each taped step after the first (which starts from the constant z0) keeps one boolean
    # per entry, the clamp's derivative.
    assert k10 - one_step == 9 * w.numel()
    assert saved_bytes(layer(tight_implicit("cg")), w) == one_step


# --- statistics -------------------------------------------------------------------------------


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_implicit_records_backward_statistics(solver: str) -> None:
    lp = grid_lp(3)
    target = top_right_path(3, lp)
    w = costs(0.05, 4, lp.n_vars)
    for max_iter, converged in [(100_000, True), (1, False)]:
        backward = Implicit(SOLVERS[solver](tol=1e-12, max_iter=max_iter))
        layer = DYSLayer(lp, alpha=1.0, gamma=0.05, solver=TIGHT, backward=backward, dtype=F64)
        x, stats = layer(w.clone().requires_grad_(True))
        assert stats.backward_iterations is None  # not yet run
        ((x - target) ** 2).sum().backward()
        assert stats.backward_converged is converged
        assert stats.backward_iterations is not None
        assert 0 < stats.backward_iterations <= max_iter
        assert bool(stats.converged.all())


def test_unrolled_statistics_are_k_and_the_last_step() -> None:
    lp = grid_lp(3)
    w = costs(0.5, 4, lp.n_vars)
    for K, converged in [(3, False), (2_000, True)]:
        layer = DYSLayer(lp, alpha=1.0, gamma=0.5, solver=Picard(tol=1e-8), backward=Unrolled(K),
                         dtype=F64)
        with torch.no_grad():
            _, stats = layer(w)
        assert stats.iterations.tolist() == [K] * 4
        assert stats.converged.tolist() == [converged] * 4
        assert stats.backward_iterations is None
    with pytest.raises(ValueError, match="K"):
        Unrolled(0)


# --- the linear solvers on explicit systems ---------------------------------------------------


def explicit_system(n_inst: int, d: int, radius: float, seed: int) -> tuple[Tensor, Tensor]:
    """Nonsymmetric ``J_i`` with spectral radius ``radius``, and right-hand sides (row 0 zero)."""
    gen = torch.Generator().manual_seed(seed)
    J = torch.randn(n_inst, d, d, dtype=F64, generator=gen)
    J *= radius / torch.linalg.eigvals(J).abs().amax(dim=1)[:, None, None]
    g = torch.randn(n_inst, d, dtype=F64, generator=gen)
    g[0] = 0.0
    return J, g


def batched_vjp(J: Tensor) -> Callable[[Tensor], Tensor]:
    return lambda u: torch.einsum("nd,nde->ne", u, J)


@pytest.mark.parametrize("solver", list(SOLVERS))
def test_linear_solvers_match_a_dense_solve(solver: str) -> None:
    J, g = explicit_system(5, 12, radius=0.9, seed=0)
    v, iterations, converged = SOLVERS[solver](tol=1e-10, max_iter=5_000)(batched_vjp(J), g)
    B = torch.eye(12, dtype=F64) - J
    expected = torch.linalg.solve(B.transpose(1, 2), g)
    assert bool(converged.all()) and iterations > 0
    torch.testing.assert_close(v, expected, atol=1e-8, rtol=0)
    assert bool((v[0] == 0).all())  # g = 0 gives v = 0


def test_krylov_solvers_handle_a_singular_consistent_system() -> None:
    """``J`` with an eigenvalue exactly 1: CG returns the least-norm solution; both stay finite."""
    d = 10
    gen = torch.Generator().manual_seed(1)
    Q, _ = torch.linalg.qr(torch.randn(d, d, dtype=F64, generator=gen))
    eig = torch.linspace(-0.5, 0.9, d, dtype=F64)
    eig[0] = 1.0
    J = (Q * eig) @ Q.T  # symmetric, so the range of I − J is orthogonal to Q[:, 0]
    g = torch.randn(3, d, dtype=F64, generator=gen)
    g -= (g @ Q[:, :1]) * Q[:, 0]
    vjp = batched_vjp(J.expand(3, d, d))
    v, _, converged = ConjugateGradientNormal(tol=1e-10, max_iter=500)(vjp, g)
    assert bool(converged.all())
    torch.testing.assert_close(v, g @ torch.linalg.pinv(torch.eye(d, dtype=F64) - J),
                               atol=1e-8, rtol=0)
    v, _, converged = GMRES(tol=1e-10, max_iter=500)(vjp, g)
    assert bool(converged.all()) and bool(torch.isfinite(v).all())


def test_gmres_restarts_and_fixed_point_reports_unconverged() -> None:
    J, g = explicit_system(4, 30, radius=0.95, seed=2)
    vjp = batched_vjp(J)
    v, iterations, converged = GMRES(tol=1e-9, max_iter=2_000, restart=5)(vjp, g)
    assert bool(converged.all()) and iterations > 20
    B = torch.eye(30, dtype=F64) - J
    torch.testing.assert_close(v, torch.linalg.solve(B.transpose(1, 2), g), atol=1e-6, rtol=0)
    _, iterations, converged = FixedPointIteration(tol=1e-9, max_iter=10)(vjp, g)
    assert iterations == 10
    assert converged.tolist() == [True, False, False, False]  # only the g = 0 row


def test_jvp_from_vjp_is_the_jacobian_vector_product() -> None:
    J, _ = explicit_system(3, 6, radius=0.5, seed=3)

    def vjp(u: Tensor) -> Tensor:  # an autograd vjp, as the implicit mode builds it
        z = torch.zeros(3, 6, dtype=F64, requires_grad=True)
        out = torch.einsum("nde,ne->nd", J, z)
        (grad,) = torch.autograd.grad(out, z, u, create_graph=u.requires_grad)
        return grad

    t = torch.randn(3, 6, dtype=F64)
    torch.testing.assert_close(jvp_from_vjp(vjp, t)(t), torch.einsum("nde,ne->nd", J, t))


@pytest.mark.parametrize("bad", [{"tol": 0.0}, {"max_iter": 0}, {"restart": 0}])
def test_linear_solvers_reject_bad_settings(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        GMRES(**bad)  # type: ignore[arg-type]


# --- the methods ------------------------------------------------------------------------------


STEPS = 3  # 40 training instances in batches of 16


@pytest.mark.parametrize(
    ("name", "params", "bwd_unconverged"),
    [
        ("dys-unrolled", {"K": 20}, None),
        ("dys-implicit", {}, 0),
        ("dys-implicit", {"linear_solver": "cg", "bwd_tol": 2e-2}, 0),
        ("dys-implicit", {"linear_solver": "gmres", "bwd_tol": 2e-2}, 0),
        # At α = 0.05, γ = 5e-4, J has eigenvalues at 1 − αγ: 500 iterations are far too few.
        ("dys-implicit", {"linear_solver": "fixed-point"}, STEPS),
        ("dys-implicit", {"bwd_max_iter": 1, "bwd_tol": 1e-8}, STEPS),
    ],
)
def test_dys_methods_train_and_report_iterations(
    name: str, params: dict[str, object], bwd_unconverged: int | None
) -> None:
    problem = ShortestPath(k=3, n_train=40, n_val=8, n_test=8, seed=1)
    data = problem.generate()
    method = method_registry.get(name)(problem, torch.device("cpu"), seed=0, batch_size=16,
                                       **params)
    assert isinstance(method, DYSMethod)
    fit = method.fit(data, Budget(max_epochs=1))
    assert fit.epochs == 1
    assert fit.bwd_unconverged == bwd_unconverged
    if name == "dys-unrolled":
        assert fit.fwd_iters_mean == fit.fwd_iters_max == params["K"]
        assert fit.bwd_iters_mean is None
    else:
        assert fit.fwd_iters_mean is not None and fit.fwd_iters_mean > 1
        assert fit.bwd_iters_mean is not None and fit.bwd_iters_mean >= 1
    assert method.predict_decisions(data.test.features).shape == (8, problem.n_vars)


def test_dys_method_parameters() -> None:
    unrolled = method_registry.get("dys-unrolled")
    assert "max_iter" not in unrolled.params and unrolled.params["K"].low == 1
    choices = method_registry.get("dys-implicit").params["linear_solver"].choices
    assert set(choices or ()) == {"free-cg", *SOLVERS}


def test_dys_jfb_solver_is_a_parameter() -> None:
    problem = ShortestPath(k=3, n_train=40, n_val=8, n_test=8, seed=1)
    data = problem.generate()
    jfb = method_registry.get("dys-jfb")
    picard = jfb(problem, torch.device("cpu"), seed=0, batch_size=16, tol=1e-4)
    anderson = jfb(problem, torch.device("cpu"), seed=0, batch_size=16, tol=1e-4,
                   solver="anderson", memory=4)
    assert isinstance(picard, DYSMethod) and isinstance(anderson, DYSMethod)
    assert isinstance(picard.layer.solver, Picard)
    chunk = resolve_chunk(anderson.config, problem.n_vars, torch.device("cpu"))
    assert anderson.layer.solver == Anderson(tol=1e-4, max_iter=10_000, memory=4, chunk=chunk)
    fits = [m.fit(data, Budget(max_epochs=1)) for m in (picard, anderson)]
    assert all(f.fwd_unconverged == 0 and f.fwd_iters_mean for f in fits)


@pytest.mark.parametrize("name", ["dys-jfb", "dys-implicit"])
def test_warm_start_starts_each_instance_at_its_last_fixed_point(name: str) -> None:
    problem = ShortestPath(k=4, n_train=48, n_val=8, n_test=8, seed=2)
    data = problem.generate()
    fits = {}
    for warm in (False, True):
        method = method_registry.get(name)(problem, torch.device("cpu"), seed=0, batch_size=16,
                                           warm_start=warm)
        assert isinstance(method, DYSMethod)
        fit = method.fit(data, Budget(max_epochs=3))
        epochs = [torch.cat([s.iterations for s in method.tally.steps[i : i + 3]]).double()
                  .mean() for i in (0, 6)]
        fits[warm] = (fit, epochs, method)
    (_, cold_iters, _), (warm_fit, warm_iters, method) = fits[False], fits[True]
    assert warm_iters[0] == cold_iters[0]  # the first epoch starts every instance at z = 0
    assert warm_iters[1] < cold_iters[1]  # the third starts where the second ended
    assert method.warm is not None and method.warm.abs().sum() > 0
    assert method.config["warm_start"] is True and warm_fit.fwd_unconverged == 0


def test_new_dys_parameters_leave_published_cell_ids_unchanged() -> None:
    """``warm_start``, ``projection``, ``check_every`` and ``chunk`` came after the shortest-path
    baseline was published and are ``omit_default``: its ``dys-jfb``, ``dys-unrolled`` and
    ``dys-jfb-jax`` records are still the cells the protocol expands to. (``dys-implicit``'s
    adjoint defaults changed, so its cells are new ones.)"""
    import dataclasses

    from l2obench.record import Budget as RecordBudget
    from l2obench.store import load_records
    from l2obench.suite import expand, load_suite
    from tests.conftest import REPO

    suite = dataclasses.replace(load_suite("shortest-path"),
                                budget=RecordBudget(max_epochs=100, max_seconds=60.0))
    names = ["dys-jfb", "dys-unrolled", "dys-jfb-jax"]
    cells = expand(suite, device="cpu", sizes=[5, 10, 20, 30], seeds=[0, 1, 2],
                   method_names=names)
    published = [r for r in load_records(REPO / "results" / "shortest-path") if r.method in names]
    assert len(published) == 36
    assert {r.cell_id for r in published} <= {c.cell_id for c in cells}
    params = method_registry.get("dys-jfb").cell_params({"warm_start": True, "chunk": 8})
    assert params["warm_start"] is True and params["chunk"] == 8
    assert "projection" not in method_registry.get("dys-jfb").cell_params({})
